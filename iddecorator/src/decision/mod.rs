//! The admission decision: a pure function of (request, policy).
//!
//! Both endpoints compute one `Plan`: for every place `kube2hadoop.io/user` belongs (the
//! object's metadata and each pod template), the value it carries now and the value it should
//! carry. `/mutate` turns the difference into a JSON patch; `/validate` denies when there is any
//! difference left after all mutating webhooks ran. The rules themselves are in `rules`.
//!
//! The plan also carries the injection operations (`crate::injection`): `/mutate`
//! appends them; `/validate` tolerates injected objects and denies only on the user
//! annotation, or when injection itself is impossible (a reserved name in the user's shape).
//!
//! `/validate` also answers two requests that carry no workload: CONNECT into a pod
//! (`access`, which needs the pod the shell read) and TokenRequests for our audience (`tokens`).
mod access;
mod observe;
mod patch;
mod rules;
mod tokens;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod injection_tests;
#[cfg(test)]
mod proptests;

use crate::injection::{self, Conflict};
use crate::pointer::Path;
use crate::policy::Policy;
use crate::username::UsernameError;
pub use access::{PodLookup, pod_to_read};
use k2h_contract::annotations::{INJECT, SERVICES, STAMP, USER};
use k2h_contract::kinds::group_of;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, Operation},
};
use observe::{Malformed, observe, runnable};
use rules::{Facts, Rule};
use serde_json::Value;

/// What the webhook answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Admit, applying `patch` (empty when nothing changes).
    Allow { patch: json_patch::Patch },
    /// Refuse with a reason a user can act on.
    Deny { reason: String },
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("{0} request carries no object; iddecorator cannot stamp it")]
    NoObject(&'static str),
    #[error("UPDATE request carries no oldObject; iddecorator cannot tell what changed")]
    NoOldObject,
    #[error("cannot read the object as JSON: {0}")]
    Unreadable(String),
    #[error("{kind} cannot be stamped with {USER}: {source}")]
    Malformed {
        kind: String,
        #[source]
        source: Malformed,
    },
    #[error(transparent)]
    Username(#[from] UsernameError),
    #[error("{kind} asks for {INJECT} but the fetcher cannot be injected: {source}")]
    Injection {
        kind: String,
        #[source]
        source: Conflict,
    },
    #[error(
        "only {owner} (the pod's {USER}), a trusted controller or a pod-access admin may add ephemeral containers to this pod; {requester} may not"
    )]
    Ephemeral { owner: String, requester: String },
    #[error(
        "this pod has no {USER}, so only a trusted controller or a pod-access admin may add ephemeral containers to it; {requester} may not"
    )]
    EphemeralUnowned { requester: String },
    #[error(
        "{requester} may not change what runs in this pod: it belongs to {owner} (its {USER}) and its containers may hold {owner}'s credentials; only {owner}, the controller that manages the pod, or a pod-access admin (podAccessAdmins in the iddecorator policy) may. Create a pod of your own instead"
    )]
    PodTakeover { owner: String, requester: String },
    #[error("{SERVICES} at {path} {source}")]
    Services {
        path: String,
        #[source]
        source: k2h_contract::services::ServicesError,
    },
    #[error(
        "{key} at {path} is {actual} but iddecorator decided {desired}; a mutating webhook after iddecorator changed it, remove that change"
    )]
    Tampered {
        key: &'static str,
        path: String,
        actual: String,
        desired: String,
    },
}

/// One annotation site: where it is, and its user and stamp as received and as decided.
#[derive(Debug)]
struct Site {
    path: Path,
    user: Option<String>,
    want_user: Option<String>,
    stamp: Option<String>,
    want_stamp: Option<String>,
}

/// The annotation state of one admitted object.
#[derive(Debug)]
enum Plan {
    /// Nothing for us here: allow unchanged.
    Pass,
    /// `object` as received, per site (current value, desired value), and the injection
    /// operations (touching only `spec`s, so independent of the annotation sites).
    Stamp {
        object: Value,
        sites: Vec<Site>,
        inject: Vec<json_patch::PatchOperation>,
    },
}

