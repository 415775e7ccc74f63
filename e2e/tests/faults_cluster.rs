//! Faults on the Kubernetes and LDAP side, end to end: the real token-service binary against
//! the local control plane, slapd and the Kerberized HDFS (tokens are really issued), and real
//! iddecorator replicas behind a Service-like balancer.
//!
//! - LDAP down: requests fail closed with a 503 naming the directory (never a 403 "unknown
//!   user", never a token), also when slapd hangs; the same process recovers when it is back.
//!   Directory answers are cached (30 s) and connections pooled: a stopped slapd closes them,
//!   which empties the cache at once; a hung one is found by the first check the cache cannot
//!   answer, which empties it too.
//! - kube-apiserver restarted, and the token service's watch cut while pods change: no request
//!   is answered from a stale pod index. An address freed and handed to a new pod (kwok reuses
//!   the freed address of a node's podCIDR: see `ip_reuse_node`) maps to the new pod and its
//!   user, never the old one; the ledger cancels the tokens of the pods deleted meanwhile.
//! - iddecorator replicas restarted one after the other under steady admission load (server-side
//!   dry-run creates through the API server): every request is admitted and stamped.
//!
//! The tests stop and restart shared pieces of the bed, so they run one at a time (`SERIAL`).
//! Run on a private bed: `K2H_E2E_STATE_DIR=/tmp/k2h-me e2e/scripts/up.sh; source
//! /tmp/k2h-me/env; cargo test -p e2e --test faults_cluster`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e::balancer::Balancer;
use e2e::fixture::Fixture;
use e2e::hadoop::Cluster;
use e2e::ledger::LedgerNamespace;
use e2e::objects;
use e2e::pods::running;
use e2e::restart::{self, Component, Replica};
use e2e::token_service::{Answer, Launcher, Options, free_port};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, USER_ANNOTATION, ensure};
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::time::Instant;

/// Tests here take pieces of the bed away: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const RUNNING: Duration = Duration::from_secs(90);
/// How long the service may take to notice an outage or a recovery (watch retries back off to
/// 10 s; slapd and the API server restart in seconds).
const RECOVERY: Duration = Duration::from_secs(90);

async fn credentials(launcher: &Launcher, from: IpAddr) -> Result<Answer, Error> {
    launcher
        .request("POST", "/v1/credentials", Some(from), None, true)
        .await
        .map_err(|e| Error::Check(format!("POST /v1/credentials from {from}: {e}")))
}

/// Prints how far into the test a step is done (the figures in docs/reliability.md).
fn mark(start: Instant, step: &str) {
    eprintln!("[{:>5.1}s] {step}", start.elapsed().as_secs_f64());
}

