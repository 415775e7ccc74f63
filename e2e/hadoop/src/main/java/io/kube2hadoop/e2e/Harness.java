package io.kube2hadoop.e2e;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Starts MiniKdc and a Kerberized MiniDFSCluster (optionally a KMS, a YARN ResourceManager with
 * one NodeManager, and an HDFS Router in front of two nameservices), writes cluster.json and the client config, prints "READY &lt;cluster.json&gt;"
 * and runs until SIGTERM, which stops them all cleanly.
 *
 * <pre>
 * Harness --workdir DIR [--nameservices 1|2] [--renew-interval-ms N] [--max-lifetime-ms N]
 *         [--key-update-interval-ms N] [--kms] [--yarn] [--rbf] [--hive --hive-classpath FILE] [--pod-gateway IP]
 * </pre>
 */
public final class Harness {
  private static final long DAY_MS = TimeUnit.DAYS.toMillis(1);
  /**
   * The RM's web services (Jersey 1) log INFO lines to java.util.logging, outside log4j. Held
   * here: JUL keeps loggers weakly, and a collected one would forget its level.
   */
  private static final java.util.logging.Logger JERSEY = java.util.logging.Logger.getLogger("com.sun.jersey");

  private Harness() {}

  public static void main(String[] args) {
    try {
      run(Flags.parse(args, 0));
    } catch (Flags.UsageException e) {
      System.err.println("harness: " + e.getMessage());
      System.exit(2);
    } catch (Throwable e) {
      System.err.println("harness: startup failed: " + e);
      e.printStackTrace();
      System.exit(1);
    }
  }

