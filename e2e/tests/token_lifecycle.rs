//! The token ledger against the real beds: renewal, re-issue before the max lifetime, a killed
//! and restarted service that loses nothing, and cancellation when the workload is deleted.
//!
//! Needs the local control plane (`make e2e-up`, `source e2e/.state/env`) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). It starts its own PRIVATE Kerberized
//! HDFS and ResourceManager (`K2H_HADOOP_STATE=e2e/.state/hadoop-lifecycle`) with a 20 s renew
//! interval and a 60 s max lifetime, so nobody else's tokens live that short, and stops it at
//! the end. The set holds an HDFS, an RM and a Hive metastore token; a stock YarnClient and a
//! stock HiveMetaStoreClient check theirs at each step as the HDFS client checks its own. The
//! ledger
//! and its Lease live in their own namespace, so token services of other suites never act on
//! these tokens (nor this one on theirs).
//!
//! One Deployment walks the whole life, about 90 s:
//! issue → renewed past the first 20 s (client still works, NameNode logged renewDelegationToken)
//! → service killed and restarted → re-issued before 60 s (new sequence number in the ledger, old
//! set cancelled, the new file works past the first token's max date, exactly two
//! getDelegationToken calls in all) → Deployment deleted → token refused ("can't be found in
//! cache") and the ledger Secret gone; each step also an Event on the Deployment.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use bytes::Bytes;
use e2e::fixture::Fixture;
use e2e::hadoop::{Cluster, show, state_dir};
use e2e::ledger::LedgerNamespace;
use e2e::objects::{self};
use e2e::token_service::{Launcher, Options};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

const RENEW_INTERVAL_MS: &str = "20000";
const MAX_LIFETIME_MS: u64 = 60_000;
const POD_TIMEOUT: Duration = Duration::from_secs(90);
/// Renewal at 18 s, re-issue at about 54 s after the issue: generous, still bounded.
const LIFE_TIMEOUT: Duration = Duration::from_secs(90);
const CANCEL_TIMEOUT: Duration = Duration::from_secs(60);

fn hadoop_state() -> PathBuf {
    state_dir().join("hadoop-lifecycle")
}

/// The private short-lived HDFS, stopped when dropped.
struct HadoopBed(Cluster);

impl HadoopBed {
    fn up() -> HadoopBed {
        HadoopBed(Cluster::private(
            &hadoop_state(),
            &[
                "--renew-interval-ms",
                RENEW_INTERVAL_MS,
                "--max-lifetime-ms",
                &MAX_LIFETIME_MS.to_string(),
                // The ResourceManager's and the metastore's tokens live as short: the set
                // holds one of each.
                "--yarn",
                "--hive",
            ],
        ))
    }

    /// A stock YarnClient listing applications with only the tokens in `token_file`.
    fn yarn_apps(&self, token_file: &Path) -> Output {
        let file = token_file.to_string_lossy();
        self.0.client(
            token_file,
            &["yarn-apps", "--tokens", &file],
            Some(&hadoop_state()),
        )
    }

    /// A stock HiveMetaStoreClient listing databases with only the tokens in `token_file`.
    fn hive_dbs(&self, token_file: &Path) -> Output {
        self.0
            .hive_client(token_file, &["dbs"], Some(&hadoop_state()))
    }

    /// token-service's `yarn:` entry for this bed's ResourceManager.
    fn yarn_config(&self) -> serde_json::Value {
        let yarn = self.0.yarn.as_ref().expect("the lifecycle bed runs YARN");
        let rms: Vec<_> = yarn
            .resourcemanagers
            .iter()
            .map(|rm| serde_json::json!({"http": rm.http, "rpc": rm.rpc}))
            .collect();
        serde_json::json!([{"name": "yarn1", "resourceManagers": rms}])
    }

    fn audit(&self) -> String {
        self.0.audit_since(0)
    }

    fn count(&self, cmd: &str) -> usize {
        self.audit()
            .lines()
            .filter(|l| l.contains(&format!("cmd={cmd}\t")) || l.contains(&format!("cmd={cmd} ")))
            .count()
    }

    fn ls(&self, token_file: &Path) -> Output {
        self.0
            .client(token_file, &["ls", "/user/alice"], Some(&hadoop_state()))
    }
}

impl Drop for HadoopBed {
    fn drop(&mut self) {
        e2e::hadoop::stop(&hadoop_state());
    }
}

/// The service's options: a ledger pass every second and a short Lease, so a restarted process
/// takes over quickly.
fn options(ledger: &LedgerNamespace) -> Options {
    Options::new(&[NAMESPACE], ledger.name())
        .config("ledgerPeriodSeconds", serde_json::json!(1))
        .config("leaseDurationSeconds", serde_json::json!(6))
        .config("leaseRenewDeadlineSeconds", serde_json::json!(4))
        .replica_ids("lifecycle")
        .pod_rate(600, 50)
}

