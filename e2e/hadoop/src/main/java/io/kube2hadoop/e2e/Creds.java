package io.kube2hadoop.e2e;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.security.PrivilegedExceptionAction;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.client.HdfsClientConfigKeys;
import org.apache.hadoop.hdfs.security.token.delegation.DelegationTokenIdentifier;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.security.Credentials;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.security.token.Token;
import org.apache.hadoop.security.token.TokenIdentifier;
import org.apache.hadoop.security.token.delegation.AbstractDelegationTokenIdentifier;
import org.apache.hadoop.yarn.security.client.RMDelegationTokenIdentifier;

/**
 * Credentials files (HDTS) written and read by Hadoop itself: the reference our Rust codec is
 * tested against. Output lines are tab-separated key=value so kinds with spaces
 * ("WEBHDFS delegation") stay one field.
 */
final class Creds {
  /** Fixed identifier values so the Rust tests can assert exact fields and bytes. */
  static final long FAKE_ISSUE_DATE = 1_700_000_000_000L;

  static final long FAKE_MAX_LIFETIME = TimeUnit.DAYS.toMillis(7);
  static final int FAKE_FIRST_SEQUENCE = 41;
  static final int FAKE_MASTER_KEY_ID = 7;
  static final String FAKE_SECRET_ALIAS = "k2h.e2e.secret";
  static final byte[] FAKE_SECRET = "not-a-real-secret".getBytes(StandardCharsets.UTF_8);

  private Creds() {}

  static void writeFake(Configuration conf, Flags f) throws IOException {
    File out = new File(f.positional(0, "FILE"));
    List<String> kinds = f.all("kind");
    List<String> services = f.all("service");
    if (kinds.size() != services.size()) {
      throw new Flags.UsageException("give --kind and --service in pairs");
    }
    if (kinds.isEmpty()) {
      kinds = List.of("HDFS_DELEGATION_TOKEN", "HDFS_DELEGATION_TOKEN");
      services = List.of("127.0.0.1:8020", "ha-hdfs:ns2");
    }
    Credentials creds = new Credentials();
    for (int i = 0; i < kinds.size(); i++) {
      DelegationTokenIdentifier id =
          new DelegationTokenIdentifier(
              new Text(f.get("owner", "alice")), new Text(f.get("renewer", "kube2hadoop")), new Text(f.get("real-user", SecureKdc.principal(SecureKdc.SERVICE))));
      id.setIssueDate(FAKE_ISSUE_DATE + i);
      id.setMaxDate(FAKE_ISSUE_DATE + i + FAKE_MAX_LIFETIME);
      id.setSequenceNumber(FAKE_FIRST_SEQUENCE + i);
      id.setMasterKeyId(FAKE_MASTER_KEY_ID);
      byte[] password = new byte[20]; // an HMAC-SHA1, like the NameNode's
      for (int j = 0; j < password.length; j++) {
        password[j] = (byte) (i * password.length + j);
      }
      Token<DelegationTokenIdentifier> t =
          new Token<>(id.getBytes(), password, new Text(kinds.get(i)), new Text(services.get(i)));
      creds.addToken(new Text(services.get(i)), t);
    }
    creds.addSecretKey(new Text(FAKE_SECRET_ALIAS), FAKE_SECRET);
    store(conf, creds, out, f);
  }

  /** Logs in as the token service and asks the NameNode(s) for real tokens for a user, by proxy. */
  static void writeReal(Configuration conf, Flags f) throws Exception {
    File out = new File(f.positional(0, "FILE"));
    String user = f.get("user", "alice");
    String renewer = f.get("renewer", "kube2hadoop");
    String via = f.get("via", "rpc");
    if (!via.equals("rpc") && !via.equals("webhdfs")) {
      throw new Flags.UsageException("--via is rpc or webhdfs");
    }
    UserGroupInformation proxy = UserGroupInformation.createProxyUser(user, serviceLogin(conf));
    Credentials creds = new Credentials();
    proxy.doAs(
        (PrivilegedExceptionAction<Void>)
            () -> {
              for (URI uri : nameNodeUris(conf, via)) {
                try (FileSystem fs = FileSystem.newInstance(uri, conf)) {
                  fs.addDelegationTokens(renewer, creds);
                }
              }
              return null;
            });
    store(conf, creds, out, f);
  }

