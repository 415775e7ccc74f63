//! Issue 13, iddecorator's side, on the real control plane: bob (edit in team-a) tries to get
//! alice's credentials
//! - by laundering her name through the training operator (an MXJob it serves, or an owner
//!   kind it does not manage),
//! - by changing what runs in her running pod, or exec/attach/port-forward into it,
//! - by minting a service-account token for our audience bound to her pod.
//!
//! Each attack is refused with iddecorator's own message, and the legitimate path (alice on her
//! own pod, an admin, the pod's node) still works. Runs against `KUBECONFIG` (contexts admin,
//! alice, bob); `make e2e` provides the local bed. Each test uses its own names and label and
//! deletes what it created, also on failure.
use std::time::Duration;

use e2e::kubectl::Kubectl;
use e2e::objects::{self, TEST_LABEL, USER_ANNOTATION, uid_of, user_of};
use e2e::pods::{bound_token, node_client, running, token_request};
use e2e::wait::{self, Poll};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::{Client, Resource};
use serde_json::{Value, json};

const TRAINING_OPERATOR: &str = "system:serviceaccount:kubeflow:training-operator";
const MXJOB_CRD: &str = "mxjobs.kubeflow.org";
/// Pods run on kwok within seconds; generous for a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(90);
/// Set by up.sh when the real training operator runs beside the bed.
const OPERATOR_ENV: &str = "K2H_E2E_TRAINING_OPERATOR_SCRIPT";

/// Connect, run `body` with a fresh test id, clean up whatever happened, return the result.
async fn scenario(
    prefix: &str,
    body: impl AsyncFnOnce(&Bed, &TestId) -> Result<(), Error>,
) -> Result<(), Error> {
    let bed = Bed::connect().await?;
    let id = TestId::new(prefix);
    let result = body(&bed, &id).await;
    id.cleanup(&bed.admin).await;
    result
}

fn pods(client: &Client) -> Api<Pod> {
    Api::namespaced(client.clone(), NAMESPACE)
}

fn decode<K: serde::de::DeserializeOwned>(kind: &'static str, v: Value) -> Result<K, Error> {
    serde_json::from_value(v).map_err(|source| Error::Manifest { kind, source })
}

/// The message of a refused API call, or a failure if it was not refused.
fn refusal<T: std::fmt::Debug>(
    result: Result<T, kube::Error>,
    what: &str,
) -> Result<String, Error> {
    match result {
        Ok(v) => Err(Error::Check(format!("{what} should be refused, got {v:?}"))),
        Err(e) => Ok(e.to_string()),
    }
}

/// alice's bare pod, running on a kwok node.
async fn alices_running_pod(bed: &Bed, id: &TestId) -> Result<Pod, Error> {
    let name = format!("{}-alice", id.name());
    pods(&bed.alice)
        .create(&PostParams::default(), &objects::pod(id, &name, "alice")?)
        .await
        .step("alice creating her pod")?;
    let (pod, _) = running(&bed.admin, NAMESPACE, &name, SETTLE).await?;
    ensure(user_of(&pod.metadata) == Some("alice"), || {
        format!("alice's pod carries {:?}", user_of(&pod.metadata))
    })?;
    Ok(pod)
}

// --- 1. laundering through a trusted controller --------------------------------------------

fn mxjob_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeflow.org", "v1", "MXJob"),
        "mxjobs",
    )
}

/// The MXJob CRD as the training operator ships it (installed by up.sh); where it is missing, a
/// minimal one with the same name, group and version (left in place: other runs may use it).
async fn ensure_mxjob_crd(admin: &Client) -> Result<(), Error> {
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    if crds
        .get_opt(MXJOB_CRD)
        .await
        .step("looking up the MXJob CRD")?
        .is_none()
    {
        let crd = decode(
            "CustomResourceDefinition",
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": MXJOB_CRD},
                "spec": {
                    "group": "kubeflow.org",
                    "scope": "Namespaced",
                    "names": {"kind": "MXJob", "listKind": "MXJobList", "plural": "mxjobs", "singular": "mxjob"},
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        }}},
                        "subresources": {"status": {}},
                    }],
                },
            }),
        )?;
        crds.create(&PostParams::default(), &crd)
            .await
            .step("creating a minimal MXJob CRD")?;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NAMESPACE, &mxjob_resource());
    wait::until("the MXJob kind to be served", SETTLE, || async {
        Ok::<_, Error>(match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => Poll::Ready(()),
            Err(e) => Poll::Pending(e.to_string()),
        })
    })
    .await
}

