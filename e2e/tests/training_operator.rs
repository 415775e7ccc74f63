//! The real Kubeflow training operator: `e2e/scripts/training-operator.sh`
//! runs `github.com/kubeflow/training-operator` at the version pinned in
//! `e2e/cluster/versions.env`, with its own CRDs, ClusterRole and validating webhook, as the
//! service account `kubeflow/training-operator`. The pods below are created by that process, not
//! by the test.
//!
//! - alice's TFJob: the operator's pods carry alice (a forged `mallory` in a template is
//!   overwritten), token-service gives each pod alice's tokens, and deleting the TFJob takes the
//!   pods and the tokens away.
//! - bob's MXJob (v1.8.1 serves TFJob, PyTorchJob, MXJob, XGBoostJob, MPIJob and PaddleJob; no
//!   JAXJob) with alice's name on the job and in its templates: the operator's pods must carry
//!   bob, and token-service never hands them alice's tokens.
//!
//! Needs the local bed (`make e2e-up`), the Kerberized HDFS and slapd (started when not running,
//! as in `tests/token_service.rs`). Pods are identified by source address (kwok gives them
//! loopback IPs this process can bind).

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use e2e::fixture::Fixture;
use e2e::hadoop::Cluster;
use e2e::ledger::LedgerNamespace;
use e2e::objects::{IMAGE, TEST_LABEL, USER_ANNOTATION, owned, uid_of, user_of, users};
use e2e::token_service::{Launcher, Options, Service};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams,
};
use serde_json::{Value, json};

const INJECT: &str = "kube2hadoop.io/inject";
/// The operator reacts within seconds; generous for a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(120);
/// The ledger pass runs every second here; the garbage collector and the operator add a few.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(90);

fn job_resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("kubeflow.org", "v1", kind), plural)
}

/// A replica spec whose template asks for injection and claims `claimed_user`, with the
/// container name the operator requires for the kind (`tensorflow`, `mxnet`).
fn replica(id: &TestId, claimed_user: &str, container: Value, replicas: u32) -> Value {
    json!({
        "replicas": replicas,
        "restartPolicy": "Never",
        "template": {
            "metadata": {
                "labels": {TEST_LABEL: id.name()},
                "annotations": {USER_ANNOTATION: claimed_user, INJECT: "true"},
            },
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]},
        },
    })
}

fn job(kind: &str, id: &TestId, claimed_user: &str, spec: Value) -> Result<DynamicObject, Error> {
    serde_json::from_value(json!({
        "apiVersion": "kubeflow.org/v1",
        "kind": kind,
        "metadata": {
            "name": id.name(),
            "namespace": NAMESPACE,
            "labels": {TEST_LABEL: id.name()},
            "annotations": {USER_ANNOTATION: claimed_user},
        },
        "spec": spec,
    }))
    .map_err(|source| Error::Manifest {
        kind: "training job",
        source,
    })
}

/// Two workers whose template claims `template_user`.
fn tfjob(id: &TestId, template_user: &str) -> Result<DynamicObject, Error> {
    let container = json!({"name": "tensorflow", "image": IMAGE});
    let spec = json!({"tfReplicaSpecs": {"Worker": replica(id, template_user, container, 2)}});
    job("TFJob", id, template_user, spec)
}

/// Scheduler, server and worker, every template claiming `claimed_user`.
fn mxjob(id: &TestId, claimed_user: &str) -> Result<DynamicObject, Error> {
    let container = json!({
        "name": "mxnet",
        "image": IMAGE,
        "ports": [{"name": "mxjob-port", "containerPort": 9091}],
    });
    let specs: serde_json::Map<String, Value> = ["Scheduler", "Server", "Worker"]
        .into_iter()
        .map(|t| {
            (
                t.to_owned(),
                replica(id, claimed_user, container.clone(), 1),
            )
        })
        .collect();
    job(
        "MXJob",
        id,
        claimed_user,
        json!({"jobMode": "MXTrain", "mxReplicaSpecs": specs}),
    )
}

