//! The token client against a real Kerberized HDFS (the Java harness, `e2e/hadoop/`): obtain a
//! delegation token for alice as the service principal over SPNEGO, renew it, write it to a
//! credentials file that a stock Hadoop client (no Kerberos ticket) uses to list and write in
//! /user/alice and is refused in /user/bob, cancel it, and watch the same client be refused.
//! The same for the KMS, and for the YARN ResourceManager (`--yarn`): its REST API issues an
//! `RM_DELEGATION_TOKEN` for alice with which a stock YarnClient, no ticket, lists applications
//! and submits one as alice, until the token is cancelled. And for an HDFS Router in front of
//! two nameservices (router-based federation, a private bed with `--rbf`): the router issues
//! the token, configured like any nameservice, and one token reaches both subclusters.
//! And for the Hive metastore (`--hive`): a stock `HiveMetaStoreClient`, then PySpark with Hive
//! support (`e2e/scripts/pyspark-hive.sh`), read alice's table with only our file.
//!
//! The bed is read from `K2H_HADOOP_CLUSTER` (a cluster.json) or `e2e/.state/hadoop/`; in the
//! latter case it is started with `e2e/scripts/hadoop-up.sh` when it is not running, and left
//! running for other tests.
//!
//! Kerberos takes its configuration from the process environment (see
//! `token_service::hadoop::spnego`), so the test re-runs itself as a child process with that
//! environment rather than mutating its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use e2e::hadoop::{Cluster, e2e_dir, show, state_dir};
use hadoop_token::{Credentials, Format};
use token_service::hadoop::auth::Authenticator;
use token_service::hadoop::hive::sasl::Protection;
use token_service::hadoop::hive::{Hive, HiveConfig};
use token_service::hadoop::http::{Caller, HttpConfig, build_client};
use token_service::hadoop::kms::{Kms, KmsConfig};
use token_service::hadoop::spnego::{self, KerberosConfig, Spnego};
use token_service::hadoop::webhdfs::{NameNode, NameServiceConfig, WebHdfs};
use token_service::hadoop::yarn::{ResourceManager, Yarn, YarnConfig};
use token_service::hadoop::{Federation, HadoopError, TokenEndpoint, TokenSource};
use token_service::services::Selection;

const CHILD_MARKER: &str = "K2H_E2E_KERBEROS_CHILD";

/// True when the harness recorded in `state` is alive (same check as hadoop-lib.sh).
fn harness_running(state: &Path) -> bool {
    let Ok(pid) = std::fs::read_to_string(state.join("harness.pid")) else {
        return false;
    };
    std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
        .map(|c| String::from_utf8_lossy(&c).contains("io.kube2hadoop.e2e.Harness"))
        .unwrap_or(false)
}

