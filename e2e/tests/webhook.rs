//! iddecorator end to end: the annotation every workload carries, through the real controllers.
//! Runs against `KUBECONFIG` (contexts admin, alice, bob); `make e2e` provides the local bed.
//! Each test uses its own names and label and deletes what it created, also on failure.
use std::sync::LazyLock;
use std::time::Duration;

use e2e::bed::IddecoratorAction;
use e2e::objects::{self, TEST_LABEL, owned, tfjob_resource, uid_of, user_of, users};
use e2e::rogue::RogueWebhook;
use e2e::wait::{self, Poll};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;
use tokio::sync::RwLock;

/// Controllers react within seconds on the local bed; generous for a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(90);
/// The cronjob controller runs a `* * * * *` schedule at the next full minute.
const CRON: Duration = Duration::from_secs(150);

/// Tests that take iddecorator away hold this exclusively; every other test holds it shared.
static WEBHOOK: LazyLock<RwLock<()>> = LazyLock::new(|| RwLock::new(()));

/// Connect, run `body` with a fresh test id, clean up whatever happened, return the result.
async fn scenario(
    prefix: &str,
    body: impl AsyncFnOnce(&Bed, &TestId) -> Result<(), Error>,
) -> Result<(), Error> {
    let _shared = WEBHOOK.read().await;
    let bed = Bed::connect().await?;
    let id = TestId::new(prefix);
    let result = body(&bed, &id).await;
    id.cleanup(&bed.admin).await;
    result
}

fn api<K>(client: &Client) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(client.clone(), NAMESPACE)
}

/// Wait until `want` objects of kind K labelled for this test are owned by `owner_uid`.
async fn wait_owned<K>(
    admin: &Client,
    id: &TestId,
    owner_uid: &str,
    want: usize,
    what: &str,
) -> Result<Vec<K>, Error>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let api: Api<K> = api(admin);
    let lp = ListParams::default().labels(&id.selector());
    wait::until(what, SETTLE, || async {
        let list = api.list(&lp).await.step(format!("listing {what}"))?;
        let mine = owned(&list.items, owner_uid);
        Ok::<_, Error>(if mine.len() >= want {
            Poll::Ready(mine)
        } else {
            Poll::Pending(format!("{} so far", mine.len()))
        })
    })
    .await
}

/// Every object in `list` carries `user`.
fn all_carry<K: Resource>(list: &[K], user: &str, what: &str) -> Result<(), Error> {
    ensure(
        !list.is_empty() && list.iter().all(|o| user_of(o.meta()) == Some(user)),
        || format!("every {what} should carry {user:?}, got {}", users(list)),
    )
}

#[tokio::test]
async fn deployment_its_replicaset_and_pods_carry_the_submitter() -> Result<(), Error> {
    scenario("dep", async |bed, id| {
        let created = api::<Deployment>(&bed.alice)
            .create(&PostParams::default(), &objects::deployment(id, "bob")?)
            .await
            .step("alice creating a Deployment")?;
        ensure(user_of(&created.metadata) == Some("alice"), || {
            format!("stored Deployment: {:?}", created.metadata.annotations)
        })?;
        let template = created
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref());
        ensure(template.and_then(user_of) == Some("alice"), || {
            format!("stored pod template: {template:?}")
        })?;
        let rs: Vec<ReplicaSet> = wait_owned(
            &bed.admin,
            id,
            &uid_of(&created),
            1,
            "the Deployment's ReplicaSet",
        )
        .await?;
        all_carry(&rs, "alice", "ReplicaSet")?;
        let pods: Vec<Pod> =
            wait_owned(&bed.admin, id, &uid_of(&rs[0]), 2, "the ReplicaSet's pods").await?;
        all_carry(&pods, "alice", "Pod")
    })
    .await
}

#[tokio::test]
async fn bare_pod_carries_the_submitter() -> Result<(), Error> {
    scenario("pod", async |bed, id| {
        let created = api::<Pod>(&bed.alice)
            .create(&PostParams::default(), &objects::pod(id, id.name(), "bob")?)
            .await
            .step("alice creating a Pod")?;
        all_carry(&[created], "alice", "Pod")
    })
    .await
}

