//! Attacks on the token service (rows of the README's threat model) against the whole bed: the real
//! control plane with iddecorator and its controllers, the Kerberized HDFS and slapd. Each test
//! starts its own token-service (IP mode: pods have loopback addresses on the local bed), serving
//! team-a and kube2hadoop by its own selector, so what refuses kube2hadoop is the webhook's
//! coverage, not the selector.
//!
//! - a pod that carries alice but hangs off bob's ReplicaSet (made as the replicaset-controller),
//!   or off a kind nobody stamps: refused `owner_user_mismatch` / `owner_not_stamped`;
//! - a hand-annotated pod in a namespace the webhook skips, or with no webhook registered:
//!   `namespace_not_covered` / `webhook_not_installed`;
//! - a registration that intercepts pods but not ReplicaSets (`owner_not_stamped`), or narrows
//!   by objectSelector (`webhook_not_enforcing`);
//! - `run-as: SVC-ETL` when svc-etl is a superuser, a user in an unlisted realm, or `ALICE`
//!   (LDAP answers alice): refused;
//! - a bound token for another audience: refused;
//! - a Deployment bob wrote claiming alice while the namespace was outside the webhook, whose
//!   pods are (re)created after the namespace is covered: refused `stamp_invalid` (only
//!   iddecorator's key signs a user);
//! - a ledger Secret forged at the name of bob's workload with alice's record: bob's pod never
//!   gets alice's tokens;
//! - a pod's bound token answered from the TokenReview cache, then its pod deleted, or its
//!   service account deleted and created again: refused at once, well within the cache's TTL;
//! - a pod's bound token vouched for by its signature (the API server's published keys, no
//!   review), then forged (another key under the real key id, `alg: none`, claims extended
//!   under the real signature) or its pod deleted: refused; its account deleted while a
//!   finalizer keeps it (the API server accepts its tokens for another minute): refused.

use std::net::IpAddr;
use std::time::Duration;

use e2e::fixture::Fixture;
use e2e::hadoop::Cluster;
use e2e::ledger::LedgerNamespace;
use e2e::objects::{self, TEST_LABEL, uid_of};
use e2e::pods::{bound_token, running, token_request};
use e2e::token_service::{Answer, Launcher, Options};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use token_service::ledger::store::secret_name;
use token_service::services::Selection;
use token_service::workload::WorkloadKey;

/// Not covered by the shipped webhook (`k2h_contract::coverage::DEFAULT_EXCLUDED_NAMESPACES`).
const UNCOVERED_NAMESPACE: &str = "kube2hadoop";
/// iddecorator's signature over (namespace, user), `k2h_contract::annotations::STAMP`.
const STAMP_ANNOTATION: &str = "kube2hadoop.io/stamp";
const REPLICASET_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";
const TRAINING_OPERATOR: &str = "system:serviceaccount:kubeflow:training-operator";
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// The running process (killed when dropped) and how to reach it.
struct Service {
    process: e2e::token_service::Service,
    launcher: Launcher,
}

impl Service {
    async fn start(ledger: &LedgerNamespace, edit: impl FnOnce(Options) -> Options) -> Service {
        Service::serving(&[NAMESPACE, UNCOVERED_NAMESPACE], ledger, edit).await
    }

    /// A service for `namespaces`.
    async fn serving(
        namespaces: &[&str],
        ledger: &LedgerNamespace,
        edit: impl FnOnce(Options) -> Options,
    ) -> Service {
        let options = Options::new(namespaces, ledger.name()).pod_rate(600, 50);
        let launcher = edit(options).prepare(&Cluster::shared());
        let process = launcher.start(0).await;
        Service { process, launcher }
    }

    /// What the service answers the pod at `ip` (IP mode), or a bearer token.
    async fn ask(&self, from: Option<IpAddr>, bearer: Option<&str>) -> Answer {
        self.launcher
            .request("POST", "/v1/credentials", from, bearer, true)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "POST /v1/credentials failed: {e}\n{}",
                    self.process.log_tail(40)
                )
            })
    }

    /// The refusal code for the pod, failing unless it is one of `codes` with status `status`.
    async fn refused(
        &self,
        pod: &Pod,
        status: u16,
        codes: &[&str],
        what: &str,
    ) -> Result<(), Error> {
        let answer = self.ask(Some(ip_of(pod)?), None).await;
        ensure(
            answer.status == status && codes.contains(&answer.code().as_str()),
            || format!("{what}: expected {status} {codes:?}, got {}", answer.text()),
        )
    }
}

fn ip_of(pod: &Pod) -> Result<IpAddr, Error> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| Error::Check("a running pod has an IP".into()))
}