/// The bed's description; starts the default bed only when none is running, so a bed another
/// test started (maybe with other flags) is never restarted.
fn cluster() -> (PathBuf, Cluster) {
    let path = match std::env::var_os("K2H_HADOOP_CLUSTER") {
        Some(p) => PathBuf::from(p),
        None => {
            let state = state_dir().join("hadoop");
            if !harness_running(&state) {
                let script = e2e_dir().join("scripts/hadoop-up.sh");
                // The shared bed's flags: a superset of what any test here needs.
                let out = Command::new(&script)
                    .args(e2e::hadoop::SHARED_FLAGS)
                    .output()
                    .unwrap_or_else(|e| {
                        panic!("cannot run {}: {e}", script.display());
                    });
                assert!(
                    out.status.success(),
                    "{} failed: it needs Java and Maven (e2e/scripts/install-deps.sh).\n{}{}",
                    script.display(),
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            state.join("cluster.json")
        }
    };
    let cluster = Cluster::read(&path);
    (path, cluster)
}

fn kerberos(cluster: &Cluster) -> KerberosConfig {
    KerberosConfig {
        principal: cluster.service_principal.clone(),
        keytab: cluster.service_keytab.clone(),
        krb5_conf: Some(cluster.krb5_conf.clone()),
        refresh_margin: Duration::from_secs(300),
    }
}

/// Runs the stock client with only the tokens in `token_file`, against the bed of `cluster_json`.
fn hadoop_client(
    cluster_json: &Path,
    cluster: &Cluster,
    token_file: &Path,
    args: &[&str],
) -> Output {
    let state = cluster_json.parent().expect("cluster.json has a directory");
    cluster.client(token_file, args, Some(state))
}

/// Runs `test` again in a child process that has the Kerberos environment, unless this process
/// already has it. Returns true when the child ran (and passed): the caller is done.
fn ran_in_kerberos_child(test: &str, cluster_json: &Path, krb: &KerberosConfig) -> bool {
    if spnego::check_env(krb, |v| std::env::var_os(v)).is_ok() {
        return false;
    }
    assert!(
        std::env::var_os(CHILD_MARKER).is_none(),
        "the child process still lacks the Kerberos environment"
    );
    let exe = std::env::current_exe().expect("path of this test binary");
    let status = Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .envs(spnego::process_env(krb))
        .env(CHILD_MARKER, "1")
        .env("K2H_HADOOP_CLUSTER", cluster_json)
        .status()
        .expect("re-run this test with the Kerberos environment");
    assert!(
        status.success(),
        "{test} failed in its child process: {status}"
    );
    true
}

fn caller(spnego: &Spnego) -> Caller {
    let http = HttpConfig::default();
    Caller::new(
        build_client(&http).expect("HTTP client"),
        Arc::new(spnego.clone()) as Arc<dyn Authenticator>,
        http.timeout,
        "kube2hadoop",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhdfs_token_lifecycle_with_a_stock_hadoop_client() {
    let (cluster_json, cluster) = cluster();
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(
        "webhdfs_token_lifecycle_with_a_stock_hadoop_client",
        &cluster_json,
        &krb,
    ) {
        return;
    }
    lifecycle(&cluster_json, &cluster, krb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_token_lifecycle_against_a_real_kms() {
    let (cluster_json, cluster) = cluster();
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(
        "kms_token_lifecycle_against_a_real_kms",
        &cluster_json,
        &krb,
    ) {
        return;
    }
    let kms_json = cluster.kms.first().unwrap_or_else(|| {
        panic!(
            "{} has no KMS: restart the bed with `e2e/scripts/hadoop-up.sh --kms`",
            cluster_json.display()
        )
    });
    let spnego = Spnego::new(krb).expect("Kerberos environment is set");
    let kms = Kms::new(
        KmsConfig {
            name: "kms".into(),
            urls: vec![kms_json.http.clone()],
            renewer: "kube2hadoop".into(),
            token_service: kms_json.uri.clone(),
        },
        caller(&spnego),
    )
    .expect("KMS config");
    let source = Federation::new(vec![Arc::new(kms) as Arc<dyn TokenEndpoint>]).expect("config");

    let set = source
        .obtain("alice", &Selection::All)
        .await
        .expect("a KMS token for alice");
    let token = set.tokens[0].to_token().expect("the KMS token decodes");
    assert_eq!(token.kind, "kms-dt");
    assert_eq!(token.service, kms_json.uri);
    let id = token
        .decode_identifier()
        .expect("identifier decodes")
        .expect("a known kind");
    assert_eq!(id.owner, "alice");
    assert_eq!(id.renewer, "kube2hadoop");

    let renewal = source.renew(&set).await.expect("KMS renewal");
    assert!(renewal.expires_at_ms as i64 > id.issue_date, "{renewal:?}");
    source.cancel(&set).await.expect("KMS cancel");
    let again = source.renew(&set).await.expect_err("cancelled KMS token");
    assert!(
        matches!(again.failures[0].1, HadoopError::TokenNotFound { .. }),
        "{again}"
    );

    // Hadoop reads our file and sees the token where KMSClientProvider looks for it.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    let mut creds = Credentials::default();
    creds.add_token(token.service.clone(), token);
    std::fs::write(&file, &*creds.encode(Format::Writable)).expect("write credentials file");
    let read = hadoop_client(
        &cluster_json,
        &cluster,
        &file,
        &["creds-read", &file.to_string_lossy()],
    );
    assert!(read.status.success(), "creds-read: {}", show(&read));
    let text = String::from_utf8_lossy(&read.stdout);
    assert!(
        text.contains("kind=kms-dt") && text.contains(&format!("service={}", kms_json.uri)),
        "{}",
        show(&read)
    );

    assert_eq!(spnego.acquisitions(), 1);
}

/// A provider for each nameservice of the bed.
fn hdfs_endpoints(cluster: &Cluster, spnego: &Spnego) -> Vec<Arc<dyn TokenEndpoint>> {
    cluster
        .nameservices
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let hdfs = WebHdfs::new(
                NameServiceConfig {
                    name: ns.name.clone().unwrap_or_else(|| format!("nn{i}")),
                    namenodes: ns
                        .namenodes
                        .iter()
                        .map(|nn| NameNode {
                            http: nn.http.clone(),
                            rpc: nn.rpc.clone(),
                        })
                        .collect(),
                    renewer: "kube2hadoop".into(),
                    token_service: None,
                },
                caller(spnego),
            )
            .expect("nameservice config");
            Arc::new(hdfs) as Arc<dyn TokenEndpoint>
        })
        .collect()
}

/// Every nameservice of the bed (two with `hadoop-up.sh --nameservices 2`): one token each.
async fn lifecycle(cluster_json: &Path, cluster: &Cluster, krb: KerberosConfig) {
    let spnego = Spnego::new(krb).expect("Kerberos environment is set");
    let source = Federation::new(hdfs_endpoints(cluster, &spnego)).expect("federation config");
    let rpcs: Vec<&str> = cluster
        .nameservices
        .iter()
        .map(|ns| ns.namenodes[0].rpc.as_str())
        .collect();

    // Obtain as the service principal for alice: one token per namespace, named for RPC.
    let set = source
        .obtain("alice", &Selection::All)
        .await
        .expect("tokens for alice");
    assert_eq!(set.tokens.len(), rpcs.len());
    let mut creds = Credentials::default();
    let mut latest_initial_expiry = 0;
    for (issued, rpc) in set.tokens.iter().zip(&rpcs) {
        assert_eq!(issued.kind, "HDFS_DELEGATION_TOKEN");
        assert_eq!(
            issued.service, *rpc,
            "service = ip:port of the NameNode RPC address"
        );
        let token = issued.to_token().expect("the NameNode's token decodes");
        let id = token
            .decode_identifier()
            .expect("identifier decodes")
            .expect("a known kind");
        assert_eq!(id.owner, "alice");
        assert_eq!(id.renewer, "kube2hadoop");
        latest_initial_expiry =
            latest_initial_expiry.max(id.issue_date + cluster.renew_interval_ms);
        creds.add_token(token.service.clone(), token);
    }

    // Renew: the set's expiry (the earliest) moves past every expiry set at issue time.
    let renewal = source.renew(&set).await.expect("renewal");
    assert_eq!(renewal.per_token.len(), rpcs.len());
    assert_eq!(
        Some(renewal.expires_at_ms),
        renewal.per_token.iter().map(|(_, e)| *e).min()
    );
    assert!(
        renewal.expires_at_ms as i64 > latest_initial_expiry,
        "renewed expiry {} should pass the initial expiry {latest_initial_expiry}",
        renewal.expires_at_ms,
    );
    assert_eq!(
        spnego.acquisitions(),
        1,
        "one Kerberos login serves several requests"
    );

    // Refused impersonation is typed and names the setting.
    let refused = source
        .obtain("carol", &Selection::All)
        .await
        .expect_err("carol is not allowed");
    assert!(
        matches!(
            refused.failures[0].1,
            HadoopError::ProxyUserNotAllowed { .. }
        ),
        "{refused}"
    );

    // The stock client, with no ticket, works in every namespace from our file alone.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    std::fs::write(&file, &*creds.encode(Format::Writable)).expect("write credentials file");
    for rpc in &rpcs {
        let home = format!("hdfs://{rpc}/user/alice");
        let ls = hadoop_client(cluster_json, cluster, &file, &["ls", &home]);
        assert!(ls.status.success(), "ls {home}: {}", show(&ls));
        let name = format!("{home}/k2h-webhdfs-{}", std::process::id());
        let put = hadoop_client(cluster_json, cluster, &file, &["put", &name]);
        assert!(put.status.success(), "put {name}: {}", show(&put));
        assert!(
            String::from_utf8_lossy(&put.stdout).contains("alice"),
            "file owned by alice: {}",
            show(&put)
        );
        let bob = format!("hdfs://{rpc}/user/bob");
        let refused = hadoop_client(cluster_json, cluster, &file, &["ls", &bob]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "ls {bob}: {}",
            show(&refused)
        );
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("Permission denied"),
            "{}",
            show(&refused)
        );
    }

    // Cancel: the same file stops working everywhere, and renewing says why.
    source.cancel(&set).await.expect("cancel");
    for rpc in &rpcs {
        let home = format!("hdfs://{rpc}/user/alice");
        let after = hadoop_client(cluster_json, cluster, &file, &["ls", &home]);
        assert_eq!(
            after.status.code(),
            Some(1),
            "ls after cancel: {}",
            show(&after)
        );
        assert!(
            String::from_utf8_lossy(&after.stderr).contains("can't be found in cache"),
            "{}",
            show(&after)
        );
    }
    let renew = source.renew(&set).await.expect_err("cancelled tokens");
    assert_eq!(renew.failures.len(), rpcs.len(), "{renew}");
    assert!(
        renew
            .failures
            .iter()
            .all(|(_, e)| matches!(e, HadoopError::TokenNotFound { .. })),
        "{renew}"
    );
    assert_eq!(spnego.acquisitions(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yarn_token_lifecycle_with_a_stock_yarn_client() {
    let (cluster_json, cluster) = cluster();
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(
        "yarn_token_lifecycle_with_a_stock_yarn_client",
        &cluster_json,
        &krb,
    ) {
        return;
    }
    let yarn = cluster.yarn.clone().unwrap_or_else(|| {
        panic!(
            "{} has no ResourceManager: restart the bed with `e2e/scripts/hadoop-up.sh --kms --yarn`",
            cluster_json.display()
        )
    });
    let spnego = Spnego::new(krb).expect("Kerberos environment is set");
    let rm = Yarn::new(
        YarnConfig {
            name: "yarn1".into(),
            resource_managers: yarn
                .resourcemanagers
                .iter()
                .map(|rm| ResourceManager {
                    http: rm.http.clone(),
                    rpc: rm.rpc.clone(),
                })
                .collect(),
            renewer: "kube2hadoop".into(),
            token_service: None,
        },
        caller(&spnego),
    )
    .expect("YARN config");
    let source = Federation::new(vec![Arc::new(rm) as Arc<dyn TokenEndpoint>]).expect("config");
    // Through the federation, so the owner check runs against the real RM's identifier.
    let set = source
        .obtain("alice", &Selection::Only(["yarn"].into()))
        .await
        .expect("an RM token for alice");
    let token = set.tokens[0].to_token().expect("the RM token decodes");
    assert_eq!(token.kind, "RM_DELEGATION_TOKEN");
    assert_eq!(
        token.service, yarn.token_service,
        "the service a YarnClient selects it by"
    );
    let id = token
        .decode_identifier()
        .expect("identifier decodes")
        .expect("a known kind");
    assert_eq!(
        (id.owner.as_str(), id.renewer.as_str()),
        ("alice", "kube2hadoop")
    );
    let renewal = source.renew(&set).await.expect("RM renewal");
    assert!(renewal.expires_at_ms as i64 > id.issue_date, "{renewal:?}");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    let mut creds = Credentials::default();
    creds.add_token(token.service.clone(), token);
    std::fs::write(&file, &*creds.encode(Format::Writable)).expect("write credentials file");
    let file_arg = file.to_string_lossy().into_owned();
    let apps = hadoop_client(
        &cluster_json,
        &cluster,
        &file,
        &["yarn-apps", "--tokens", &file_arg],
    );
    assert!(
        apps.status.success(),
        "yarn-apps with our file: {}",
        show(&apps)
    );
    assert!(
        String::from_utf8_lossy(&apps.stdout).starts_with("as alice"),
        "{}",
        show(&apps)
    );
    let name = format!("k2h-e2e-{}", std::process::id());
    let submit = hadoop_client(
        &cluster_json,
        &cluster,
        &file,
        &["yarn-submit", "--tokens", &file_arg, "--name", &name],
    );
    assert!(
        submit.status.success(),
        "yarn-submit with our file: {}",
        show(&submit)
    );
    let out = String::from_utf8_lossy(&submit.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("submitted application_") && l.ends_with(" user alice")),
        "the RM took the application as alice: {}",
        show(&submit)
    );

    source.cancel(&set).await.expect("RM cancel");
    let again = source.renew(&set).await.expect_err("cancelled RM token");
    assert!(
        matches!(again.failures[0].1, HadoopError::TokenNotFound { .. }),
        "{again}"
    );
    let refused = hadoop_client(
        &cluster_json,
        &cluster,
        &file,
        &["yarn-apps", "--tokens", &file_arg],
    );
    assert!(
        !refused.status.success(),
        "the RM still accepts a cancelled token: {}",
        show(&refused)
    );
    assert!(
        show(&refused).contains("can't be found in cache"),
        "{}",
        show(&refused)
    );
    let text = format!("{again}");
    assert!(
        !text.contains(set.tokens[0].url_string()),
        "errors never carry the token"
    );
}

/// The private bed with the router, stopped when dropped (in the parent process only).
struct RouterBed(PathBuf);

impl Drop for RouterBed {
    fn drop(&mut self) {
        e2e::hadoop::stop(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_issues_one_token_for_both_subclusters_renews_and_cancels_it() {
    const TEST: &str = "router_issues_one_token_for_both_subclusters_renews_and_cancels_it";
    let given = std::env::var_os("K2H_HADOOP_CLUSTER")
        .map(PathBuf::from)
        .filter(|p| Cluster::read(p).router.is_some());
    let (cluster_json, _bed) = match given {
        Some(p) => (p, None),
        None => {
            let state = state_dir().join("hadoop-rbf");
            let bed = RouterBed(state.clone());
            Cluster::private(&state, &["--rbf"]);
            (state.join("cluster.json"), Some(bed))
        }
    };
    let cluster = Cluster::read(&cluster_json);
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(TEST, &cluster_json, &krb) {
        return;
    }
    let router = cluster
        .router
        .clone()
        .expect("the bed has a router (--rbf)");
    let conf = cluster
        .router_conf_dir
        .clone()
        .expect("the bed writes the router's client config");
    let spnego = Spnego::new(krb).expect("Kerberos environment is set");
    // Configured like any other nameservice, with the router's token service.
    let hdfs = WebHdfs::new(
        NameServiceConfig {
            name: router.nameservice.clone(),
            namenodes: vec![NameNode {
                http: router.http.clone(),
                rpc: router.rpc.clone(),
            }],
            renewer: "kube2hadoop".into(),
            token_service: Some(router.token_service.clone()),
        },
        caller(&spnego),
    )
    .expect("router config");
    let source = Federation::new(vec![Arc::new(hdfs) as Arc<dyn TokenEndpoint>]).expect("config");
    let set = source
        .obtain("alice", &Selection::Only(["hdfs"].into()))
        .await
        .expect("a token for alice from the router");
    let token = set.tokens[0]
        .to_token()
        .expect("the router's token decodes");
    assert_eq!(
        (token.kind.as_str(), token.service.as_str()),
        ("HDFS_DELEGATION_TOKEN", router.token_service.as_str())
    );
    source.renew(&set).await.expect("renewed at the router");

    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    let mut creds = Credentials::default();
    creds.add_token(token.service.clone(), token);
    std::fs::write(&file, &*creds.encode(Format::Writable)).expect("write credentials file");
    let state = cluster_json.parent().expect("cluster.json has a directory");
    let via_router = |args: &[&str]| cluster.client_of(&conf, &file, args, Some(state));
    assert_eq!(router.paths.len(), 2, "one file of alice's per subcluster");
    for path in &router.paths {
        let ls = via_router(&["ls", path]);
        assert!(
            ls.status.success(),
            "ls {path} through the router: {}",
            show(&ls)
        );
    }
    let bobs = via_router(&["ls", "/ns1/user/bob"]);
    assert!(
        !bobs.status.success() && show(&bobs).contains("Permission denied"),
        "alice's token reads bob's home: {}",
        show(&bobs)
    );

    source.cancel(&set).await.expect("cancelled at the router");
    let again = source
        .renew(&set)
        .await
        .expect_err("cancelled router token");
    assert!(
        matches!(again.failures[0].1, HadoopError::TokenNotFound { .. }),
        "{again}"
    );
    let refused = via_router(&["ls", &router.paths[0]]);
    assert!(
        !refused.status.success() && show(&refused).contains("can't be found in cache"),
        "the router still accepts a cancelled token: {}",
        show(&refused)
    );
}

/// The stock metastore client with only `token_file`, against the bed of `cluster_json`.
fn hive_client(cluster_json: &Path, cluster: &Cluster, token_file: &Path, args: &[&str]) -> Output {
    let state = cluster_json.parent().expect("cluster.json has a directory");
    cluster.hive_client(token_file, args, Some(state))
}

/// Our metastore provider for the bed's metastore. It offers `authentication,privacy`: requiring
/// privacy proves the frames are sealed.
fn hive_provider(hive: &e2e::hadoop::HiveJson, spnego: &Spnego) -> Hive {
    Hive::new(
        HiveConfig {
            name: "warehouse".into(),
            metastores: vec![hive.uri.clone()],
            principal: Some(hive.principal.replace("localhost", "_HOST")),
            renewer: "kube2hadoop".into(),
            token_signature: hive.token_signature.clone(),
            min_protection: Protection::Privacy,
        },
        Some(spnego.clone()),
        Duration::from_secs(30),
        "kube2hadoop".into(),
    )
    .expect("Hive config")
}

/// The set's credentials file exactly as token-service serves it (aliases included).
fn write_file(set: &token_service::hadoop::TokenSet, file: &Path) {
    let issued = token_service::issued::Issued::obtained(
        "test",
        None,
        Selection::All,
        set,
        token_service::issued::Expiry::Assumed {
            now_ms: 0,
            interval_ms: 1,
        },
    )
    .expect("the set encodes");
    std::fs::write(file, &*issued.file).expect("write credentials file");
}

/// alice's and bob's sets (HDFS and Hive, and KMS with `with_kms`) from our providers on the
/// shared bed, written as token-service writes them, and a table of alice's in a 0700 directory
/// of hers with one row, made with only her file (`<prefix>_<pid>.private_rows`).
struct HiveCase {
    hive_json: e2e::hadoop::HiveJson,
    source: Federation,
    alice: token_service::hadoop::TokenSet,
    bob: token_service::hadoop::TokenSet,
    alice_file: PathBuf,
    bob_file: PathBuf,
    table: String,
    _dir: tempfile::TempDir,
}

impl HiveCase {
    async fn new(
        cluster_json: &Path,
        cluster: &Cluster,
        krb: KerberosConfig,
        with_kms: bool,
        prefix: &str,
    ) -> HiveCase {
        let hive_json = cluster.hive.clone().unwrap_or_else(|| {
            panic!("the bed has no metastore: restart it with `e2e/scripts/hadoop-up.sh --kms --yarn --hive`")
        });
        let spnego = Spnego::new(krb).expect("Kerberos environment is set");
        let mut endpoints = hdfs_endpoints(cluster, &spnego);
        endpoints.push(Arc::new(hive_provider(&hive_json, &spnego)));
        // Spark lists a Hive table's files with mapred's FileInputFormat, whose TokenCache
        // asks the file system for its tokens: with a key provider that means a kms-dt too,
        // looked up by the KMS's canonical service (`ip:port`) and fetched over Kerberos
        // ("Failed to find any Kerberos tgt") when missing. The KMS is configured as in
        // production (its provider URI): the file carries the `ip:port` copy token-service
        // writes for this lookup.
        for (i, kms) in cluster.kms.iter().enumerate().filter(|_| with_kms) {
            let kms = Kms::new(
                KmsConfig {
                    name: format!("kms{i}"),
                    urls: vec![kms.http.clone()],
                    renewer: "kube2hadoop".into(),
                    token_service: kms.uri.clone(),
                },
                caller(&spnego),
            )
            .expect("KMS config");
            endpoints.push(Arc::new(kms));
        }
        let source = Federation::new(endpoints).expect("config");
        // Through the federation, so the owner check reads the real servers' identifiers.
        let alice = source
            .obtain("alice", &Selection::All)
            .await
            .expect("alice's tokens");
        let bob = source
            .obtain("bob", &Selection::All)
            .await
            .expect("bob's tokens");
        for set in [&alice, &bob] {
            let kinds: Vec<&str> = set.tokens.iter().map(|t| t.kind.as_str()).collect();
            assert!(
                kinds.contains(&"HDFS_DELEGATION_TOKEN")
                    && kinds.contains(&"HIVE_DELEGATION_TOKEN"),
                "{kinds:?}"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (alice_file, bob_file) = (dir.path().join("alice"), dir.path().join("bob"));
        write_file(&alice, &alice_file);
        write_file(&bob, &bob_file);
        let table = format!("{prefix}_{}.private_rows", std::process::id());
        let made = hive_client(
            cluster_json,
            cluster,
            &alice_file,
            &["table", "--create", &table],
        );
        assert!(made.status.success(), "create as alice: {}", show(&made));
        HiveCase {
            hive_json,
            source,
            alice,
            bob,
            alice_file,
            bob_file,
            table,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_token_lifecycle_with_a_stock_metastore_client() {
    const TEST: &str = "hive_token_lifecycle_with_a_stock_metastore_client";
    let (cluster_json, cluster) = cluster();
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(TEST, &cluster_json, &krb) {
        return;
    }
    // Our Thrift client, SASL GSSAPI as kube2hadoop/localhost, asking as a proxy for the user.
    let HiveCase {
        hive_json,
        source,
        alice,
        bob,
        alice_file,
        bob_file,
        table,
        _dir,
    } = HiveCase::new(&cluster_json, &cluster, krb, false, "k2h").await;
    let hive_only = Selection::Only(["hive"].into());
    let hive_token = alice
        .tokens
        .iter()
        .find(|t| t.kind == "HIVE_DELEGATION_TOKEN")
        .expect("a metastore token in the set")
        .to_token()
        .expect("decodes");
    assert_eq!(
        hive_token.service, hive_json.token_signature,
        "what a client with metastore.token.signature selects"
    );
    let id = hive_token
        .decode_identifier()
        .expect("identifier decodes")
        .expect("a known kind");
    assert_eq!(
        (id.owner.as_str(), id.renewer.as_str()),
        ("alice", "kube2hadoop")
    );
    assert!(id.real_user.starts_with("kube2hadoop/"), "{id:?}");

    let dbs = hive_client(&cluster_json, &cluster, &alice_file, &["dbs"]);
    assert!(dbs.status.success(), "dbs with our file: {}", show(&dbs));
    let out = String::from_utf8_lossy(&dbs.stdout);
    assert!(out.lines().any(|l| l == "db\tdefault"), "{}", show(&dbs));

    // alice's table, made by HiveCase: metadata from the metastore with our Hive token, rows
    // from HDFS with our HDFS token.
    let read = hive_client(
        &cluster_json,
        &cluster,
        &alice_file,
        &["table", "--read", &table],
    );
    let out = String::from_utf8_lossy(&read.stdout);
    assert!(read.status.success(), "read as alice: {}", show(&read));
    assert!(out.contains("\towner=alice\t"), "{}", show(&read));
    assert!(
        out.lines().any(|l| l == "row\trow of alice"),
        "{}",
        show(&read)
    );
    // The client process runs as the OS user; the metastore sees whom the token names.
    let audit = std::fs::read_to_string(&hive_json.audit_log).expect("metastore audit log");
    assert!(
        audit
            .lines()
            .any(|l| l.contains("ugi=alice") && l.contains("get_table")),
        "the metastore saw alice, not the token service"
    );
    // bob's file names bob: the metastore serves him the table's description (it has no
    // authorization of its own) but HDFS refuses him alice's rows.
    let peek = hive_client(
        &cluster_json,
        &cluster,
        &bob_file,
        &["table", "--read", &table],
    );
    assert!(
        !peek.status.success(),
        "bob read alice's rows: {}",
        show(&peek)
    );
    assert!(
        String::from_utf8_lossy(&peek.stdout).contains("\towner=alice\t"),
        "{}",
        show(&peek)
    );
    assert!(show(&peek).contains("Permission denied"), "{}", show(&peek));

    // A user outside the metastore's proxy rules is refused with the setting to change.
    let err = source
        .obtain("carol", &hive_only)
        .await
        .expect_err("carol is not in hadoop.proxyuser.kube2hadoop.users");
    assert!(
        matches!(err.failures[0].1, HadoopError::ProxyUserNotAllowed { .. }),
        "{err}"
    );

    let renewal = source.renew(&alice).await.expect("renewal");
    assert!(renewal.expires_at_ms as i64 > id.issue_date, "{renewal:?}");
    source.cancel(&alice).await.expect("cancel");
    source.cancel(&bob).await.expect("cancel bob's");
    let again = source.renew(&alice).await.expect_err("cancelled tokens");
    assert!(
        again
            .failures
            .iter()
            .any(|(s, e)| s == "hive:warehouse" && matches!(e, HadoopError::TokenNotFound { .. })),
        "{again}"
    );
    let refused = hive_client(&cluster_json, &cluster, &alice_file, &["dbs"]);
    assert!(
        !refused.status.success(),
        "the metastore still accepts a cancelled token: {}",
        show(&refused)
    );
    assert!(show(&refused).contains("DIGEST-MD5"), "{}", show(&refused));
    assert!(
        !format!("{again}").contains(alice.tokens[0].url_string()),
        "errors never carry the token"
    );
}

/// `e2e/scripts/pyspark-hive.sh`: PySpark (the `pyspark` wheel, Hive support, the metastore
/// client of Hive 4.0.1) reading `table` with only the tokens in `token_file`.
fn pyspark(cluster_json: &Path, token_file: &Path, table: &str) -> Output {
    let state = cluster_json.parent().expect("cluster.json has a directory");
    let script = e2e::hadoop::e2e_dir().join("scripts/pyspark-hive.sh");
    Command::new(&script)
        .arg(table)
        .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
        .env("K2H_HADOOP_STATE", state)
        .env_remove("KRB5_CLIENT_KTNAME")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
}

/// How many audit lines of the metastore say that `user` read `table`'s description.
fn metastore_reads(audit_log: &Path, user: &str, table: &str) -> usize {
    let table = format!("tbl=hive.{table}");
    std::fs::read_to_string(audit_log)
        .expect("metastore audit log")
        .lines()
        .filter(|l| {
            l.contains(&format!("ugi={user}\t")) && l.contains("get_table") && l.contains(&table)
        })
        .count()
}

/// The issue's acceptance: PySpark with `enableHiveSupport` and only our credentials file (no
/// Kerberos ticket) reads alice's Hive table, metadata from the Kerberized metastore with our
/// `HIVE_DELEGATION_TOKEN`, rows from HDFS with our `HDFS_DELEGATION_TOKEN`; bob's file gets the
/// table's description but HDFS refuses him its rows. The first run installs the `pyspark`
/// wheel into a venv outside the repo and Hive 4.0.1's client into `~/.m2` (see the script).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyspark_reads_alices_hive_table_with_only_our_file() {
    const TEST: &str = "pyspark_reads_alices_hive_table_with_only_our_file";
    let (cluster_json, cluster) = cluster();
    let krb = kerberos(&cluster);
    if ran_in_kerberos_child(TEST, &cluster_json, &krb) {
        return;
    }
    // With the KMS too: the bed's HDFS names a key provider, and Spark's reads need its token
    // under `ip:port` (see HiveCase::new).
    let HiveCase {
        hive_json,
        source,
        alice,
        bob,
        alice_file,
        bob_file,
        table,
        _dir,
    } = HiveCase::new(&cluster_json, &cluster, krb, true, "k2h_spark").await;

    let before = metastore_reads(&hive_json.audit_log, "alice", &table);
    let started = std::time::Instant::now();
    let read = pyspark(&cluster_json, &alice_file, &table);
    eprintln!("pyspark as alice: {:.1?}", started.elapsed());
    let out = String::from_utf8_lossy(&read.stdout);
    assert!(read.status.success(), "PySpark as alice: {}", show(&read));
    assert!(
        out.lines().any(|l| l == "row\trow of alice"),
        "{}",
        show(&read)
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("row\t")).count(),
        1,
        "{}",
        show(&read)
    );
    // Spark runs as the OS user; the metastore saw whom the Hive token names.
    assert!(
        metastore_reads(&hive_json.audit_log, "alice", &table) > before,
        "the metastore saw no read of {table} by alice from Spark"
    );

    // bob's file: the metastore describes the table to him (it has no authorization of its
    // own), HDFS refuses him alice's rows.
    let before = metastore_reads(&hive_json.audit_log, "bob", &table);
    let started = std::time::Instant::now();
    let peek = pyspark(&cluster_json, &bob_file, &table);
    eprintln!("pyspark as bob: {:.1?}", started.elapsed());
    assert!(
        !peek.status.success(),
        "bob read alice's rows: {}",
        show(&peek)
    );
    assert!(
        !String::from_utf8_lossy(&peek.stdout).contains("row of alice"),
        "{}",
        show(&peek)
    );
    let err = String::from_utf8_lossy(&peek.stderr);
    assert!(
        err.lines().any(|l| l.starts_with("error: ")
            && l.contains("Permission denied: user=bob")
            && l.contains("private_rows")),
        "{}",
        show(&peek)
    );
    assert!(
        metastore_reads(&hive_json.audit_log, "bob", &table) > before,
        "bob's PySpark did not reach the metastore with his token"
    );

    source.cancel(&alice).await.expect("cancel alice's");
    source.cancel(&bob).await.expect("cancel bob's");
    // With the tokens cancelled the same file no longer opens the metastore.
    let refused = pyspark(&cluster_json, &alice_file, &table);
    assert!(
        !refused.status.success(),
        "PySpark still reads with cancelled tokens: {}",
        show(&refused)
    );
    assert!(show(&refused).contains("DIGEST-MD5"), "{}", show(&refused));
}