/// An MXJob whose scheduler and worker templates claim `claimed_user` (container `mxnet`, as
/// the operator expects).
fn mxjob(id: &TestId, claimed_user: &str) -> Result<DynamicObject, Error> {
    let mut template = objects::pod_template(id, claimed_user, "Never");
    template["spec"]["containers"][0]["name"] = json!("mxnet");
    let replica =
        |n: u32| json!({"replicas": n, "restartPolicy": "Never", "template": template.clone()});
    decode(
        "MXJob",
        json!({
            "apiVersion": "kubeflow.org/v1",
            "kind": "MXJob",
            "metadata": {
                "name": id.name(), "namespace": NAMESPACE,
                "labels": {TEST_LABEL: id.name()},
                "annotations": {USER_ANNOTATION: claimed_user},
            },
            "spec": {"jobMode": "MXTrain", "mxReplicaSpecs": {"Scheduler": replica(1), "Worker": replica(1)}},
        }),
    )
}

/// A pod made from `template` as a controller makes it, owned by `owner` (a controller
/// reference), named `name`.
fn pod_from(template: &Value, name: &str, owner: Value) -> Result<Pod, Error> {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": template["metadata"].clone(),
        "spec": template["spec"].clone(),
    });
    pod["metadata"]["name"] = json!(name);
    pod["metadata"]["ownerReferences"] = json!([owner]);
    decode("Pod", pod)
}