  private static void run(Flags flags) throws Exception {
    JERSEY.setLevel(java.util.logging.Level.WARNING);
    File workDir = new File(flags.get("workdir", "")).getAbsoluteFile();
    if (flags.get("workdir", "").isEmpty() || !workDir.isDirectory()) {
      throw new Flags.UsageException("--workdir must name an existing directory");
    }
    boolean rbf = flags.getBool("rbf");
    int nameservices = (int) flags.getLong("nameservices", rbf ? 2 : 1);
    if (nameservices < 1 || nameservices > 4) {
      throw new Flags.UsageException("--nameservices must be between 1 and 4");
    }
    if (rbf && nameservices < 2) {
      throw new Flags.UsageException("--rbf puts a router in front of federated nameservices: --nameservices 2 (the default with --rbf)");
    }
    // Hadoop's defaults: renew every 24 h, live at most 7 days, roll the master key daily.
    SecureHdfs.TokenTimes times =
        new SecureHdfs.TokenTimes(
            flags.getLong("renew-interval-ms", DAY_MS),
            flags.getLong("max-lifetime-ms", 7 * DAY_MS),
            flags.getLong("key-update-interval-ms", DAY_MS));
    if (times.renewIntervalMs() < 1000 || times.maxLifetimeMs() < times.renewIntervalMs() || times.keyUpdateIntervalMs() < 1000) {
      throw new Flags.UsageException(
          "token times: want --renew-interval-ms and --key-update-interval-ms >= 1000 and --max-lifetime-ms >= the renew interval");
    }

    // Where pods on the bed's real node reach this machine (e2e/scripts/node.sh), if any.
    String podGateway = flags.get("pod-gateway", "");
    if (podGateway.isEmpty()) {
      podGateway = null;
    } else if (!podGateway.matches("[0-9]{1,3}(\\.[0-9]{1,3}){3}")) {
      throw new Flags.UsageException("--pod-gateway wants an IPv4 address, not " + podGateway);
    }
    File podConfDir = new File(workDir, "pod-conf");
    File classpath = new File(workDir, "classpath.txt");
    Files.writeString(classpath.toPath(), System.getProperty("java.class.path") + "\n", StandardCharsets.UTF_8);
    File auditLog = new File(workDir, "audit.log");
    File confDir = new File(workDir, "conf");
    File routerConfDir = new File(workDir, "router-conf");

    SecureKdc kdc = SecureKdc.start(workDir, podGateway);
    SecureKms kms = null;
    SecureHdfs hdfs = null;
    SecureYarn yarn = null;
    SecureRouter router = null;
    SecureHive hive = null;
    try {
      if (flags.getBool("kms")) {
        kms = SecureKms.start(kdc, workDir, times);
      }
      hdfs = SecureHdfs.start(kdc, workDir, nameservices, times, auditLog, kms, podGateway, rbf);
      if (flags.getBool("yarn")) {
        yarn = SecureYarn.start(kdc, workDir, times);
      }
      // Last: the proxy-user rules are JVM-wide (ProxyUsers is static) and each daemon's start
      // replaces them with its own conf's; the router's conf has them all (see SecureRouter).
      if (rbf) {
        router = SecureRouter.start(kdc, workDir, hdfs);
      }
      // A separate JVM (its own classpath: e2e/hive's dependency set, see SecureHive).
      if (flags.getBool("hive")) {
        String cp = flags.get("hive-classpath", "");
        if (cp.isEmpty()) {
          throw new Flags.UsageException("--hive needs --hive-classpath FILE (hadoop-up.sh passes it)");
        }
        hive = SecureHive.start(kdc, workDir, hdfs, times, new File(cp), flags.getLong("hive-start-timeout-ms", 180_000));
        // The metastore reaches HDFS as a proxy of its callers (hadoop.proxyuser.hive on the
        // NameNodes). The RM's start replaced the JVM-wide rules with its conf's, which lacks
        // hive's; the NameNodes' conf has every rule the RM's has (kube2hadoop's). With a
        // router its conf already set them all.
        if (yarn != null && router == null) {
          org.apache.hadoop.security.authorize.ProxyUsers.refreshSuperUserGroupsConfiguration(hdfs.serverConf);
        }
      }
    } catch (Exception e) {
      if (router != null) {
        router.close();
      }
      if (yarn != null) {
        yarn.close();
      }
      if (hdfs != null) {
        hdfs.close();
      }
      if (kms != null) {
        kms.close();
      }
      kdc.close();
      throw e;
    }
    // Stop on SIGTERM/SIGINT from a normal thread, not a JVM shutdown hook: during JVM shutdown
    // Hadoop's DataNode cannot deregister its own hooks and its shutdown throws half-way.
    CountDownLatch stop = new CountDownLatch(1);
    for (String sig : new String[] {"TERM", "INT"}) {
      sun.misc.Signal.handle(new sun.misc.Signal(sig), s -> stop.countDown());
    }
    hdfs.writeClientConf(confDir);
    if (yarn != null) {
      yarn.writeClientConf(confDir);
    }
    if (router != null) {
      router.writeClientConf(routerConfDir);
    }
    if (podGateway != null) {
      hdfs.writePodConf(podConfDir, podGateway, kdc);
    }
    Control control = Control.start(hdfs);
    File json = new File(workDir, "cluster.json");
    ClusterJson.write(json, kdc, hdfs, kms, yarn, router, router == null ? null : routerConfDir, hive, times, confDir, auditLog, classpath, control.url(),
        podGateway == null ? null : podConfDir, podGateway);
    System.out.println("READY " + json.getAbsolutePath());
    System.out.flush();
    watchWorkDir(json, stop);
    stop.await();
    System.err.println("harness: stopping");
    control.close();
    if (hive != null) {
      hive.close();
    }
    if (yarn != null) {
      yarn.close();
    }
    if (router != null) {
      router.close();
    }
    hdfs.close();
    if (kms != null) {
      kms.close();
    }
    kdc.close();
    System.err.println("harness: stopped");
    System.exit(0);
  }

  /**
   * Stops the bed when its cluster.json disappears: a wiped work dir (another script's cleanup of
   * e2e/.state) would otherwise leave an orphan nobody can find or stop.
   */
  private static void watchWorkDir(File json, CountDownLatch stop) {
    Thread t =
        new Thread(
            () -> {
              try {
                while (json.exists()) {
                  Thread.sleep(2000);
                }
                System.err.println("harness: " + json + " was removed; stopping");
                stop.countDown();
              } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
              }
            },
            "k2h-workdir-watch");
    t.setDaemon(true);
    t.start();
  }
}
