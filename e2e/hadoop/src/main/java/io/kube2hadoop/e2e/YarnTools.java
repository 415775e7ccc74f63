package io.kube2hadoop.e2e;

import java.io.File;
import java.io.IOException;
import java.security.PrivilegedExceptionAction;
import java.util.List;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.security.Credentials;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.security.token.Token;
import org.apache.hadoop.security.token.TokenIdentifier;
import org.apache.hadoop.yarn.api.records.ApplicationId;
import org.apache.hadoop.yarn.api.records.ApplicationReport;
import org.apache.hadoop.yarn.api.records.ApplicationSubmissionContext;
import org.apache.hadoop.yarn.api.records.ContainerLaunchContext;
import org.apache.hadoop.yarn.api.records.Resource;
import org.apache.hadoop.yarn.api.records.YarnApplicationState;
import org.apache.hadoop.yarn.client.ClientRMProxy;
import org.apache.hadoop.yarn.client.api.YarnClient;
import org.apache.hadoop.yarn.client.api.YarnClientApplication;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.security.client.RMDelegationTokenIdentifier;
import org.apache.hadoop.yarn.security.client.RMDelegationTokenSelector;
import org.apache.hadoop.yarn.util.ConverterUtils;

/**
 * Stock YARN clients (YarnClient, the RM's ApplicationClientProtocol over Kerberos/token RPC) for
 * the bed's ResourceManager (harness flag yarn), configured from yarn-site.xml in HADOOP_CONF_DIR.
 * yarn-apps and yarn-submit authenticate with tokens only: the file named by --tokens, or
 * HADOOP_TOKEN_FILE_LOCATION as for the HDFS commands.
 */
final class YarnTools {
  private YarnTools() {}

  /** Lines "id user state name", after "as OWNER" (the owner of the RM token the client picks). */
  static void apps(Configuration base, Flags f) throws Exception {
    YarnConfiguration conf = yarnConf(base);
    loadTokens(conf, f);
    System.out.println("as " + tokenOwner(conf));
    try (YarnClient c = client(conf)) {
      List<ApplicationReport> apps = c.getApplications();
      apps.sort((a, b) -> a.getApplicationId().compareTo(b.getApplicationId()));
      for (ApplicationReport r : apps) {
        System.out.printf("%s\t%s\t%s\t%s%n", r.getApplicationId(), r.getUser(), r.getYarnApplicationState(), r.getName());
      }
    }
  }

  /**
   * Submits an application whose AM container only runs a short shell command (it never
   * registers, so the attempt fails after it exits; the RM accepting it is the point) and waits
   * (bounded) until the RM reports it at least ACCEPTED. The reported user is the one the RM
   * authorised.
   */
  static void submit(Configuration base, Flags f) throws Exception {
    YarnConfiguration conf = yarnConf(base);
    loadTokens(conf, f);
    String name = f.get("name", null);
    if (name == null) {
      throw new Flags.UsageException("--name is required");
    }
    long timeoutMs = f.getLong("timeout-ms", 60_000);
    try (YarnClient c = client(conf)) {
      YarnClientApplication app = c.createApplication();
      ApplicationSubmissionContext ctx = app.getApplicationSubmissionContext();
      ctx.setApplicationName(name);
      ctx.setApplicationType("k2h-e2e");
      ctx.setQueue(f.get("queue", "default"));
      ctx.setMaxAppAttempts(1);
      ctx.setResource(Resource.newInstance(128, 1));
      ctx.setAMContainerSpec(
          ContainerLaunchContext.newInstance(Map.of(), Map.of(), List.of(f.get("command", "sleep 1")), null, null, null));
      // Returns once the RM has the application past NEW/NEW_SAVING/SUBMITTED.
      ApplicationId id = c.submitApplication(ctx);
      long deadline = System.currentTimeMillis() + timeoutMs;
      ApplicationReport r = c.getApplicationReport(id);
      while (r.getYarnApplicationState().compareTo(YarnApplicationState.ACCEPTED) < 0) {
        if (System.currentTimeMillis() > deadline) {
          throw new IOException(id + " still " + r.getYarnApplicationState() + " after " + timeoutMs + " ms");
        }
        Thread.sleep(200);
        r = c.getApplicationReport(id);
      }
      System.out.printf("submitted %s user %s%n", id, r.getUser());
      System.out.printf("state %s%n", r.getYarnApplicationState());
    }
  }