fn user_of(answer: &Answer) -> String {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["user"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Polls requests from `from` until one satisfies `done`; every answer goes through `check`
/// first (e.g. "never a token for the old pod's user").
async fn until_answer(
    launcher: &Launcher,
    from: IpAddr,
    what: &str,
    check: impl Fn(&Answer) -> Result<(), Error>,
    done: impl Fn(&Answer) -> bool,
) -> Result<Answer, Error> {
    until(what, RECOVERY, || async {
        let answer = credentials(launcher, from).await?;
        check(&answer)?;
        Ok::<_, Error>(if done(&answer) {
            Poll::Ready(answer)
        } else {
            Poll::Pending(answer.text())
        })
    })
    .await
}

/// Polls as [`until_answer`] until a request from `from` is served, and fails unless it was
/// served to `user`.
async fn until_served(
    launcher: &Launcher,
    from: IpAddr,
    what: &str,
    check: impl Fn(&Answer) -> Result<(), Error>,
    user: &str,
) -> Result<(), Error> {
    let answer = until_answer(launcher, from, what, check, |a| a.status == 200).await?;
    ensure(user_of(&answer) == user, || answer.text())
}

/// A bare pod of `user` named `<test id>-<suffix>`, optionally pinned to `node`; returns it
/// running, with its address.
async fn run_pod(
    bed: &Bed,
    client: &kube::Client,
    id: &TestId,
    suffix: &str,
    user: &str,
    node: Option<&str>,
) -> Result<(Pod, IpAddr), Error> {
    let name = format!("{}-{suffix}", id.name());
    let mut pod = objects::pod(id, &name, user)?;
    if let (Some(node), Some(spec)) = (node, pod.spec.as_mut()) {
        spec.node_name = Some(node.to_owned());
    }
    Api::<Pod>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &pod)
        .await
        .step(format!("{user} creates pod {name}"))?;
    running(&bed.admin, NAMESPACE, &name, RUNNING).await
}

/// Deletes a pod at once and waits until it is gone from the API.
async fn delete_pod(bed: &Bed, name: &str) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE);
    api.delete(
        name,
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..DeleteParams::default()
        },
    )
    .await
    .step(format!("deleting pod {name}"))?;
    until(&format!("pod {name} to be gone"), RUNNING, || async {
        Ok::<_, Error>(match api.get_opt(name).await.step("reading the pod")? {
            None => Poll::Ready(()),
            Some(_) => Poll::Pending("still there".into()),
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// LDAP down

/// Brings slapd back whatever happens to the test (continued if paused, started if stopped).
struct LdapGuard {
    paused: Option<u32>,
    stopped: bool,
}

impl Drop for LdapGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.paused.take() {
            let _ = std::process::Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        if self.stopped {
            restart::ldap_start();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldap_down_fails_closed_with_the_reason_and_recovers_without_restart() {
    let _serial = SERIAL.lock().await;
    let fx = Fixture::new("flt-ldap").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let launcher = Options::new(&[NAMESPACE], ledger.name())
        .pod_rate(600, 50)
        .config("ldap", {
            let mut ldap = e2e::ldap::service_config(&e2e::ldap::env());
            ldap["timeoutSeconds"] = serde_json::json!(3);
            ldap
        })
        .prepare(&cluster);
    let mut service = launcher.start(0).await;
    let mut guard = LdapGuard {
        paused: None,
        stopped: false,
    };
    let result = async {
        let t0 = Instant::now();
        let (_, early) = run_pod(bed, &bed.alice, id, "early", "alice", None).await?;
        let (_, late) = run_pod(bed, &bed.alice, id, "late", "alice", None).await?;
        let first = credentials(&launcher, early).await?;
        ensure(first.status == 200 && user_of(&first) == "alice", || {
            format!("before the outage: {}", first.text())
        })?;

        mark(t0, "pods running, first tokens");
        restart::ldap_stop();
        guard.stopped = true;
        let grants = cluster.audit_size();
        // A cached workload and a new one: neither gets anything while alice cannot be checked.
        for (what, ip) in [("cached workload", early), ("new workload", late)] {
            let a = credentials(&launcher, ip).await?;
            ensure(
                a.status == 503
                    && a.code() == "directory_unavailable"
                    && a.text().contains("unreachable"),
                || format!("{what} with slapd stopped: {}", a.text()),
            )?;
        }
        // Nothing reached the NameNode while alice could not be checked.
        let issued = cluster
            .audit_since(grants)
            .lines()
            .filter(|l| l.contains("cmd=getDelegationToken") && l.contains("ugi=alice "))
            .count();
        ensure(issued == 0, || {
            format!("{issued} delegation tokens issued for alice while slapd was down")
        })?;
        mark(t0, "refused while slapd is stopped");
        restart::ldap_start();
        guard.stopped = false;
        until_served(
            &launcher,
            late,
            "the new workload's tokens once slapd is back",
            |_| Ok(()),
            "alice",
        )
        .await?;

        mark(t0, "served after slapd is back");
        // A hung directory (accepts connections, never answers): the timeout, not a hang.
        // alice's answer is cached now and a hung server closes no connection, so nothing has
        // noticed the outage yet (the window the cache documents): bob's first check, which
        // the cache cannot answer, finds it, and that failure empties the cache, so alice is
        // refused too.
        let (_, bobs) = run_pod(bed, &bed.bob, id, "hung", "bob", None).await?;
        let pid = restart::ldap_pid();
        restart::signal(pid, "STOP");
        guard.paused = Some(pid);
        for (what, ip) in [("bob, not cached", bobs), ("alice, cached before", early)] {
            let hung = credentials(&launcher, ip).await?;
            ensure(
                hung.status == 503
                    && hung.code() == "directory_unavailable"
                    && hung.text().contains("did not answer within 3s"),
                || format!("{what}, with slapd paused: {}", hung.text()),
            )?;
        }
        restart::signal(pid, "CONT");
        guard.paused = None;
        until_served(
            &launcher,
            early,
            "tokens once slapd answers again",
            |_| Ok(()),
            "alice",
        )
        .await?;

        mark(t0, "refused while slapd hangs, served after");
        let denied = launcher
            .audit_lines()
            .iter()
            .filter(|l| {
                l["outcome"] == "denied"
                    && l["reason"]
                        .as_str()
                        .is_some_and(|r| r.starts_with("directory_unavailable"))
            })
            .count();
        ensure(denied >= 3, || {
            format!("{denied} audited directory refusals")
        })?;
        ensure(service.is_running(), || {
            "the token service restarted".into()
        })?;
        eprintln!(
            "ldap: outage answered 503 directory_unavailable ({denied} audited), hung slapd \
             answered after the 3s timeout, recovered without restart"
        );
        Ok::<_, Error>(())
    }
    .await;
    drop(guard);
    let log = service.log_tail(30);
    drop(service);
    fx.teardown(()).await;
    if let Err(e) = result {
        panic!("{e}\ntoken-service log:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// kube-apiserver restarted, watch cut

/// A kwok node of the test's own whose podCIDR no other node shares, tainted so the scheduler
/// puts nothing else there. kwok v0.8.0 keeps one address pool per podCIDR, hands out a freed
/// address before a new one and frees a pod's address when it sees the pod deleted: with one
/// pod at a time on this node, the next pod gets exactly the address of the one before.
async fn ip_reuse_node(bed: &Bed, id: &TestId) -> Result<String, Error> {
    let name = format!("{}-node", id.name());
    let cidr = format!("127.100.{}.0/24", 128 + rand::random::<u8>() % 120);
    let node: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                objects::TEST_LABEL: id.name(),
            },
        },
        "spec": {
            "podCIDR": cidr,
            "podCIDRs": [cidr],
            "taints": [{"key": objects::TEST_LABEL, "value": id.name(), "effect": "NoSchedule"}],
        },
    }))
    .map_err(|source| Error::Manifest {
        kind: "Node",
        source,
    })?;
    let nodes = Api::<Node>::all(bed.admin.clone());
    nodes
        .create(&PostParams::default(), &node)
        .await
        .step("creating the IP-reuse node")?;
    until(&format!("node {name} to be Ready"), RUNNING, || async {
        let n = nodes.get(&name).await.step("reading the node")?;
        let ready = n
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        Ok::<_, Error>(if ready {
            Poll::Ready(())
        } else {
            Poll::Pending("not Ready".into())
        })
    })
    .await?;
    Ok(name)
}

/// Ledger Secrets of this test's pods (bare pods are their own workloads).
async fn ledger_workloads(
    bed: &Bed,
    ledger: &LedgerNamespace,
    id: &TestId,
) -> Result<Vec<String>, Error> {
    let secrets: Api<Secret> = Api::namespaced(bed.admin.clone(), ledger.name());
    let list = secrets
        .list(&ListParams::default())
        .await
        .step("listing the ledger Secrets")?;
    let prefix = format!("Pod {NAMESPACE}/{}", id.name());
    let mut names: Vec<String> = list
        .items
        .iter()
        .filter_map(|s| {
            s.metadata
                .annotations
                .as_ref()?
                .get("kube2hadoop.io/workload")
        })
        .filter(|w| w.starts_with(&prefix))
        .cloned()
        .collect();
    names.sort();
    Ok(names)
}

/// Refuses the test at once if an answer hands the address to `stale_user`.
fn never_to(stale_user: &'static str) -> impl Fn(&Answer) -> Result<(), Error> {
    move |a: &Answer| {
        ensure(!(a.status == 200 && user_of(a) == stale_user), || {
            format!(
                "answered from a stale index: tokens for {stale_user}, the old holder of the \
                 address: {}",
                a.text()
            )
        })
    }
}

struct ApiserverGuard(bool);

impl Drop for ApiserverGuard {
    fn drop(&mut self) {
        if self.0 {
            restart::start(Component::KubeApiserver);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apiserver_restart_and_a_cut_watch_never_answer_from_a_stale_index() {
    let _serial = SERIAL.lock().await;
    let fx = Fixture::new("flt-api").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let cluster = Cluster::shared();
    let launcher = Options::new(&[NAMESPACE], ledger.name())
        .config("ledgerPeriodSeconds", serde_json::json!(1))
        .config("leaseDurationSeconds", serde_json::json!(6))
        .config("leaseRenewDeadlineSeconds", serde_json::json!(4))
        .replica_ids("faults")
        .pod_rate(6000, 500)
        .prepare(&cluster);
    // The service reaches the API server through a balancer the test can cut.
    let apiserver: SocketAddr = restart::bed_env("K2H_E2E_APISERVER")
        .trim_start_matches("https://")
        .parse()
        .expect("K2H_E2E_APISERVER is https://ip:port");
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let path = Balancer::start(any, &[apiserver], None)
        .await
        .expect("a balancer in front of the API server");
    let dir = tempfile::tempdir().expect("temp dir");
    let kubeconfig = restart::kubeconfig_via(dir.path(), path.addr);
    let mut service = launcher.spawn_via(0, &kubeconfig);
    let mut apiserver_down = ApiserverGuard(false);
    let result = async {
        until("the token service to be ready", RECOVERY, || async {
            let ready = launcher.request("GET", "/readyz", None, None, false).await;
            Ok::<_, Error>(match ready {
                Ok(a) if a.status == 200 => Poll::Ready(()),
                Ok(a) => Poll::Pending(a.text()),
                Err(e) => Poll::Pending(e),
            })
        })
        .await?;
        let t0 = Instant::now();
        let node = ip_reuse_node(bed, id).await?;
        mark(t0, "service ready, node ready");
        let pods = |suffix: &str| format!("{}-{suffix}", id.name());

        // 1. alice's pod holds address X.
        let (_, x) = run_pod(bed, &bed.alice, id, "one", "alice", Some(&node)).await?;
        let a = credentials(&launcher, x).await?;
        ensure(a.status == 200 && user_of(&a) == "alice", || a.text())?;

        mark(t0, "1. alice served at X");
        // 2. The API server restarts: the index says it may be stale, then recovers.
        restart::stop(Component::KubeApiserver);
        apiserver_down.0 = true;
        let during = until_answer(
            &launcher,
            x,
            "a refusal while the API server is down",
            |_| Ok(()),
            |a| a.status == 503,
        )
        .await?;
        ensure(during.code() == "index_stale", || {
            format!("while the API server is down: {}", during.text())
        })?;
        mark(t0, "2. refused while the API server is down");
        restart::start(Component::KubeApiserver);
        apiserver_down.0 = false;
        mark(t0, "2. API server started");
        until_answer(
            &launcher,
            x,
            "tokens again after the API server restart",
            |_| Ok(()),
            |a| a.status == 200 && user_of(a) == "alice",
        )
        .await?;

        mark(t0, "2. served again");
        // kwok frees an address only when its own watch sees the pod deleted: a pod it brings
        // to Running shows that watch is back after the restart.
        run_pod(bed, &bed.alice, id, "canary", "alice", None).await?;
        delete_pod(bed, &pods("canary")).await?;
        mark(t0, "2. kwok follows the API server again");
        // 3. alice's pod goes, bob's pod gets X: X now means bob.
        delete_pod(bed, &pods("one")).await?;
        let (bob_pod, x2) = run_pod(bed, &bed.bob, id, "two", "bob", Some(&node)).await?;
        ensure(x2 == x, || {
            format!("kwok gave the new pod {x2}, not the freed {x}: see ip_reuse_node")
        })?;
        until_served(
            &launcher,
            x,
            "bob's tokens at the reused address",
            never_to("alice"),
            "bob",
        )
        .await?;

        mark(t0, "3. bob served at X");
        // 4. The service loses the API server (watch cut); meanwhile bob's pod is deleted and
        //    alice's new pod gets X. Until the service has relisted, X is nobody's.
        path.cut();
        until_answer(
            &launcher,
            x,
            "the cut watch to be noticed",
            never_to("alice"),
            |a| a.code() == "index_stale",
        )
        .await?;
        delete_pod(bed, &pods("two")).await?;
        let (alice_pod, x3) = run_pod(bed, &bed.alice, id, "three", "alice", Some(&node)).await?;
        ensure(x3 == x, || format!("kwok gave the third pod {x3}, not {x}"))?;
        for _ in 0..5 {
            let a = credentials(&launcher, x).await?;
            ensure(a.status == 503 && a.code() == "index_stale", || {
                format!(
                    "bob's pod was deleted during the cut, X belongs to alice's new pod, and the \
                     service cannot know yet: {}",
                    a.text()
                )
            })?;
        }
        mark(t0, "4. stale index refused after the change during the cut");
        path.restore();
        until_served(
            &launcher,
            x,
            "alice's tokens after the watch is back",
            never_to("bob"),
            "alice",
        )
        .await?;
        let uid = alice_pod.metadata.uid.clone().unwrap_or_default();
        let last = launcher
            .audit_lines()
            .into_iter()
            .rev()
            // Only answers to a pod name one; the ledger's own lines (cancelled, renewed…) may
            // land after it, for the pods deleted during the cut.
            .find(|l| l["outcome"] == "issued" || l["outcome"] == "reused")
            .unwrap_or_default();
        ensure(last["pod_uid"] == uid.as_str(), || {
            format!(
                "the last issue names pod uid {}, not {uid}",
                last["pod_uid"]
            )
        })?;

        mark(t0, "4. alice served at X after the restore");
        // 5. The ledger recovered too: the two deleted pods' tokens are cancelled, the live
        //    one's kept.
        let live = format!("Pod {NAMESPACE}/{}", pods("three"));
        until(
            "the ledger to cancel the deleted pods' tokens",
            RECOVERY,
            || async {
                let w = ledger_workloads(bed, ledger, id).await?;
                Ok::<_, Error>(if w == [live.clone()] {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("ledger workloads {w:?}"))
                })
            },
        )
        .await?;
        ensure(service.is_running(), || {
            "the token service restarted".into()
        })?;
        mark(t0, "5. ledger cancelled the deleted pods' tokens");
        let _ = bob_pod;
        eprintln!(
            "apiserver: address {x} went alice -> bob -> alice across a restart and a cut watch; \
             stale index refused (index_stale), ledger cancelled the deleted pods' tokens; \
             balancer {:?}",
            path.counts()
        );
        Ok::<_, Error>(())
    }
    .await;
    drop(apiserver_down);
    path.restore();
    let log = service.log_tail(40);
    drop(service);
    fx.teardown(()).await;
    let _ = Api::<Node>::all(bed.admin.clone())
        .delete(&format!("{}-node", id.name()), &DeleteParams::default())
        .await;
    if let Err(e) = result {
        panic!("{e}\ntoken-service log:\n{log}");
    }
}

// ---------------------------------------------------------------------------------------------
// iddecorator replicas restarted under load

/// Concurrent admission clients and how long they run.
const CLIENTS: usize = 4;
const LOAD: Duration = Duration::from_secs(24);
/// What a preStop `sleep` gives the endpoints to drop a terminating pod before SIGTERM.
const PRE_STOP: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Tally {
    admitted: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn error(&self, e: String) {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }
}

/// Server-side dry-run creates as alice, claiming to be mallory, until `stop`: every one must
/// be admitted and stamped alice.
async fn admission_load(
    client: kube::Client,
    id: Arc<TestId>,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) {
    let pods = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client, NAMESPACE);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let stamped = if n.is_multiple_of(5) {
            match objects::deployment(&id, "mallory") {
                Ok(d) => deployments.create(&dry, &d).await.map(|d| {
                    objects::user_of(&d.metadata)
                        .map(str::to_owned)
                        .unwrap_or_default()
                }),
                Err(e) => {
                    tally.error(e.to_string());
                    continue;
                }
            }
        } else {
            match objects::pod(&id, &format!("{}-dry", id.name()), "mallory") {
                Ok(p) => pods.create(&dry, &p).await.map(|p| {
                    objects::user_of(&p.metadata)
                        .map(str::to_owned)
                        .unwrap_or_default()
                }),
                Err(e) => {
                    tally.error(e.to_string());
                    continue;
                }
            }
        };
        match stamped {
            Ok(user) if user == "alice" => {
                tally.admitted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(user) => tally.error(format!(
                "admitted with {USER_ANNOTATION}={user:?}, not alice"
            )),
            Err(e) => tally.error(e.to_string()),
        }
    }
}

/// TLS for probing the replicas' `/readyz` with the bed's CA.
fn probe_tls() -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ca = restart::bed_env("K2H_E2E_CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&ca).expect("the bed's CA file") {
        roots
            .add(cert.expect("a PEM certificate"))
            .expect("trust the bed's CA");
    }
    e2e::token_service::client_tls(roots)
}

async fn until_in_rotation(
    balancer: &Balancer,
    i: usize,
    replica: &mut Option<Replica>,
) -> Result<(), Error> {
    until(&format!("replica {i} to be ready"), RUNNING, || {
        let alive = replica
            .as_mut()
            .map_or(Ok(()), Replica::alive)
            .map_err(Error::Check);
        async move {
            alive?;
            Ok::<_, Error>(if balancer.in_rotation(i) {
                Poll::Ready(())
            } else {
                Poll::Pending("readyz not answered yet".into())
            })
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iddecorator_replicas_restarted_under_load_deny_nothing() {
    let _serial = SERIAL.lock().await;
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let id = Arc::new(TestId::new("flt-dec"));
    let binary = e2e::token_service::binary("iddecorator");
    let dir = tempfile::tempdir().expect("temp dir");
    let service_port: u16 = restart::bed_env("K2H_E2E_IDDECORATOR_PORT")
        .parse()
        .expect("K2H_E2E_IDDECORATOR_PORT is a port");
    // The webhook registrations call the bed's iddecorator port: the balancer takes it over.
    bed.iddecorator(e2e::bed::IddecoratorAction::Stop)
        .await
        .expect("stop the bed's iddecorator");
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
        .collect();
    let log = |i: usize| dir.path().join(format!("replica-{i}.log"));
    let mut replicas: Vec<Option<Replica>> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| Some(Replica::spawn(&binary, *a, &log(i))))
        .collect();
    let balancer = Balancer::start(
        SocketAddr::from(([127, 0, 0, 1], service_port)),
        &addrs,
        Some(probe_tls()),
    )
    .await
    .expect("the balancer on the webhook's port");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let result = async {
        for (i, replica) in replicas.iter_mut().enumerate() {
            until_in_rotation(&balancer, i, replica).await?;
        }
        let load: Vec<_> = (0..CLIENTS)
            .map(|_| {
                tokio::spawn(admission_load(
                    bed.alice.clone(),
                    Arc::clone(&id),
                    Arc::clone(&stop),
                    Arc::clone(&tally),
                ))
            })
            .collect();
        let started = Instant::now();
        let mut restarts = 0;
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Rolling restarts, as `kubectl rollout restart` or node drains do: one replica at a
        // time; the other serves meanwhile.
        while started.elapsed() + Duration::from_secs(8) < LOAD {
            for i in 0..2 {
                // The pod is deleted: EndpointSlice says terminating, preStop sleeps, SIGTERM.
                balancer.terminating(i);
                tokio::time::sleep(PRE_STOP).await;
                let old = replicas[i].take().expect("replica running");
                let status = old.terminate().await;
                ensure(status.success(), || {
                    format!("replica {i} exited with {status} after SIGTERM")
                })?;
                replicas[i] = Some(Replica::spawn(&binary, addrs[i], &log(i)));
                balancer.replaced(i);
                until_in_rotation(&balancer, i, &mut replicas[i]).await?;
                restarts += 1;
            }
        }
        while started.elapsed() < LOAD {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        stop.store(true, Ordering::SeqCst);
        for task in load {
            task.await
                .map_err(|e| Error::Check(format!("a load client died: {e}")))?;
        }
        let admitted = tally.admitted.load(Ordering::SeqCst);
        let errors = tally
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        // Each SIGTERM logs how many connections it drained (GOAWAY, in-flight requests finish).
        let open: Vec<u64> = (0..2)
            .flat_map(|i| {
                std::fs::read_to_string(log(i))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains("draining open connections"))
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter_map(|v| v["open"].as_u64())
                    .collect::<Vec<_>>()
            })
            .collect();
        eprintln!(
            "iddecorator: {admitted} admissions in {}s by {CLIENTS} clients, {restarts} replica \
             restarts, {} errors; balancer {:?}, connections per replica {:?}; connections \
             drained per SIGTERM {open:?}",
            LOAD.as_secs(),
            errors.len(),
            balancer.counts(),
            balancer.per_backend(),
        );
        ensure(open.len() == restarts, || {
            format!("{} drain log lines for {restarts} restarts", open.len())
        })?;
        ensure(errors.is_empty(), || {
            format!(
                "{} of {} admissions failed during the restarts, e.g. {:?}",
                errors.len(),
                errors.len() as u64 + admitted,
                &errors[..errors.len().min(5)]
            )
        })?;
        ensure(restarts >= 2 && admitted > 0, || {
            format!("{restarts} restarts, {admitted} admissions: the test did not do its job")
        })?;
        ensure(balancer.counts().dropped == 0, || {
            format!("the balancer dropped connections: {:?}", balancer.counts())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    stop.store(true, Ordering::SeqCst);
    drop(balancer);
    drop(replicas);
    let restored = bed.iddecorator(e2e::bed::IddecoratorAction::Start).await;
    id.cleanup(&bed.admin).await;
    result.expect("iddecorator restarts under load");
    restored.expect("the bed's iddecorator back");
}