/// The `user` of a JSON answer.
fn user_of(answer: &Answer) -> String {
    serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|v| v["user"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A controller reference to `owner`.
fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: uid_of(owner),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// Creates `pod` in `namespace` as `client` and waits until it runs.
async fn run_pod(
    bed: &Bed,
    client: &Client,
    namespace: &str,
    pod: &Pod,
    who: &str,
) -> Result<Pod, Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let mut pod = pod.clone();
    pod.metadata.namespace = Some(namespace.into());
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .step(format!("{who} creates pod {namespace}/{name}"))?;
    Ok(running(&bed.admin, namespace, &name, POD_TIMEOUT).await?.0)
}

/// Waits (bounded) until the API server's RBAC cache lets `client` create `pod`: a RoleBinding
/// just created reaches the authorizer a moment later (CI saw a 403 once). Dry runs only.
async fn rbac_allows(client: &Client, pod: &Pod, who: &str) -> Result<(), Error> {
    let api = Api::<Pod>::namespaced(client.clone(), NAMESPACE);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    e2e::wait::until(
        &format!("RBAC to let {who} create pods"),
        Duration::from_secs(30),
        || async {
            Ok::<_, Error>(match api.create(&dry, pod).await {
                Err(kube::Error::Api(e)) if e.code == 403 => {
                    e2e::wait::Poll::Pending(e.message.clone())
                }
                _ => e2e::wait::Poll::Ready(()),
            })
        },
    )
    .await
}

/// A pod of the test claiming `user`, optionally under a controller.
fn test_pod(
    id: &TestId,
    suffix: &str,
    user: &str,
    owner: Option<OwnerReference>,
) -> Result<Pod, Error> {
    let name = format!("{}-{suffix}", id.name());
    let mut pod = objects::pod(id, &name, user)?;
    // Its own `app`, so no controller of the test's workloads adopts it.
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert("app".into(), name);
    pod.metadata.owner_references = owner.map(|o| vec![o]);
    Ok(pod)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_whose_owner_chain_does_not_carry_their_user_get_nothing() {
    let fx = Fixture::new("atk-own").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = Service::start(&fx.ledger, |o| o).await;
    let result = async {
        // bob's ReplicaSet: stamped bob. Its own pods can never be created (no such service
        // account), so the controller leaves the pod below alone instead of scaling it away.
        let rs_name = format!("{}-rs", id.name());
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": rs_name, "namespace": NAMESPACE, "labels": {TEST_LABEL: id.name()}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": rs_name}},
                "template": {
                    "metadata": {"labels": {TEST_LABEL: id.name(), "app": rs_name}},
                    "spec": {"serviceAccountName": "k2h-no-such-account",
                        "containers": [{"name": "main", "image": objects::IMAGE}]},
                },
            },
        }))
        .map_err(|source| Error::Manifest { kind: "ReplicaSet", source })?;
        let rs = Api::<ReplicaSet>::namespaced(bed.bob.clone(), NAMESPACE)
            .create(&PostParams::default(), &rs)
            .await
            .step("bob creates a ReplicaSet")?;
        // The replicaset-controller (as anyone who can impersonate it, or a confused copy of its
        // logic) makes a pod for alice under bob's ReplicaSet: iddecorator keeps the incoming
        // alice for the controller it trusts, so only the owner chain shows the lie.
        // With alice's valid stamp, copied from a pod of hers that bob can read: the stamp binds
        // the user to the namespace, so only the owner chain can refuse this.
        let source = test_pod(id, "src", "alice", None)?;
        let source = run_pod(bed, &bed.alice, NAMESPACE, &source, "alice").await?;
        let stamp = source
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAMP_ANNOTATION))
            .cloned()
            .ok_or_else(|| Error::Check("iddecorator stamped alice's pod".into()))?;
        let mut forged = test_pod(id, "forged", "alice", Some(controller_ref(&rs)))?;
        forged
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(STAMP_ANNOTATION.into(), stamp);
        forged
            .metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), rs_name.clone());
        let controller = bed.impersonating(REPLICASET_CONTROLLER).await?;
        let forged = run_pod(bed, &controller, NAMESPACE, &forged, "the replicaset-controller").await?;
        ensure(objects::user_of(&forged.metadata) == Some("alice"), || {
            format!("the forged pod carries {:?}, the test needs alice", objects::user_of(&forged.metadata))
        })?;
        service
            .refused(&forged, 403, &["owner_user_mismatch"], "alice's pod under bob's ReplicaSet")
            .await?;
        // `kubectl describe` of the pod tells why, with the code the fetcher got.
        let forged_name = forged.metadata.name.clone().unwrap_or_default();
        e2e::events::wait_for(&bed.admin, NAMESPACE, &forged_name, "TokensRefused", "owner_user_mismatch")
            .await?;

        // A kind nobody stamps: a ConfigMap claiming alice, and a pod under it made by the
        // training operator (which iddecorator trusts for training jobs only; before owner kinds were
        // it kept the incoming alice, now the pod carries the operator's own name).
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": {"name": format!("{}-cm", id.name()), "namespace": NAMESPACE,
                "labels": {TEST_LABEL: id.name()},
                "annotations": {objects::USER_ANNOTATION: "alice"}},
        }))
        .map_err(|source| Error::Manifest { kind: "ConfigMap", source })?;
        let cm = Api::<ConfigMap>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &cm)
            .await
            .step("alice creates a ConfigMap")?;
        let operator = bed.impersonating(TRAINING_OPERATOR).await?;
        let laundered = test_pod(id, "op", "alice", Some(controller_ref(&cm)))?;
        let laundered = run_pod(bed, &operator, NAMESPACE, &laundered, "the training operator").await?;
        service
            .refused(
                &laundered,
                403,
                &["owner_not_stamped", "owner_user_mismatch", "user_not_mappable"],
                "the operator's pod under a ConfigMap",
            )
            .await?;
        // alice's own pod under her ConfigMap: her user, but no stamped chain proves it.
        let own = test_pod(id, "cm", "alice", Some(controller_ref(&cm)))?;
        let own = run_pod(bed, &bed.alice, NAMESPACE, &own, "alice").await?;
        service
            .refused(&own, 403, &["owner_not_stamped"], "a pod under a ConfigMap")
            .await?;

        // The legitimate chain still works: alice's Deployment → ReplicaSet → pod.
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let pods = e2e::pods::running_pods(&bed.admin, NAMESPACE, id, 5).await?;
        let of_deployment = |p: &&Pod| {
            let mut owners = p.metadata.owner_references.iter().flatten();
            owners.clone().any(|o| o.kind == "ReplicaSet") && owners.all(|o| o.name != rs_name)
        };
        let deployed = pods
            .iter()
            .find(of_deployment)
            .ok_or_else(|| Error::Check("no pod of alice's Deployment runs".into()))?;
        let answer = service.ask(Some(ip_of(deployed)?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!("alice's Deployment pod: {}", answer.text())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = Api::<ConfigMap>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete_collection(
            &DeleteParams::background(),
            &ListParams::default().labels(&id.selector()),
        )
        .await;
    fx.teardown(service).await;
    result.expect("owner chains");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_the_webhook_never_saw_get_nothing() {
    let fx = Fixture::new("atk-ns").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = Service::start(&fx.ledger, |o| o).await;
    let result = async {
        // admin writes alice's name by hand in a namespace the webhook skips (before owner kinds were
        // served, as the service's own selector allows kube2hadoop).
        let bare = test_pod(id, "bare", "alice", None)?;
        let bare = run_pod(bed, &bed.admin, UNCOVERED_NAMESPACE, &bare, "admin").await?;
        ensure(objects::user_of(&bare.metadata) == Some("alice"), || {
            "the webhook skipped kube2hadoop, so the hand-written alice stays".into()
        })?;
        service
            .refused(
                &bare,
                403,
                &["namespace_not_covered"],
                "a hand-annotated pod in kube2hadoop",
            )
            .await?;

        let covered = test_pod(id, "ok", "alice", None)?;
        let covered = run_pod(bed, &bed.alice, NAMESPACE, &covered, "alice").await?;
        // The same bed, the service pointed at a registration that does not exist.
        let unhooked = Service::start(&fx.ledger, |o| {
            o.config(
                "webhookConfiguration",
                json!(format!("{}-absent", id.name())),
            )
        })
        .await;
        unhooked
            .refused(
                &covered,
                403,
                &["webhook_not_installed"],
                "no webhook registered",
            )
            .await?;
        drop(unhooked);
        let answer = service.ask(Some(ip_of(&covered)?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!("alice's bare pod in a covered namespace: {}", answer.text())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = Api::<Pod>::namespaced(bed.admin.clone(), UNCOVERED_NAMESPACE)
        .delete_collection(
            &DeleteParams::background(),
            &ListParams::default().labels(&id.selector()),
        )
        .await;
    fx.teardown(service).await;
    result.expect("coverage");
}

/// The test bed's registration skips namespaces carrying this label (e2e/cluster/webhooks.yaml.tmpl).
const UNCOVERED_LABEL: &str = "k2h-e2e-uncovered";

/// Objects from before coverage: bob, with the `edit` role in a namespace iddecorator does not
/// cover yet, writes a Deployment whose metadata and template claim alice. Nothing stamps it.
/// Once the namespace is covered, the replicaset-controller's pods carry alice consistently
/// along the whole chain (iddecorator keeps what trusted controllers copy), so only a value
/// iddecorator signed can tell them apart: none is there, and the pods get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_written_before_coverage_get_nothing() {
    let fx = Fixture::new("atk-pre").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let ns = format!("{}-ns", id.name());
    let namespaces = Api::<Namespace>::all(bed.admin.clone());
    let result = async {
        let namespace: Namespace = serde_json::from_value(json!({
            "metadata": {"name": ns, "labels": {UNCOVERED_LABEL: "true", TEST_LABEL: id.name()}},
        }))
        .map_err(|source| Error::Manifest { kind: "Namespace", source })?;
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .step("admin creates a namespace the webhook skips")?;
        let binding: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": "bob-edits", "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
        }))
        .map_err(|source| Error::Manifest { kind: "RoleBinding", source })?;
        Api::<RoleBinding>::namespaced(bed.admin.clone(), &ns)
            .create(&PostParams::default(), &binding)
            .await
            .step("admin gives bob the edit role there")?;
        let service = Service::serving(&[ns.as_str()], &fx.ledger, |o| o).await;

        let mut deployment = objects::deployment(id, "alice")?;
        deployment.metadata.namespace = Some(ns.clone());
        let deployment = Api::<Deployment>::namespaced(bed.bob.clone(), &ns)
            .create(&PostParams::default(), &deployment)
            .await
            .step("bob creates a Deployment claiming alice")?;
        ensure(objects::user_of(&deployment.metadata) == Some("alice"), || {
            "the webhook skips the namespace, so bob's alice stays".into()
        })?;
        let before = e2e::pods::running_pods(&bed.admin, &ns, id, 1).await?;
        let first = before
            .first()
            .ok_or_else(|| Error::Check("no pod of bob's Deployment runs".into()))?;
        service
            .refused(first, 403, &["namespace_not_covered"], "a pod while uncovered")
            .await?;

        // The namespace joins kube2hadoop; the service sees it through its namespace watch.
        namespaces
            .patch(
                &ns,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {UNCOVERED_LABEL: null}}})),
            )
            .await
            .step("admin puts the namespace under the webhook")?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let answer = loop {
            let answer = service.ask(Some(ip_of(first)?), None).await;
            if answer.code() != "namespace_not_covered" || tokio::time::Instant::now() > deadline {
                break answer;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        ensure(answer.status == 403 && answer.code() == "stamp_invalid", || {
            format!("a pod made before coverage, namespace now covered: {}", answer.text())
        })?;

        // A pod the replicaset-controller makes now, seen by iddecorator: it keeps the
        // template's alice for the controller it trusts, but cannot sign it.
        Api::<Pod>::namespaced(bed.admin.clone(), &ns)
            .delete_collection(
                &DeleteParams::background().grace_period(0),
                &ListParams::default().labels(&id.selector()),
            )
            .await
            .step("admin deletes the old pods")?;
        let old: Vec<String> = before.iter().map(uid_of).collect();
        let after = e2e::wait::until(
            "a pod made after coverage",
            POD_TIMEOUT,
            || {
                let (admin, ns, old) = (bed.admin.clone(), ns.clone(), old.clone());
                async move {
                    let pods = e2e::pods::running_pods(&admin, &ns, id, 1).await?;
                    Ok::<_, Error>(match pods.into_iter().find(|p| !old.contains(&uid_of(p))) {
                        Some(p) => e2e::wait::Poll::Ready(p),
                        None => e2e::wait::Poll::Pending("only old pods run".into()),
                    })
                }
            },
        )
        .await?;
        ensure(objects::user_of(&after.metadata) == Some("alice"), || {
            format!(
                "the replicaset-controller's new pod carries {:?}, the test needs alice",
                objects::user_of(&after.metadata)
            )
        })?;
        service
            .refused(&after, 403, &["stamp_invalid"], "a pod made after coverage")
            .await?;

        // bob re-applies his Deployment now: iddecorator stamps it bob, and so its new pods.
        Api::<Deployment>::namespaced(bed.bob.clone(), &ns)
            .patch(
                id.name(),
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"template": {"metadata": {"labels": {"rev": "2"}}}}})),
            )
            .await
            .step("bob updates his Deployment")?;
        let redeployed = e2e::wait::until("a pod of bob's stamped revision", POD_TIMEOUT, || {
            let (admin, ns) = (bed.admin.clone(), ns.clone());
            async move {
                let pods = e2e::pods::running_pods(&admin, &ns, id, 1).await?;
                Ok::<_, Error>(
                    match pods.into_iter().find(|p| objects::user_of(&p.metadata) == Some("bob")) {
                        Some(p) => e2e::wait::Poll::Ready(p),
                        None => e2e::wait::Poll::Pending("no pod of bob's yet".into()),
                    },
                )
            }
        })
        .await?;
        let answer = service.ask(Some(ip_of(&redeployed)?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "bob", || {
            format!("bob's re-applied Deployment: {}", answer.text())
        })?;
        drop(service);
        Ok::<_, Error>(())
    }
    .await;
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
    fx.teardown(()).await;
    result.expect("objects from before coverage");
}

