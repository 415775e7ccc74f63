package io.kube2hadoop.e2e;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.security.PrivilegedExceptionAction;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.security.AuthenticationFilterInitializer;
import org.apache.hadoop.security.SecurityUtil;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.yarn.client.ClientRMProxy;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.resourcemanager.ResourceManager;
import org.apache.hadoop.yarn.webapp.util.WebAppUtils;

/**
 * A Kerberized YARN ResourceManager with one NodeManager (MiniYARNCluster, in this JVM), set up the
 * way kube2hadoop meets a production RM: Kerberos RPC with service authorization and ACLs, the web
 * app behind SPNEGO with the RM's own authentication filter (so the REST delegation-token API
 * works), and the token service allowed to impersonate the test users.
 *
 * <p>One JVM has one Kerberos login user, and every Kerberos RPC server in it answers as whoever
 * its threads run as (SaslRpcServer asks UserGroupInformation.getCurrentUser()): the NameNode
 * logged in as hdfs/localhost. So the RM is initialised and started inside a doAs of its own
 * keytab login (rm/localhost; threads it creates inherit that identity) and the NodeManager inside
 * one of nm/localhost, without touching the JVM's login user. MiniYARNCluster skips both daemons'
 * own keytab logins, which would replace it.
 */
final class SecureYarn implements AutoCloseable {
  static final String RM_ID = "rm1";

  private final MiniYARNCluster cluster;
  /** The RM's client (ApplicationClientProtocol) RPC port and web port, on 127.0.0.1. */
  final int rpcPort;
  final int httpPort;
  final int schedulerPort;
  final Configuration clientConf;

  private SecureYarn(MiniYARNCluster cluster, int rpcPort, int httpPort, int schedulerPort) {
    this.cluster = cluster;
    this.rpcPort = rpcPort;
    this.httpPort = httpPort;
    this.schedulerPort = schedulerPort;
    this.clientConf = clientConf(rpcPort, httpPort, schedulerPort);
  }

  static SecureYarn start(SecureKdc kdc, File workDir, SecureHdfs.TokenTimes times) throws Exception {
    File dir = new File(workDir, "yarn");
    if (!dir.mkdirs()) {
      throw new IOException("cannot create " + dir);
    }
    // MiniYARNCluster puts its NodeManager's local and log dirs under test.build.data.
    System.setProperty("test.build.data", dir.getAbsolutePath());
    File yarnKeytab = kdc.keytab("yarn");
    kdc.createPrincipals(yarnKeytab, SecureKdc.RM, SecureKdc.NM);
    Configuration conf = serverConf(kdc, yarnKeytab, times);

    UserGroupInformation rm =
        UserGroupInformation.loginUserFromKeytabAndReturnUGI(SecureKdc.principal(SecureKdc.RM), yarnKeytab.getAbsolutePath());
    UserGroupInformation nm =
        UserGroupInformation.loginUserFromKeytabAndReturnUGI(SecureKdc.principal(SecureKdc.NM), yarnKeytab.getAbsolutePath());
    // No NodeManager web server: nothing here reads it, and it saves a Jetty.
    MiniYARNCluster cluster = new Cluster(rm, 1, false);
    try {
      nm.doAs(
          (PrivilegedExceptionAction<Void>)
              () -> {
                cluster.init(conf);
                cluster.start();
                return null;
              });
      if (!cluster.waitForNodeManagersToConnect(30_000)) {
        throw new IllegalStateException("the NodeManager did not register with the ResourceManager within 30 s");
      }
    } catch (Exception e) {
      cluster.stop();
      throw e;
    }
    ResourceManager r = cluster.getResourceManager(0);
    int rpc = r.getClientRMService().getBindAddress().getPort();
    int sched = r.getApplicationMasterService().getBindAddress().getPort();
    // MiniYARNCluster writes the web port it bound back into the RM's conf.
    String web = WebAppUtils.getRMWebAppURLWithoutScheme(r.getConfig());
    int http = Integer.parseInt(web.substring(web.lastIndexOf(':') + 1));
    return new SecureYarn(cluster, rpc, http, sched);
  }