/// The user annotation of every replica template of a stored job.
fn template_users(job: &DynamicObject, specs_field: &str) -> Vec<(String, Option<String>)> {
    job.data["spec"][specs_field]
        .as_object()
        .map(|specs| {
            specs
                .iter()
                .map(|(rtype, spec)| {
                    let user = spec["template"]["metadata"]["annotations"][USER_ANNOTATION]
                        .as_str()
                        .map(str::to_owned);
                    (rtype.clone(), user)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `n` pods whose controller is the job `owner_uid` run with an address.
async fn operator_pods(
    bed: &Bed,
    id: &TestId,
    owner_uid: &str,
    n: usize,
) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let lp = ListParams::default().labels(&id.selector());
    until(
        &format!("{n} running pods of the operator for {}", id.name()),
        SETTLE,
        || {
            let (api, lp) = (api.clone(), lp.clone());
            async move {
                let pods = api.list(&lp).await.step("listing the job's pods")?.items;
                let running: Vec<Pod> = owned(&pods, owner_uid)
                    .into_iter()
                    .filter(|p| controller_uid(p) == Some(owner_uid) && made_by_operator(p))
                    .filter(|p| pod_ip(p).is_some() && phase(p) == Some("Running"))
                    .collect();
                Ok::<_, Error>(if running.len() >= n {
                    Poll::Ready(running)
                } else {
                    Poll::Pending(format!(
                        "{} of {} pods running: {}",
                        running.len(),
                        pods.len(),
                        users(&pods)
                    ))
                })
            }
        },
    )
    .await
}

/// The labels the operator puts on the pods it creates (v1 API's `OperatorNameLabel`).
fn made_by_operator(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key("training.kubeflow.org/operator-name"))
}

/// Whether iddecorator injected the fetcher (the template asked for it).
fn injected(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.name == "kube2hadoop-fetcher"))
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn pod_ip(pod: &Pod) -> Option<IpAddr> {
    pod.status.as_ref()?.pod_ip.as_deref()?.parse().ok()
}

fn name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

/// A token-service for team-a with a ledger pass every second, and how to reach it.
struct TokenService {
    launcher: Launcher,
    process: Service,
}

impl TokenService {
    async fn start(ledger: &LedgerNamespace) -> TokenService {
        let launcher = Options::new(&[NAMESPACE], ledger.name())
            .config("ledgerPeriodSeconds", json!(1))
            .pod_rate(600, 50)
            .prepare(&Cluster::shared());
        let process = launcher.start(0).await;
        TokenService { launcher, process }
    }

    /// What the service answers a connection from `pod`'s address, as JSON.
    async fn credentials(&self, pod: &Pod) -> Result<Issued, Error> {
        let ip = pod_ip(pod).ok_or_else(|| Error::Check(format!("pod {} has no IP", name(pod))))?;
        let answer = self
            .launcher
            .request("POST", "/v1/credentials", Some(ip), None, true)
            .await
            .map_err(|e| Error::Check(format!("POST /v1/credentials from {ip}: {e}")))?;
        if answer.status != 200 {
            return Ok(Issued::Refused(answer.status, answer.code(), answer.text()));
        }
        let v: Value = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Check(format!("the answer is not JSON: {e}: {}", answer.text())))?;
        let file = base64::engine::general_purpose::STANDARD
            .decode(v["file"].as_str().unwrap_or_default())
            .map_err(|e| Error::Check(format!("the answer's file is not base64: {e}")))?;
        Ok(Issued::Tokens {
            user: v["user"].as_str().unwrap_or_default().to_owned(),
            owners: token_owners(&file)?,
        })
    }

    fn audit(&self) -> Vec<Value> {
        self.launcher.audit_lines()
    }

    fn log(&self) -> String {
        self.process.log_tail(30)
    }
}

enum Issued {
    /// The service's `user` and the owner of every token in the file.
    Tokens { user: String, owners: Vec<String> },
    /// Status, reason code, whole answer.
    Refused(u16, String, String),
}

/// The owner in each token identifier of a credentials file, decoded as Hadoop would.
fn token_owners(file: &[u8]) -> Result<Vec<String>, Error> {
    let creds = hadoop_token::Credentials::decode(file).map_err(|e| {
        Error::Check(format!(
            "the service served no Hadoop credentials file: {e}"
        ))
    })?;
    Ok(creds
        .tokens
        .iter()
        .filter_map(|(_, t)| {
            hadoop_token::identifier::decode(&t.kind, &t.identifier)
                .ok()
                .flatten()
        })
        .map(|id| id.owner)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_tfjob_pods_carry_alice_get_her_tokens_and_lose_them_with_the_job() {
    let fx = Fixture::new("to-tf").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = TokenService::start(ledger).await;
    let result = async {
        let tfjobs = Api::<DynamicObject>::namespaced_with(
            bed.alice.clone(),
            NAMESPACE,
            &job_resource("TFJob", "tfjobs"),
        );
        let created = tfjobs
            .create(&PostParams::default(), &tfjob(id, "mallory")?)
            .await
            .step("alice creates a TFJob whose template claims mallory")?;
        let templates = template_users(&created, "tfReplicaSpecs");
        ensure(
            user_of(&created.metadata) == Some("alice")
                && templates.iter().all(|(_, u)| u.as_deref() == Some("alice")),
            || format!("the stored TFJob should carry alice everywhere: job {:?}, templates {templates:?}", user_of(&created.metadata)),
        )?;
        let uid = uid_of(&created);
        let pods = operator_pods(bed, id, &uid, 2).await?;
        ensure(pods.iter().all(|p| user_of(&p.metadata) == Some("alice")), || {
            format!("the operator's pods should carry alice: {}", users(&pods))
        })?;
        let uninjected: Vec<&str> = pods.iter().filter(|p| !injected(p)).map(name).collect();
        ensure(uninjected.is_empty(), || {
            format!("iddecorator should inject the fetcher into the operator's pods: {uninjected:?}")
        })?;
        for pod in &pods {
            match service.credentials(pod).await? {
                Issued::Tokens { user, owners } => ensure(
                    user == "alice" && !owners.is_empty() && owners.iter().all(|o| o == "alice"),
                    || format!("pod {}: issued for {user:?}, token owners {owners:?}", name(pod)),
                )?,
                Issued::Refused(_, _, text) => {
                    return Err(Error::Check(format!(
                        "alice's TFJob pod {} was refused: {text}\n{}",
                        name(pod),
                        service.log()
                    )));
                }
            }
        }
        let workload = format!("TFJob {NAMESPACE}/{}", id.name());
        ensure(!ledger.records(bed, &workload).await?.is_empty(), || {
            format!("no ledger record for {workload}")
        })?;

        // alice deletes her TFJob: its pods go (garbage collector) and so do its tokens.
        tfjobs
            .delete(id.name(), &DeleteParams::background())
            .await
            .step("alice deletes the TFJob")?;
        let pod_api: Api<Pod> = Api::namespaced(bed.admin.clone(), NAMESPACE);
        until("the TFJob's pods and ledger record to go", CANCEL_TIMEOUT, || async {
            let left = owned(&pod_api.list(&ListParams::default()).await.step("listing pods")?.items, &uid);
            let records = ledger.records(bed, &workload).await?;
            Ok::<_, Error>(if left.is_empty() && records.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} pods, {} ledger records", left.len(), records.len()))
            })
        })
        .await?;
        let cancelled = service
            .audit()
            .iter()
            .any(|l| l["outcome"] == "cancelled" && l["workload"].as_str() == Some(workload.as_str()));
        ensure(cancelled, || {
            format!("no `cancelled` audit line for {workload}: {:?}", service.audit())
        })
    }
    .await;
    let log = service.log();
    fx.teardown(service.process).await;
    if let Err(e) = result {
        panic!("alice's TFJob through the training operator: {e}\ntoken-service log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bob_mxjob_naming_alice_gets_no_alice_token() {
    let fx = Fixture::new("to-mx").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = TokenService::start(ledger).await;
    let mxjobs = |client: &kube::Client| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            NAMESPACE,
            &job_resource("MXJob", "mxjobs"),
        )
    };
    let result = async {
        let created = mxjobs(&bed.bob)
            .create(&PostParams::default(), &mxjob(id, "alice")?)
            .await
            .step("bob creates an MXJob naming alice on the job and in its templates")?;
        let uid = uid_of(&created);
        let pods = operator_pods(bed, id, &uid, 3).await?;
        eprintln!(
            "bob's MXJob: stored job {:?}, templates {:?}, the operator's pods {}",
            user_of(&created.metadata),
            template_users(&created, "mxReplicaSpecs"),
            users(&pods)
        );
        // Every pod asks; the answers are checked together so a failure shows all of them.
        let mut answers = Vec::new();
        let mut alice_tokens = Vec::new();
        for pod in &pods {
            match service.credentials(pod).await? {
                Issued::Tokens { user, owners } => {
                    if user == "alice" || owners.iter().any(|o| o == "alice") {
                        alice_tokens.push(name(pod).to_owned());
                    }
                    answers.push(format!("{}: tokens for {user} (owners {owners:?})", name(pod)));
                }
                Issued::Refused(status, code, _) => {
                    answers.push(format!("{}: refused {status} {code}", name(pod)));
                }
            }
        }
        eprintln!("token-service answered bob's MXJob pods: {answers:?}");
        let audited: Vec<Value> = service
            .audit()
            .into_iter()
            .filter(|l| l["hadoop_user"] == "alice" && l["outcome"] != "denied")
            .collect();
        ensure(alice_tokens.is_empty() && audited.is_empty(), || {
            format!(
                "bob's MXJob pods {alice_tokens:?} got alice's tokens; pods {}; answers {answers:?}; \
                 audit {audited:?}",
                users(&pods)
            )
        })?;
        // The pods' user is bob's own: he created the job, whatever its templates claim.
        ensure(pods.iter().all(|p| user_of(&p.metadata) == Some("bob")), || {
            format!("the operator's pods for bob's MXJob should carry bob, got {}", users(&pods))
        })
    }
    .await;
    // Not labelled-cleanup's kinds: the MXJob goes first, the garbage collector takes its pods.
    if let Err(e) = mxjobs(&bed.admin)
        .delete(id.name(), &DeleteParams::background())
        .await
    {
        eprintln!("cleanup: deleting MXJob {}: {e}", id.name());
    }
    let log = service.log();
    fx.teardown(service.process).await;
    if let Err(e) = result {
        panic!("bob's MXJob through the training operator: {e}\ntoken-service log:\n{log}");
    }
}
