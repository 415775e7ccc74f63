package io.kube2hadoop.e2e;

import java.io.File;
import java.io.IOException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.Properties;
import org.apache.hadoop.minikdc.MiniKdc;

/**
 * MiniKdc on loopback with the principals the test bed needs, one keytab per identity, and a
 * krb5.conf that both the JVM and MIT krb5 (kinit, curl --negotiate, libgssapi) accept.
 */
final class SecureKdc implements AutoCloseable {
  static final String REALM = "EXAMPLE.COM";
  static final String HOST = "localhost";
  static final String SERVICE = "kube2hadoop/" + HOST;
  static final String HDFS = "hdfs/" + HOST;
  static final String SPNEGO = "HTTP/" + HOST;
  /** YARN daemons (harness flag yarn): keytab "yarn" holds both. */
  static final String RM = "rm/" + HOST;
  static final String NM = "nm/" + HOST;
  static final String[] USERS = {"alice", "bob"};
  /**
   * The name pods on the bed's real node give this machine's Hadoop web endpoints (their
   * hostAliases map it to the pod gateway): SPNEGO from a pod asks for HTTP/ this name.
   */
  static final String POD_HOSTNAME = "k2h-hadoop";
  static final String POD_SPNEGO = "HTTP/" + POD_HOSTNAME;

  private final MiniKdc kdc;
  final File krb5Conf;
  final File keytabDir;

  private SecureKdc(MiniKdc kdc, File krb5Conf, File keytabDir) {
    this.kdc = kdc;
    this.krb5Conf = krb5Conf;
    this.keytabDir = keytabDir;
  }

  /** {@code podGateway}: also serve pods on the real node there (null: loopback only). */
  static SecureKdc start(File workDir, String podGateway) throws Exception {
    File kdcDir = new File(workDir, "kdc");
    File keytabDir = new File(workDir, "keytabs");
    if (!kdcDir.mkdirs() || !keytabDir.mkdirs()) {
      throw new IOException("cannot create " + kdcDir + " and " + keytabDir + ": is the work dir fresh and writable?");
    }
    Properties conf = MiniKdc.createConf();
    conf.setProperty(MiniKdc.ORG_NAME, "EXAMPLE");
    conf.setProperty(MiniKdc.ORG_DOMAIN, "COM");
    // Pods reach the KDC at the gateway: listen on every address then (krb5.conf still names
    // 127.0.0.1 for this machine's clients).
    conf.setProperty(MiniKdc.KDC_BIND_ADDRESS, podGateway == null ? HOST : "0.0.0.0");
    conf.setProperty(MiniKdc.KDC_PORT, "0");
    // Renewable tickets so long-running token-service tests can renew their TGT with kinit -R.
    conf.setProperty(MiniKdc.MAX_TICKET_LIFETIME, "86400000");
    conf.setProperty(MiniKdc.MAX_RENEWABLE_LIFETIME, "604800000");
    MiniKdc kdc = new MiniKdc(conf, kdcDir);
    kdc.start();
    if (!REALM.equals(kdc.getRealm())) {
      throw new IllegalStateException("MiniKdc realm is " + kdc.getRealm() + ", expected " + REALM);
    }
    File krb5 = new File(workDir, "krb5.conf");
    SecureKdc k = new SecureKdc(kdc, krb5, keytabDir);
    k.writeKrb5Conf();
    // hdfs and HTTP share a keytab, as real clusters do: NameNode, DataNode and SPNEGO read it.
    if (podGateway == null) {
      kdc.createPrincipal(k.keytab("hdfs"), HDFS, SPNEGO);
    } else {
      kdc.createPrincipal(k.keytab("hdfs"), HDFS, SPNEGO, POD_SPNEGO);
    }
    kdc.createPrincipal(k.keytab("kube2hadoop"), SERVICE);
    for (String u : USERS) {
      kdc.createPrincipal(k.keytab(u), u);
    }
    return k;
  }

  /** New principals with random keys, all written to {@code keytab}. */
  void createPrincipals(File keytab, String... principals) throws Exception {
    kdc.createPrincipal(keytab, principals);
  }

  File keytab(String name) {
    return new File(keytabDir, name + ".keytab");
  }

  int port() {
    return kdc.getPort();
  }

  static String principal(String name) {
    return name + "@" + REALM;
  }

  /**
   * MiniKdc's own krb5.conf names the KDC as "localhost"; MIT clients then may try ::1 first and
   * canonicalise names through DNS. This one pins TCP on 127.0.0.1 and turns DNS lookups off, and
   * the JVM is switched to it too so every process in the bed reads the same file.
   */
  private void writeKrb5Conf() throws Exception {
    String text = krb5ConfText("127.0.0.1", "", "localhost", "127.0.0.1");
    Files.writeString(krb5Conf.toPath(), text, StandardCharsets.UTF_8);
    System.setProperty(MiniKdc.JAVA_SECURITY_KRB5_CONF, krb5Conf.getAbsolutePath());
    // The JDK caches krb5.conf; MiniKdc.start already loaded its own. Needs
    // --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED (set by the scripts).
    Class<?> config = Class.forName("sun.security.krb5.Config");
    Method refresh = config.getMethod("refresh");
    refresh.invoke(null);
  }

  /**
   * The krb5.conf for a client in a pod: the KDC at the gateway, and no DNS at all (a pod on the
   * bed has no resolver: names come from its hostAliases and are used as written).
   */
  void writePodKrb5Conf(File out, String gateway) throws IOException {
    String text =
        krb5ConfText(gateway, "    dns_canonicalize_hostname = false\n    rdns = false\n", POD_HOSTNAME);
    Files.writeString(out.toPath(), text, StandardCharsets.UTF_8);
  }

  /** A krb5.conf for this realm: the KDC over TCP at {@code kdcHost}, no DNS lookups. */
  private String krb5ConfText(String kdcHost, String extraLibdefaults, String... realmHosts) {
    StringBuilder b = new StringBuilder();
    b.append("[libdefaults]\n")
        .append("    default_realm = ").append(REALM).append('\n')
        .append("    dns_lookup_kdc = false\n")
        .append("    dns_lookup_realm = false\n")
        .append(extraLibdefaults)
        .append("    udp_preference_limit = 1\n")
        .append("    forwardable = true\n")
        .append("    renew_lifetime = 7d\n")
        .append("    ticket_lifetime = 24h\n\n")
        .append("[realms]\n")
        .append("    ").append(REALM).append(" = {\n")
        .append("        kdc = ").append(kdcHost).append(':').append(kdc.getPort()).append('\n')
        .append("    }\n\n")
        .append("[domain_realm]\n");
    for (String host : realmHosts) {
      b.append("    ").append(host).append(" = ").append(REALM).append('\n');
    }
    return b.toString();
  }

  @Override
  public void close() {
    kdc.stop();
  }
}
