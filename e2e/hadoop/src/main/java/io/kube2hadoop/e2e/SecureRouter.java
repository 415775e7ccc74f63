package io.kube2hadoop.e2e;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.client.HdfsClientConfigKeys;
import org.apache.hadoop.hdfs.server.federation.resolver.MountTableResolver;
import org.apache.hadoop.hdfs.server.federation.router.RBFConfigKeys;
import org.apache.hadoop.hdfs.server.federation.router.Router;
import org.apache.hadoop.hdfs.server.federation.store.MountTableStore;
import org.apache.hadoop.hdfs.server.federation.store.driver.impl.StateStoreFileImpl;
import org.apache.hadoop.hdfs.server.federation.store.protocol.AddMountTableEntryRequest;
import org.apache.hadoop.hdfs.server.federation.store.records.MountTable;
import org.apache.hadoop.hdfs.server.namenode.ha.ConfiguredFailoverProxyProvider;
import org.apache.hadoop.http.HttpConfig;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.security.authorize.ProxyUsers;

/**
 * A Kerberized HDFS Router (router-based federation) in front of the bed's two nameservices, in
 * this JVM: RPC and WebHDFS (SPNEGO as HTTP/localhost), a file-based state store under the work
 * dir, one mount point per nameservice ({@code /ns1 -> ns1:/}, {@code /ns2 -> ns2:/}), and its own
 * delegation tokens from an in-memory secret manager ({@link RouterTokenSecretManager}; the stock
 * default needs ZooKeeper).
 *
 * <p>Identity: the Router logs in from its keytab in {@code serviceInit}, which replaces the JVM's
 * login user, and it forwards every call to the NameNodes as a proxy user of that login user. One
 * JVM has one login user and the NameNodes (whose RPC servers answer as it) are already running as
 * hdfs/localhost, so the Router's principal is hdfs/localhost too, as in Hadoop's own secure RBF
 * tests (one principal for NameNodes and Router). The NameNodes therefore allow hdfs to impersonate
 * the test users. Clients of the Router name hdfs/localhost as its server principal
 * ({@code dfs.namenode.kerberos.principal} in the router client config).
 */
final class SecureRouter implements AutoCloseable {
  /** The nameservice id clients give the Router (a logical, HA-style name with one member). */
  static final String NAMESERVICE = "rbf";
  static final String ROUTER_NN_ID = "r1";

  private final Router router;
  final int rpcPort;
  final int httpPort;
  /** Mount point -> nameservice (each mounted at its root). */
  final Map<String, String> mounts;
  /** One file per subcluster, as paths through the Router. */
  final List<String> paths;
  final Configuration clientConf;

  private SecureRouter(Router router, int rpcPort, int httpPort, Map<String, String> mounts, List<String> paths, Configuration clientConf) {
    this.router = router;
    this.rpcPort = rpcPort;
    this.httpPort = httpPort;
    this.mounts = mounts;
    this.paths = paths;
    this.clientConf = clientConf;
  }

