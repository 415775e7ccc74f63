//! Hadoop-side faults end to end: the real token-service and init-fetcher binaries
//! against a real Kerberized MiniDFSCluster and MiniKdc and the local control plane.
//!
//! 1. NameNode down (stopped for real through the harness's control port) when a pod asks: the
//!    service answers 503 `hadoop_unavailable` naming the NameNode's address, the fetcher keeps
//!    retrying, and once the NameNode is back it writes a file the stock client reads and uses.
//! 2. KDC unreachable (a fault proxy in front of it refuses connections; the service's krb5.conf
//!    asks for 30 s tickets): new delegation tokens are still obtained on the cached ticket,
//!    then, once it has certainly expired, a 503 saying the KDC cannot be reached; when the KDC
//!    is back the same process recovers.
//! 3. token-service SIGKILLed with a renewal in flight (the NameNode renewed, the answer held
//!    back by a proxy) while a workload is deleted: after restart the live workload's tokens are
//!    renewed past their first window, the dead one's cancelled, no token issued again. Then
//!    SIGKILLed during a first fetch (the NameNode issued, the answer held back): the fetcher's
//!    retries get one set, the ledger holds exactly that set, and the token the dead process
//!    never saw is the one extra `getDelegationToken` (it never left the NameNode; see
//!    docs/reliability.md for why it cannot be cancelled and why that leaks nothing).
//!
//! Needs the control plane (`make e2e-up`, `source e2e/.state/env`) and slapd (started when not
//! running). Starts its own PRIVATE HDFS (`$K2H_E2E_STATE_DIR/hadoop-faults`, 20 s renew
//! interval) because it stops its NameNode, and stops it at the end.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use e2e::faults::{Mode, Proxy};
use e2e::hadoop::{self, Cluster, show, state_dir};
use e2e::ledger::LedgerNamespace;
use e2e::objects;
use e2e::pods::running;
use e2e::token_service::{Answer, Launcher, Options, Service, binary, wait_output};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};

const RENEW_INTERVAL_MS: u64 = 20_000;
/// Long enough that no re-issue happens during the test: only renewals and cancellations.
const MAX_LIFETIME_MS: &str = "600000";
/// The service's ticket lifetime on this bed: the KDC outage outlives it.
const TICKET_LIFETIME: Duration = Duration::from_secs(30);
const POD_TIMEOUT: Duration = Duration::from_secs(90);
/// A fetcher gets this long; the test gives up on it a little later.
const FETCH_DEADLINE: &str = "180s";
const FETCH_TIMEOUT: Duration = Duration::from_secs(200);
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

fn hadoop_state() -> PathBuf {
    state_dir().join("hadoop-faults")
}

/// The private HDFS, stopped when dropped.
struct HadoopBed(Cluster);

impl HadoopBed {
    fn up() -> HadoopBed {
        let cluster = Cluster::private(
            &hadoop_state(),
            &[
                "--renew-interval-ms",
                &RENEW_INTERVAL_MS.to_string(),
                "--max-lifetime-ms",
                MAX_LIFETIME_MS,
            ],
        );
        assert!(
            cluster.control.is_some(),
            "the Hadoop bed has no control port: rebuild and restart it (hadoop-down.sh; hadoop-up.sh)"
        );
        HadoopBed(cluster)
    }

    fn count(&self, cmd: &str) -> usize {
        self.0
            .audit_since(0)
            .lines()
            .filter(|l| l.contains(&format!("cmd={cmd}\t")) || l.contains(&format!("cmd={cmd} ")))
            .count()
    }

    fn client(&self, token_file: &Path, args: &[&str]) -> Output {
        self.0.client(token_file, args, Some(&hadoop_state()))
    }

    fn namenode_http(&self) -> String {
        self.0.nameservices[0].namenodes[0].http.clone()
    }
}

impl Drop for HadoopBed {
    fn drop(&mut self) {
        hadoop::stop(&hadoop_state());
    }
}

fn host_port(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{url} is not http://ip:port: {e}"))
}