/// bob's MXJob with alice's name is stamped bob everywhere; the operator's pods for it carry
/// bob; and the operator creating a pod for a kind it does not manage (a ConfigMap) with alice
/// in it gets its own name. Before owner kinds were checked, MXJob was not stamped and the operator kept any
/// incoming value on any controller-owned pod: the pods carried alice.
#[tokio::test]
async fn a_forged_user_is_not_laundered_through_the_training_operator() -> Result<(), Error> {
    scenario("mx", async |bed, id| {
        ensure_mxjob_crd(&bed.admin).await?;
        let jobs: Api<DynamicObject> =
            Api::namespaced_with(bed.bob.clone(), NAMESPACE, &mxjob_resource());
        let result = async {
            let created = jobs
                .create(&PostParams::default(), &mxjob(id, "alice")?)
                .await
                .step("bob creating an MXJob that claims alice")?;
            ensure(user_of(&created.metadata) == Some("bob"), || {
                format!("stored MXJob carries {:?}", user_of(&created.metadata))
            })?;
            let specs = &created.data["spec"]["mxReplicaSpecs"];
            for replica in ["Scheduler", "Worker"] {
                let u = &specs[replica]["template"]["metadata"]["annotations"][USER_ANNOTATION];
                ensure(u == "bob", || {
                    format!("stored {replica} template carries {u}")
                })?;
            }

            // The operator's service account creating the worker pod from the stored template.
            let operator = bed.impersonating(TRAINING_OPERATOR).await?;
            let worker = pod_from(
                &specs["Worker"]["template"],
                &format!("{}-imitated-0", id.name()),
                json!({"apiVersion": "kubeflow.org/v1", "kind": "MXJob", "name": id.name(),
                       "uid": uid_of(&created), "controller": true, "blockOwnerDeletion": true}),
            )?;
            let pod = pods(&operator)
                .create(&PostParams::default(), &worker)
                .await
                .step("the training operator creating the MXJob's pod")?;
            ensure(user_of(&pod.metadata) == Some("bob"), || {
                format!("the MXJob's pod carries {:?}", user_of(&pod.metadata))
            })?;

            // The operator making a pod for an owner kind it does not manage keeps nothing.
            let cm: ConfigMap = decode(
                "ConfigMap",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": id.name(), "labels": {TEST_LABEL: id.name()}}}),
            )?;
            let cm = Api::<ConfigMap>::namespaced(bed.bob.clone(), NAMESPACE)
                .create(&PostParams::default(), &cm)
                .await
                .step("bob creating a ConfigMap")?;
            let forged = objects::pod_template(id, "alice", "Never");
            let odd = pod_from(
                &forged,
                &format!("{}-cm-0", id.name()),
                json!({"apiVersion": "v1", "kind": "ConfigMap", "name": id.name(),
                       "uid": uid_of(&cm), "controller": true}),
            )?;
            let pod = pods(&operator)
                .create(&PostParams::default(), &odd)
                .await
                .step("the training operator creating a pod owned by a ConfigMap")?;
            ensure(user_of(&pod.metadata) == Some(TRAINING_OPERATOR), || {
                format!(
                    "a pod the operator made for a ConfigMap carries {:?}, not its own name",
                    user_of(&pod.metadata)
                )
            })?;

            // Where the real operator runs, its own pods for bob's job carry bob too.
            if std::env::var_os(OPERATOR_ENV).is_some() {
                let uid = uid_of(&created);
                let mine = wait::until(
                    "the training operator's pods for the MXJob",
                    SETTLE,
                    || async {
                        let list = pods(&bed.admin)
                            .list(&ListParams::default().labels(&id.selector()))
                            .await
                            .step("listing the test's pods")?;
                        let by_operator: Vec<Pod> = objects::owned(&list.items, &uid)
                            .into_iter()
                            .filter(|p| {
                                !p.metadata
                                    .name
                                    .as_deref()
                                    .unwrap_or("")
                                    .contains("imitated")
                            })
                            .collect();
                        Ok::<_, Error>(if by_operator.len() >= 2 {
                            Poll::Ready(by_operator)
                        } else {
                            Poll::Pending(format!("{} so far", by_operator.len()))
                        })
                    },
                )
                .await?;
                ensure(
                    mine.iter().all(|p| user_of(&p.metadata) == Some("bob")),
                    || format!("the operator's pods carry {}", objects::users(&mine)),
                )?;
            }
            Ok(())
        }
        .await;
        let _ =
            Api::<DynamicObject>::namespaced_with(bed.admin.clone(), NAMESPACE, &mxjob_resource())
                .delete(id.name(), &DeleteParams::background())
                .await;
        let _ = Api::<ConfigMap>::namespaced(bed.admin.clone(), NAMESPACE)
            .delete(id.name(), &DeleteParams::background())
            .await;
        result
    })
    .await
}

// --- 4. nobody else changes what runs in, or reaches into, alice's pod ----------------------

fn image_patch(image: &str) -> Value {
    json!({"spec": {"containers": [{"name": "main", "image": image}]}})
}

/// Before this defence bob's image change was admitted (and re-stamped bob, while the restarted
/// container kept alice's token file).
#[tokio::test]
async fn only_the_pods_user_changes_what_runs_in_it() -> Result<(), Error> {
    scenario("img", async |bed, id| {
        let pod = alices_running_pod(bed, id).await?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pp = PatchParams::default();
        let bobs = pods(&bed.bob)
            .patch(
                &name,
                &pp,
                &Patch::Strategic(&image_patch("registry.invalid/bob:1")),
            )
            .await;
        let message = refusal(bobs, "bob changing the image of alice's pod")?;
        ensure(
            message.contains("bob may not change what runs in this pod: it belongs to alice"),
            || format!("bob's image change was refused with something else: {message}"),
        )?;
        let stored = pods(&bed.admin)
            .get(&name)
            .await
            .step("reading alice's pod")?;
        ensure(user_of(&stored.metadata) == Some("alice"), || {
            format!("alice's pod now carries {:?}", user_of(&stored.metadata))
        })?;
        let alices = pods(&bed.alice)
            .patch(
                &name,
                &pp,
                &Patch::Strategic(&image_patch("registry.invalid/alice:2")),
            )
            .await
            .step("alice changing the image of her own pod")?;
        ensure(user_of(&alices.metadata) == Some("alice"), || {
            format!(
                "after alice's change her pod carries {:?}",
                user_of(&alices.metadata)
            )
        })
    })
    .await
}