/// `/mutate`: stamp the submitter (or keep a trusted controller's value).
pub fn mutate(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> Decision {
    match plan(req, policy) {
        Ok(Plan::Pass) => allow(json_patch::Patch(Vec::new())),
        Ok(Plan::Stamp {
            object,
            sites,
            inject,
        }) => {
            let want: Vec<_> = sites
                .into_iter()
                .map(|s| (s.path, vec![(USER, s.want_user), (STAMP, s.want_stamp)]))
                .collect();
            let mut patch = patch::derive_keys(&object, &want);
            patch.0.extend(inject);
            allow(patch)
        }
        Err(refusal) => deny(refusal),
    }
}

/// `/validate` without a pod read by the shell: a CONNECT into a pod is then denied (fail
/// closed). See [`validate_with`].
pub fn validate(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> Decision {
    validate_with(req, policy, None)
}

/// Requests only `/validate` decides (its own webhook entries register them; `/mutate` lets
/// them pass unchanged): a CONNECT into a pod and a TokenRequest.
pub fn validate_only(req: &AdmissionRequest<DynamicObject>) -> bool {
    pod_to_read(req).is_some() || tokens::is_token_request(req)
}

/// `/validate`: runs after every mutating webhook; denies objects whose annotations differ
/// from what [`mutate`] decided. A CONNECT into a pod ([`pod_to_read`]) is decided on `pod`,
/// what the shell found when it read that pod; a TokenRequest on its audience and requester.
pub fn validate_with(
    req: &AdmissionRequest<DynamicObject>,
    policy: &Policy,
    pod: Option<&PodLookup>,
) -> Decision {
    if pod_to_read(req).is_some() {
        return access::connect(req, policy, pod);
    }
    if tokens::is_token_request(req) {
        return tokens::decide(req);
    }
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let differences = match plan(req, policy) {
        Ok(Plan::Pass) => Vec::new(),
        Ok(Plan::Stamp { sites, .. }) => sites
            .into_iter()
            .filter(|s| {
                // Two stamps that both prove the decided user are the same proof: during a key
                // rotation the replica that mutated may sign with another key than this one.
                !(s.user == s.want_user
                    && s.stamp != s.want_stamp
                    && s.want_user.as_deref().is_some_and(|user| {
                        [&s.stamp, &s.want_stamp].iter().all(|stamp| {
                            stamp
                                .as_deref()
                                .is_some_and(|st| policy.verifies(namespace, user, st))
                        })
                    }))
            })
            .flat_map(|s| {
                [
                    (USER, s.path.clone(), s.user, s.want_user),
                    (STAMP, s.path, s.stamp, s.want_stamp),
                ]
            })
            .filter(|(_, _, actual, desired)| actual != desired)
            .map(|(key, path, actual, desired)| {
                Refusal::Tampered {
                    key,
                    path: path.keys(&["metadata", "annotations", key]).to_string(),
                    // A stamp is a secret-derived tag, not a secret, but it means nothing to
                    // a reader: say only whether it is there.
                    actual: if key == STAMP {
                        presence(actual.as_deref(), "another value")
                    } else {
                        shown(actual.as_deref())
                    },
                    desired: if key == STAMP {
                        presence(desired.as_deref(), "its signed value")
                    } else {
                        shown(desired.as_deref())
                    },
                }
                .to_string()
            })
            .collect(),
        Err(refusal) => vec![refusal.to_string()],
    };
    if differences.is_empty() {
        allow(json_patch::Patch(Vec::new()))
    } else {
        Decision::Deny {
            reason: differences.join("; "),
        }
    }
}

fn allow(patch: json_patch::Patch) -> Decision {
    Decision::Allow { patch }
}

fn deny(refusal: Refusal) -> Decision {
    Decision::Deny {
        reason: refusal.to_string(),
    }
}

fn shown(v: Option<&str>) -> String {
    v.map_or_else(|| "absent".to_owned(), |v| format!("`{v}`"))
}

fn presence(v: Option<&str>, present: &str) -> String {
    v.map_or_else(|| "absent".to_owned(), |_| present.to_owned())
}

fn plan(req: &AdmissionRequest<DynamicObject>, policy: &Policy) -> Result<Plan, Refusal> {
    let Some(workload) = policy.workload(&req.kind.group, &req.kind.kind) else {
        return Ok(Plan::Pass);
    };
    let update = match req.operation {
        Operation::Create => false,
        Operation::Update => true,
        Operation::Delete | Operation::Connect => return Ok(Plan::Pass),
    };
    let username = req.user_info.username.as_deref();
    match req.sub_resource.as_deref() {
        None | Some("") => {}
        Some("ephemeralcontainers") if workload.is_pod() => {
            let trusted = policy.is_trusted_controller(username);
            return ephemeral(req, policy, trusted).map(|()| Plan::Pass);
        }
        Some(_) => return Ok(Plan::Pass),
    }
    let op = if update { "UPDATE" } else { "CREATE" };
    let new = req.object.as_ref().ok_or(Refusal::NoObject(op))?;
    let object = to_json(new)?;
    let malformed = |source| Refusal::Malformed {
        kind: req.kind.kind.clone(),
        source,
    };
    let now = observe(&object, workload).map_err(malformed)?;
    // Kubernetes allows one controller reference; its kind must be one the requester manages.
    let manages_owner = new
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .is_some_and(|r| policy.manages(username, group_of(&r.api_version), &r.kind));
    // A Pod's spec cannot change after creation; templates can, and are injected on UPDATE
    // too (idempotently). A template a trusted controller copied from its owner is left as
    // the owner has it: the deployment controller compares each ReplicaSet's template with the
    // Deployment's, and one we injected into would never match, so it would create another
    // ReplicaSet forever. The owner's template is injected when its user submits it; the
    // pods are injected when the controller creates them.
    let pod_sites: Vec<Path> = match (workload.is_pod(), update) {
        (true, false) => vec![Path::root()],
        (true, true) => Vec::new(),
        (false, _) if manages_owner => Vec::new(),
        (false, _) => now.sites.iter().skip(1).map(|(p, _)| p.clone()).collect(),
    };
    let inject = injection::ops(&object, &pod_sites, policy.injection()).map_err(|source| {
        Refusal::Injection {
            kind: req.kind.kind.clone(),
            source,
        }
    })?;
    let (old, runnable_changed) = if update {
        let old = to_json(req.old_object.as_ref().ok_or(Refusal::NoOldObject)?)?;
        // Compared as it will be stored: re-sending a manifest without the injected parts
        // changes nothing that runs.
        let mut injected = object.clone();
        json_patch::patch(&mut injected, &inject)
            .map_err(|e| Refusal::Unreadable(format!("injection does not apply: {e}")))?;
        let changed = runnable(&old, workload).map_err(malformed)?
            != runnable(&injected, workload).map_err(malformed)?;
        (Some(observe(&old, workload).map_err(malformed)?), changed)
    } else {
        (None, false)
    };
    let rule = rules::choose(Facts {
        update,
        manages_owner,
        runnable_changed,
    });
    // The username is mapped only when it is written, so a relabel-only UPDATE by an
    // unmappable user is still answered by restoring the old values.
    let submitter = match rule {
        Rule::Submitter => Some(policy.map_username(username)?),
        Rule::KeepIncoming | Rule::RestoreOld => None,
    };
    // What a submitter writes is checked now, where they see the answer, rather than when a
    // pod asks token-service; what a controller copies was checked when it was written.
    if rule == Rule::Submitter {
        check_services(&object, &now.sites)?;
    }
    // A Pod's new spec runs with the memory volume and token file it already has, so stamping
    // the updater would hand them the owner's credentials: only the owner (or an admin) may.
    if let (true, Some(requester), Some(old)) = (workload.is_pod(), &submitter, &old)
        && let Some(owner) = old.value_at(&Path::root())
        && owner != requester
        && !policy.is_pod_access_admin(username, groups(req))
    {
        return Err(Refusal::PodTakeover {
            owner: owner.to_owned(),
            requester: requester.clone(),
        });
    }
    // The namespace the stamp binds the user to is the one the apiserver admits into.
    let namespace = req.namespace.as_deref().unwrap_or_default();
    let signed = submitter
        .as_deref()
        .and_then(|u| policy.stamp(namespace, u));
    let desired = rules::desired(
        rule,
        submitter.as_deref(),
        signed.as_deref(),
        &now,
        old.as_ref(),
    );
    let sites = now
        .sites
        .into_iter()
        .zip(now.stamps)
        .zip(desired)
        .map(|(((path, user), stamp), (want_user, want_stamp))| Site {
            path,
            user,
            want_user,
            stamp,
            want_stamp,
        })
        .collect();
    Ok(Plan::Stamp {
        object,
        sites,
        inject,
    })
}

/// Every `kube2hadoop.io/services` the object carries (its own metadata, each template) must
/// name services kube2hadoop knows. Whether this cluster's token service issues them is
/// token-service's to say.
fn check_services(object: &Value, sites: &[(Path, Option<String>)]) -> Result<(), Refusal> {
    for (site, _) in sites {
        let at = site.keys(&["metadata", "annotations", SERVICES]);
        if let Some(value) = at.lookup(object).and_then(Value::as_str) {
            k2h_contract::services::parse(value).map_err(|source| Refusal::Services {
                path: site.keys(&["metadata", "annotations"]).to_string(),
                source,
            })?;
        }
    }
    Ok(())
}

/// `pods/ephemeralcontainers`: adding a container to a running pod runs code with its tokens,
/// so only the pod's user (or a trusted controller, or a pod-access admin, who may exec into
/// it anyway) may.
fn ephemeral(
    req: &AdmissionRequest<DynamicObject>,
    policy: &Policy,
    trusted: bool,
) -> Result<(), Refusal> {
    if trusted || policy.is_pod_access_admin(req.user_info.username.as_deref(), groups(req)) {
        return Ok(());
    }
    let pod = req
        .old_object
        .as_ref()
        .or(req.object.as_ref())
        .ok_or(Refusal::NoObject("ephemeralcontainers"))?;
    let owner = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(USER))
        .cloned();
    let requester = policy.map_username(req.user_info.username.as_deref())?;
    match owner {
        Some(owner) if owner == requester => Ok(()),
        Some(owner) => Err(Refusal::Ephemeral { owner, requester }),
        None => Err(Refusal::EphemeralUnowned { requester }),
    }
}

/// The requester's groups (none when the apiserver sent none).
fn groups(req: &AdmissionRequest<DynamicObject>) -> &[String] {
    req.user_info.groups.as_deref().unwrap_or_default()
}

fn to_json(object: &DynamicObject) -> Result<Value, Refusal> {
    serde_json::to_value(object).map_err(|e| Refusal::Unreadable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;
    use serde_json::json;

    const CRONJOB_CONTROLLER: &str = "system:serviceaccount:kube-system:cronjob-controller";

    fn all_users(obj: &Value, kind_name: &str) -> Vec<Option<String>> {
        let mut sites = vec![""];
        sites.extend(kind(kind_name).4.iter());
        sites
            .iter()
            .map(|s| user_at(obj, s).map(str::to_owned))
            .collect()
    }

    #[test]
    fn create_overwrites_fake_annotations_on_every_kind() {
        for k in KINDS {
            let obj = workload(k.2, Some("mallory"), "busybox");
            let after = admit(&create(k.2, ALICE, obj), &policy());
            let users = all_users(&after, k.2);
            assert_eq!(users.len(), 1 + k.4.len());
            assert!(
                users.iter().all(|u| u.as_deref() == Some(ALICE)),
                "{}: {after}",
                k.2
            );
            // Other annotations survive.
            for site in k.4 {
                assert_eq!(
                    after.pointer(&format!("{site}/metadata/annotations/team")),
                    Some(&json!("ml"))
                );
            }
        }
    }

    #[test]
    fn create_adds_missing_maps_on_every_kind() {
        for k in KINDS {
            let mut obj = workload(k.2, None, "busybox");
            for site in k.4 {
                obj.pointer_mut(site)
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("metadata");
            }
            obj.as_object_mut().unwrap().remove("metadata");
            let after = admit(&create(k.2, ALICE, obj), &policy());
            assert!(
                all_users(&after, k.2)
                    .iter()
                    .all(|u| u.as_deref() == Some(ALICE)),
                "{}: {after}",
                k.2
            );
        }
    }

    #[test]
    fn create_patch_is_exact_for_a_deployment() {
        let mut obj = workload("Deployment", Some("mallory"), "busybox");
        obj["spec"]["template"]["metadata"] = json!({"labels": {"app": "train"}});
        let Decision::Allow { patch } = mutate(&create("Deployment", ALICE, obj), &policy()) else {
            panic!("denied");
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "add", "path": "/metadata/annotations/kube2hadoop.io~1user", "value": "alice"},
                {"op": "add", "path": "/spec/template/metadata/annotations", "value": {USER: "alice"}},
            ])
        );
    }

    #[test]
    fn tfjob_replica_types_are_each_stamped() {
        let mut obj = workload("TFJob", None, "tf");
        obj["spec"]["tfReplicaSpecs"]["Evaluator"] =
            json!({"replicas": 1, "template": pod_template(Some("mallory"), "tf")});
        let after = admit(&create("TFJob", ALICE, obj), &policy());
        for r in ["Chief", "PS", "Worker", "Evaluator"] {
            assert_eq!(
                user_at(&after, &format!("/spec/tfReplicaSpecs/{r}/template")),
                Some(ALICE),
                "{r}"
            );
        }
    }

    #[test]
    fn cronjob_job_template_metadata_is_stamped() {
        // The cronjob-controller copies jobTemplate.metadata onto the Jobs it creates and is
        // trusted to pass it on, so a fake name there would reach the Job (found by the e2e suite).
        let mut obj = workload("CronJob", None, "batch");
        obj["spec"]["jobTemplate"]["metadata"] = json!({"annotations": {USER: "mallory"}});
        let after = admit(&create("CronJob", ALICE, obj), &policy());
        assert_eq!(user_at(&after, "/spec/jobTemplate"), Some(ALICE));
        assert_eq!(
            user_at(&after, "/spec/jobTemplate/spec/template"),
            Some(ALICE)
        );
        let bare = workload("CronJob", None, "batch");
        let after = admit(&create("CronJob", ALICE, bare), &policy());
        assert_eq!(user_at(&after, "/spec/jobTemplate"), Some(ALICE));
    }

    #[test]
    fn trusted_controller_with_controller_owner_keeps_incoming_value() {
        let mut pod = workload("Pod", Some(ALICE), "busybox");
        pod["metadata"]["ownerReferences"] = owner_ref(true);
        let req = create("Pod", RS_CONTROLLER, pod);
        assert_eq!(mutate(&req, &policy()), allow_empty());
        assert_eq!(validate(&req, &policy()), allow_empty());

        let mut rs = workload("ReplicaSet", Some(ALICE), "busybox");
        rs["metadata"]["ownerReferences"] = owner_ref_to("apps/v1", "Deployment", true);
        let req = create(
            "ReplicaSet",
            "system:serviceaccount:kube-system:deployment-controller",
            rs,
        );
        assert_eq!(mutate(&req, &policy()), allow_empty());
    }

    #[test]
    fn a_submitter_s_services_annotation_must_name_known_services() {
        let mut deploy = workload("Deployment", None, "busybox");
        deploy["spec"]["template"]["metadata"]["annotations"] = json!({SERVICES: "hdfs,ftp"});
        let reason = denied(mutate(
            &create("Deployment", ALICE, deploy.clone()),
            &policy(),
        ));
        assert!(
            reason.contains("kube2hadoop.io/services at /spec/template/metadata/annotations")
                && reason.contains("\"ftp\""),
            "{reason}"
        );
        assert_eq!(
            denied(validate(
                &create("Deployment", ALICE, deploy.clone()),
                &policy()
            )),
            reason
        );
        deploy["spec"]["template"]["metadata"]["annotations"] = json!({SERVICES: " YARN,hdfs"});
        let after = admit(&create("Deployment", ALICE, deploy), &policy());
        assert_eq!(
            after.pointer("/spec/template/metadata/annotations/kube2hadoop.io~1services"),
            Some(&json!(" YARN,hdfs")),
            "a valid value is kept as written"
        );
        // A controller copies what its owner carries; that was checked when it was written.
        let mut pod = workload("Pod", Some(ALICE), "busybox");
        pod["metadata"]["ownerReferences"] = owner_ref(true);
        pod["metadata"]["annotations"][SERVICES] = json!("ftp");
        assert_eq!(
            mutate(&create("Pod", RS_CONTROLLER, pod), &policy()),
            allow_empty()
        );
    }

    const OPERATOR: &str = "system:serviceaccount:kubeflow:training-operator";

    /// A pod `requester` creates with `alice` in it, owned by `api_version`/`kind`; returns the
    /// user it is stored with.
    fn owned_pod_user(requester: &str, api_version: &str, kind: &str) -> Option<String> {
        let mut pod = workload("Pod", Some(ALICE), "busybox");
        pod["metadata"]["ownerReferences"] = owner_ref_to(api_version, kind, true);
        let after = admit(&create("Pod", requester, pod), &policy());
        user_at(&after, "").map(str::to_owned)
    }

    #[test]
    fn a_trusted_controller_keeps_a_user_only_for_owner_kinds_it_manages() {
        let alice = Some(ALICE.to_owned());
        // The training operator creating the pods of a kind it manages (and we stamp).
        for kind in ["TFJob", "MXJob", "JAXJob", "PyTorchJob"] {
            assert_eq!(
                owned_pod_user(OPERATOR, "kubeflow.org/v1", kind),
                alice,
                "{kind}"
            );
        }
        // ... of anything else: its own name, as for any user.
        let own = Some(OPERATOR.to_owned());
        assert_eq!(owned_pod_user(OPERATOR, "v1", "ConfigMap"), own);
        assert_eq!(owned_pod_user(OPERATOR, "kubeflow.org/v1", "Notebook"), own);
        assert_eq!(owned_pod_user(OPERATOR, "apps/v1", "ReplicaSet"), own);
        // Same kind name in another group is another kind.
        assert_eq!(owned_pod_user(OPERATOR, "evil.example/v1", "TFJob"), own);
        // The replicaset-controller creating a pod owned by a Job.
        assert_eq!(
            owned_pod_user(RS_CONTROLLER, "batch/v1", "Job"),
            Some(RS_CONTROLLER.to_owned())
        );
        assert_eq!(
            owned_pod_user(RS_CONTROLLER, "apps/v1", "ReplicaSet"),
            alice
        );
        // The job-controller for its Jobs, not for the ReplicaSet's pods.
        let job = "system:serviceaccount:kube-system:job-controller";
        assert_eq!(owned_pod_user(job, "batch/v1", "Job"), alice);
        assert_eq!(
            owned_pod_user(job, "apps/v1", "ReplicaSet"),
            Some(job.to_owned())
        );
        // kube-controller-manager acting as itself manages all its kinds.
        let kcm = "system:kube-controller-manager";
        assert_eq!(owned_pod_user(kcm, "apps/v1", "ReplicaSet"), alice);
        assert_eq!(owned_pod_user(kcm, "v1", "ReplicationController"), alice);
        assert_eq!(
            owned_pod_user(kcm, "kubeflow.org/v1", "TFJob"),
            Some(kcm.to_owned())
        );
    }

    #[test]
    fn a_policy_controller_is_trusted_for_its_configured_kinds_only() {
        let p = Policy::from_yaml(
            r#"
kinds: [{group: ray.io, kind: RayCluster, templatePaths: [spec.headGroupSpec.template]}]
trustedControllers: [{username: ray-op, ownerKinds: [ray.io/RayCluster]}]
"#,
        )
        .unwrap();
        for (api_version, kind, want) in [
            ("ray.io/v1", "RayCluster", ALICE),
            ("ray.io/v1", "RayJob", "ray-op"),
        ] {
            let mut pod = workload("Pod", Some(ALICE), "busybox");
            pod["metadata"]["ownerReferences"] = owner_ref_to(api_version, kind, true);
            let after = admit(&create("Pod", "ray-op", pod), &p);
            assert_eq!(user_at(&after, ""), Some(want), "{kind}");
        }
        // The defaults were replaced: the replicaset-controller is an ordinary user now.
        let mut pod = workload("Pod", Some(ALICE), "busybox");
        pod["metadata"]["ownerReferences"] = owner_ref(true);
        let after = admit(&create("Pod", RS_CONTROLLER, pod), &p);
        assert_eq!(user_at(&after, ""), Some(RS_CONTROLLER));
    }

    #[test]
    fn trusted_controller_without_controller_owner_is_a_user() {
        for refs in [None, Some(owner_ref(false))] {
            let mut pod = workload("Pod", Some(ALICE), "busybox");
            if let Some(r) = refs {
                pod["metadata"]["ownerReferences"] = r;
            }
            let after = admit(&create("Pod", RS_CONTROLLER, pod), &policy());
            assert_eq!(user_at(&after, ""), Some(RS_CONTROLLER));
        }
    }

    #[test]
    fn user_imitating_a_controller_gets_their_own_name() {
        for controller in [true, false] {
            let mut pod = workload("Pod", Some(ALICE), "busybox");
            pod["metadata"]["ownerReferences"] = owner_ref(controller);
            let after = admit(&create("Pod", "bob", pod), &policy());
            assert_eq!(user_at(&after, ""), Some("bob"));
        }
    }

    #[test]
    fn trusted_job_from_cronjob_gets_metadata_from_its_template() {
        let mut job = workload("Job", None, "busybox");
        job["spec"]["template"] = pod_template(Some(ALICE), "busybox");
        job["metadata"]["ownerReferences"] = owner_ref_to("batch/v1", "CronJob", true);
        let after = admit(&create("Job", CRONJOB_CONTROLLER, job), &policy());
        assert_eq!(
            all_users(&after, "Job"),
            [Some(ALICE.to_owned()), Some(ALICE.to_owned())]
        );
    }

    #[test]
    fn trusted_controller_pod_without_any_value_is_left_unannotated() {
        // Deliberate: token-service refuses unannotated pods; we do not invent an owner.
        let mut pod = workload("Pod", None, "busybox");
        pod["metadata"]["ownerReferences"] = owner_ref(true);
        let req = create("Pod", RS_CONTROLLER, pod);
        assert_eq!(mutate(&req, &policy()), allow_empty());
        assert_eq!(validate(&req, &policy()), allow_empty());
    }

    #[test]
    fn update_changing_what_runs_stamps_the_updater() {
        let old = workload("Deployment", Some(ALICE), "busybox:1");
        let new = workload("Deployment", Some(ALICE), "evil:1");
        let after = admit(&update("Deployment", "bob", old, new), &policy());
        assert_eq!(
            all_users(&after, "Deployment"),
            [Some("bob".to_owned()), Some("bob".to_owned())]
        );
    }

    #[test]
    fn update_changing_template_metadata_counts() {
        let old = workload("Deployment", Some(ALICE), "busybox:1");
        let mut new = old.clone();
        new["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] =
            json!("now");
        let after = admit(&update("Deployment", "bob", old, new), &policy());
        assert_eq!(user_at(&after, "/spec/template"), Some("bob"));
    }

    #[test]
    fn update_relabel_only_restores_old_values() {
        let old = workload("Deployment", Some(ALICE), "busybox:1");
        let mut new = workload("Deployment", Some("bob"), "busybox:1");
        new["spec"]["replicas"] = json!(5);
        let after = admit(&update("Deployment", "bob", old.clone(), new), &policy());
        assert_eq!(
            all_users(&after, "Deployment"),
            [Some(ALICE.to_owned()), Some(ALICE.to_owned())]
        );

        // Removed annotations are put back.
        let mut new = old.clone();
        new["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        new["spec"]["template"]["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove(USER);
        let after = admit(&update("Deployment", "bob", old, new), &policy());
        assert_eq!(
            all_users(&after, "Deployment"),
            [Some(ALICE.to_owned()), Some(ALICE.to_owned())]
        );

        // Added where the old object had none: removed again.
        let old = workload("Pod", None, "busybox");
        let new = workload("Pod", Some("bob"), "busybox");
        let after = admit(&update("Pod", "bob", old, new), &policy());
        assert_eq!(user_at(&after, ""), None);
    }

    #[test]
    fn update_of_pod_labels_is_relabel_only() {
        let old = workload("Pod", Some(ALICE), "busybox:1");
        let mut new = old.clone();
        new["metadata"]["labels"]["extra"] = json!("x");
        let after = admit(&update("Pod", "bob", old, new), &policy());
        assert_eq!(user_at(&after, ""), Some(ALICE));
    }

    fn image_update(requester: &str, owner: Option<&str>) -> AdmissionRequest<DynamicObject> {
        let old = workload("Pod", owner, "busybox:1");
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("evil:1");
        update("Pod", requester, old, new)
    }

    /// Issue 13: the restarted container would keep the owner's token file, so changing what
    /// runs in someone else's pod is refused, not re-stamped.
    #[test]
    fn changing_what_runs_in_someone_elses_pod_is_denied() {
        let reason = denied(mutate(&image_update("bob", Some(ALICE)), &policy()));
        assert_eq!(
            reason,
            "bob may not change what runs in this pod: it belongs to alice (its kube2hadoop.io/user) and its containers may hold alice's credentials; only alice, the controller that manages the pod, or a pod-access admin (podAccessAdmins in the iddecorator policy) may. Create a pod of your own instead"
        );
        assert!(matches!(
            validate(&image_update("bob", Some(ALICE)), &policy()),
            Decision::Deny { .. }
        ));
        // A trusted controller that does not manage the pod's owner is refused too.
        assert!(matches!(
            mutate(&image_update(RS_CONTROLLER, Some(ALICE)), &policy()),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn the_owner_an_admin_or_anyone_on_an_unowned_pod_may_change_what_runs() {
        let after = admit(&image_update(ALICE, Some(ALICE)), &policy());
        assert_eq!(user_at(&after, ""), Some(ALICE));
        // Mapped names are compared.
        let p = Policy::from_yaml("usernames: {stripPrefixes: ['oidc:']}").unwrap();
        let after = admit(&image_update("oidc:alice", Some(ALICE)), &p);
        assert_eq!(user_at(&after, ""), Some(ALICE));
        // A pod without a user keeps today's behaviour: the updater is stamped.
        let after = admit(&image_update("bob", None), &policy());
        assert_eq!(user_at(&after, ""), Some("bob"));
        // An admin may; the pod then carries the admin, as any updater's change would.
        let mut review = review_json(
            "UPDATE",
            "Pod",
            None,
            "root",
            image_update("x", None)
                .object
                .map(|o| serde_json::to_value(o).unwrap()),
            Some(workload("Pod", Some(ALICE), "busybox:1")),
        );
        review["request"]["userInfo"]["groups"] = json!(["system:masters"]);
        let after = admit(&decode(review), &policy());
        assert_eq!(user_at(&after, ""), Some("root"));
    }

    #[test]
    fn update_by_trusted_controller_of_owned_object_keeps_incoming() {
        let mut old = workload("ReplicaSet", Some(ALICE), "busybox:1");
        old["metadata"]["ownerReferences"] = owner_ref_to("apps/v1", "Deployment", true);
        let mut new = workload("ReplicaSet", Some(ALICE), "busybox:2");
        new["metadata"]["ownerReferences"] = owner_ref_to("apps/v1", "Deployment", true);
        let req = update(
            "ReplicaSet",
            "system:serviceaccount:kube-system:deployment-controller",
            old,
            new,
        );
        assert_eq!(mutate(&req, &policy()), allow_empty());
    }

    #[test]
    fn other_subresources_delete_and_connect_pass_unchanged() {
        let obj = workload("Deployment", Some("mallory"), "x");
        let status = decode(review_json(
            "UPDATE",
            "Deployment",
            Some("status"),
            "bob",
            Some(obj.clone()),
            Some(obj.clone()),
        ));
        assert_eq!(mutate(&status, &policy()), allow_empty());
        assert_eq!(validate(&status, &policy()), allow_empty());
        let del = decode(review_json(
            "DELETE",
            "Deployment",
            None,
            "bob",
            None,
            Some(obj.clone()),
        ));
        assert_eq!(mutate(&del, &policy()), allow_empty());
        assert_eq!(validate(&del, &policy()), allow_empty());
        let connect = decode(review_json(
            "CONNECT",
            "Pod",
            Some("exec"),
            "bob",
            None,
            None,
        ));
        assert_eq!(mutate(&connect, &policy()), allow_empty());
    }

    #[test]
    fn unknown_kinds_pass_and_kinds_come_from_the_request() {
        let mut review = review_json(
            "CREATE",
            "Deployment",
            None,
            "bob",
            Some(workload("Deployment", Some("x"), "x")),
            None,
        );
        review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
        assert_eq!(mutate(&decode(review), &policy()), allow_empty());
        // An object claiming another kind is still stamped as what the request says it is.
        let mut pod = workload("Pod", None, "x");
        pod["kind"] = json!("ConfigMap");
        let after = admit(&create("Pod", "bob", pod), &policy());
        assert_eq!(user_at(&after, ""), Some("bob"));
    }

    fn ephemeral_req(user: &str, owner: Option<&str>) -> AdmissionRequest<DynamicObject> {
        let old = workload("Pod", owner, "busybox");
        let mut new = old.clone();
        new["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "busybox"}]);
        decode(review_json(
            "UPDATE",
            "Pod",
            Some("ephemeralcontainers"),
            user,
            Some(new),
            Some(old),
        ))
    }

    #[test]
    fn ephemeral_containers_only_by_the_pods_user_or_a_controller() {
        assert_eq!(
            mutate(&ephemeral_req(ALICE, Some(ALICE)), &policy()),
            allow_empty()
        );
        assert_eq!(
            validate(&ephemeral_req(ALICE, Some(ALICE)), &policy()),
            allow_empty()
        );
        assert_eq!(
            mutate(&ephemeral_req(RS_CONTROLLER, Some(ALICE)), &policy()),
            allow_empty()
        );
        let reason = denied(mutate(&ephemeral_req("bob", Some(ALICE)), &policy()));
        assert_eq!(
            reason,
            "only alice (the pod's kube2hadoop.io/user), a trusted controller or a pod-access admin may add ephemeral containers to this pod; bob may not"
        );
        assert!(matches!(
            validate(&ephemeral_req("bob", Some(ALICE)), &policy()),
            Decision::Deny { .. }
        ));
        let reason = denied(mutate(&ephemeral_req("bob", None), &policy()));
        assert!(reason.contains("has no kube2hadoop.io/user"), "{reason}");
    }

    #[test]
    fn ephemeral_containers_by_a_pod_access_admin() {
        let mut review = review_json(
            "UPDATE",
            "Pod",
            Some("ephemeralcontainers"),
            "root",
            ephemeral_req("x", Some(ALICE))
                .object
                .map(|o| serde_json::to_value(o).unwrap()),
            Some(workload("Pod", Some(ALICE), "busybox")),
        );
        assert!(matches!(
            mutate(&decode(review.clone()), &policy()),
            Decision::Deny { .. }
        ));
        review["request"]["userInfo"]["groups"] = json!(["system:masters"]);
        assert_eq!(mutate(&decode(review), &policy()), allow_empty());
    }

    #[test]
    fn ephemeral_compares_mapped_names() {
        let p = Policy::from_yaml("usernames: {stripPrefixes: ['oidc:']}").unwrap();
        assert_eq!(
            mutate(&ephemeral_req("oidc:alice", Some(ALICE)), &p),
            allow_empty()
        );
    }

    #[test]
    fn username_mapping_applies_and_empty_is_denied() {
        let p = Policy::from_yaml(
            r#"
usernames:
  stripPrefixes: ['oidc:']
  rewrite: {pattern: '(.*)@corp\.example', replacement: '$1'}
"#,
        )
        .unwrap();
        let after = admit(
            &create("Pod", "oidc:alice@corp.example", workload("Pod", None, "x")),
            &p,
        );
        assert_eq!(user_at(&after, ""), Some(ALICE));
        let sa = "system:serviceaccount:ml:pipeline";
        let after = admit(&create("Pod", sa, workload("Pod", None, "x")), &p);
        assert_eq!(user_at(&after, ""), Some(sa));
        let reason = denied(mutate(
            &create("Pod", "oidc:", workload("Pod", None, "x")),
            &p,
        ));
        assert!(reason.contains("maps to an empty Hadoop user"), "{reason}");
        assert!(matches!(
            validate(&create("Pod", "oidc:", workload("Pod", None, "x")), &p),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn missing_username_is_denied() {
        let mut review = review_json(
            "CREATE",
            "Pod",
            None,
            "x",
            Some(workload("Pod", None, "x")),
            None,
        );
        review["request"]["userInfo"] = json!({});
        let reason = denied(mutate(&decode(review), &policy()));
        assert!(reason.contains("no username"), "{reason}");
    }

    #[test]
    fn malformed_objects_are_denied_precisely() {
        let mut obj = workload("Deployment", None, "x");
        obj["spec"]["template"] = json!("not a template");
        let reason = denied(mutate(&create("Deployment", "bob", obj), &policy()));
        assert!(
            reason.starts_with("Deployment cannot be stamped with kube2hadoop.io/user: /spec/template must be an object (a pod template) but is a string"),
            "{reason}"
        );
        let mut obj = workload("TFJob", None, "x");
        obj["spec"]["tfReplicaSpecs"]["PS"]["template"]["metadata"]["annotations"] =
            json!({"a": ["b"]});
        let reason = denied(mutate(&create("TFJob", "bob", obj), &policy()));
        assert!(
            reason.contains(
                "/spec/tfReplicaSpecs/PS/template/metadata/annotations must map strings to strings"
            ),
            "{reason}"
        );
        let mut obj = workload("CronJob", None, "x");
        obj["spec"]["jobTemplate"]["spec"] = json!([]);
        assert!(matches!(
            mutate(&create("CronJob", "bob", obj), &policy()),
            Decision::Deny { .. }
        ));

        let reason = denied(mutate(
            &decode(review_json("CREATE", "Pod", None, "bob", None, None)),
            &policy(),
        ));
        assert_eq!(
            reason,
            "CREATE request carries no object; iddecorator cannot stamp it"
        );
        let obj = workload("Pod", None, "x");
        let reason = denied(mutate(
            &decode(review_json("UPDATE", "Pod", None, "bob", Some(obj), None)),
            &policy(),
        ));
        assert!(reason.contains("no oldObject"), "{reason}");
    }

    #[test]
    fn validate_names_path_and_both_values() {
        let obj = workload("Deployment", Some(ALICE), "x");
        let mut tampered = obj.clone();
        tampered["spec"]["template"]["metadata"]["annotations"][USER] = json!("mallory");
        let reason = denied(validate(&create("Deployment", ALICE, tampered), &policy()));
        assert_eq!(
            reason,
            "kube2hadoop.io/user at /spec/template/metadata/annotations/kube2hadoop.io~1user is `mallory` but iddecorator decided `alice`; a mutating webhook after iddecorator changed it, remove that change"
        );
        let mut removed = obj;
        removed["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        let reason = denied(validate(&create("Deployment", ALICE, removed), &policy()));
        assert!(
            reason.contains("is absent but iddecorator decided `alice`"),
            "{reason}"
        );
    }

    #[test]
    fn policy_kinds_with_array_wildcards_are_stamped() {
        let p = Policy::from_yaml(
            "kinds: [{group: apps, kind: Deployment, templatePaths: ['spec.template', 'spec.extra[].template']}]",
        )
        .unwrap();
        let mut obj = workload("Deployment", None, "x");
        obj["spec"]["extra"] =
            json!([{"template": pod_template(Some("mallory"), "x")}, {"template": {}}]);
        let after = admit(&create("Deployment", "bob", obj), &p);
        for site in [
            "",
            "/spec/template",
            "/spec/extra/0/template",
            "/spec/extra/1/template",
        ] {
            assert_eq!(user_at(&after, site), Some("bob"), "{site}");
        }
    }

    fn keyed() -> Policy {
        Policy::default().with_stamp_keys(Some(stamp_keys()))
    }

    fn stamp_at<'v>(obj: &'v Value, site: &str) -> Option<&'v str> {
        obj.pointer(&format!("{site}/metadata/annotations"))?
            .get(STAMP)?
            .as_str()
    }

    #[test]
    fn the_submitter_is_stamped_on_every_site_for_the_namespace() {
        let keys = stamp_keys();
        let mut forged = workload("Deployment", Some("mallory"), "x");
        forged["metadata"]["annotations"][STAMP] = json!("v1.forged");
        let after = admit(&create("Deployment", ALICE, forged), &keyed());
        for site in ["", "/spec/template"] {
            let stamp = stamp_at(&after, site).expect("stamped");
            assert!(keys.verify("ml", ALICE, stamp), "{site}");
            assert!(!keys.verify("other", ALICE, stamp), "{site}");
        }
        // Without a key nothing is stamped, and a stamp sent in is removed.
        let mut forged = workload("Pod", None, "x");
        forged["metadata"]["annotations"] = json!({STAMP: "v1.forged"});
        let after = admit(&create("Pod", ALICE, forged), &policy());
        assert_eq!(stamp_at(&after, ""), None);
    }

    /// The gap of pre-coverage objects: a template carrying a user its owner got while
    /// iddecorator was not looking has no valid stamp, and a controller copying it must not
    /// give it one.
    #[test]
    fn a_controller_keeps_the_incoming_stamp_and_never_signs() {
        let keys = stamp_keys();
        let signed = keys.sign("ml", ALICE);
        for incoming in [None, Some("v1.forged"), Some(signed.as_str())] {
            let mut pod = workload("Pod", Some(ALICE), "x");
            if let Some(s) = incoming {
                pod["metadata"]["annotations"][STAMP] = json!(s);
            }
            pod["metadata"]["ownerReferences"] = owner_ref(true);
            let after = admit(&create("Pod", RS_CONTROLLER, pod), &keyed());
            assert_eq!(user_at(&after, ""), Some(ALICE));
            assert_eq!(stamp_at(&after, ""), incoming, "{incoming:?}");
        }
        // A Job made from a CronJob's template: the user and its stamp are filled together
        // from the template into the Job's own metadata.
        let mut job = workload("Job", None, "x");
        job["spec"]["template"]["metadata"]["annotations"] = json!({USER: ALICE, STAMP: signed});
        job["metadata"]["ownerReferences"] = owner_ref_to("batch/v1", "CronJob", true);
        let after = admit(&create("Job", CRONJOB_CONTROLLER, job.clone()), &keyed());
        assert_eq!(user_at(&after, ""), Some(ALICE));
        assert_eq!(stamp_at(&after, ""), Some(signed.as_str()));
        job["spec"]["template"]["metadata"]["annotations"] = json!({USER: ALICE});
        let after = admit(&create("Job", CRONJOB_CONTROLLER, job), &keyed());
        assert_eq!(user_at(&after, ""), Some(ALICE));
        assert_eq!(stamp_at(&after, ""), None);
    }

    #[test]
    fn a_relabel_restores_the_old_stamp_and_validate_names_a_changed_stamp() {
        let keys = stamp_keys();
        let mut old = workload("Deployment", Some(ALICE), "x");
        old["metadata"]["annotations"][STAMP] = json!(keys.sign("ml", ALICE));
        let mut new = old.clone();
        new["metadata"]["annotations"][STAMP] = json!("v1.other");
        new["metadata"]["labels"] = json!({"team": "x"});
        let after = admit(&update("Deployment", "bob", old.clone(), new), &keyed());
        assert_eq!(
            stamp_at(&after, ""),
            old["metadata"]["annotations"][STAMP].as_str()
        );
        // The template never had a stamp: absent stays absent.
        assert_eq!(stamp_at(&after, "/spec/template"), None);
        let mut tampered = admit(
            &create("Deployment", ALICE, workload("Deployment", None, "x")),
            &keyed(),
        );
        tampered["spec"]["template"]["metadata"]["annotations"][STAMP] = json!("v1.x");
        let reason = denied(validate(&create("Deployment", ALICE, tampered), &keyed()));
        assert_eq!(
            reason,
            "kube2hadoop.io/stamp at /spec/template/metadata/annotations/kube2hadoop.io~1stamp is another value but iddecorator decided its signed value; a mutating webhook after iddecorator changed it, remove that change"
        );
    }

    /// During a key rotation the replica that mutated and the one that validates may sign with
    /// different keys; a stamp that proves the decided user passes, anything else does not.
    #[test]
    fn validate_accepts_another_keys_stamp_for_the_decided_user_only() {
        let new_key = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
        let old_key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
        let both = |first: &str, second: &str| {
            let keys =
                k2h_contract::stamp::Keys::parse(&format!("{first}\n{second}")).expect("keys");
            Policy::default().with_stamp_keys(Some(std::sync::Arc::new(keys)))
        };
        let (mutator, validator) = (both(new_key, old_key), both(old_key, new_key));
        let admitted = admit(
            &create("Deployment", ALICE, workload("Deployment", None, "x")),
            &mutator,
        );
        assert_eq!(
            validate(&create("Deployment", ALICE, admitted.clone()), &validator),
            allow_empty()
        );
        // A stamp that verifies, but for another user or namespace, is still refused.
        for (ns, user) in [("ml", "bob"), ("other", ALICE)] {
            let mut swapped = admitted.clone();
            let stamp = stamp_keys().sign(ns, user);
            swapped["metadata"]["annotations"][STAMP] = json!(stamp);
            let reason = denied(validate(&create("Deployment", ALICE, swapped), &validator));
            assert!(
                reason.starts_with("kube2hadoop.io/stamp at /metadata"),
                "{reason}"
            );
        }
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;
        use proptest::sample::select;

        /// The shape one annotation site can have.
        #[derive(Debug, Clone)]
        enum SiteShape {
            NoMetadata,
            NoAnnotations,
            Empty,
            Value(String),
            NullAnnotations,
            BadAnnotations,
        }

        fn site_shape() -> impl Strategy<Value = SiteShape> {
            prop_oneof![
                3 => Just(SiteShape::NoMetadata),
                3 => Just(SiteShape::NoAnnotations),
                3 => Just(SiteShape::Empty),
                2 => Just(SiteShape::NullAnnotations),
                1 => Just(SiteShape::BadAnnotations),
                8 => "[a-z~/.:@-]{0,12}".prop_map(SiteShape::Value),
            ]
        }

        fn shape_site(obj: &mut Value, site: &str, shape: &SiteShape) {
            let target = if site.is_empty() {
                Some(&mut *obj)
            } else {
                obj.pointer_mut(site)
            };
            let Some(Value::Object(t)) = target else {
                return;
            };
            match shape {
                SiteShape::NoMetadata => {
                    t.remove("metadata");
                }
                SiteShape::NoAnnotations => {
                    t.insert("metadata".into(), json!({"labels": {"a": "b"}}));
                }
                SiteShape::Empty => {
                    t.insert("metadata".into(), json!({"annotations": {}}));
                }
                SiteShape::NullAnnotations => {
                    t.insert("metadata".into(), json!({"annotations": null}));
                }
                // The top-level metadata is typed (it would not decode); templates are raw.
                SiteShape::BadAnnotations if site.is_empty() => {}
                SiteShape::BadAnnotations => {
                    t.insert("metadata".into(), json!({"annotations": {USER: 1}}));
                }
                SiteShape::Value(v) => {
                    t.insert(
                        "metadata".into(),
                        json!({"annotations": {USER: v, "k~/x": "y"}}),
                    );
                }
            }
        }

        fn object(
            kind_name: &str,
            image: &str,
            shapes: &[SiteShape],
            owner: Option<bool>,
        ) -> Value {
            let mut obj = workload(kind_name, None, image);
            let mut sites = vec![""];
            sites.extend(kind(kind_name).4.iter());
            for (site, shape) in sites.iter().zip(shapes.iter().cycle()) {
                shape_site(&mut obj, site, shape);
            }
            if let Some(c) = owner {
                if obj.get("metadata").is_none() {
                    obj["metadata"] = json!({});
                }
                obj["metadata"]["ownerReferences"] = owner_ref(c);
            }
            obj
        }

        fn user() -> impl Strategy<Value = String> {
            prop_oneof![
                select(vec![
                    "alice".to_owned(),
                    "oidc:bob".to_owned(),
                    "oidc:".to_owned(),
                    RS_CONTROLLER.to_owned(),
                    "system:kube-controller-manager".to_owned(),
                    "system:serviceaccount:ml:pipeline".to_owned(),
                ]),
                "[a-z:~/@]{0,10}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            #[test]
            fn mutate_then_validate_allows(
                kind_idx in 0..KINDS.len(),
                update_op in any::<bool>(),
                username in user(),
                new_shapes in proptest::collection::vec(site_shape(), 1..5),
                old_shapes in proptest::collection::vec(site_shape(), 1..5),
                owner in proptest::option::of(any::<bool>()),
                same_image in any::<bool>(),
            ) {
                let p = Policy::from_yaml("usernames: {stripPrefixes: ['oidc:']}").unwrap();
                let k = KINDS[kind_idx].2;
                let new = object(k, if same_image { "a" } else { "b" }, &new_shapes, owner);
                let req = if update_op {
                    update(k, &username, object(k, "a", &old_shapes, owner), new.clone())
                } else {
                    create(k, &username, new.clone())
                };
                match mutate(&req, &p) {
                    Decision::Allow { patch } => {
                        // The patch applies to the object exactly as the apiserver holds it.
                        let after = patched(&new, &patch);
                        let mut again = req.clone();
                        again.object = Some(serde_json::from_value(after.clone()).unwrap());
                        prop_assert_eq!(validate(&again, &p), allow_empty(), "after: {}", after);
                        // Mutating again changes nothing (reinvocation is idempotent).
                        prop_assert_eq!(mutate(&again, &p), allow_empty());
                    }
                    Decision::Deny { reason } => {
                        prop_assert!(!reason.is_empty());
                        let denied_too = matches!(validate(&req, &p), Decision::Deny { .. });
                        prop_assert!(denied_too);
                    }
                }
            }
        }
    }
}