  /**
   * Turns a WebHDFS "urlString" (GETDELEGATIONTOKEN's answer) into a credentials file, optionally
   * with a new kind and service: shows what an RPC client needs from a WebHDFS-issued token.
   */
  static void importUrlString(Configuration conf, Flags f) throws IOException {
    File out = new File(f.positional(0, "FILE"));
    String url = f.get("url-string", null);
    if (url == null) {
      throw new Flags.UsageException("--url-string is required");
    }
    Token<TokenIdentifier> t = new Token<>();
    t.decodeFromUrlString(url);
    if (f.get("kind", null) != null) {
      t.setKind(new Text(f.get("kind", null)));
    }
    if (f.get("service", null) != null) {
      t.setService(new Text(f.get("service", null)));
    }
    Credentials creds = new Credentials();
    creds.addToken(new Text(f.get("alias", t.getService().toString())), t);
    store(conf, creds, out, f);
  }

  /**
   * A WebHDFS {@code urlString} (from a NameNode or the Router) as the HDFS_DELEGATION_TOKEN a
   * stock RPC client selects: kind re-set, service (and alias) by default the canonical service of
   * {@code fs.defaultFS} ({@code ha-hdfs:rbf} with the router's client config, {@code ip:port} of
   * the first NameNode with the bed's).
   */
  static void wrapHdfs(Configuration conf, Flags f) throws IOException {
    String url = f.get("url-string", null);
    String out = f.get("out", null);
    if (url == null || out == null) {
      throw new Flags.UsageException("hdfs-wrap needs --url-string and --out");
    }
    Token<TokenIdentifier> t = new Token<>();
    t.decodeFromUrlString(url);
    t.setKind(DelegationTokenIdentifier.HDFS_DELEGATION_KIND);
    String service = f.get("service", null);
    if (service == null) {
      try (FileSystem fs = FileSystem.newInstance(FileSystem.getDefaultUri(conf), conf)) {
        service = fs.getCanonicalServiceName();
      }
    }
    t.setService(new Text(service));
    Credentials creds = new Credentials();
    creds.addToken(new Text(f.get("alias", service)), t);
    store(conf, creds, new File(out), f);
  }

  static void read(Configuration conf, String file) throws IOException {
    File in = new File(file).getAbsoluteFile();
    Credentials creds = Credentials.readTokenStorageFile(in, conf);
    int version = -1;
    try (InputStream s = Files.newInputStream(in.toPath())) {
      byte[] head = s.readNBytes(5);
      if (head.length == 5) {
        version = head[4];
      }
    }
    System.out.printf("file\tversion=%d\ttokens=%d\tsecrets=%d%n", version, creds.numberOfTokens(), creds.numberOfSecretKeys());
    Map<String, Token<? extends TokenIdentifier>> tokens = new TreeMap<>();
    for (var e : creds.getTokenMap().entrySet()) {
      tokens.put(e.getKey().toString(), e.getValue());
    }
    for (var e : tokens.entrySet()) {
      System.out.println(describe(e.getKey(), e.getValue()));
    }
    List<String> secrets = new ArrayList<>();
    for (Text alias : creds.getAllSecretKeys()) {
      secrets.add(alias.toString());
    }
    secrets.sort(null);
    for (String alias : secrets) {
      System.out.printf("secret\talias=%s\tlength=%d%n", alias, creds.getSecretKey(new Text(alias)).length);
    }
  }

  static void renewOrCancel(Configuration conf, String file, boolean renew) throws Exception {
    Credentials creds = Credentials.readTokenStorageFile(new File(file).getAbsoluteFile(), conf);
    UserGroupInformation svc = serviceLogin(conf);
    for (Text alias : aliases(creds)) {
      Token<? extends TokenIdentifier> t = creds.getToken(alias);
      svc.doAs(
          (PrivilegedExceptionAction<Void>)
              () -> {
                if (renew) {
                  long expiry = t.renew(conf);
                  System.out.printf("renewed\talias=%s\texpiry=%d%n", alias, expiry);
                } else {
                  t.cancel(conf);
                  System.out.printf("cancelled\talias=%s%n", alias);
                }
                return null;
              });
    }
  }