/// A copy of iddecorator's registration named `name`, with two webhooks: the mutating one
/// intercepting pods only (as a registration from before the owner kinds were stamped), and one
/// narrowed by an objectSelector (labels nothing carries).
async fn register_copy(bed: &Bed, id: &TestId, name: &str) -> Result<(), Error> {
    let configs = Api::<MutatingWebhookConfiguration>::all(bed.admin.clone());
    let real = configs
        .get(WEBHOOK_CONFIGURATION)
        .await
        .step("reading iddecorator's registration")?;
    let hook = real
        .webhooks
        .iter()
        .flatten()
        .find(|w| w.name == MUTATING_WEBHOOK)
        .cloned()
        .ok_or_else(|| {
            Error::Check(format!("{WEBHOOK_CONFIGURATION} has no {MUTATING_WEBHOOK}"))
        })?;
    let mut pods_only = hook.clone();
    for rule in pods_only.rules.iter_mut().flatten() {
        if let Some(resources) = rule.resources.as_mut() {
            resources.retain(|r| r.starts_with("pods"));
        }
    }
    pods_only.rules = pods_only.rules.map(|rules| {
        rules
            .into_iter()
            .filter(|r| r.resources.iter().flatten().next().is_some())
            .collect()
    });
    let mut labelled = hook;
    labelled.name = LABELLED_WEBHOOK.into();
    labelled.object_selector = Some(LabelSelector {
        match_labels: Some([(TEST_LABEL.to_owned(), format!("{}-never", id.name()))].into()),
        match_expressions: None,
    });
    let copy = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some([(TEST_LABEL.to_owned(), id.name().to_owned())].into()),
            ..ObjectMeta::default()
        },
        webhooks: Some(vec![pods_only, labelled]),
    };
    configs
        .create(&PostParams::default(), &copy)
        .await
        .step("registering a narrowed copy of iddecorator's webhook")?;
    Ok(())
}