/// A ledger pass every second and a short Lease, so a restarted process takes over quickly.
fn options(ledger: &LedgerNamespace) -> Options {
    Options::new(&[NAMESPACE], ledger.name())
        .config("ledgerPeriodSeconds", serde_json::json!(1))
        .config("leaseDurationSeconds", serde_json::json!(6))
        .config("leaseRenewDeadlineSeconds", serde_json::json!(4))
        .replica_ids("faults")
        .pod_rate(600, 50)
}

/// Creates a bare pod of alice's (its own workload); returns its name.
async fn alice_pod(bed: &Bed, id: &TestId, suffix: &str) -> Result<String, Error> {
    let name = format!("{}-{suffix}", id.name());
    Api::<Pod>::namespaced(bed.alice.clone(), NAMESPACE)
        .create(&PostParams::default(), &objects::pod(id, &name, "alice")?)
        .await
        .step(format!("alice creates pod {name}"))?;
    Ok(name)
}

async fn ip_of(bed: &Bed, name: &str) -> Result<IpAddr, Error> {
    Ok(running(&bed.admin, NAMESPACE, name, POD_TIMEOUT).await?.1)
}

/// One request as the pod at `ip`. A 503 `index_stale` (the service's pod index is relisting
/// after a lost watch, not a Hadoop fault) is asked again, bounded.
async fn ask(launcher: &Launcher, ip: IpAddr) -> Result<Answer, Error> {
    until(
        "an answer not about the pod index",
        STEP_TIMEOUT,
        || async {
            let answer = launcher
                .request("POST", "/v1/credentials", Some(ip), None, false)
                .await
                .map_err(|e| Error::Check(format!("asking for the pod at {ip}: {e}")))?;
            Ok::<_, Error>(if answer.code() == "index_stale" {
                Poll::Pending(answer.text())
            } else {
                Poll::Ready(answer)
            })
        },
    )
    .await
}

fn message(answer: &Answer) -> String {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The refusal is a retryable 503 with the given words and nothing secret in it.
fn ensure_unavailable(answer: &Answer, words: &[&str]) -> Result<(), Error> {
    let text = answer.text();
    ensure(
        answer.status == 503 && answer.code() == "hadoop_unavailable",
        || format!("expected 503 hadoop_unavailable, got {text}"),
    )?;
    let said = message(answer);
    for w in words {
        ensure(said.contains(w), || {
            format!("the reason does not say {w:?}: {said}")
        })?;
    }
    ensure(
        !said.contains("token=") && !said.contains("urlString"),
        || format!("the reason shows token material: {said}"),
    )
}

fn denials(launcher: &Launcher, code: &str) -> usize {
    launcher
        .audit_lines()
        .iter()
        .filter(|v| {
            v["outcome"] == "denied"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.starts_with(&format!("{code}:")))
        })
        .count()
}

/// A running `init-fetcher fetch`, killed if the test ends before it does.
struct Fetcher(Option<Child>);