  private static Configuration serverConf(SecureKdc kdc, File yarnKeytab, SecureHdfs.TokenTimes times) {
    Configuration conf = new YarnConfiguration();
    SecurityUtil.setAuthenticationMethod(UserGroupInformation.AuthenticationMethod.KERBEROS, conf);
    conf.setBoolean("hadoop.security.authorization", true);
    conf.set("hadoop.rpc.protection", "authentication");
    conf.set(YarnConfiguration.RM_PRINCIPAL, SecureKdc.principal(SecureKdc.RM));
    conf.set(YarnConfiguration.RM_KEYTAB, yarnKeytab.getAbsolutePath());
    conf.set(YarnConfiguration.NM_PRINCIPAL, SecureKdc.principal(SecureKdc.NM));
    conf.set(YarnConfiguration.NM_KEYTAB, yarnKeytab.getAbsolutePath());
    // Web: SPNEGO as HTTP/localhost (its key is in the hdfs keytab). Listing Hadoop's
    // AuthenticationFilterInitializer is what makes the RM swap in its RMAuthenticationFilter
    // wired to its own token secret manager (RMWebAppUtil.setupSecurityAndFilters): Kerberos,
    // doAs and RM delegation tokens on every web path, and the REST delegation-token API.
    String spnego = SecureKdc.principal(SecureKdc.SPNEGO);
    String spnegoKeytab = kdc.keytab("hdfs").getAbsolutePath();
    conf.set("hadoop.http.filter.initializers", AuthenticationFilterInitializer.class.getName());
    conf.set("hadoop.http.authentication.type", "kerberos");
    conf.set("hadoop.http.authentication.kerberos.principal", spnego);
    conf.set("hadoop.http.authentication.kerberos.keytab", spnegoKeytab);
    conf.set("hadoop.http.authentication.simple.anonymous.allowed", "false");
    conf.setBoolean(YarnConfiguration.RM_WEBAPP_DELEGATION_TOKEN_AUTH_FILTER, true);
    conf.set(YarnConfiguration.RM_WEBAPP_SPNEGO_USER_NAME_KEY, spnego);
    conf.set(YarnConfiguration.RM_WEBAPP_SPNEGO_KEYTAB_FILE_KEY, spnegoKeytab);
    conf.set(YarnConfiguration.NM_WEBAPP_SPNEGO_USER_NAME_KEY, spnego);
    conf.set(YarnConfiguration.NM_WEBAPP_SPNEGO_KEYTAB_FILE_KEY, spnegoKeytab);
    // The same proxy-user rule as the NameNode's: RPC (ProxyUsers) and the web filter's doAs.
    conf.set("hadoop.proxyuser.kube2hadoop.hosts", "*");
    conf.set("hadoop.proxyuser.kube2hadoop.users", String.join(",", SecureKdc.USERS));
    // ACLs on: a user sees full reports of their own applications only; the RM is the admin.
    conf.setBoolean(YarnConfiguration.YARN_ACL_ENABLE, true);
    conf.set(YarnConfiguration.YARN_ADMIN_ACL, "rm");
    conf.setLong(YarnConfiguration.RM_DELEGATION_TOKEN_RENEW_INTERVAL_KEY, times.renewIntervalMs());
    conf.setLong(YarnConfiguration.RM_DELEGATION_TOKEN_MAX_LIFETIME_KEY, times.maxLifetimeMs());
    conf.setLong(YarnConfiguration.RM_DELEGATION_KEY_UPDATE_INTERVAL_KEY, times.keyUpdateIntervalMs());
    // Small and quick: one AM attempt, small containers, no memory or disk-space checks.
    conf.setInt(YarnConfiguration.RM_AM_MAX_ATTEMPTS, 1);
    conf.setInt(YarnConfiguration.RM_SCHEDULER_MINIMUM_ALLOCATION_MB, 128);
    conf.setInt(YarnConfiguration.YARN_MINICLUSTER_NM_PMEM_MB, 2048);
    conf.setBoolean(YarnConfiguration.NM_VMEM_CHECK_ENABLED, false);
    conf.setFloat(YarnConfiguration.NM_MAX_PER_DISK_UTILIZATION_PERCENTAGE, 99.9f);
    conf.set("yarn.scheduler.capacity.maximum-am-resource-percent", "0.5");
    // A quick stop: the NodeManager waits for its applications' cleanup on shutdown (kill delay +
    // kill wait + 1 s); an application stays with it until its container logs are deleted, and a
    // pending deletion holds its stop for 10 s. So container logs go as soon as an app ends.
    conf.setLong(YarnConfiguration.NM_SLEEP_DELAY_BEFORE_SIGKILL_MS, 100);
    conf.setLong(YarnConfiguration.NM_PROCESS_KILL_WAIT_MS, 500);
    conf.setLong(YarnConfiguration.NM_LOG_RETAIN_SECONDS, 0);
    return conf;
  }