fn services_patch(services: &str) -> Value {
    json!({"metadata": {"annotations": {"kube2hadoop.io/services": services}}})
}

/// `kube2hadoop.io/services` decides which of alice's tokens her pod's file holds: a co-tenant
/// may not widen (or narrow) it on her running pod, and a value naming no known service is
/// refused where its writer sees it.
#[tokio::test]
async fn only_the_pods_user_changes_its_services_and_only_to_known_ones() -> Result<(), Error> {
    scenario("svc", async |bed, id| {
        let pod = alices_running_pod(bed, id).await?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let pp = PatchParams::default();
        let bobs = pods(&bed.bob)
            .patch(&name, &pp, &Patch::Merge(&services_patch("hdfs,kms,yarn")))
            .await;
        let message = refusal(bobs, "bob changing the services of alice's pod")?;
        ensure(
            message.contains("bob may not change what runs in this pod: it belongs to alice"),
            || format!("bob's services change was refused with something else: {message}"),
        )?;
        let stored = pods(&bed.admin)
            .get(&name)
            .await
            .step("reading alice's pod")?;
        let services = stored
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kube2hadoop.io/services"));
        ensure(services.is_none(), || {
            format!("alice's pod now asks for {services:?}")
        })?;
        let unknown = pods(&bed.alice)
            .patch(&name, &pp, &Patch::Merge(&services_patch("hdfs,ftp")))
            .await;
        let message = refusal(unknown, "alice naming an unknown service")?;
        ensure(
            message.contains("kube2hadoop.io/services at /metadata/annotations")
                && message.contains("\"ftp\""),
            || format!("the unknown service was refused with something else: {message}"),
        )?;
        pods(&bed.alice)
            .patch(&name, &pp, &Patch::Merge(&services_patch("hdfs")))
            .await
            .step("alice choosing hdfs for her own pod")?;
        Ok(())
    })
    .await
}

/// exec, attach, port-forward and an HTTP proxy request by `context` into `pod`; returns
/// (command, success, kubectl stderr) for each. Past admission they fail on the bed: kwok's
/// nodes serve no streams, and the apiserver proxies to no kwok pod address.
async fn reach_into(context: &str, pod: &str) -> Result<Vec<(String, bool, String)>, Error> {
    let k = Kubectl::from_env().context(context);
    let mut out = Vec::new();
    // The apiserver's HTTP proxy to a server in the pod (say a notebook that serves files).
    let proxy = format!("/api/v1/namespaces/{NAMESPACE}/pods/{pod}:8080/proxy/");
    for args in [
        vec!["exec", pod, "--", "cat", "/var/run/secrets/hadoop/token"],
        vec!["attach", pod],
        vec!["port-forward", pod, ":8080"],
        vec!["get", "--raw", &proxy],
    ] {
        let mut full = vec!["-n", NAMESPACE, "--request-timeout=20s"];
        full.extend(&args);
        let o = k.run(&full, None).await?;
        let what = if args[0] == "get" { "proxy" } else { args[0] };
        out.push((what.to_owned(), o.success, o.stderr));
    }
    Ok(out)
}

const ACCESS_WEBHOOK: &str = "access.iddecorator.kube2hadoop.io";