  private static List<Text> aliases(Credentials creds) {
    List<Text> out = new ArrayList<>(creds.getTokenMap().keySet());
    out.sort(null);
    return out;
  }

  private static String describe(String alias, Token<? extends TokenIdentifier> t) {
    StringBuilder b = new StringBuilder("token");
    b.append("\talias=").append(alias);
    b.append("\tkind=").append(t.getKind());
    b.append("\tservice=").append(t.getService());
    // HDFS, WebHDFS and KMS tokens share the Writable identifier layout, whatever the kind says;
    // the RM's (RM_DELEGATION_TOKEN) is the same fields as a protobuf message
    // (YARNDelegationTokenIdentifierProto).
    boolean rm = RMDelegationTokenIdentifier.KIND_NAME.equals(t.getKind());
    AbstractDelegationTokenIdentifier id = rm ? new RMDelegationTokenIdentifier() : new DelegationTokenIdentifier();
    try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(t.getIdentifier()))) {
      id.readFields(in);
      if (in.available() != 0) {
        throw new IOException(in.available() + " trailing bytes");
      }
      b.append("\towner=").append(id.getOwner());
      b.append("\trenewer=").append(id.getRenewer());
      b.append("\trealUser=").append(id.getRealUser());
      b.append("\tissueDate=").append(id.getIssueDate());
      b.append("\tmaxDate=").append(id.getMaxDate());
      b.append("\tsequenceNumber=").append(id.getSequenceNumber());
      b.append("\tmasterKeyId=").append(id.getMasterKeyId());
    } catch (IOException e) {
      b.append("\tdecode=failed: ").append(e.getMessage());
    }
    b.append("\tidentifier=").append(HexFormat.of().formatHex(t.getIdentifier()));
    // The password is the secret: only its length is shown.
    b.append("\tpasswordLength=").append(t.getPassword().length);
    return b.toString();
  }

  static void store(Configuration conf, Credentials creds, File out, Flags f) throws IOException {
    String format = f.get("format", "1");
    Credentials.SerializedFormat fmt =
        switch (format) {
          case "0" -> Credentials.SerializedFormat.WRITABLE;
          case "1" -> Credentials.SerializedFormat.PROTOBUF;
          default -> throw new Flags.UsageException("--format is 0 (Writable) or 1 (protobuf)");
        };
    creds.writeTokenStorageFile(new Path(out.getAbsoluteFile().toURI()), conf, fmt);
    read(conf, out.getPath());
  }

  private static UserGroupInformation serviceLogin(Configuration conf) throws IOException {
    String principal = conf.get(ClientTools.SERVICE_PRINCIPAL_KEY);
    String keytab = conf.get(ClientTools.SERVICE_KEYTAB_KEY);
    if (principal == null || keytab == null) {
      throw new IOException(
          ClientTools.SERVICE_PRINCIPAL_KEY + "/" + ClientTools.SERVICE_KEYTAB_KEY
              + " missing from the configuration: set HADOOP_CONF_DIR to the bed's hadoop_conf_dir");
    }
    UserGroupInformation.setConfiguration(conf);
    return UserGroupInformation.loginUserFromKeytabAndReturnUGI(principal, keytab);
  }

  private static List<URI> nameNodeUris(Configuration conf, String via) {
    List<URI> uris = new ArrayList<>();
    String key = via.equals("rpc") ? DFSConfigKeys.DFS_NAMENODE_RPC_ADDRESS_KEY : DFSConfigKeys.DFS_NAMENODE_HTTP_ADDRESS_KEY;
    String scheme = via.equals("rpc") ? "hdfs" : "webhdfs";
    String[] nameservices = conf.getTrimmedStrings(DFSConfigKeys.DFS_NAMESERVICES);
    if (nameservices.length == 0) {
      uris.add(URI.create(scheme + "://" + conf.get(key)));
    } else {
      for (String ns : nameservices) {
        // An HA-style logical nameservice (the router's client config: hdfs://rbf) is named as
        // such, so the client gives its token the logical service (ha-hdfs:rbf).
        boolean logical = conf.getTrimmedStrings(HdfsClientConfigKeys.DFS_HA_NAMENODES_KEY_PREFIX + "." + ns).length > 0;
        uris.add(URI.create(scheme + "://" + (logical ? ns : conf.get(key + "." + ns))));
      }
    }
    return uris;
  }
}