#[tokio::test]
async fn job_and_its_pod_carry_the_submitter() -> Result<(), Error> {
    scenario("job", async |bed, id| {
        let created = api::<Job>(&bed.alice)
            .create(&PostParams::default(), &objects::job(id, "bob")?)
            .await
            .step("alice creating a Job")?;
        all_carry(std::slice::from_ref(&created), "alice", "Job")?;
        let pods: Vec<Pod> =
            wait_owned(&bed.admin, id, &uid_of(&created), 1, "the Job's pod").await?;
        all_carry(&pods, "alice", "Pod")
    })
    .await
}

#[tokio::test]
async fn statefulset_pods_carry_the_submitter() -> Result<(), Error> {
    scenario("sts", async |bed, id| {
        let created = api::<StatefulSet>(&bed.alice)
            .create(&PostParams::default(), &objects::statefulset(id, "bob")?)
            .await
            .step("alice creating a StatefulSet")?;
        all_carry(std::slice::from_ref(&created), "alice", "StatefulSet")?;
        // The StatefulSet controller starts pods one at a time, each once the previous is Ready.
        let pods: Vec<Pod> = wait_owned(
            &bed.admin,
            id,
            &uid_of(&created),
            2,
            "the StatefulSet's pods",
        )
        .await?;
        all_carry(&pods, "alice", "Pod")
    })
    .await
}

/// Waits for the real cronjob controller (schedule every minute) rather than creating the Job
/// by hand: that is the path production takes, and on this bed it fires within ~60 s.
#[tokio::test]
async fn cronjob_its_job_and_pod_carry_the_submitter() -> Result<(), Error> {
    scenario("cron", async |bed, id| {
        let created = api::<CronJob>(&bed.alice)
            .create(&PostParams::default(), &objects::cronjob(id, "bob")?)
            .await
            .step("alice creating a CronJob")?;
        all_carry(std::slice::from_ref(&created), "alice", "CronJob")?;
        // The cronjob controller copies jobTemplate.metadata onto each Job it creates.
        let job_meta = created
            .spec
            .as_ref()
            .and_then(|s| s.job_template.metadata.as_ref());
        ensure(job_meta.and_then(user_of) == Some("alice"), || {
            format!("stored CronJob jobTemplate.metadata should carry \"alice\": {job_meta:?}")
        })?;
        let template = created
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .and_then(|s| s.template.metadata.as_ref());
        ensure(template.and_then(user_of) == Some("alice"), || {
            format!("stored CronJob pod template: {template:?}")
        })?;
        let jobs: Vec<Job> = wait::until("the CronJob's first Job", CRON, || async {
            let list = api::<Job>(&bed.admin)
                .list(&ListParams::default())
                .await
                .step("listing Jobs")?;
            let mine = owned(&list.items, &uid_of(&created));
            Ok::<_, Error>(if mine.is_empty() {
                Poll::Pending("no Job yet".into())
            } else {
                Poll::Ready(mine)
            })
        })
        .await?;
        all_carry(&jobs, "alice", "Job of the CronJob")?;
        let pods: Vec<Pod> =
            wait_owned(&bed.admin, id, &uid_of(&jobs[0]), 1, "the CronJob's pod").await?;
        all_carry(&pods, "alice", "Pod of the CronJob")
    })
    .await
}

/// The real Kubeflow training operator (e2e/scripts/training-operator.sh) creates the worker pod
/// from the stored TFJob's template, as its own service account with a controller ownerReference
/// to the TFJob: the pod keeps the submitter stamped into the template.
#[tokio::test]
async fn tfjob_pods_created_by_the_operator_keep_the_submitter() -> Result<(), Error> {
    scenario("tf", async |bed, id| {
        let res = tfjob_resource();
        let created = Api::<DynamicObject>::namespaced_with(bed.alice.clone(), NAMESPACE, &res)
            .create(&PostParams::default(), &objects::tfjob(id, "bob")?)
            .await
            .step("alice creating a TFJob")?;
        all_carry(std::slice::from_ref(&created), "alice", "TFJob")?;
        let template = &created.data["spec"]["tfReplicaSpecs"]["Worker"]["template"];
        let template_user = template["metadata"]["annotations"][objects::USER_ANNOTATION].as_str();
        ensure(template_user == Some("alice"), || {
            format!(
                "stored TFJob worker template annotations: {}",
                template["metadata"]["annotations"]
            )
        })?;
        let pods: Vec<Pod> = wait_owned(
            &bed.admin,
            id,
            &uid_of(&created),
            1,
            "the training operator's worker pod for the TFJob",
        )
        .await?;
        let controller = pods[0]
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        ensure(
            controller.is_some_and(|o| o.kind == "TFJob" && o.uid == uid_of(&created)),
            || format!("the worker pod's controller should be the TFJob, got {controller:?}"),
        )?;
        all_carry(&pods, "alice", "TFJob worker Pod")
    })
    .await
}

