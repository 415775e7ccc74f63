package io.kube2hadoop.e2e;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Set;
import java.util.UUID;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.ipc.RemoteException;
import org.apache.hadoop.security.UserGroupInformation;

/**
 * A stock Hadoop client, run as whoever the token file says (HADOOP_TOKEN_FILE_LOCATION, no
 * Kerberos ticket), plus credentials-file tools that use Hadoop's own classes as the reference
 * for our Rust codec. Configuration comes from HADOOP_CONF_DIR on the classpath, as with `hadoop`.
 *
 * <p>Exit codes: 0 success, 1 Hadoop refused or failed (every cause on stderr as "error: Class:
 * message"), 2 bad command line.
 */
public final class ClientTools {
  static final String SERVICE_PRINCIPAL_KEY = "k2h.e2e.service.principal";
  static final String SERVICE_KEYTAB_KEY = "k2h.e2e.service.keytab";

  private static final String USAGE =
      String.join(
          "\n",
          "usage: hadoop-client.sh COMMAND ...",
          "  ls PATH                      list a directory (or stat a file)",
          "  put PATH [--text T]          create a small file",
          "  whoami                       the user the NameNode sees",
          "  creds-write FILE [--format 0|1] [--kind K --service S]... [--owner U] [--renewer U] [--real-user U]",
          "  creds-write-real FILE [--user alice] [--renewer kube2hadoop] [--via rpc|webhdfs] [--format 0|1]",
          "  creds-import FILE --url-string S [--kind K] [--service S] [--alias A] [--format 0|1]",
          "  creds-read FILE              one line per token and secret key",
          "  hdfs-wrap --url-string S --out FILE [--service S] [--alias A] [--format 0|1]",
          "  renew FILE | cancel FILE     as the token service (its keytab)",
          "  yarn-apps [--tokens FILE]    YARN applications (\"id user state name\") as the RM token's owner",
          "  yarn-submit --name NAME [--tokens FILE] [--command 'sleep 1'] [--queue default] [--timeout-ms 60000]",
          "  yarn-token --out FILE [--principal P --keytab K] [--doas alice] [--renewer kube2hadoop] [--format 0|1]",
          "  yarn-wrap --url-string S --out FILE [--service S] [--alias A] [--format 0|1]");

  private ClientTools() {}

  public static void main(String[] args) {
    int code;
    try {
      if (args.length == 0) {
        throw new Flags.UsageException("no command");
      }
      code = run(args[0], Flags.parse(args, 1));
    } catch (Flags.UsageException e) {
      System.err.println("error: " + e.getMessage());
      System.err.println(USAGE);
      code = 2;
    } catch (Throwable e) {
      printCauses(e);
      code = 1;
    }
    System.out.flush();
    // Hadoop leaves non-daemon threads (IPC, FileSystem cache) behind; exit explicitly.
    System.exit(code);
  }

  private static int run(String cmd, Flags f) throws Exception {
    Configuration conf = new HdfsConfiguration();
    switch (cmd) {
      case "ls" -> ls(conf, new Path(f.positional(0, "PATH")));
      case "put" -> put(conf, new Path(f.positional(0, "PATH")), f.get("text", "written by kube2hadoop e2e\n"));
      case "whoami" -> whoami(conf);
      case "creds-write" -> Creds.writeFake(conf, f);
      case "creds-write-real" -> Creds.writeReal(conf, f);
      case "creds-import" -> Creds.importUrlString(conf, f);
      case "hdfs-wrap" -> Creds.wrapHdfs(conf, f);
      case "creds-read" -> Creds.read(conf, f.positional(0, "FILE"));
      case "renew" -> Creds.renewOrCancel(conf, f.positional(0, "FILE"), true);
      case "cancel" -> Creds.renewOrCancel(conf, f.positional(0, "FILE"), false);
      case "yarn-apps" -> YarnTools.apps(conf, f);
      case "yarn-submit" -> YarnTools.submit(conf, f);
      case "yarn-token" -> YarnTools.token(conf, f);
      case "yarn-wrap" -> YarnTools.wrap(conf, f);
      case "-h", "--help", "help" -> System.out.println(USAGE);
      default -> throw new Flags.UsageException("unknown command " + cmd);
    }
    return 0;
  }

  private static void ls(Configuration conf, Path path) throws IOException {
    FileSystem fs = path.getFileSystem(conf);
    for (FileStatus s : fs.listStatus(path)) {
      System.out.printf(
          "%s\t%s\t%s\t%d\t%s%n",
          (s.isDirectory() ? "d" : "-") + s.getPermission(), s.getOwner(), s.getGroup(), s.getLen(), s.getPath().toUri().getPath());
    }
  }

  private static void put(Configuration conf, Path path, String text) throws IOException {
    FileSystem fs = path.getFileSystem(conf);
    try (OutputStream out = fs.create(path, false)) {
      out.write(text.getBytes(StandardCharsets.UTF_8));
    }
    FileStatus s = fs.getFileStatus(path);
    System.out.printf("%s\t%s\t%d%n", s.getPath().toUri().getPath(), s.getOwner(), s.getLen());
  }

  /**
   * The NameNode has no "who am I" call over RPC, so create an empty file in the sticky /tmp and
   * read its owner: that is the user the NameNode authorised, not what the client believes.
   */
  private static void whoami(Configuration conf) throws IOException {
    FileSystem fs = FileSystem.get(conf);
    Path probe = new Path("/tmp/.k2h-whoami-" + UUID.randomUUID());
    fs.create(probe, false).close();
    try {
      System.out.println(fs.getFileStatus(probe).getOwner());
    } finally {
      fs.delete(probe, false);
    }
    System.err.println("client-side user: " + UserGroupInformation.getCurrentUser());
  }

  /**
   * One "error: Class: message" line per distinct cause, first line of each message only: a
   * RemoteException's message carries the server's stack trace.
   */
  static void printCauses(Throwable e) {
    Set<Throwable> seen = new HashSet<>();
    Set<String> printed = new HashSet<>();
    for (Throwable t = e; t != null && seen.add(t); t = t.getCause()) {
      String cls = t instanceof RemoteException re ? re.getClassName() : t.getClass().getName();
      String msg = String.valueOf(t.getMessage()).lines().findFirst().orElse("");
      String line = "error: " + cls + ": " + msg;
      if (printed.add(line)) {
        System.err.println(line);
      }
    }
  }
}
