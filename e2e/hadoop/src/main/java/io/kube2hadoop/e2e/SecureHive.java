package io.kube2hadoop.e2e;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;

/**
 * A Kerberized Hive standalone metastore (harness flag hive), run as a <b>separate JVM</b> that the
 * harness starts and stops: Hive brings its own Guava, Jackson, Thrift, Derby and DataNucleus, which
 * are kept out of the harness's classpath (its classpath is e2e/hive's Maven dependency set, Hadoop
 * pinned to the harness's version).
 *
 * <p>Thrift over SASL GSSAPI as hive/localhost, embedded Derby in the work dir, the warehouse on
 * the first NameNode (/user/hive/warehouse), delegation tokens in a MemoryTokenStore, and the
 * proxy-user rule hadoop.proxyuser.kube2hadoop.{hosts=*,users=alice,bob}.
 */
final class SecureHive implements AutoCloseable {
  static final String PRINCIPAL = "hive/" + SecureKdc.HOST;
  /** What a stock client selects its HIVE_DELEGATION_TOKEN by (hive.metastore.token.signature). */
  static final String TOKEN_SIGNATURE = "k2h-hms";

  private final Process process;
  final int port;
  final File confDir;
  final File log;

  final File audit;

  private SecureHive(Process process, int port, File confDir, File log) {
    this.audit = new File(log.getParentFile(), "audit.log");
    this.process = process;
    this.port = port;
    this.confDir = confDir;
    this.log = log;
  }

  String uri() {
    return "thrift://localhost:" + port;
  }

  static SecureHive start(SecureKdc kdc, File workDir, SecureHdfs hdfs, SecureHdfs.TokenTimes times, File classpathFile, long startTimeoutMs) throws Exception {
    File dir = new File(workDir, "hive");
    File confDir = new File(dir, "conf");
    if (!confDir.mkdirs()) {
      throw new IOException("cannot create " + confDir);
    }
    String cp = Files.readString(classpathFile.toPath(), StandardCharsets.UTF_8).trim();
    File keytab = kdc.keytab("hive");
    kdc.createPrincipals(keytab, PRINCIPAL);

    // The warehouse: hive owns it; 1777 like /tmp so any user's tables can go there.
    FileSystem fs = hdfs.fileSystem();
    Path warehouse = new Path("/user/hive/warehouse");
    fs.mkdirs(warehouse);
    fs.setOwner(new Path("/user/hive"), "hive", "hive");
    fs.setOwner(warehouse, "hive", "hive");
    fs.setPermission(warehouse, new FsPermission((short) 01777));

    int port;
    try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
      port = s.getLocalPort();
    }
    // core-site.xml and hdfs-site.xml: the bed's client conf (Kerberos, the NameNode).
    hdfs.writeClientConf(confDir);
    // The metastore checks get_delegation_token(owner != caller) with Hadoop's ProxyUsers, whose
    // rules come from a plain Configuration (core-site.xml), not from metastore-site.xml.
    File coreSite = new File(confDir, "core-site.xml");
    Configuration core = new Configuration(false);
    core.addResource(new Path(coreSite.toURI()));
    core.set("hadoop.proxyuser.kube2hadoop.hosts", "*");
    core.set("hadoop.proxyuser.kube2hadoop.users", String.join(",", SecureKdc.USERS));
    // SASL layers the metastore offers: none for stock clients at Hadoop's default, privacy for
    // those that take the strongest (the token service).
    core.set("hadoop.rpc.protection", "authentication,privacy");
    byte[] coreXml;
    try (java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream()) {
      core.writeXml(out);
      coreXml = out.toByteArray();
    }
    Files.write(coreSite.toPath(), coreXml);
    Map<String, String> ms = new LinkedHashMap<>();
    ms.put("metastore.thrift.port", Integer.toString(port));
    ms.put("metastore.thrift.uris", "thrift://localhost:" + port);
    ms.put("metastore.warehouse.dir", "hdfs://" + hdfs.nameNodes.get(0).rpcHostPort() + warehouse);
    ms.put("javax.jdo.option.ConnectionURL", "jdbc:derby:;databaseName=" + new File(dir, "metastore_db").getAbsolutePath() + ";create=true");
    ms.put("javax.jdo.option.ConnectionDriverName", "org.apache.derby.jdbc.EmbeddedDriver");
    ms.put("javax.jdo.option.ConnectionUserName", "APP");
    ms.put("javax.jdo.option.ConnectionPassword", "mine");
    ms.put("datanucleus.schema.autoCreateAll", "true");
    ms.put("metastore.schema.verification", "false");
    ms.put("hadoop.security.authentication", "kerberos");
    ms.put("hadoop.rpc.protection", "authentication,privacy");
    ms.put("metastore.sasl.enabled", "true");
    ms.put("metastore.kerberos.principal", SecureKdc.principal(PRINCIPAL));
    ms.put("metastore.kerberos.keytab.file", keytab.getAbsolutePath());
    ms.put("metastore.token.signature", TOKEN_SIGNATURE);
    // The same token times as the NameNodes' (harness flags); the expired-token remover hourly.
    ms.put("metastore.cluster.delegation.token.renew-interval", times.renewIntervalMs() + "ms");
    ms.put("metastore.cluster.delegation.token.max-lifetime", times.maxLifetimeMs() + "ms");
    ms.put("metastore.cluster.delegation.key.update-interval", times.keyUpdateIntervalMs() + "ms");
    ms.put("metastore.cluster.delegation.token.store.class", "org.apache.hadoop.hive.metastore.security.MemoryTokenStore");
    ms.put("hadoop.proxyuser.kube2hadoop.hosts", "*");
    ms.put("hadoop.proxyuser.kube2hadoop.users", String.join(",", SecureKdc.USERS));
    // Less to start: no background threads, metrics or events.
    ms.put("metastore.housekeeping.threads.on", "false");
    ms.put("metastore.compactor.initiator.on", "false");
    ms.put("metastore.metrics.enabled", "false");
    ms.put("metastore.event.db.notification.api.auth", "false");
    ms.put("metastore.server.min.threads", "4");
    ms.put("metastore.server.max.threads", "50");
    StringBuilder xml = new StringBuilder("<?xml version=\"1.0\"?>\n<configuration>\n");
    for (var e : ms.entrySet()) {
      xml.append("  <property><name>").append(e.getKey()).append("</name><value>").append(e.getValue()).append("</value></property>\n");
    }
    xml.append("</configuration>\n");
    Files.writeString(new File(confDir, "metastore-site.xml").toPath(), xml.toString(), StandardCharsets.UTF_8);