/// bob imitates the ReplicaSet controller: an ownerReference to alice's ReplicaSet and her name
/// in the annotation. Only a trusted controller's requests keep the annotation.
#[tokio::test]
async fn pod_imitating_a_controller_carries_its_real_creator() -> Result<(), Error> {
    scenario("fake", async |bed, id| {
        let dep = api::<Deployment>(&bed.alice)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creating a Deployment")?;
        let rs: Vec<ReplicaSet> =
            wait_owned(&bed.admin, id, &uid_of(&dep), 1, "alice's ReplicaSet").await?;
        for controller in [true, false] {
            let mut pod = objects::pod(
                id,
                &format!("{}-{}", id.name(), if controller { "ctl" } else { "ref" }),
                "alice",
            )?;
            pod.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: rs[0].metadata.name.clone().unwrap_or_default(),
                    uid: uid_of(&rs[0]),
                    controller: Some(controller),
                    block_owner_deletion: None,
                },
            ]);
            // Not matched by the ReplicaSet's selector, so the controller does not adopt or delete it.
            pod.metadata.labels = Some([(TEST_LABEL.to_owned(), id.name().to_owned())].into());
            let created = api::<Pod>(&bed.bob)
                .create(&PostParams::default(), &pod)
                .await
                .step(format!(
                    "bob creating a Pod owned by alice's ReplicaSet (controller={controller})"
                ))?;
            all_carry(
                &[created],
                "bob",
                &format!("Pod with ownerReference controller={controller}"),
            )?;
        }
        Ok(())
    })
    .await
}

#[tokio::test]
async fn changing_someone_elses_pod_template_makes_the_updater_the_user() -> Result<(), Error> {
    scenario("upd", async |bed, id| {
        let dep = api::<Deployment>(&bed.alice)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creating a Deployment")?;
        let _ = wait_owned::<ReplicaSet>(&bed.admin, id, &uid_of(&dep), 1, "alice's ReplicaSet").await?;
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "registry.invalid/kube2hadoop-e2e/bobs-code:1"}]}}}});
        let updated = api::<Deployment>(&bed.bob)
            .patch(id.name(), &PatchParams::default(), &Patch::Strategic(&patch))
            .await
            .step("bob changing the image of alice's Deployment")?;
        all_carry(std::slice::from_ref(&updated), "bob", "Deployment after bob's image change")?;
        // The new ReplicaSet is the one whose template has bob's image.
        let new_rs: Vec<ReplicaSet> = wait::until("the ReplicaSet of bob's template", SETTLE, || async {
            let list = api::<ReplicaSet>(&bed.admin).list(&ListParams::default().labels(&id.selector())).await.step("listing ReplicaSets")?;
            let mine: Vec<ReplicaSet> = owned(&list.items, &uid_of(&dep))
                .into_iter()
                .filter(|rs| image_of(rs).is_some_and(|i| i.contains("bobs-code")))
                .collect();
            Ok::<_, Error>(if mine.is_empty() { Poll::Pending(format!("{} ReplicaSets, none with bob's image", list.items.len())) } else { Poll::Ready(mine) })
        })
        .await?;
        all_carry(&new_rs, "bob", "ReplicaSet of bob's template")?;
        let pods: Vec<Pod> = wait_owned(&bed.admin, id, &uid_of(&new_rs[0]), 2, "pods of bob's template").await?;
        all_carry(&pods, "bob", "Pod of bob's template")
    })
    .await
}