  static SecureRouter start(SecureKdc kdc, File workDir, SecureHdfs hdfs) throws Exception {
    List<String> nameservices = new ArrayList<>();
    for (SecureHdfs.NameNode nn : hdfs.nameNodes) {
      if (nn.nameservice() == null) {
        throw new IllegalStateException("the router needs federated nameservices (--nameservices 2)");
      }
      nameservices.add(nn.nameservice());
    }
    File storeDir = new File(workDir, "router/store");
    if (!storeDir.mkdirs()) {
      throw new IOException("cannot create " + storeDir);
    }
    Configuration conf = new HdfsConfiguration(hdfs.serverConf);
    // The subclusters as the NameNodes' clients know them (dfs.nameservices, per-ns addresses).
    for (var e : hdfs.clientConf) {
      if (e.getKey().equals(DFSConfigKeys.DFS_NAMESERVICES)
          || e.getKey().startsWith(DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY + ".")
          || e.getKey().startsWith(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY + ".")) {
        conf.set(e.getKey(), e.getValue());
      }
    }
    String hdfsKeytab = kdc.keytab("hdfs").getAbsolutePath();
    conf.set(RBFConfigKeys.DFS_ROUTER_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    conf.set(RBFConfigKeys.DFS_ROUTER_KEYTAB_FILE_KEY, hdfsKeytab);
    conf.set(RBFConfigKeys.DFS_ROUTER_KERBEROS_INTERNAL_SPNEGO_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SPNEGO));
    conf.setClass(RBFConfigKeys.DFS_ROUTER_DELEGATION_TOKEN_DRIVER_CLASS, RouterTokenSecretManager.class,
        org.apache.hadoop.security.token.delegation.AbstractDelegationTokenSecretManager.class);
    conf.set(RBFConfigKeys.DFS_ROUTER_RPC_ADDRESS_KEY, "127.0.0.1:0");
    conf.set(RBFConfigKeys.DFS_ROUTER_RPC_BIND_HOST_KEY, "127.0.0.1");
    conf.set(RBFConfigKeys.DFS_ROUTER_HTTP_ADDRESS_KEY, "127.0.0.1:0");
    conf.set(RBFConfigKeys.DFS_ROUTER_HTTP_BIND_HOST_KEY, "127.0.0.1");
    conf.set(RBFConfigKeys.DFS_ROUTER_HTTPS_ADDRESS_KEY, "127.0.0.1:0");
    conf.set(RBFConfigKeys.DFS_ROUTER_HTTPS_BIND_HOST_KEY, "127.0.0.1");
    // No admin RPC server (mount points are written straight into the state store below).
    conf.setBoolean(RBFConfigKeys.DFS_ROUTER_ADMIN_ENABLE, false);
    // File state store under the work dir; short cache TTL so heartbeats show up quickly.
    conf.setClass(RBFConfigKeys.FEDERATION_STORE_DRIVER_CLASS, StateStoreFileImpl.class,
        org.apache.hadoop.hdfs.server.federation.store.driver.StateStoreDriver.class);
    conf.set(StateStoreFileImpl.FEDERATION_STORE_FILE_DIRECTORY, storeDir.getAbsolutePath());
    conf.setLong(RBFConfigKeys.DFS_ROUTER_CACHE_TIME_TO_LIVE_MS, 2000);
    conf.setLong(RBFConfigKeys.DFS_ROUTER_HEARTBEAT_INTERVAL_MS, 2000);
    // Watch both NameNodes (membership records: which NameNode is active for each ns), not a
    // "local" one; no safe mode (it would hold calls for 30 s after start).
    conf.setBoolean(RBFConfigKeys.DFS_ROUTER_MONITOR_LOCAL_NAMENODE, false);
    conf.set(RBFConfigKeys.DFS_ROUTER_MONITOR_NAMENODE, String.join(",", nameservices));
    conf.setBoolean(RBFConfigKeys.DFS_ROUTER_SAFEMODE_ENABLE, false);
    conf.set(RBFConfigKeys.DFS_ROUTER_DEFAULT_NAMESERVICE, nameservices.get(0));
    // The heartbeats also read each NameNode's /jmx over SPNEGO: by "localhost", so the JVM asks
    // for HTTP/localhost (for 127.0.0.1 it would ask for HTTP/127.0.0.1, which has no key).
    for (SecureHdfs.NameNode nn : hdfs.nameNodes) {
      conf.set(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY + "." + nn.nameservice(), "localhost:" + nn.http().getPort());
    }

    // ProxyUsers is JVM-wide and every daemon's start replaces its rules with those of its own conf
    // (the RM's lacks hdfs's rule). The router itself never refreshes them at start, yet its RPC
    // and web doAs checks (kube2hadoop) and the NameNodes' checks of the router (hdfs) use them:
    // set them from this conf, which has both, after everything else has started.
    ProxyUsers.refreshSuperUserGroupsConfiguration(conf);
    Router router = new Router();
    try {
      router.init(conf);
      router.start();
      if (!loginIsHdfs()) {
        throw new IllegalStateException("the router changed the JVM's login user to " + UserGroupInformation.getLoginUser());
      }
      Map<String, String> mounts = new LinkedHashMap<>();
      for (String ns : nameservices) {
        mounts.put("/" + ns, ns);
      }
      addMounts(router, mounts);
      waitForNameNodes(router, nameservices);
      int rpc = router.getRpcServerAddress().getPort();
      int http = router.getHttpServerAddress().getPort();
      List<String> paths = new ArrayList<>();
      for (String ns : nameservices) {
        paths.add("/" + ns + "/user/alice/" + SecureHdfs.routedFileName(ns));
      }
      return new SecureRouter(router, rpc, http, mounts, paths, clientConf(kdc, rpc, http));
    } catch (Exception e) {
      router.stop();
      throw e;
    }
  }