/// Before this defence no webhook saw CONNECT: bob's exec reached the kubelet. Before the red
/// team's report, `pods/<name>:<port>/proxy` was not registered and reached the pod too.
#[tokio::test]
async fn only_the_pods_user_and_admins_exec_attach_or_port_forward() -> Result<(), Error> {
    scenario("exec", async |bed, id| {
        let pod = alices_running_pod(bed, id).await?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        for (cmd, success, stderr) in reach_into("bob", &name).await? {
            ensure(
                !success
                    && stderr.contains(ACCESS_WEBHOOK)
                    && stderr.contains(
                        "only alice (the pod's kube2hadoop.io/user) or a pod-access admin",
                    )
                    && stderr.contains("bob may not"),
                || format!("bob's {cmd} was not refused by iddecorator: {stderr}"),
            )?;
        }
        // alice and the admin pass admission; the kwok node then cannot serve the stream.
        for who in ["alice", "admin"] {
            for (cmd, _, stderr) in reach_into(who, &name).await? {
                ensure(
                    !stderr.contains(ACCESS_WEBHOOK) && !stderr.contains("denied the request"),
                    || format!("{who}'s {cmd} was refused at admission: {stderr}"),
                )?;
            }
        }
        Ok(())
    })
    .await
}

// --- 5. only kubelets mint tokens for our audience ------------------------------------------

async fn mint(client: &Client, pod: &Pod, audience: &str) -> Result<TokenRequest, kube::Error> {
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .create_token_request(&sa, &PostParams::default(), &token_request(pod, audience))
        .await
}

/// Before this defence, `kubectl create token default --audience kube2hadoop --bound-object-kind
/// Pod --bound-object-name <alice's pod>` as bob gave a token token-service accepted.
#[tokio::test]
async fn only_the_pods_node_mints_a_token_for_our_audience() -> Result<(), Error> {
    scenario("tok", async |bed, id| {
        let pod = alices_running_pod(bed, id).await?;
        for (who, client) in [
            ("bob", &bed.bob),
            ("alice", &bed.alice),
            ("admin", &bed.admin),
        ] {
            let message = refusal(
                mint(client, &pod, "kube2hadoop").await,
                &format!("{who} minting a kube2hadoop token"),
            )?;
            ensure(
                message.contains(
                    "only kubelets may request service-account tokens for audience kube2hadoop",
                ),
                || format!("{who}'s token request was refused with something else: {message}"),
            )?;
        }
        // With kubectl, as the issue reproduced it.
        let name = pod.metadata.name.clone().unwrap_or_default();
        let o = Kubectl::from_env()
            .context("bob")
            .run(
                &[
                    "-n",
                    NAMESPACE,
                    "create",
                    "token",
                    "default",
                    "--audience",
                    "kube2hadoop",
                    "--bound-object-kind",
                    "Pod",
                    "--bound-object-name",
                    &name,
                ],
                None,
            )
            .await?;
        ensure(
            !o.success && o.stderr.contains("only kubelets may request"),
            || format!("bob's `kubectl create token`: {} {}", o.status, o.stderr),
        )?;
        // The pod's node may (what its kubelet does for the projected volume) ...
        let token = bound_token(&bed.admin, &pod).await?;
        ensure(!token.is_empty(), || "the node got an empty token".into())?;
        // ... but another node may not (Node authorizer / NodeRestriction, not ours).
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let other = if node == "kwok-node-0" {
            "kwok-node-1"
        } else {
            "kwok-node-0"
        };
        let other_node = node_client(other).await?;
        refusal(
            mint(&other_node, &pod, "kube2hadoop").await,
            "another node minting for alice's pod",
        )?;
        // Tokens for other audiences are not ours to judge: bob's edit role allows them.
        let vault = mint(&bed.bob, &pod, "vault")
            .await
            .step("bob minting a token for another audience")?;
        ensure(vault.status.is_some_and(|s| !s.token.is_empty()), || {
            "bob's token for another audience is empty".into()
        })
    })
    .await
}

#[test]
fn resources_are_named_as_the_webhooks_expect() {
    assert_eq!(Pod::plural(&()), "pods");
    assert_eq!(mxjob_resource().plural, "mxjobs");
}
