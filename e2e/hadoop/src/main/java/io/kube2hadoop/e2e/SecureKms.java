package io.kube2hadoop.e2e;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;
import java.net.URL;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.crypto.key.KeyProvider;
import org.apache.hadoop.crypto.key.KeyProviderFactory;
import org.apache.hadoop.crypto.key.kms.server.KMSConfiguration;
import org.apache.hadoop.crypto.key.kms.server.MiniKMS;
import org.apache.hadoop.fs.Path;

/**
 * A Kerberized Hadoop KMS (MiniKMS, in this JVM) with SPNEGO as HTTP/localhost, the token service
 * as proxy user for the test users, and one key. Started before HDFS so the NameNode can advertise
 * it as its key provider: stock clients then collect a kms-dt along with their HDFS token.
 */
final class SecureKms implements AutoCloseable {
  static final String KEY_NAME = "k2h-key";

  private final MiniKMS kms;
  final URL url;

  private SecureKms(MiniKMS kms, URL url) {
    this.kms = kms;
    this.url = url;
  }

  static SecureKms start(SecureKdc kdc, File workDir, SecureHdfs.TokenTimes times) throws Exception {
    File dir = new File(workDir, "kms");
    if (!dir.mkdirs()) {
      throw new IOException("cannot create " + dir);
    }
    String keytab = kdc.keytab("hdfs").getAbsolutePath();
    Configuration site = new Configuration(false);
    site.set(KMSConfiguration.KEY_PROVIDER_URI, "jceks://file@" + new Path(dir.getAbsolutePath(), "kms.keystore").toUri());
    site.set("hadoop.kms.authentication.type", "kerberos");
    site.set("hadoop.kms.authentication.kerberos.keytab", keytab);
    site.set("hadoop.kms.authentication.kerberos.principal", SecureKdc.SPNEGO);
    site.set("hadoop.kms.authentication.kerberos.name.rules", "DEFAULT");
    site.set("hadoop.kms.proxyuser.kube2hadoop.hosts", "*");
    site.set("hadoop.kms.proxyuser.kube2hadoop.users", String.join(",", SecureKdc.USERS));
    // KMS token lifetimes are in seconds; round up so a short test value never becomes 0.
    site.setLong("hadoop.kms.authentication.delegation-token.renew-interval.sec", seconds(times.renewIntervalMs()));
    site.setLong("hadoop.kms.authentication.delegation-token.max-lifetime.sec", seconds(times.maxLifetimeMs()));
    site.setLong("hadoop.kms.authentication.delegation-token.update-interval.sec", seconds(times.keyUpdateIntervalMs()));
    write(site, new File(dir, "kms-site.xml"));
    // KMSWebApp calls UserGroupInformation.setConfiguration with this file: it must say Kerberos,
    // or the whole JVM (NameNode included) would drop to simple authentication.
    Configuration core = new Configuration(false);
    core.set("hadoop.security.authentication", "kerberos");
    write(core, new File(dir, "core-site.xml"));

    MiniKMS kms = new MiniKMS.Builder().setKmsConfDir(dir).setLog4jConfFile("log4j.properties").build();
    kms.start();
    return new SecureKms(kms, kms.getKMSUrl());
  }

  /** kms://http@localhost:PORT/kms, the form hadoop.security.key.provider.path takes. */
  URI providerUri() {
    return URI.create("kms://http@" + url.getHost() + ":" + url.getPort() + url.getPath());
  }

  /** Creates the test key as the current (NameNode) login user; the default KMS ACLs allow all. */
  void createKey(Configuration conf) throws IOException {
    KeyProvider p = KeyProviderFactory.get(providerUri(), conf);
    try {
      p.createKey(KEY_NAME, new KeyProvider.Options(conf));
      p.flush();
    } catch (java.security.NoSuchAlgorithmException e) {
      throw new IOException("KMS cannot create " + KEY_NAME, e);
    } finally {
      p.close();
    }
  }

  private static long seconds(long ms) {
    return Math.max(1, (ms + 999) / 1000);
  }

  private static void write(Configuration c, File f) throws IOException {
    try (OutputStream out = new FileOutputStream(f)) {
      c.writeXml(out);
    }
  }

  @Override
  public void close() {
    kms.stop();
  }
}