  private static void addMounts(Router router, Map<String, String> mounts) throws Exception {
    var store = router.getStateStore();
    long deadline = System.currentTimeMillis() + 60_000;
    while (!store.isDriverReady()) {
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("the router's state store is not ready after 60 s");
      }
      Thread.sleep(100);
    }
    MountTableStore mountStore = store.getRegisteredRecordStore(MountTableStore.class);
    for (var m : mounts.entrySet()) {
      MountTable entry = MountTable.newInstance(m.getKey(), Map.of(m.getValue(), "/"));
      if (!mountStore.addMountTableEntry(AddMountTableEntryRequest.newInstance(entry)).getStatus()) {
        throw new IllegalStateException("the router did not take mount point " + m.getKey());
      }
    }
    store.refreshCaches(true);
    ((MountTableResolver) router.getSubclusterResolver()).loadCache(true);
  }

  /** Until the router knows a NameNode for every nameservice (its heartbeats reached the store). */
  private static void waitForNameNodes(Router router, List<String> nameservices) throws Exception {
    long deadline = System.currentTimeMillis() + 60_000;
    for (String ns : nameservices) {
      while (true) {
        router.getStateStore().refreshCaches(true);
        var nns = router.getNamenodeResolver().getNamenodesForNameserviceId(ns, false);
        if (nns != null && !nns.isEmpty()) {
          break;
        }
        if (System.currentTimeMillis() > deadline) {
          throw new IllegalStateException("the router has no NameNode for " + ns + " after 60 s");
        }
        Thread.sleep(200);
      }
    }
  }

  /**
   * What a stock client of the Router needs: the Router as a logical nameservice {@value
   * #NAMESERVICE} with one member, so fs.defaultFS is hdfs://rbf and its tokens' service is
   * ha-hdfs:rbf. The server principal is hdfs/localhost (see the class comment).
   */
  private static Configuration clientConf(SecureKdc kdc, int rpcPort, int httpPort) {
    Configuration c = new Configuration(false);
    c.set("fs.defaultFS", "hdfs://" + NAMESERVICE);
    c.set("hadoop.security.authentication", "kerberos");
    c.set("hadoop.security.authorization", "true");
    c.set("hadoop.rpc.protection", "authentication");
    c.set("ipc.client.connect.max.retries", "3");
    c.set("ipc.client.connect.retry.interval", "200");
    c.set(DFSConfigKeys.DFS_NAMESERVICES, NAMESERVICE);
    c.set(HdfsClientConfigKeys.DFS_HA_NAMENODES_KEY_PREFIX + "." + NAMESERVICE, ROUTER_NN_ID);
    c.set(DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY + "." + NAMESERVICE + "." + ROUTER_NN_ID, "127.0.0.1:" + rpcPort);
    c.set(DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY + "." + NAMESERVICE + "." + ROUTER_NN_ID, "127.0.0.1:" + httpPort);
    c.set(HdfsClientConfigKeys.Failover.PROXY_PROVIDER_KEY_PREFIX + "." + NAMESERVICE, ConfiguredFailoverProxyProvider.class.getName());
    // Fail fast when the router is down (one member: nothing to fail over to).
    c.set(HdfsClientConfigKeys.Failover.MAX_ATTEMPTS_KEY, "2");
    c.set(DFSConfigKeys.DFS_NAMENODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    c.set(DFSConfigKeys.DFS_DATANODE_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.HDFS));
    c.set(DFSConfigKeys.DFS_WEB_AUTHENTICATION_KERBEROS_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SPNEGO));
    c.set(HdfsClientConfigKeys.DFS_DATA_TRANSFER_PROTECTION_KEY, "authentication");
    c.set(DFSConfigKeys.DFS_REPLICATION_KEY, "1");
    c.set(DFSConfigKeys.DFS_BLOCK_ACCESS_TOKEN_ENABLE_KEY, "true");
    c.set(DFSConfigKeys.DFS_HTTP_POLICY_KEY, HttpConfig.Policy.HTTP_ONLY.name());
    c.set(ClientTools.SERVICE_PRINCIPAL_KEY, SecureKdc.principal(SecureKdc.SERVICE));
    c.set(ClientTools.SERVICE_KEYTAB_KEY, kdc.keytab("kube2hadoop").getAbsolutePath());
    return c;
  }

  String rpcHostPort() {
    return "127.0.0.1:" + rpcPort;
  }

  String httpUrl() {
    return "http://127.0.0.1:" + httpPort;
  }

  /** What a stock client (DFSClient on hdfs://rbf) selects the Router's HDFS_DELEGATION_TOKEN by. */
  String tokenService() {
    return org.apache.hadoop.hdfs.HAUtilClient.buildTokenServiceForLogicalUri(
        java.net.URI.create("hdfs://" + NAMESERVICE), "hdfs").toString();
  }

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

  @Override
  public void close() {
    router.stop();
  }

  private static boolean loginIsHdfs() throws IOException {
    return UserGroupInformation.getLoginUser().getUserName().equals(SecureKdc.principal(SecureKdc.HDFS));
  }
}
