package io.kube2hadoop.e2e;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.client.HdfsClientConfigKeys;
import org.apache.hadoop.hdfs.MiniDFSNNTopology;
import org.apache.hadoop.hdfs.server.namenode.FSNamesystem;
import org.apache.hadoop.http.HttpConfig;
import org.apache.hadoop.security.SecurityUtil;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.log4j.FileAppender;
import org.apache.log4j.Level;
import org.apache.log4j.Logger;
import org.apache.log4j.PatternLayout;

/**
 * A Kerberized MiniDFSCluster set up the way a production cluster that kube2hadoop talks to is:
 * Kerberos RPC with service authorization, block access tokens, SASL data transfer, WebHDFS behind
 * SPNEGO, and the token service allowed to impersonate the test users.
 */
final class SecureHdfs implements AutoCloseable {
  /** Delegation-token lifetimes; Hadoop's defaults unless a test wants them short. */
  record TokenTimes(long renewIntervalMs, long maxLifetimeMs, long keyUpdateIntervalMs) {}

  /** One NameNode as clients see it; name is null when the cluster is not federated. */
  record NameNode(String nameservice, InetSocketAddress rpc, InetSocketAddress http) {
    String rpcHostPort() {
      return "127.0.0.1:" + rpc.getPort();
    }

    String httpUrl() {
      return "http://127.0.0.1:" + http.getPort();
    }
  }

  private static final String KEY_PROVIDER_PATH = "hadoop.security.key.provider.path";

  private final MiniDFSCluster cluster;
  final List<NameNode> nameNodes;
  final Configuration clientConf;
  /** The NameNodes' own configuration (a router in front of them starts from it). */
  final Configuration serverConf;

  private SecureHdfs(MiniDFSCluster cluster, List<NameNode> nameNodes, Configuration clientConf, Configuration serverConf) {
    this.cluster = cluster;
    this.nameNodes = nameNodes;
    this.clientConf = clientConf;
    this.serverConf = serverConf;
  }

  /** The name pods reach the DataNode by (a pod's hostAliases map it to the pod gateway). */
  static final String POD_DATANODE_HOSTNAME = "k2h-hadoop-datanode";

  /**
   * {@code routed}: an HDFS Router will sit in front (harness flag rbf). It forwards every call as
   * a proxy user of its own login principal (hdfs/localhost here, see SecureRouter), so the
   * NameNodes let hdfs impersonate the test users, and each subcluster gets a file in alice's home.
   */
  static SecureHdfs start(SecureKdc kdc, File workDir, int nameservices, TokenTimes times, File auditLog, SecureKms kms,
      String podGateway, boolean routed) throws Exception {
    Configuration conf = serverConf(kdc, times);
    if (routed) {
      conf.set("hadoop.proxyuser.hdfs.hosts", "*");
      conf.set("hadoop.proxyuser.hdfs.users", String.join(",", SecureKdc.USERS));
    }
    if (podGateway != null) {
      // Pods on the bed's real node reach this machine at the gateway only: the NameNode's RPC
      // and the DataNode's transfer port listen on every address, and the DataNode is known by
      // a name pods resolve to the gateway (clients on this machine keep using 127.0.0.1).
      conf.set(DFSConfigKeys.DFS_NAMENODE_RPC_BIND_HOST_KEY, "0.0.0.0");
      conf.set(DFSConfigKeys.DFS_DATANODE_ADDRESS_KEY, "0.0.0.0:0");
      conf.set(DFSConfigKeys.DFS_DATANODE_HTTP_ADDRESS_KEY, "127.0.0.1:0");
      conf.set(DFSConfigKeys.DFS_DATANODE_IPC_ADDRESS_KEY, "127.0.0.1:0");
      conf.set(DFSConfigKeys.DFS_DATANODE_HOST_NAME_KEY, POD_DATANODE_HOSTNAME);
      // A token service running as a pod asks the NameNode's web endpoint for tokens at
      // SecureKdc.POD_HOSTNAME: it listens on every address too, and SPNEGO accepts every HTTP/
      // principal of its keytab (HTTP/localhost here, HTTP/k2h-hadoop from pods).
      conf.set(DFSConfigKeys.DFS_NAMENODE_HTTP_BIND_HOST_KEY, "0.0.0.0");
      conf.set(DFSConfigKeys.DFS_WEB_AUTHENTICATION_KERBEROS_PRINCIPAL_KEY, "*");
      conf.set("hadoop.http.authentication.kerberos.principal", "*");
    }
    if (kms != null) {
      conf.set(KEY_PROVIDER_PATH, kms.providerUri().toString());
    }
    enableAuditLog(auditLog);
    UserGroupInformation.setConfiguration(conf);

    MiniDFSNNTopology topology;
    if (nameservices <= 1) {
      topology = MiniDFSNNTopology.simpleSingleNN(0, 0);
    } else {
      topology = new MiniDFSNNTopology().setFederation(true);
      for (int i = 1; i <= nameservices; i++) {
        topology.addNameservice(new MiniDFSNNTopology.NSConf("ns" + i).addNN(new MiniDFSNNTopology.NNConf(null)));
      }
    }
    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf, new File(workDir, "dfs"))
            .nnTopology(topology)
            .numDataNodes(1)
            .checkDataNodeAddrConfig(podGateway != null)
            .checkDataNodeHostConfig(podGateway != null)
            .build();
    cluster.waitActive();

