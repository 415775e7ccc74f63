package io.kube2hadoop.e2e;

import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.DFSConfigKeys;
import org.apache.hadoop.hdfs.security.token.delegation.DelegationTokenIdentifier;
import org.apache.hadoop.security.token.delegation.AbstractDelegationTokenSecretManager;

/**
 * The HDFS Router's delegation-token secret manager for a single router without ZooKeeper: keys
 * and tokens live in this JVM's memory only (a restart forgets them). The Router instantiates it by
 * reflection ({@code dfs.federation.router.secret.manager.class}, constructor taking the
 * Configuration) and insists it is running, so the constructor starts its key-roll thread.
 *
 * <p>Token times come from the NameNode's keys, so the harness's --renew-interval-ms and friends
 * apply to router tokens too. Identifiers are {@link DelegationTokenIdentifier}: kind
 * HDFS_DELEGATION_TOKEN, the Writable layout of NameNode tokens.
 */
public final class RouterTokenSecretManager extends AbstractDelegationTokenSecretManager<DelegationTokenIdentifier> {
  public RouterTokenSecretManager(Configuration conf) throws IOException {
    super(
        conf.getLong(
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_KEY_UPDATE_INTERVAL_KEY,
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_KEY_UPDATE_INTERVAL_DEFAULT),
        conf.getLong(
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_MAX_LIFETIME_KEY,
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_MAX_LIFETIME_DEFAULT),
        conf.getLong(
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_RENEW_INTERVAL_KEY,
            DFSConfigKeys.DFS_NAMENODE_DELEGATION_TOKEN_RENEW_INTERVAL_DEFAULT),
        TimeUnit.HOURS.toMillis(1)); // expired-token remover, as the NameNode's
    startThreads();
  }

  @Override
  public DelegationTokenIdentifier createIdentifier() {
    return new DelegationTokenIdentifier();
  }
}