  /** What a stock YARN client needs (goes to yarn-site.xml; the Kerberos keys are in core-site). */
  private static Configuration clientConf(int rpcPort, int httpPort, int schedulerPort) {
    Configuration c = new Configuration(false);
    c.set(YarnConfiguration.RM_ADDRESS, "127.0.0.1:" + rpcPort);
    c.set(YarnConfiguration.RM_SCHEDULER_ADDRESS, "127.0.0.1:" + schedulerPort);
    c.set(YarnConfiguration.RM_WEBAPP_ADDRESS, "127.0.0.1:" + httpPort);
    c.set(YarnConfiguration.RM_PRINCIPAL, SecureKdc.principal(SecureKdc.RM));
    // Fail fast when the RM is down instead of retrying for 15 minutes.
    c.setLong(YarnConfiguration.RESOURCEMANAGER_CONNECT_MAX_WAIT_MS, 10_000);
    c.setLong(YarnConfiguration.RESOURCEMANAGER_CONNECT_RETRY_INTERVAL_MS, 500);
    return c;
  }

  /**
   * The service a YARN client selects its RM_DELEGATION_TOKEN by (RMDelegationTokenSelector:
   * token service contains it): "ip:port" of yarn.resourcemanager.address, or with HA the
   * comma-joined list over yarn.resourcemanager.ha.rm-ids.
   */
  String tokenService() {
    return ClientRMProxy.getRMDelegationTokenService(new YarnConfiguration(clientConf)).toString();
  }

  String rpcHostPort() {
    return "127.0.0.1:" + rpcPort;
  }

  String httpUrl() {
    return "http://127.0.0.1:" + httpPort;
  }

  void writeClientConf(File dir) throws IOException {
    try (OutputStream out = new FileOutputStream(new File(dir, "yarn-site.xml"))) {
      clientConf.writeXml(out);
    }
  }

  @Override
  public void close() {
    cluster.stop();
  }

  /** MiniYARNCluster whose ResourceManager runs as rm/localhost (see the class comment). */
  private static final class Cluster extends MiniYARNCluster {
    private final UserGroupInformation rmUgi;

    Cluster(UserGroupInformation rmUgi, int nodeManagers, boolean nmWeb) {
      super("k2h-yarn", nodeManagers, 1, 1, nmWeb);
      this.rmUgi = rmUgi;
    }

    @Override
    protected ResourceManager createResourceManager() {
      return new ResourceManager() {
        @Override
        protected void doSecureLogin() {
          // Would replace the JVM's login user (the NameNode's); see the class comment.
        }

        @Override
        protected void serviceInit(Configuration conf) throws Exception {
          // rmLoginUGI (getCurrentUser() here) becomes rm/localhost; the RM starts its active
          // services (ClientRMService and the other RPC servers) inside rmLoginUGI.doAs.
          rmUgi.doAs(
              (PrivilegedExceptionAction<Void>)
                  () -> {
                    super.serviceInit(conf);
                    return null;
                  });
        }

        @Override
        protected void serviceStart() throws Exception {
          rmUgi.doAs(
              (PrivilegedExceptionAction<Void>)
                  () -> {
                    super.serviceStart();
                    return null;
                  });
        }
      };
    }
  }
}