fn image_of(rs: &ReplicaSet) -> Option<&str> {
    rs.spec
        .as_ref()?
        .template
        .as_ref()?
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .as_deref()
}

#[tokio::test]
async fn relabelling_someone_elses_workload_keeps_the_owner() -> Result<(), Error> {
    scenario("lbl", async |bed, id| {
        api::<Deployment>(&bed.alice)
            .create(&PostParams::default(), &objects::deployment(id, "alice")?)
            .await
            .step("alice creating a Deployment")?;
        let patch = json!({"metadata": {"labels": {"reviewed-by": "bob"}}});
        let updated = api::<Deployment>(&bed.bob)
            .patch(id.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .step("bob relabelling alice's Deployment")?;
        all_carry(
            std::slice::from_ref(&updated),
            "alice",
            "Deployment after bob's relabel",
        )?;
        let template = updated
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref());
        ensure(template.and_then(user_of) == Some("alice"), || {
            format!("pod template after relabel: {template:?}")
        })
    })
    .await
}

/// With iddecorator down nothing in a covered namespace is admitted undecorated, while the
/// excluded kube-system keeps working. Holds the webhook lock exclusively.
#[tokio::test]
async fn webhook_down_refuses_pods_except_in_excluded_namespaces() -> Result<(), Error> {
    let _exclusive = WEBHOOK.write().await;
    let bed = Bed::connect().await?;
    let id = TestId::new("down");
    bed.iddecorator(IddecoratorAction::Stop).await?;
    let result = async {
        let refused = api::<Pod>(&bed.alice).create(&PostParams::default(), &objects::pod(&id, id.name(), "alice")?).await;
        ensure(matches!(&refused, Err(kube::Error::Api(s)) if s.message.contains("iddecorator")), || {
            format!("pod creation in {NAMESPACE} with iddecorator down should fail calling its webhook, got {refused:?}")
        })?;
        let mut system_pod = objects::pod(&id, id.name(), "alice")?;
        system_pod.metadata.namespace = Some("kube-system".into());
        let system = Api::<Pod>::namespaced(bed.admin.clone(), "kube-system");
        system.create(&PostParams::default(), &system_pod).await.step("admin creating a pod in kube-system with iddecorator down")?;
        system.delete(id.name(), &DeleteParams::background()).await.step("deleting the kube-system pod")?;
        Ok::<_, Error>(())
    }
    .await;
    let restarted = bed.iddecorator(IddecoratorAction::Start).await;
    id.cleanup(&bed.admin).await;
    result?;
    restarted?;
    // Back in service: the next pod is admitted and decorated.
    let again = TestId::new("back");
    let created = api::<Pod>(&bed.alice)
        .create(
            &PostParams::default(),
            &objects::pod(&again, again.name(), "bob")?,
        )
        .await;
    again.cleanup(&bed.admin).await;
    let created = created.step("alice creating a pod after iddecorator restarted")?;
    all_carry(&[created], "alice", "Pod after restart")
}

/// Another mutating webhook rewrites the annotation after ours, also on reinvocation: the
/// validating webhook, which runs after all mutation, refuses the object.
#[tokio::test]
async fn annotation_forged_by_a_later_webhook_is_refused_by_validation() -> Result<(), Error> {
    scenario("rogue", async |bed, id| {
        let rogue = RogueWebhook::start("mallory").await?;
        let name = format!("zz-e2e-rogue-{}", id.name());
        let configs = Api::<MutatingWebhookConfiguration>::all(bed.admin.clone());
        configs
            .create(&PostParams::default(), &rogue.registration(&name, TEST_LABEL, id.name())?)
            .await
            .step("registering the rogue webhook")?;
        let result = api::<Pod>(&bed.alice).create(&PostParams::default(), &objects::pod(id, id.name(), "alice")?).await;
        let _ = configs.delete(&name, &DeleteParams::default()).await;
        drop(rogue);
        ensure(
            matches!(&result, Err(kube::Error::Api(s)) if s.message.contains("validate.iddecorator.kube2hadoop.io")),
            || format!("the forged pod should be refused by iddecorator's validating webhook, got {result:?}"),
        )
    })
    .await
}