/// The credentials file for the pod at `ip`.
async fn credentials(launcher: &Launcher, ip: IpAddr) -> Result<Bytes, Error> {
    let answer = launcher
        .request("POST", "/v1/credentials", Some(ip), None, false)
        .await
        .map_err(Error::Check)?;
    ensure(answer.status == 200, || {
        format!("credentials for the pod at {ip}: {}", answer.text())
    })?;
    Ok(answer.body)
}

fn audit_outcomes(launcher: &Launcher) -> Vec<String> {
    launcher
        .audit_lines()
        .iter()
        .map(|v| v["outcome"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The ledger record of `deployment`, if its Secret exists.
async fn ledger_record(
    bed: &Bed,
    ledger: &LedgerNamespace,
    deployment: &str,
) -> Result<Option<serde_json::Value>, Error> {
    let workload = format!("Deployment {NAMESPACE}/{deployment}");
    Ok(ledger.records(bed, &workload).await?.into_iter().next())
}

/// Waits until the record satisfies `ready`, and returns it.
async fn wait_record(
    bed: &Bed,
    ledger: &LedgerNamespace,
    deployment: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, Error> {
    until(what, timeout, || async {
        Ok::<_, Error>(match ledger_record(bed, ledger, deployment).await? {
            Some(r) if ready(&r) => Poll::Ready(r),
            Some(r) => Poll::Pending(format!(
                "renewals {}, reissues {}, last error {}",
                r["renewals"], r["reissues"], r["last_error"]
            )),
            None => Poll::Pending("no ledger Secret".into()),
        })
    })
    .await
}

fn sequence(record: &serde_json::Value) -> i64 {
    record["tokens"][0]["sequence_number"]
        .as_i64()
        .unwrap_or(-1)
}

async fn first_running_pod_ip(bed: &Bed, id: &TestId) -> Result<IpAddr, Error> {
    let api: Api<Pod> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let lp = ListParams::default().labels(&id.selector());
    until("a running pod of the Deployment", POD_TIMEOUT, || {
        let (api, lp) = (api.clone(), lp.clone());
        async move {
            let pods = api.list(&lp).await.step("listing the test's pods")?.items;
            let ip = pods.iter().find_map(|p| {
                let s = p.status.as_ref()?;
                (s.phase.as_deref() == Some("Running") && p.metadata.deletion_timestamp.is_none())
                    .then_some(())?;
                s.pod_ip.as_deref()?.parse::<IpAddr>().ok()
            });
            Ok::<_, Error>(match ip {
                Some(ip) => Poll::Ready(ip),
                None => Poll::Pending(format!("{} pods, none running", pods.len())),
            })
        }
    })
    .await
}

fn write_token(dir: &Path, name: &str, file: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, file).expect("write the credentials file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_reissued_survive_a_restart_and_are_cancelled_with_the_workload() {
    let fx = Fixture::new("lc").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let hadoop = HadoopBed::up();
    let setup = options(ledger)
        .config("yarn", hadoop.yarn_config())
        .config(
            "hive",
            hadoop
                .0
                .hive
                .as_ref()
                .expect("the lifecycle bed runs a metastore")
                .service_config(),
        )
        .prepare(&hadoop.0);
    let mut service = Some(setup.start(1).await);
    let files = tempfile::tempdir().expect("temp dir");
    let result = async {
        let granted_before = hadoop.count("getDelegationToken");
        Api::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let ip = first_running_pod_ip(bed, id).await?;
        let first = credentials(&setup, ip).await?;
        let f1 = write_token(files.path(), "first", &first);
        let ls = hadoop.ls(&f1);
        ensure(ls.status.success(), || format!("hadoop ls with the first file:\n{}", show(&ls)))?;
        let apps = hadoop.yarn_apps(&f1);
        ensure(apps.status.success(), || format!("yarn-apps with the first file:\n{}", show(&apps)))?;
        let dbs = hadoop.hive_dbs(&f1);
        ensure(dbs.status.success(), || format!("hive dbs with the first file:\n{}", show(&dbs)))?;
        let issued = ledger_record(bed, ledger, id.name())
            .await?
            .ok_or_else(|| Error::Check("no ledger Secret after the first request".into()))?;
        let (seq1, issued_at) = (sequence(&issued), issued["issued_at_ms"].as_u64().unwrap_or(0));

        // Renewed at 90 % of the 20 s window, by the first process.
        let renewed = wait_record(bed, ledger, id.name(), "a renewal", LIFE_TIMEOUT, |r| {
            r["renewals"].as_u64() >= Some(1)
        })
        .await?;
        ensure(sequence(&renewed) == seq1, || "renewal changed the token".into())?;

        // Killed without warning, started again: the ledger is all it knows.
        if let Some(s) = service.take() {
            s.kill();
        }
        service = Some(setup.start(2).await);

        // Past the original renew interval the first file still works: it was renewed.
        let interval_end = issued_at + 20_000;
        let now = now_ms();
        if now < interval_end + 1_000 {
            tokio::time::sleep(Duration::from_millis(interval_end + 1_000 - now)).await;
        }
        let ls = hadoop.ls(&f1);
        ensure(ls.status.success(), || {
            format!("hadoop ls past the first renew interval:\n{}", show(&ls))
        })?;
        let apps = hadoop.yarn_apps(&f1);
        ensure(apps.status.success(), || {
            format!("yarn-apps past the first renew interval (the RM token was renewed):\n{}", show(&apps))
        })?;
        let dbs = hadoop.hive_dbs(&f1);
        ensure(dbs.status.success(), || {
            format!("hive dbs past the first renew interval (the metastore token was renewed):\n{}", show(&dbs))
        })?;
        ensure(hadoop.count("renewDelegationToken") >= 2, || {
            "the NameNode audit log shows no renewDelegationToken by the ledger".into()
        })?;

        // Re-issued before the 60 s max lifetime, by the restarted process.
        let reissued = wait_record(bed, ledger, id.name(), "a re-issue", LIFE_TIMEOUT, |r| {
            r["reissues"].as_u64() >= Some(1)
        })
        .await?;
        let seq2 = sequence(&reissued);
        ensure(seq2 != seq1, || format!("re-issue kept sequence number {seq1}"))?;
        let second = credentials(&setup, ip).await?;
        ensure(second != first, || "the service still serves the first file".into())?;
        let f2 = write_token(files.path(), "second", &second);
        let first_max = issued_at + MAX_LIFETIME_MS;
        let now = now_ms();
        if now < first_max + 1_000 {
            tokio::time::sleep(Duration::from_millis(first_max + 1_000 - now)).await;
        }
        let ls = hadoop.ls(&f2);
        ensure(ls.status.success(), || {
            format!("hadoop ls with the re-issued file past the first max date:\n{}", show(&ls))
        })?;
        let apps = hadoop.yarn_apps(&f2);
        ensure(apps.status.success(), || {
            format!("yarn-apps with the re-issued file past the first max date:\n{}", show(&apps))
        })?;
        let dbs = hadoop.hive_dbs(&f2);
        ensure(dbs.status.success(), || {
            format!("hive dbs with the re-issued file past the first max date:\n{}", show(&dbs))
        })?;
        let grants = hadoop.count("getDelegationToken") - granted_before;
        ensure(grants == 2, || {
            format!("the NameNode issued {grants} token sets, expected 2 (issue, re-issue): a restart must not add any")
        })?;

        // The Deployment goes: its tokens are cancelled and its ledger entry removed.
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .delete(id.name(), &DeleteParams::background())
            .await
            .step("alice deletes the Deployment")?;
        until("the ledger Secret to go", CANCEL_TIMEOUT, || async {
            Ok::<_, Error>(match ledger_record(bed, ledger, id.name()).await? {
                None => Poll::Ready(()),
                Some(r) => Poll::Pending(format!("still there, last error {}", r["last_error"])),
            })
        })
        .await?;
        let ls = hadoop.ls(&f2);
        let said = show(&ls);
        ensure(!ls.status.success() && said.contains("can't be found in cache"), || {
            format!("hadoop ls after the Deployment was deleted should be refused:\n{said}")
        })?;
        let apps = hadoop.yarn_apps(&f2);
        let said = show(&apps);
        ensure(!apps.status.success() && said.contains("can't be found in cache"), || {
            format!("yarn-apps after the Deployment was deleted should be refused:\n{said}")
        })?;
        let dbs = hadoop.hive_dbs(&f2);
        let said = show(&dbs);
        ensure(!dbs.status.success() && said.contains("DIGEST-MD5"), || {
            format!("hive dbs after the Deployment was deleted should be refused:\n{said}")
        })?;
        let outcomes = audit_outcomes(&setup);
        for wanted in ["issued", "renewed", "reissued", "cancelled"] {
            ensure(outcomes.iter().any(|o| o == wanted), || {
                format!("no {wanted:?} audit line in {outcomes:?}")
            })?;
        }
        // The same story in `kubectl describe deployment`: Events on the Deployment.
        for (reason, says) in [
            ("TokensIssued", "HDFS_DELEGATION_TOKEN"),
            ("TokensRenewed", "renewed the tokens of Hadoop user alice"),
            ("TokensReissued", "replaced the tokens of Hadoop user alice"),
            ("TokensCancelled", "the workload is gone"),
        ] {
            e2e::events::wait_for(&bed.admin, NAMESPACE, id.name(), reason, says).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    let tail = service.as_ref().map(|s| s.log_tail(40)).unwrap_or_default();
    fx.teardown(service).await;
    if let Err(e) = result {
        panic!("token lifecycle: {e}\nservice log:\n{tail}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
