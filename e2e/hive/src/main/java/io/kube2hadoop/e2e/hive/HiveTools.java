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
import org.apache.hadoop.hive.metastore.api.Database;
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
    System.err.println("usage: HiveTools token --out FILE [--owner U] [--renewer U] [--service S] | read FILE | dbs [--create NAME] | renew FILE | cancel FILE");
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
      default -> usage();
    }
    return 0;
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
