package io.kube2hadoop.e2e.hive;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.IOException;
import java.security.PrivilegedExceptionAction;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hive.metastore.HiveMetaStoreClient;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hive.metastore.api.Database;
import org.apache.hadoop.hive.metastore.api.FieldSchema;
import org.apache.hadoop.hive.metastore.api.SerDeInfo;
import org.apache.hadoop.hive.metastore.api.StorageDescriptor;
import org.apache.hadoop.hive.metastore.api.Table;
import org.apache.hadoop.hive.metastore.conf.MetastoreConf;
import org.apache.hadoop.hive.metastore.security.DelegationTokenIdentifier;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.security.Credentials;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.security.token.Token;

/**
 * Stock Hive metastore client tools for the test bed (reference for the Rust token service).
 *
 * <pre>
 * HiveTools token --out FILE [--owner alice] [--renewer kube2hadoop] [--service S]
 *     keytab login ($K2H_KEYTAB as $K2H_PRINCIPAL), get_delegation_token(owner, renewer),
 *     written to a credentials file with service S (default: the token signature)
 * HiveTools read FILE                 prints each token's fields
 * HiveTools dbs [--create NAME]       only the tokens in HADOOP_TOKEN_FILE_LOCATION: lists databases
 *     (and creates one first, printing its owner: who the metastore saw)
 * HiveTools renew FILE | cancel FILE  keytab login, renew_/cancel_delegation_token
 * </pre>
 *
 * Env: K2H_HMS_URI, K2H_HMS_PRINCIPAL, K2H_HMS_SIGNATURE (client's metastore.token.signature, may be
 * empty), K2H_PRINCIPAL, K2H_KEYTAB.
 */