const LABELLED_WEBHOOK: &str = "labelled.e2e.kube2hadoop.io";
/// `k2h_contract::coverage::{WEBHOOK_CONFIGURATION, MUTATING_WEBHOOK}` (e2e does not depend on it).
const WEBHOOK_CONFIGURATION: &str = "kube2hadoop-iddecorator";
const MUTATING_WEBHOOK: &str = "mutate.iddecorator.kube2hadoop.io";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_that_cannot_prove_admission_cover_nothing() {
    let fx = Fixture::new("atk-reg").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let copy = format!("{}-reg", id.name());
    let service = Service::start(&fx.ledger, |o| o).await;
    let result = async {
        register_copy(bed, id, &copy).await?;
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let deployed = e2e::pods::running_pods(&bed.admin, NAMESPACE, id, 2).await?;
        let deployed = deployed
            .first()
            .ok_or_else(|| Error::Check("no pod of alice's Deployment runs".into()))?;
        let bare = test_pod(id, "bare", "alice", None)?;
        let bare = run_pod(bed, &bed.alice, NAMESPACE, &bare, "alice").await?;
        // The shipped registration: both served.
        for (pod, what) in [
            (deployed, "alice's Deployment pod"),
            (&bare, "alice's bare pod"),
        ] {
            let answer = service.ask(Some(ip_of(pod)?), None).await;
            ensure(answer.status == 200 && user_of(&answer) == "alice", || {
                format!("{what}: {}", answer.text())
            })?;
        }
        // A registration that intercepts pods but not ReplicaSets/Deployments: an owner of such
        // a kind may have been written by anyone, so the chain proves nothing (before: served,
        // the built-in kinds were trusted whatever the registration intercepted).
        let old = Service::start(&fx.ledger, |o| {
            o.config("webhookConfiguration", json!(copy))
        })
        .await;
        let answer = old.ask(Some(ip_of(deployed)?), None).await;
        ensure(
            answer.status == 403
                && answer.code() == "owner_not_stamped"
                && answer.text().contains("replicasets"),
            || {
                format!(
                    "a Deployment pod, replicasets not intercepted: {}",
                    answer.text()
                )
            },
        )?;
        let answer = old.ask(Some(ip_of(&bare)?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!("a bare pod, pods intercepted: {}", answer.text())
        })?;
        drop(old);
        // An objectSelector: a pod created outside it and relabelled later was never seen
        // (before: served whenever today's labels matched).
        let labelled = Service::start(&fx.ledger, |o| {
            o.config("webhookConfiguration", json!(copy))
                .config("mutatingWebhook", json!(LABELLED_WEBHOOK))
        })
        .await;
        labelled
            .refused(&bare, 403, &["webhook_not_enforcing"], "an objectSelector")
            .await?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = Api::<MutatingWebhookConfiguration>::all(bed.admin.clone())
        .delete(&copy, &DeleteParams::background())
        .await;
    let _ = Api::<Deployment>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete(id.name(), &DeleteParams::background())
        .await;
    fx.teardown(service).await;
    result.expect("registrations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_and_realm_variants_of_names_are_refused() {
    let fx = Fixture::new("atk-case").await;
    let (bed, id) = (&fx.bed, &fx.id);
    // svc-etl is alice's headless account in the bed's LDAP; made a superuser here.
    let service = Service::start(&fx.ledger, |o| {
        o.config("superusers", json!(["hdfs", "svc-etl"]))
    })
    .await;
    let realm_user = "alice@OTHER.REALM";
    let shouted_user = "ALICE";
    let binding = format!("{}-realm", id.name());
    let result = async {
        let mut shouting = test_pod(id, "runas", "alice", None)?;
        shouting
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("kube2hadoop.io/run-as".into(), "SVC-ETL".into());
        let shouting = run_pod(bed, &bed.alice, NAMESPACE, &shouting, "alice").await?;
        // Before directory names were compared: LDAP matched SVC-ETL, the deny-list (svc-etl) did not.
        service
            .refused(&shouting, 403, &["superuser_denied"], "run-as SVC-ETL")
            .await?;

        // A Kubernetes user in another realm: the same name before the @, not the same person.
        let rb: RoleBinding = serde_json::from_value(json!({
            "metadata": {"name": binding, "namespace": NAMESPACE},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": realm_user},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": shouted_user},
            ],
        }))
        .map_err(|source| Error::Manifest { kind: "RoleBinding", source })?;
        Api::<RoleBinding>::namespaced(bed.admin.clone(), NAMESPACE)
            .create(&PostParams::default(), &rb)
            .await
            .step("letting alice@OTHER.REALM and ALICE edit team-a")?;
        let other = bed.impersonating(realm_user).await?;
        let pod = test_pod(id, "realm", "alice", None)?;
        rbac_allows(&other, &pod, realm_user).await?;
        let pod = run_pod(bed, &other, NAMESPACE, &pod, realm_user).await?;
        ensure(objects::user_of(&pod.metadata) == Some(realm_user), || {
            format!("iddecorator stamped {:?}", objects::user_of(&pod.metadata))
        })?;
        service
            .refused(&pod, 403, &["user_not_mappable"], "a user in an unlisted realm")
            .await?;

        // ALICE is another Kubernetes user; LDAP matches uid ignoring case and answers alice.
        // Before directory names were compared, ALICE got alice's tokens.
        let other = bed.impersonating(shouted_user).await?;
        let pod = test_pod(id, "shout", "alice", None)?;
        rbac_allows(&other, &pod, shouted_user).await?;
        let pod = run_pod(bed, &other, NAMESPACE, &pod, shouted_user).await?;
        ensure(objects::user_of(&pod.metadata) == Some(shouted_user), || {
            format!("iddecorator stamped {:?}", objects::user_of(&pod.metadata))
        })?;
        service
            .refused(&pod, 403, &["user_name_mismatch"], "a case variant of alice")
            .await?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = Api::<RoleBinding>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete(&binding, &DeleteParams::background())
        .await;
    fx.teardown(service).await;
    result.expect("name variants");
}

/// A token bound to `pod` for `audience`, minted by admin (the API server checks audiences
/// itself; the service must not take one that is not for it either way).
async fn token_for(bed: &Bed, pod: &Pod, audience: &str) -> Result<String, Error> {
    let request = token_request(pod, audience);
    Api::<ServiceAccount>::namespaced(bed.admin.clone(), NAMESPACE)
        .create_token_request("default", &PostParams::default(), &request)
        .await
        .step("requesting a token for another audience")?
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::Check("TokenRequest returned no token".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_for_another_audience_or_from_another_address_is_refused() {
    let fx = Fixture::new("atk-aud").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = Service::start(&fx.ledger, |o| o).await;
    let result = async {
        let mut pod = test_pod(id, "aud", "alice", None)?;
        // What injection mounts: a projected token for our audience (kubelets may mint only
        // the audiences a pod's volumes name).
        if let Some(spec) = pod.spec.as_mut() {
            spec.volumes =
                Some(vec![serde_json::from_value(json!({
                "name": "kube2hadoop-token",
                "projected": {"sources": [{"serviceAccountToken": {
                    "audience": "kube2hadoop", "expirationSeconds": 600, "path": "token"}}]},
            }))
            .map_err(|source| Error::Manifest { kind: "Volume", source })?]);
        }
        let pod = run_pod(bed, &bed.alice, NAMESPACE, &pod, "alice").await?;
        let token = token_for(bed, &pod, "https://kubernetes.default.svc.cluster.local").await?;
        let answer = service.ask(None, Some(&token)).await;
        ensure(
            answer.status == 401
                && ["wrong_audience", "token_rejected"].contains(&answer.code().as_str()),
            || format!("a token for the API server's audience: {}", answer.text()),
        )?;
        let token = e2e::pods::bound_token(&bed.admin, &pod).await?;
        // Replayed from elsewhere (read out of the pod, or caught on the way), it is worthless.
        let answer = service.ask(None, Some(&token)).await;
        ensure(
            answer.status == 401 && answer.code() == "token_origin_mismatch",
            || {
                format!(
                    "alice's pod token sent from this machine: {}",
                    answer.text()
                )
            },
        )?;
        let answer = service.ask(Some(ip_of(&pod)?), Some(&token)).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!(
                "the pod's own kube2hadoop token from the pod: {}",
                answer.text()
            )
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("audiences");
}

/// The workload key token-service derives for a Deployment.
fn workload_of(d: &Deployment) -> WorkloadKey {
    WorkloadKey {
        namespace: NAMESPACE.into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: uid_of(d),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_ledger_secret_is_never_served() {
    let fx = Fixture::new("atk-ldg").await;
    let (bed, id, ledger) = (&fx.bed, &fx.id, &fx.ledger);
    let service = Service::start(ledger, |o| o).await;
    let alice_id = TestId::new("atk-ldga");
    let result = async {
        // alice's Deployment gets her tokens, recorded in the ledger.
        let alices = Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .create(
                &PostParams::default(),
                &objects::deployment(&alice_id, "alice")?,
            )
            .await
            .step("alice creates a Deployment")?;
        let pods = e2e::pods::running_pods(&bed.admin, NAMESPACE, &alice_id, 1).await?;
        let answer = service.ask(Some(ip_of(&pods[0])?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!("alice's pod: {}", answer.text())
        })?;
        let secrets: Api<Secret> = Api::namespaced(bed.admin.clone(), ledger.name());
        let alices_secret = secrets
            .get(&secret_name(
                &workload_of(&alices),
                "alice",
                &Selection::All,
            ))
            .await
            .step("reading alice's ledger Secret")?;

        // bob's Deployment, before any of its pods asks: its ledger name now holds alice's set
        // and record (as anyone who may write Secrets there could arrange).
        let bobs = Api::<Deployment>::namespaced(bed.bob.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(id, "bob")?)
            .await
            .step("bob creates a Deployment")?;
        let mut forged = alices_secret.clone();
        forged.metadata = kube::api::ObjectMeta {
            name: Some(secret_name(&workload_of(&bobs), "bob", &Selection::All)),
            namespace: Some(ledger.name().into()),
            labels: alices_secret.metadata.labels.clone(),
            annotations: alices_secret.metadata.annotations.clone(),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &forged)
            .await
            .step("forging bob's ledger Secret")?;
        let bob_pods = e2e::pods::running_pods(&bed.admin, NAMESPACE, id, 1).await?;
        let answer = service.ask(Some(ip_of(&bob_pods[0])?), None).await;
        ensure(answer.status == 200 && user_of(&answer) == "bob", || {
            format!("bob's pod over a forged ledger entry: {}", answer.text())
        })?;
        let alice_file = serde_json::from_slice::<serde_json::Value>(
            &service.ask(Some(ip_of(&pods[0])?), None).await.body,
        )
        .map(|v| v["file"].clone())
        .unwrap_or_default();
        let bob_file = serde_json::from_slice::<serde_json::Value>(&answer.body)
            .map(|v| v["file"].clone())
            .unwrap_or_default();
        ensure(alice_file != bob_file && !bob_file.is_null(), || {
            "bob's pod was served alice's credentials file".into()
        })?;
        let records = ledger
            .records(bed, &format!("Deployment {NAMESPACE}/{}", id.name()))
            .await?;
        ensure(
            records.len() == 1 && records[0]["hadoop_user"] == "bob",
            || format!("bob's ledger entry after the request: {records:?}"),
        )?;
        Ok::<_, Error>(())
    }
    .await;
    alice_id.cleanup(&bed.admin).await;
    fx.teardown(service).await;
    result.expect("forged ledger Secret");
}

/// The token service's Prometheus text.
async fn metrics_of(service: &Service) -> Result<String, Error> {
    let answer = service
        .launcher
        .request("GET", "/metrics", None, None, false)
        .await
        .map_err(|e| Error::Check(format!("GET /metrics: {e}")))?;
    Ok(String::from_utf8_lossy(&answer.body).into_owned())
}

/// The value of one series (`name{labels}` as written) in Prometheus text; 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

const CACHE_HITS: &str = r#"kube2hadoop_token_review_cache_lookups_total{result="hit"}"#;
const CACHE_ENTRIES: &str = "kube2hadoop_token_review_cache_entries";
/// Long, so that a refusal can only come from the revocation, never from the entry expiring.
const CACHE_TTL_SECONDS: u64 = 60;

/// A service for these tests: the TokenReview cache on, with a TTL of [`CACHE_TTL_SECONDS`].
async fn caching_service(ledger: &LedgerNamespace) -> Service {
    Service::start(ledger, |o| {
        o.config("tokenReviewCacheTtlSeconds", json!(CACHE_TTL_SECONDS))
    })
    .await
}

/// A pod of alice's running as `service_account`, with the projected token volume injection
/// mounts (kubelets mint only the audiences a pod's volumes name).
async fn run_token_pod(
    bed: &Bed,
    id: &TestId,
    suffix: &str,
    service_account: Option<&str>,
) -> Result<Pod, Error> {
    let mut pod = test_pod(id, suffix, "alice", None)?;
    if let Some(spec) = pod.spec.as_mut() {
        spec.service_account_name = service_account.map(str::to_owned);
        spec.volumes = Some(vec![
            serde_json::from_value(json!({
                "name": "kube2hadoop-token",
                "projected": {"sources": [{"serviceAccountToken": {
                    "audience": "kube2hadoop", "expirationSeconds": 600, "path": "token"}}]},
            }))
            .map_err(|source| Error::Manifest {
                kind: "Volume",
                source,
            })?,
        ]);
    }
    run_pod(bed, &bed.alice, NAMESPACE, &pod, "alice").await
}

/// Asks twice from the pod with its token: served both times, the second from the cache.
async fn served_from_the_cache(service: &Service, pod: &Pod, token: &str) -> Result<(), Error> {
    for n in 0..2 {
        let answer = service.ask(Some(ip_of(pod)?), Some(token)).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!(
                "request {n} of alice's pod with its token: {}",
                answer.text()
            )
        })?;
    }
    let text = metrics_of(service).await?;
    ensure(
        sample(&text, CACHE_HITS) >= 1.0 && sample(&text, CACHE_ENTRIES) == 1.0,
        || format!("the second request was not answered from the cache:\n{text}"),
    )
}

/// Waits until the service's watch saw the revocation and dropped the cached review (a request
/// racing the watch event by milliseconds is not what these tests are about).
async fn cache_emptied(service: &Service, what: &str) -> Result<(), Error> {
    until(
        &format!("the token service to drop the cached review after {what}"),
        Duration::from_secs(10),
        || async {
            let text = metrics_of(service).await?;
            let entries = sample(&text, CACHE_ENTRIES);
            Ok::<_, Error>(if entries == 0.0 {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{entries} entries"))
            })
        },
    )
    .await
}

/// Deletes `pod` and, once the service's watch dropped what it knew, sends its token from its
/// address: the API server may still authenticate it from its own cache, but the pod is gone.
async fn deleted_pods_token_refused(
    bed: &Bed,
    service: &Service,
    pod: &Pod,
    token: &str,
) -> Result<(), Error> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
        .delete(&name, &DeleteParams::default().grace_period(0))
        .await
        .step("admin deletes the pod")?;
    cache_emptied(service, "the pod's deletion").await?;
    let answer = service.ask(Some(ip_of(pod)?), Some(token)).await;
    ensure(
        answer.status >= 400
            && ["pod_not_found", "token_rejected"].contains(&answer.code().as_str()),
        || format!("the deleted pod's token: {}", answer.text()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_identity_ends_when_its_pod_is_deleted() {
    let fx = Fixture::new("atk-cpod").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = caching_service(&fx.ledger).await;
    let result = async {
        let pod = run_token_pod(bed, id, "cached", None).await?;
        let token = bound_token(&bed.admin, &pod).await?;
        served_from_the_cache(&service, &pod, &token).await?;
        let started = std::time::Instant::now();
        deleted_pods_token_refused(bed, &service, &pod, &token).await?;
        let elapsed = started.elapsed();
        ensure(elapsed.as_secs() < CACHE_TTL_SECONDS, || {
            format!("refused only after {elapsed:?}, past the cache's TTL")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("a cached identity and its deleted pod");
}

/// A ServiceAccount of this test, with `finalizers`.
fn test_account(id: &TestId, name: &str, finalizers: &[&str]) -> Result<ServiceAccount, Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {TEST_LABEL: id.name()}, "finalizers": finalizers},
    }))
    .map_err(|source| Error::Manifest {
        kind: "ServiceAccount",
        source,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_identity_ends_when_its_service_account_is_deleted_or_recreated() {
    let fx = Fixture::new("atk-csa").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = caching_service(&fx.ledger).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let sa_name = format!("{}-sa", id.name());
    let account = || test_account(id, &sa_name, &[]);
    let result = async {
        accounts
            .create(&PostParams::default(), &account()?)
            .await
            .step("admin creates the pod's service account")?;
        let pod = run_token_pod(bed, id, "cached", Some(&sa_name)).await?;
        let token = bound_token(&bed.admin, &pod).await?;
        served_from_the_cache(&service, &pod, &token).await?;
        let started = std::time::Instant::now();
        accounts
            .delete(&sa_name, &DeleteParams::default())
            .await
            .step("admin deletes the service account")?;
        cache_emptied(&service, "the service account's deletion").await?;
        // The API server may still authenticate it from its own cache (10 s): the service asks
        // the API server whether the account exists.
        let answer = service.ask(Some(ip_of(&pod)?), Some(&token)).await;
        ensure(
            answer.status == 401
                && ["service_account_deleted", "token_rejected"].contains(&answer.code().as_str()),
            || format!("the token of a deleted service account: {}", answer.text()),
        )?;
        // Created again under the same name: a new uid, which the old token does not name.
        accounts
            .create(&PostParams::default(), &account()?)
            .await
            .step("admin creates the service account again")?;
        let answer = service.ask(Some(ip_of(&pod)?), Some(&token)).await;
        ensure(
            answer.status == 401
                && ["service_account_replaced", "token_rejected"].contains(&answer.code().as_str()),
            || {
                format!(
                    "the token of a recreated service account: {}",
                    answer.text()
                )
            },
        )?;
        let elapsed = started.elapsed();
        ensure(elapsed.as_secs() < CACHE_TTL_SECONDS, || {
            format!("refused only after {elapsed:?}, past the cache's TTL")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = accounts.delete(&sa_name, &DeleteParams::default()).await;
    fx.teardown(service).await;
    result.expect("a cached identity and its deleted service account");
}

// ---------------------------------------------------------------------------------------------
// Bound tokens verified by their signature (no TokenReview on first use)

const SIGNATURE_VERIFIED: &str = r#"kube2hadoop_token_signature_checks_total{result="verified"}"#;

/// base64url without padding, as JWTs use it.
fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The header and claims of a JWT, read without checking anything.
fn jwt_parts(token: &str) -> Result<(serde_json::Value, serde_json::Value), Error> {
    use base64::Engine;
    let part = |s: &str| -> Result<serde_json::Value, Error> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| Error::Check(format!("a JWT part is not base64url: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Check(format!("a JWT part: {e}")))
    };
    let mut it = token.split('.');
    match (it.next(), it.next()) {
        (Some(h), Some(c)) => Ok((part(h)?, part(c)?)),
        _ => Err(Error::Check("the bound token is not a JWT".into())),
    }
}

/// `header.claims` signed by a P-256 key the attacker made: what anyone can produce.
fn attacker_signed(header: &serde_json::Value, claims: &serde_json::Value) -> String {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("a P-256 key");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .expect("the key just made");
    let message = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = pair.sign(&rng, message.as_bytes()).expect("signing");
    format!("{message}.{}", b64url(signature.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_vouches_without_a_review_and_forged_tokens_are_refused() {
    let fx = Fixture::new("atk-sig").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = Service::start(&fx.ledger, |o| o).await;
    let result = async {
        // The service reads the API server's published keys at start.
        until(
            "the token service to load the API server's signing keys",
            Duration::from_secs(30),
            || async {
                let text = metrics_of(&service).await?;
                let keys = sample(&text, "kube2hadoop_token_keys");
                Ok::<_, Error>(if keys >= 1.0 {
                    Poll::Ready(())
                } else {
                    Poll::Pending(format!("{keys} keys"))
                })
            },
        )
        .await?;
        let pod = run_token_pod(bed, id, "sig", None).await?;
        let token = bound_token(&bed.admin, &pod).await?;
        let ip = ip_of(&pod)?;
        let answer = service.ask(Some(ip), Some(&token)).await;
        ensure(answer.status == 200 && user_of(&answer) == "alice", || {
            format!("alice's pod with its own token: {}", answer.text())
        })?;
        let text = metrics_of(&service).await?;
        ensure(sample(&text, SIGNATURE_VERIFIED) == 1.0, || {
            format!("the first request was not vouched for by the signature:\n{text}")
        })?;
        let last = service
            .launcher
            .audit_lines()
            .into_iter()
            .rev()
            .find(|l| l["outcome"] != "denied")
            .unwrap_or_default();
        ensure(
            last["token_check"] == "signature" && last["hadoop_user"] == "alice",
            || format!("the audit of the first request: {last}"),
        )?;

        // Forgeries naming alice's live pod, sent from that pod's own address.
        let (header, claims) = jwt_parts(&token)?;
        let kid = header["kid"].clone();
        let mut later = claims.clone();
        later["exp"] = json!(claims["exp"].as_u64().unwrap_or(0) + 86_400);
        let forgeries = [
            (
                "signed by another key under the API server's key id",
                attacker_signed(&json!({"alg": "ES256", "kid": kid}), &later),
            ),
            (
                "unsigned (alg none)",
                format!(
                    "{}.{}.",
                    b64url(json!({"alg": "none", "kid": kid}).to_string().as_bytes()),
                    b64url(later.to_string().as_bytes())
                ),
            ),
            ("the real signature over extended claims", {
                let signature = token.rsplit('.').next().unwrap_or_default();
                format!(
                    "{}.{}.{signature}",
                    token.split('.').next().unwrap_or_default(),
                    b64url(later.to_string().as_bytes())
                )
            }),
        ];
        for (what, forged) in &forgeries {
            let answer = service.ask(Some(ip), Some(forged)).await;
            ensure(
                answer.status == 401 && answer.code() == "token_rejected",
                || format!("a token {what}: {}", answer.text()),
            )?;
        }
        let text = metrics_of(&service).await?;
        ensure(sample(&text, SIGNATURE_VERIFIED) == 1.0, || {
            format!("a forgery was vouched for:\n{text}")
        })?;

        // The pod goes: its real token is vouched for by nothing any more.
        deleted_pods_token_refused(bed, &service, &pod, &token).await?;
        Ok::<_, Error>(())
    }
    .await;
    fx.teardown(service).await;
    result.expect("signature-verified tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_held_by_a_finalizer_is_revoked_when_its_deletion_is_asked() {
    let fx = Fixture::new("atk-fin").await;
    let (bed, id) = (&fx.bed, &fx.id);
    let service = Service::start(&fx.ledger, |o| o).await;
    let accounts: Api<ServiceAccount> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let sa_name = format!("{}-sa", id.name());
    let result = async {
        // The owner of the account (edit may update ServiceAccounts) keeps it with a finalizer
        // of their own, so that deleting it leaves it in place, uid unchanged.
        let account = test_account(id, &sa_name, &["e2e.kube2hadoop.io/hold"])?;
        accounts
            .create(&PostParams::default(), &account)
            .await
            .step("creating a service account with a finalizer")?;
        let pod = run_token_pod(bed, id, "fin", Some(&sa_name)).await?;
        let token = bound_token(&bed.admin, &pod).await?;
        served_from_the_cache(&service, &pod, &token).await?;
        accounts
            .delete(&sa_name, &DeleteParams::default())
            .await
            .step("admin deletes the service account")?;
        let still = accounts.get(&sa_name).await.step("reading the account")?;
        ensure(still.metadata.deletion_timestamp.is_some(), || {
            "the finalizer did not hold the account".into()
        })?;
        cache_emptied(&service, "the account's deletion").await?;
        // The API server accepts the token for another minute; the service does not.
        let answer = service.ask(Some(ip_of(&pod)?), Some(&token)).await;
        ensure(
            answer.status == 401 && answer.code() == "service_account_deleted",
            || format!("the token of an account being deleted: {}", answer.text()),
        )?;
        let text = metrics_of(&service).await?;
        ensure(sample(&text, SIGNATURE_VERIFIED) == 1.0, || {
            format!("only the first request is vouched for by the signature:\n{text}")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    let _ = accounts
        .patch(
            &sa_name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await;
    let _ = accounts.delete(&sa_name, &DeleteParams::default()).await;
    fx.teardown(service).await;
    result.expect("an account held by a finalizer");
}