  /**
   * The stock Java way to an RM delegation token: log in from a keytab, impersonate --doas, and
   * YarnClient.getRMDelegationToken over RPC; the token gets the service a client selects it by.
   */
  static void token(Configuration base, Flags f) throws Exception {
    YarnConfiguration conf = yarnConf(base);
    String principal = f.get("principal", conf.get(ClientTools.SERVICE_PRINCIPAL_KEY));
    String keytab = f.get("keytab", conf.get(ClientTools.SERVICE_KEYTAB_KEY));
    String doAs = f.get("doas", "alice");
    String renewer = f.get("renewer", "kube2hadoop");
    String out = f.get("out", null);
    if (principal == null || keytab == null || out == null) {
      throw new Flags.UsageException("yarn-token needs --principal, --keytab (default: the bed's service) and --out");
    }
    UserGroupInformation.setConfiguration(conf);
    UserGroupInformation svc = UserGroupInformation.loginUserFromKeytabAndReturnUGI(principal, keytab);
    UserGroupInformation user = doAs.isEmpty() ? svc : UserGroupInformation.createProxyUser(doAs, svc);
    Text service = ClientRMProxy.getRMDelegationTokenService(conf);
    Token<TokenIdentifier> t =
        user.doAs(
            (PrivilegedExceptionAction<Token<TokenIdentifier>>)
                () -> {
                  try (YarnClient c = client(conf)) {
                    return ConverterUtils.convertFromYarn(c.getRMDelegationToken(new Text(renewer)), service);
                  }
                });
    Credentials creds = new Credentials();
    creds.addToken(service, t);
    Creds.store(conf, creds, new File(out), f);
  }

  /** An RM REST "token" (urlString) into a credentials file: kind RM_DELEGATION_TOKEN, a service. */
  static void wrap(Configuration base, Flags f) throws Exception {
    // An explicit --service needs no RM; the default is the bed's token_service.
    YarnConfiguration conf = f.get("service", null) != null ? new YarnConfiguration(base) : yarnConf(base);
    String url = f.get("url-string", null);
    String out = f.get("out", null);
    if (url == null || out == null) {
      throw new Flags.UsageException("yarn-wrap needs --url-string and --out");
    }
    String service = f.get("service", ClientRMProxy.getRMDelegationTokenService(conf).toString());
    Token<TokenIdentifier> t = new Token<>();
    t.decodeFromUrlString(url);
    t.setKind(RMDelegationTokenIdentifier.KIND_NAME);
    t.setService(new Text(service));
    Credentials creds = new Credentials();
    creds.addToken(new Text(f.get("alias", service)), t);
    Creds.store(conf, creds, new File(out), f);
  }

  /** The bed's RM, from yarn-site.xml; without it YarnClient would retry 0.0.0.0:8032 for 15 minutes. */
  private static YarnConfiguration yarnConf(Configuration base) throws IOException {
    YarnConfiguration conf = new YarnConfiguration(base);
    if (conf.getResource("yarn-site.xml") == null || conf.get(YarnConfiguration.RM_PRINCIPAL) == null) {
      throw new IOException("no yarn-site.xml with the ResourceManager in HADOOP_CONF_DIR: start the bed with hadoop-up.sh --yarn");
    }
    return conf;
  }

  private static void loadTokens(Configuration conf, Flags f) throws IOException {
    String file = f.get("tokens", null);
    if (file != null) {
      Credentials creds = Credentials.readTokenStorageFile(new File(file).getAbsoluteFile(), conf);
      UserGroupInformation.getCurrentUser().addCredentials(creds);
    }
  }

  /**
   * The owner of the token the client will present: RMDelegationTokenSelector over the current
   * user's tokens with the service ClientRMProxy computes, as the RPC client does.
   */
  private static String tokenOwner(Configuration conf) throws IOException {
    Text service = ClientRMProxy.getRMDelegationTokenService(conf);
    Token<RMDelegationTokenIdentifier> t =
        new RMDelegationTokenSelector().selectToken(service, UserGroupInformation.getCurrentUser().getTokens());
    if (t == null) {
      System.err.println("note: no " + RMDelegationTokenIdentifier.KIND_NAME + " with a service containing " + service + " among the tokens");
      return "?";
    }
    return t.decodeIdentifier().getOwner().toString();
  }

  private static YarnClient client(Configuration conf) {
    YarnClient c = YarnClient.createYarnClient();
    c.init(conf);
    c.start();
    return c;
  }
}