public final class HiveTools {
  private HiveTools() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0) {
      usage();
    }
    try {
      int rc = run(args);
      System.exit(rc);
    } catch (Exception e) {
      for (Throwable t = e; t != null; t = t.getCause()) {
        String m = String.valueOf(t.getMessage());
        System.err.println("error: " + t.getClass().getName() + ": " + m.split("\n", 2)[0]);
        if (t.getCause() == t) {
          break;
        }
      }
      System.exit(1);
    }
  }

  private static void usage() {
    System.err.println("usage: HiveTools token --out FILE [--owner U] [--renewer U] [--service S] | read FILE | dbs [--create NAME] | table --create DB.T | table --read DB.T | renew FILE | cancel FILE");
    System.exit(2);
  }

  private static String flag(String[] args, String name, String dflt) {
    for (int i = 1; i + 1 < args.length; i++) {
      if (args[i].equals("--" + name)) {
        return args[i + 1];
      }
    }
    return dflt;
  }

  private static Configuration conf() {
    Configuration c = MetastoreConf.newMetastoreConf();
    c.set("hadoop.security.authentication", "kerberos");
    MetastoreConf.setVar(c, MetastoreConf.ConfVars.THRIFT_URIS, env("K2H_HMS_URI"));
    MetastoreConf.setBoolVar(c, MetastoreConf.ConfVars.USE_THRIFT_SASL, true);
    MetastoreConf.setVar(c, MetastoreConf.ConfVars.KERBEROS_PRINCIPAL, env("K2H_HMS_PRINCIPAL"));
    MetastoreConf.setVar(c, MetastoreConf.ConfVars.TOKEN_SIGNATURE, System.getenv().getOrDefault("K2H_HMS_SIGNATURE", ""));
    MetastoreConf.setLongVar(c, MetastoreConf.ConfVars.THRIFT_CONNECTION_RETRIES, 1);
    UserGroupInformation.setConfiguration(c);
    return c;
  }

  private static String env(String k) {
    String v = System.getenv(k);
    if (v == null || v.isEmpty()) {
      throw new IllegalArgumentException("set " + k);
    }
    return v;
  }

  private static UserGroupInformation keytabUser() throws IOException {
    return UserGroupInformation.loginUserFromKeytabAndReturnUGI(env("K2H_PRINCIPAL"), env("K2H_KEYTAB"));
  }

  private static int run(String[] args) throws Exception {
    Configuration c = conf();
    switch (args[0]) {
      case "token" -> {
        String out = flag(args, "out", null);
        if (out == null) {
          usage();
        }
        String owner = flag(args, "owner", "alice");
        String renewer = flag(args, "renewer", "kube2hadoop");
        String service = flag(args, "service", System.getenv().getOrDefault("K2H_HMS_SIGNATURE", ""));
        String s =
            keytabUser()
                .doAs(
                    (PrivilegedExceptionAction<String>)
                        () -> {
                          HiveMetaStoreClient client = new HiveMetaStoreClient(c);
                          try {
                            return client.getDelegationToken(owner, renewer);
                          } finally {
                            client.close();
                          }
                        });
        Token<DelegationTokenIdentifier> t = new Token<>();
        t.decodeFromUrlString(s);
        t.setService(new Text(service));
        Credentials creds = new Credentials();
        creds.addToken(new Text(service), t);
        creds.writeTokenStorageFile(new org.apache.hadoop.fs.Path(new File(out).getAbsoluteFile().toURI()), c);
        System.out.println("urlString\t" + s);
        print(creds);
      }
      case "read" -> print(Credentials.readTokenStorageFile(new File(args[1]), c));
      case "renew", "cancel" -> {
        Credentials creds = Credentials.readTokenStorageFile(new File(args[1]), c);
        keytabUser()
            .doAs(
                (PrivilegedExceptionAction<Void>)
                    () -> {
                      HiveMetaStoreClient client = new HiveMetaStoreClient(c);
                      try {
                        for (Token<?> t : creds.getAllTokens()) {
                          if (args[0].equals("renew")) {
                            System.out.println("renewed\t" + t.getService() + "\texpiration=" + client.renewDelegationToken(t.encodeToUrlString()));
                          } else {
                            client.cancelDelegationToken(t.encodeToUrlString());
                            System.out.println("cancelled\t" + t.getService());
                          }
                        }
                      } finally {
                        client.close();
                      }
                      return null;
                    });
      }
      case "dbs" -> {
        UserGroupInformation me = UserGroupInformation.getCurrentUser();
        System.out.println("as\t" + me.getUserName() + "\ttokens=" + me.getCredentials().numberOfTokens());
        String create = flag(args, "create", null);
        me.doAs(
            (PrivilegedExceptionAction<Void>)
                () -> {
                  HiveMetaStoreClient client = new HiveMetaStoreClient(c);
                  try {
                    if (create != null) {
                      Database db = new Database();
                      db.setName(create);
                      client.createDatabase(db);
                      Database got = client.getDatabase(create);
                      System.out.println("created\t" + got.getName() + "\towner=" + got.getOwnerName() + "\tlocation=" + got.getLocationUri());
                    }
                    List<String> dbs = new ArrayList<>(client.getAllDatabases());
                    for (String d : dbs) {
                      System.out.println("db\t" + d);
                    }
                  } finally {
                    client.close();
                  }
                  return null;
                });
      }
      case "table" -> table(c, flag(args, "create", null), flag(args, "read", null));
      default -> usage();
    }
    return 0;
  }

  /**
   * As the caller (tokens only): "--create DB.T" makes database DB and an external text table T
   * whose directory is private to the caller (0700) with one row; both forms then read the
   * table's metadata from the metastore and its rows from HDFS.
   */
  private static void table(Configuration c, String create, String read) throws Exception {
    String name = create != null ? create : read;
    if (name == null || name.indexOf('.') < 1) {
      usage();
    }
    String db = name.substring(0, name.indexOf('.'));
    String tbl = name.substring(name.indexOf('.') + 1);
    UserGroupInformation me = UserGroupInformation.getCurrentUser();
    System.out.println("as\t" + me.getUserName() + "\ttokens=" + me.getCredentials().numberOfTokens());
    me.doAs(
        (PrivilegedExceptionAction<Void>)
            () -> {
              HiveMetaStoreClient client = new HiveMetaStoreClient(c);
              try {
                if (create != null) {
                  Database d = new Database();
                  d.setName(db);
                  client.createDatabase(d);
                  // The metastore records the database's owner from the token: the user whose
                  // table this is (this process itself runs as the OS user).
                  Database made = client.getDatabase(db);
                  String owner = made.getOwnerName();
                  Path dir = new Path(made.getLocationUri(), tbl);
                  FileSystem fs = dir.getFileSystem(c);
                  fs.mkdirs(dir);
                  fs.setPermission(dir, new FsPermission((short) 0700));
                  try (var out = fs.create(new Path(dir, "part-0"))) {
                    out.write(("row of " + owner + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
                  }
                  StorageDescriptor sd = new StorageDescriptor();
                  sd.setCols(List.of(new FieldSchema("line", "string", null)));
                  sd.setLocation(dir.toString());
                  sd.setInputFormat("org.apache.hadoop.mapred.TextInputFormat");
                  sd.setOutputFormat("org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat");
                  SerDeInfo serde = new SerDeInfo();
                  serde.setSerializationLib("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe");
                  sd.setSerdeInfo(serde);
                  Table t = new Table();
                  t.setDbName(db);
                  t.setTableName(tbl);
                  t.setOwner(owner);
                  t.setTableType("EXTERNAL_TABLE");
                  t.putToParameters("EXTERNAL", "TRUE");
                  t.setSd(sd);
                  client.createTable(t);
                }
                Table got = client.getTable(db, tbl);
                System.out.println("table\t" + db + "." + tbl + "\towner=" + got.getOwner() + "\tlocation=" + got.getSd().getLocation()
                    + "\tcolumn=" + got.getSd().getCols().get(0).getName());
                Path dir = new Path(got.getSd().getLocation());
                FileSystem fs = dir.getFileSystem(c);
                for (FileStatus st : fs.listStatus(dir)) {
                  try (var in = fs.open(st.getPath())) {
                    System.out.println("row\t" + new String(in.readAllBytes(), java.nio.charset.StandardCharsets.UTF_8).trim());
                  }
                }
              } finally {
                client.close();
              }
              return null;
            });
  }

  private static void print(Credentials creds) throws IOException {
    for (var e : new java.util.TreeMap<>(creds.getTokenMap()).entrySet()) {
      Text alias = e.getKey();
      Token<?> t = e.getValue();
      DelegationTokenIdentifier id = new DelegationTokenIdentifier();
      id.readFields(new DataInputStream(new ByteArrayInputStream(t.getIdentifier())));
      System.out.println(
          "token\talias=" + alias + "\tkind=" + t.getKind() + "\tservice=" + t.getService() + "\towner=" + id.getOwner() + "\trenewer="
              + id.getRenewer() + "\trealUser=" + id.getRealUser() + "\tissueDate=" + id.getIssueDate() + "\tmaxDate=" + id.getMaxDate()
              + "\tsequenceNumber=" + id.getSequenceNumber() + "\tmasterKeyId=" + id.getMasterKeyId() + "\tidentifier="
              + HexFormat.of().formatHex(t.getIdentifier()) + "\tpasswordLength=" + t.getPassword().length);
    }
  }
}