    // Log: WARN to metastore.log; the metastore's audit logger (one line per call, ugi=<user>) to
    // audit.log.
    File audit = new File(dir, "audit.log");
    File log4j = new File(confDir, "k2h-metastore-log4j2.properties");
    Files.writeString(
        log4j.toPath(),
        String.join(
            "\n",
            "status = WARN",
            "appender.console.type = Console",
            "appender.console.name = console",
            "appender.console.layout.type = PatternLayout",
            "appender.console.layout.pattern = %d{ISO8601} %p %c{2}: %m%n",
            "appender.audit.type = File",
            "appender.audit.name = audit",
            "appender.audit.fileName = " + audit.getAbsolutePath(),
            "appender.audit.immediateFlush = true",
            "appender.audit.layout.type = PatternLayout",
            "appender.audit.layout.pattern = %d{ISO8601} %m%n",
            "rootLogger.level = WARN",
            "rootLogger.appenderRef.console.ref = console",
            "logger.audit.name = org.apache.hadoop.hive.metastore.HiveMetaStore.audit",
            "logger.audit.level = INFO",
            "logger.audit.additivity = false",
            "logger.audit.appenderRef.audit.ref = audit",
            // Our readiness probe's connection, closed before any SASL: harmless.
            "logger.tpool.name = org.apache.thrift.server.TThreadPoolServer",
            "logger.tpool.level = FATAL",
            ""),
        StandardCharsets.UTF_8);

    List<String> cmd = new ArrayList<>();
    cmd.add(new File(System.getProperty("java.home"), "bin/java").getPath());
    cmd.add("-Xmx512m");
    cmd.add("-XX:+UseSerialGC");
    for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
      if (a.startsWith("--add-") || a.startsWith("-Djava.net.")) {
        cmd.add(a);
      }
    }
    cmd.add("-Djava.security.krb5.conf=" + kdc.krb5Conf.getAbsolutePath());
    cmd.add("-Dderby.system.home=" + dir.getAbsolutePath());
    cmd.add("-Dlog4j2.configurationFile=" + log4j.getAbsolutePath());
    cmd.add("-cp");
    cmd.add(confDir.getAbsolutePath() + File.pathSeparator + cp);
    cmd.add("org.apache.hadoop.hive.metastore.HiveMetaStore");
    File log = new File(dir, "metastore.log");
    ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir).redirectErrorStream(true).redirectOutput(log);
    pb.environment().put("HIVE_CONF_DIR", confDir.getAbsolutePath());
    pb.environment().put("METASTORE_CONF_DIR", confDir.getAbsolutePath());
    Process p = pb.start();
    SecureHive hive = new SecureHive(p, port, confDir, log);
    // A harness that dies without its SIGTERM path must not leave the metastore behind.
    Runtime.getRuntime().addShutdownHook(new Thread(p::destroyForcibly, "k2h-hive-kill"));
    long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(startTimeoutMs);
    while (true) {
      if (!p.isAlive()) {
        throw new IllegalStateException("the metastore exited with " + p.exitValue() + " before listening (log: " + log + ")");
      }
      try (Socket s = new Socket()) {
        s.connect(new InetSocketAddress("127.0.0.1", port), 500);
        // Still alive a moment later: not a stray connection while it was failing.
        Thread.sleep(500);
        if (!p.isAlive()) {
          continue;
        }
        break;
      } catch (IOException e) {
        if (System.nanoTime() > deadline) {
          hive.close();
          throw new IllegalStateException("the metastore did not listen on " + port + " within " + startTimeoutMs + " ms (log: " + log + ")");
        }
        Thread.sleep(250);
      }
    }
    return hive;
  }

  long pid() {
    return process.pid();
  }

  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(20, TimeUnit.SECONDS)) {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      process.destroyForcibly();
      Thread.currentThread().interrupt();
    }
  }
}