    List<NameNode> nns = new ArrayList<>();
    for (int i = 0; i < cluster.getNumNameNodes(); i++) {
      var nn = cluster.getNameNode(i);
      String ns = nameservices <= 1 ? null : "ns" + (i + 1);
      nns.add(new NameNode(ns, nn.getNameNodeAddress(), nn.getHttpAddress()));
      createHomes(cluster.getFileSystem(i));
      if (routed) {
        writeAliceFile(cluster.getFileSystem(i), routedFileName(ns));
      }
    }
    if (kms != null) {
      kms.createKey(conf);
    }
    Configuration client = clientConf(kdc, nns);
    if (kms != null) {
      client.set(KEY_PROVIDER_PATH, kms.providerUri().toString());
    }
    return new SecureHdfs(cluster, nns, client, conf);
  }

  private static Configuration serverConf(SecureKdc kdc, TokenTimes times) {
    Configuration conf = new HdfsConfiguration();
    SecurityUtil.setAuthenticationMethod(UserGroupInformation.AuthenticationMethod.KERBEROS, conf);
    conf.setBoolean("hadoop.security.authorization", true);
    String hdfs = SecureKdc.principal(SecureKdc.HDFS);
    String hdfsKeytab = kdc.keytab("hdfs").getAbsolutePath();
    conf.set(DFSConfigKeys.DFS_NAMENODE_KERBEROS_PRINCIPAL_KEY, hdfs);
    conf.set(DFSConfigKeys.DFS_NAMENODE_KEYTAB_FILE_KEY, hdfsKeytab);
    conf.set(DFSConfigKeys.DFS_DATANODE_KERBEROS_PRINCIPAL_KEY, hdfs);
    conf.set(DFSConfigKeys.DFS_DATANODE_KEYTAB_FILE_KEY, hdfsKeytab);
    conf.set(DFSConfigKeys.DFS_WEB_AUTHENTICATION_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SPNEGO));
    conf.set(DFSConfigKeys.DFS_WEB_AUTHENTICATION_KERBEROS_KEYTAB_KEY, hdfsKeytab);
    conf.set(DFSConfigKeys.DFS_NAMENODE_KERBEROS_INTERNAL_SPNEGO_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SPNEGO));
    // Since Hadoop 3.3 WebHDFS is guarded by the server-wide AuthFilter, configured from
    // hadoop.http.authentication.*, whose core-default type is "simple" (anonymous allowed).
    conf.set("hadoop.http.authentication.type", "kerberos");
    conf.set("hadoop.http.authentication.kerberos.principal", SecureKdc.principal(SecureKdc.SPNEGO));
    conf.set("hadoop.http.authentication.kerberos.keytab", hdfsKeytab);
    conf.set("hadoop.http.authentication.simple.anonymous.allowed", "false");
    conf.setBoolean(DFSConfigKeys.DFS_BLOCK_ACCESS_TOKEN_ENABLE_KEY, true);
    conf.set(HdfsClientConfigKeys.DFS_DATA_TRANSFER_PROTECTION_KEY, "authentication");
    // Plain HTTP for WebHDFS: a secure DataNode otherwise insists on privileged ports or HTTPS.
    conf.set(DFSConfigKeys.DFS_HTTP_POLICY_KEY, HttpConfig.Policy.HTTP_ONLY.name());
    conf.setBoolean(DFSConfigKeys.IGNORE_SECURE_PORTS_FOR_TESTING_KEY, true);
    // The test users exist only in the KDC; listing them avoids depending on OS groups.
    conf.set("hadoop.proxyuser.kube2hadoop.hosts", "*");
    conf.set("hadoop.proxyuser.kube2hadoop.users", String.join(",", SecureKdc.USERS));
    // The Hive metastore (harness flag hive) touches the warehouse as a proxy of its caller.
    conf.set("hadoop.proxyuser.hive.hosts", "*");
    conf.set("hadoop.proxyuser.hive.users", String.join(",", SecureKdc.USERS));
    conf.setLong(DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_RENEW_INTERVAL_KEY, times.renewIntervalMs());
    conf.setLong(DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_MAX_LIFETIME_KEY, times.maxLifetimeMs());
    conf.setLong(DFSConfigKeys.DFS_NAMENODE_DELEGATION_KEY_UPDATE_INTERVAL_KEY, times.keyUpdateIntervalMs());
    conf.setBoolean(DFSConfigKeys.DFS_NAMENODE_AUDIT_LOG_TOKEN_TRACKING_ID_KEY, true);
    conf.setInt(DFSConfigKeys.DFS_REPLICATION_KEY, 1);
    return conf;
  }

  /** The stock NameNode audit logger, sent to a file tests can grep for cmd=getDelegationToken. */
  private static void enableAuditLog(File auditLog) throws IOException {
    Logger audit = Logger.getLogger(FSNamesystem.class.getName() + ".audit");
    audit.addAppender(new FileAppender(new PatternLayout("%d{ISO8601} %p %c{2}: %m%n"), auditLog.getAbsolutePath(), true));
    audit.setLevel(Level.INFO);
    audit.setAdditivity(false);
  }

  private static void createHomes(FileSystem fs) throws IOException {
    // A world-writable /tmp lets "whoami" ask the NameNode who it thinks the caller is.
    Path tmp = new Path("/tmp");
    fs.mkdirs(tmp);
    fs.setPermission(tmp, new FsPermission((short) 01777));
    for (String u : SecureKdc.USERS) {
      Path home = new Path("/user/" + u);
      fs.mkdirs(home);
      fs.setOwner(home, u, u);
      fs.setPermission(home, new FsPermission((short) 0700));
    }
  }

  /** The file each subcluster holds in /user/alice when a router is in front of them. */
  static String routedFileName(String nameservice) {
    return "hello-" + nameservice + ".txt";
  }

  private static void writeAliceFile(FileSystem fs, String name) throws IOException {
    Path file = new Path("/user/alice/" + name);
    try (OutputStream out = fs.create(file, false)) {
      out.write(("written by the harness in " + fs.getUri() + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
    }
    fs.setOwner(file, "alice", "alice");
    fs.setPermission(file, new FsPermission((short) 0600));
  }

  /** What a stock Hadoop client needs to reach this cluster; no server secrets. */
  private static Configuration clientConf(SecureKdc kdc, List<NameNode> nns) {
    Configuration c = new Configuration(false);
    c.set("fs.defaultFS", "hdfs://" + nns.get(0).rpcHostPort());
    c.set("hadoop.security.authentication", "kerberos");
    c.set("hadoop.security.authorization", "true");
    c.set("hadoop.rpc.protection", "authentication");
    // Fail fast when the bed is down instead of retrying for minutes.
    c.set("ipc.client.connect.max.retries", "3");
    c.set("ipc.client.connect.retry.interval", "200");
    c.set(DFSConfigKeys.DFS_NAMENODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    c.set(DFSConfigKeys.DFS_DATANODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    c.set(DFSConfigKeys.DFS_WEB_AUTHENTICATION_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SPNEGO));
    c.set(HdfsClientConfigKeys.DFS_DATA_TRANSFER_PROTECTION_KEY, "authentication");
    c.set(DFSConfigKeys.DFS_REPLICATION_KEY, "1"); // one DataNode
    c.set(DFSConfigKeys.DFS_BLOCK_ACCESS_TOKEN_ENABLE_KEY, "true");
    c.set(DFSConfigKeys.DFS_HTTP_POLICY_KEY, HttpConfig.Policy.HTTP_ONLY.name());
    if (nns.size() == 1 && nns.get(0).nameservice() == null) {
      c.set(DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY, nns.get(0).rpcHostPort());
      c.set(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY, "127.0.0.1:" + nns.get(0).http().getPort());
    } else {
      List<String> names = new ArrayList<>();
      for (NameNode nn : nns) {
        names.add(nn.nameservice());
        c.set(DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY + "." + nn.nameservice(), nn.rpcHostPort());
        c.set(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY + "." + nn.nameservice(), "127.0.0.1:" + nn.http().getPort());
      }
      c.set(DFSConfigKeys.DFS_NAMESERVICES, String.join(",", names));
    }
    // Read by the client tools (creds-write-real, renew, cancel) to act as the token service.
    c.set(ClientTools.SERVICE_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SERVICE));
    c.set(ClientTools.SERVICE_KEYTAB_KEY, kdc.keytab("kube2hadoop").getAbsolutePath());
    return c;
  }

  /** The first NameNode's file system, as the harness's login user (hdfs, the superuser). */
  FileSystem fileSystem() throws IOException {
    return cluster.getFileSystem(0);
  }

  /** Writes core-site.xml (hadoop, ipc, fs keys) and hdfs-site.xml (dfs keys). */
  void writeClientConf(File dir) throws IOException {
    if (!dir.isDirectory() && !dir.mkdirs()) {
      throw new IOException("cannot create " + dir);
    }
    Configuration core = new Configuration(false);
    Configuration hdfs = new Configuration(false);
    for (var e : clientConf) {
      (e.getKey().startsWith("dfs.") ? hdfs : core).set(e.getKey(), e.getValue());
    }
    try (OutputStream out = new FileOutputStream(new File(dir, "core-site.xml"))) {
      core.writeXml(out);
    }
    try (OutputStream out = new FileOutputStream(new File(dir, "hdfs-site.xml"))) {
      hdfs.writeXml(out);
    }
  }

  /**
   * The client config for pods on the real node: the first NameNode at {@code gateway}, the
   * DataNode by {@link #POD_DATANODE_HOSTNAME}, only what a token-authenticated client needs
   * (no keytab, no KMS), and the realm's krb5.conf (Hadoop's Kerberos name rules read it).
   */
  void writePodConf(File dir, String gateway, SecureKdc kdc) throws IOException {
    if (!dir.isDirectory() && !dir.mkdirs()) {
      throw new IOException("cannot create " + dir);
    }
    String rpc = gateway + ":" + nameNodes.get(0).rpc().getPort();
    Configuration core = new Configuration(false);
    core.set("fs.defaultFS", "hdfs://" + rpc);
    core.set("hadoop.security.authentication", "kerberos");
    core.set("hadoop.security.authorization", "true");
    core.set("hadoop.rpc.protection", "authentication");
    core.set("ipc.client.connect.max.retries", "3");
    core.set("ipc.client.connect.retry.interval", "200");
    Configuration hdfs = new Configuration(false);
    hdfs.set(DFSConfigKeys.DFS_NAMENODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    hdfs.set(DFSConfigKeys.DFS_DATANODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    hdfs.set(HdfsClientConfigKeys.DFS_DATA_TRANSFER_PROTECTION_KEY, "authentication");
    hdfs.set(HdfsClientConfigKeys.DFS_CLIENT_USE_DN_HOSTNAME, "true");
    hdfs.set(DFSConfigKeys.DFS_REPLICATION_KEY, "1");
    hdfs.set(DFSConfigKeys.DFS_BLOCK_ACCESS_TOKEN_ENABLE_KEY, "true");
    try (OutputStream out = new FileOutputStream(new File(dir, "core-site.xml"))) {
      core.writeXml(out);
    }
    try (OutputStream out = new FileOutputStream(new File(dir, "hdfs-site.xml"))) {
      hdfs.writeXml(out);
    }
    kdc.writePodKrb5Conf(new File(dir, "krb5.conf"), gateway);
  }

  /** Stops NameNode {@code index} (its process state, not its storage); clients see the ports closed. */
  synchronized void stopNameNode(int index) {
    check(index);
    cluster.shutdownNameNode(index);
  }

  /**
   * Starts NameNode {@code index} again on the same RPC and HTTP ports (MiniDFSCluster kept the
   * bound ports in its conf), reloading its namespace and token state from its edit log, and
   * returns once the DataNode has registered and it has left safe mode (bounded: 120 s).
   */
  synchronized void startNameNode(int index) throws Exception {
    check(index);
    cluster.restartNameNode(index, true);
    var nn = cluster.getNameNode(index);
    long deadline = System.currentTimeMillis() + 120_000;
    while (nn.isInSafeMode()) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("NameNode " + index + " still in safe mode after 120 s");
      }
      Thread.sleep(200);
    }
    if (nn.getNameNodeAddress().getPort() != nameNodes.get(index).rpc().getPort()
        || nn.getHttpAddress().getPort() != nameNodes.get(index).http().getPort()) {
      throw new IllegalStateException("NameNode " + index + " came back on other ports: " + nn.getNameNodeAddress() + ", " + nn.getHttpAddress());
    }
  }

  private void check(int index) {
    if (index < 0 || index >= nameNodes.size()) {
      throw new IllegalArgumentException("no NameNode " + index + "; there are " + nameNodes.size());
    }
  }

  @Override
  public void close() {
    cluster.shutdown();
  }
}