impl Drop for Fetcher {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `init-fetcher fetch` as the pod at `ip` (it connects from that address).
fn start_fetcher(launcher: &Launcher, ip: IpAddr, out: &Path) -> Fetcher {
    let child = Command::new(binary("init-fetcher"))
        .arg("fetch")
        .arg("--url")
        .arg(launcher.url())
        .arg("--ca-file")
        .arg(launcher.ca_file())
        .args(["--source-address", &ip.to_string()])
        .arg("--out")
        .arg(out)
        .args(["--deadline", FETCH_DEADLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start init-fetcher");
    Fetcher(Some(child))
}

async fn finish(mut fetcher: Fetcher) -> Output {
    let child = fetcher.0.take().expect("a fetcher not yet finished");
    wait_output(child, "init-fetcher", FETCH_TIMEOUT).await
}

/// Runs a blocking bed script off the async workers.
async fn blocking(f: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(f)
        .await
        .expect("bed script thread");
}

/// `creds-read` of the stock client: the file is valid; returns the sequence numbers in it.
fn read_credentials(hadoop: &HadoopBed, file: &Path) -> Result<Vec<i64>, Error> {
    let out = hadoop.client(file, &["creds-read", &file.display().to_string()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure(out.status.success() && text.contains("owner=alice"), || {
        format!(
            "the stock client does not read {} as alice's credentials:\n{}",
            file.display(),
            show(&out)
        )
    })?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("token\t"))
        .filter_map(|l| {
            l.split('\t')
                .find_map(|f| f.strip_prefix("sequenceNumber="))
                .and_then(|n| n.parse().ok())
        })
        .collect())
}

fn ls_works(hadoop: &HadoopBed, file: &Path, when: &str) -> Result<(), Error> {
    let ls = hadoop.client(file, &["ls", "/user/alice"]);
    ensure(ls.status.success(), || {
        format!("hadoop ls /user/alice {when}:\n{}", show(&ls))
    })
}

fn write(dir: &Path, name: &str, body: &Bytes) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write a credentials file");
    path
}

/// The ledger records of the pod `name` (one expected).
async fn ledger_records(
    bed: &Bed,
    ledger: &LedgerNamespace,
    name: &str,
) -> Result<Vec<serde_json::Value>, Error> {
    ledger
        .records(bed, &format!("Pod {NAMESPACE}/{name}"))
        .await
}

fn sequences(record: &serde_json::Value) -> Vec<i64> {
    record["tokens"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter_map(|t| t["sequence_number"].as_i64())
                .collect()
        })
        .unwrap_or_default()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Faults 1 and 2 on one service whose Kerberos goes through `kdc` with 30 s tickets.
async fn namenode_then_kdc_down(
    bed: &Bed,
    hadoop: &HadoopBed,
    id: &TestId,
    files: &Path,
    kdc: &Proxy,
) -> Result<(), Error> {
    let ledger = LedgerNamespace::create(bed, id).await?;
    let mut via_proxy = hadoop.0.clone();
    via_proxy.krb5_conf = hadoop::krb5_conf_via(
        &hadoop.0,
        &kdc.addr.to_string(),
        &format!("{}s", TICKET_LIFETIME.as_secs()),
        files,
    );
    let launcher = options(&ledger).prepare(&via_proxy);
    let result = async {
        let a = alice_pod(bed, id, "a").await?;
        let b = alice_pod(bed, id, "b").await?;
        let c = alice_pod(bed, id, "c").await?;
        let service = launcher.start(1).await;
        let (ip_a, ip_b, ip_c) = (
            ip_of(bed, &a).await?,
            ip_of(bed, &b).await?,
            ip_of(bed, &c).await?,
        );

        // 1. NameNode down when the pod asks.
        blocking(|| hadoop::stop_namenode(&hadoop_state(), 0)).await;
        let nn = host_port(&hadoop.namenode_http());
        ensure_unavailable(&ask(&launcher, ip_a).await?, &[&nn.to_string()])?;
        let out = files.join("a.token");
        let fetcher = start_fetcher(&launcher, ip_a, &out);
        // The fetcher is refused too (its own backoff), then the NameNode comes back.
        let before = 1;
        until(
            "the fetcher to be told 503 while the NameNode is down",
            STEP_TIMEOUT,
            || async {
                let n = denials(&launcher, "hadoop_unavailable");
                Ok::<_, Error>(if n > before {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{n} refusals"))
                })
            },
        )
        .await?;
        let granted = hadoop.count("getDelegationToken");
        blocking(|| hadoop::start_namenode(&hadoop_state(), 0)).await;
        let fetched = finish(fetcher).await;
        // The KDC goes away right after the service last used it (see fault 2).
        kdc.set(Mode::Refuse);
        let kdc_down_at = tokio::time::Instant::now();
        ensure(fetched.status.success() && out.exists(), || {
            format!(
                "init-fetcher after the NameNode came back:\n{}\nservice log:\n{}",
                show(&fetched),
                service.log_tail(30)
            )
        })?;
        let retries = String::from_utf8_lossy(&fetched.stderr)
            .matches("retrying")
            .count();
        ensure(retries >= 1, || {
            format!("the fetcher never retried:\n{}", show(&fetched))
        })?;

        // 2. KDC unreachable: the cached ticket still gets new tokens for another workload…
        let answer = ask(&launcher, ip_b).await?;
        ensure(answer.status == 200, || {
            format!(
                "tokens with the KDC down but the ticket valid: {}\nservice log:\n{}",
                answer.text(),
                service.log_tail(30)
            )
        })?;
        let file_b = write(files, "b.token", &answer.body);
        ensure(hadoop.count("getDelegationToken") >= granted + 2, || {
            "the NameNode did not issue a token for each of the two pods".into()
        })?;
        // …the NameNode's token from fault 1 and this one work with the stock client…
        read_credentials(hadoop, &out)?;
        ls_works(
            hadoop,
            &out,
            "with the file fetched after the NameNode came back",
        )?;
        ls_works(
            hadoop,
            &file_b,
            "with the file issued while the KDC was down",
        )?;
        // …until the ticket has certainly run out: every ticket was obtained before the KDC went
        // away and lives TICKET_LIFETIME at most (the client's clock decides, no skew).
        tokio::time::sleep_until(kdc_down_at + TICKET_LIFETIME + Duration::from_secs(2)).await;
        let refused = ask(&launcher, ip_c).await?;
        ensure_unavailable(&refused, &["KDC"])
            .map_err(|e| Error::Check(format!("{e}\nservice log:\n{}", service.log_tail(20))))?;
        // The KDC is back: the same process recovers, no restart.
        kdc.set(Mode::Forward);
        let body = until("tokens once the KDC is back", STEP_TIMEOUT, || async {
            let answer = ask(&launcher, ip_c).await?;
            Ok::<_, Error>(match answer.status {
                200 => Poll::Ready(answer.body),
                503 => Poll::Pending(answer.text()),
                _ => {
                    return Err(Error::Check(format!(
                        "after the KDC came back: {}",
                        answer.text()
                    )));
                }
            })
        })
        .await?;
        ls_works(
            hadoop,
            &write(files, "c.token", &body),
            "after the KDC came back",
        )?;
        drop(service);
        Ok::<_, Error>(())
    }
    .await;
    ledger.delete(bed).await;
    result
}

/// Fault 3: kills with a renewal and a first fetch in flight, on a service that reaches the
/// NameNode through `nn`.
async fn killed_mid_call(
    bed: &Bed,
    hadoop: &HadoopBed,
    id: &TestId,
    files: &Path,
    nn: &Proxy,
) -> Result<(), Error> {
    let ledger = LedgerNamespace::create(bed, id).await?;
    let mut via_proxy = hadoop.0.clone();
    via_proxy.nameservices[0].namenodes[0].http = format!("http://{}", nn.addr);
    let launcher = options(&ledger).prepare(&via_proxy);
    let mut service: Option<Service> = None;
    let result = async {
        let live = alice_pod(bed, id, "live").await?;
        let dead = alice_pod(bed, id, "dead").await?;
        let first = alice_pod(bed, id, "first").await?;
        service = Some(launcher.start(1).await);
        let (ip_live, ip_dead, ip_first) =
            (ip_of(bed, &live).await?, ip_of(bed, &dead).await?, ip_of(bed, &first).await?);
        let granted = hadoop.count("getDelegationToken");
        let issued_at = now_ms();
        let mut tokens = Vec::new();
        for (name, ip) in [(&live, ip_live), (&dead, ip_dead)] {
            let answer = ask(&launcher, ip).await?;
            ensure(answer.status == 200, || format!("tokens for {name}: {}", answer.text()))?;
            tokens.push(write(files, name, &answer.body));
        }

        // A renewal in flight: the NameNode renews, the answer never reaches the service.
        let renewed = hadoop.count("renewDelegationToken");
        nn.set(Mode::HoldResponses(Some("op=RENEWDELEGATIONTOKEN".into())));
        until("a renewal the NameNode carried out, its answer held", STEP_TIMEOUT, || async {
            let n = hadoop.count("renewDelegationToken");
            Ok::<_, Error>(if nn.holding() >= 1 && n > renewed {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} held, {} renewals", nn.holding(), n - renewed))
            })
        })
        .await?;
        if let Some(s) = service.take() {
            s.kill();
        }
        // While no service runs, one workload ends.
        Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
            .delete(&dead, &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() })
            .await
            .step("deleting the dead workload's pod")?;
        nn.set(Mode::Forward);
        service = Some(launcher.start(2).await);
        let record = until("the live workload renewed by the restarted service", STEP_TIMEOUT, || async {
            Ok::<_, Error>(match ledger_records(bed, &ledger, &live).await?.pop() {
                Some(r) if r["renewals"].as_u64() >= Some(1) => Poll::Ready(r),
                Some(r) => Poll::Pending(format!("renewals {}, last error {}", r["renewals"], r["last_error"])),
                None => Poll::Pending("no ledger Secret".into()),
            })
        })
        .await?;
        until("the dead workload's ledger Secret to go", STEP_TIMEOUT, || async {
            let left = ledger_records(bed, &ledger, &dead).await?;
            Ok::<_, Error>(if left.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("last error {}", left[0]["last_error"]))
            })
        })
        .await?;
        let cancelled = hadoop.client(&tokens[1], &["ls", "/user/alice"]);
        ensure(!cancelled.status.success() && show(&cancelled).contains("can't be found in cache"), || {
            format!("the dead workload's token still works:\n{}", show(&cancelled))
        })?;
        // Past the first window the live workload's file still works: it was renewed.
        let window_end = record["issued_at_ms"].as_u64().unwrap_or(issued_at) + RENEW_INTERVAL_MS;
        let now = now_ms();
        if now < window_end + 1_000 {
            tokio::time::sleep(Duration::from_millis(window_end + 1_000 - now)).await;
        }
        ls_works(hadoop, &tokens[0], "with the live workload's file past its first renew interval")?;
        let grants = hadoop.count("getDelegationToken") - granted;
        ensure(grants == 2, || format!("{grants} tokens issued for two workloads across the restart"))?;

        // A first fetch in flight: the NameNode issues, the answer never reaches the service.
        let granted = hadoop.count("getDelegationToken");
        nn.set(Mode::HoldResponses(Some("op=GETDELEGATIONTOKEN".into())));
        let out = files.join("first.token");
        let fetcher = start_fetcher(&launcher, ip_first, &out);
        until("a token the NameNode issued, its answer held", STEP_TIMEOUT, || async {
            let n = hadoop.count("getDelegationToken");
            Ok::<_, Error>(if nn.holding() >= 1 && n > granted {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} held, {} issued", nn.holding(), n - granted))
            })
        })
        .await?;
        if let Some(s) = service.take() {
            s.kill();
        }
        nn.set(Mode::Forward);
        service = Some(launcher.start(3).await);
        let fetched = finish(fetcher).await;
        ensure(fetched.status.success(), || {
            format!("init-fetcher across the kill:\n{}", show(&fetched))
        })?;
        let in_file = read_credentials(hadoop, &out)?;
        ls_works(hadoop, &out, "with the file fetched across the kill")?;
        let records = ledger_records(bed, &ledger, &first).await?;
        ensure(records.len() == 1 && sequences(&records[0]) == in_file, || {
            format!("the ledger holds {records:?}; the pod's file has sequence numbers {in_file:?}")
        })?;
        let grants = hadoop.count("getDelegationToken") - granted;
        ensure(grants == 2, || {
            format!("{grants} tokens issued: expected the one the killed process never saw and the one served")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    let tail = service.as_ref().map(|s| s.log_tail(40)).unwrap_or_default();
    drop(service);
    ledger.delete(bed).await;
    result.map_err(|e| Error::Check(format!("{e}\nservice log:\n{tail}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hadoop_faults_are_answered_503_retried_and_lose_no_token() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let hadoop = HadoopBed::up();
    let kdc = Proxy::start(hadoop.0.kdc.parse().expect("cluster.json kdc is ip:port"))
        .expect("a fault proxy in front of the KDC");
    let nn = Proxy::start(host_port(&hadoop.namenode_http()))
        .expect("a fault proxy in front of the NameNode");
    let files = tempfile::tempdir().expect("temp dir");
    let (id1, id2) = (TestId::new("fh"), TestId::new("fk"));
    let first = namenode_then_kdc_down(&bed, &hadoop, &id1, files.path(), &kdc).await;
    let second = match &first {
        Ok(()) => killed_mid_call(&bed, &hadoop, &id2, files.path(), &nn).await,
        Err(_) => Ok(()),
    };
    id1.cleanup(&bed.admin).await;
    id2.cleanup(&bed.admin).await;
    first.expect("NameNode and KDC down");
    second.expect("token-service killed mid-call");
}
