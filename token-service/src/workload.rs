//! The workload a pod belongs to: its top controller owner (Pod → ReplicaSet → Deployment,
//! Pod → Job → CronJob, StatefulSet, DaemonSet, TFJob and other operators' kinds), or the pod
//! itself when it has no controller. One token set is kept per workload.
//!
//! The chain is also the proof that the pod's user is the workload's: every object from the pod
//! up to the top must be of a kind iddecorator stamps and carry the pod's very
//! `kube2hadoop.io/user`, with a `kube2hadoop.io/stamp` that iddecorator's key signed for that
//! user in the pod's namespace. A pod laundered through a kind nobody stamps (its template
//! written by the requester), or owned by an object written while iddecorator was not covering
//! its namespace (before install), gets nothing: the value may be consistent, but only
//! iddecorator can sign it.

use std::collections::{BTreeMap, BTreeSet};

use futures::future::BoxFuture;
use k2h_contract::kinds::{BUILTIN_STAMPED, group_of};
use k2h_contract::stamp::Keys;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::{ApiError, Kind};
use crate::pod::{OwnerRef, PodFacts, owner_refs};

/// Ownership chains are short (three levels at most in practice); this bounds a cycle.
const MAX_DEPTH: usize = 8;

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct WorkloadKey {
    pub namespace: String,
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl WorkloadKey {
    /// A pod as its own workload (it has no controller).
    pub fn pod(pod: &PodFacts) -> WorkloadKey {
        WorkloadKey {
            namespace: pod.namespace.clone(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        }
    }
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An owner object's own identity as the API returns it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerObject {
    pub uid: String,
    pub owners: Vec<OwnerRef>,
    /// Its `kube2hadoop.io/user` annotation, verbatim.
    pub user: Option<String>,
    /// Its `kube2hadoop.io/stamp` annotation, verbatim.
    pub stamp: Option<String>,
}

/// The kinds iddecorator stamps (API group, kind): `k2h_contract::kinds::BUILTIN_STAMPED` plus
/// the configured `stampedKinds`, which must mirror the `kinds:` of iddecorator's policy. Kinds
/// the registered webhook does not intercept are set aside with the rule it lacks
/// ([`StampedKinds::intercepted_by`]): they are configured, but not stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampedKinds {
    kinds: BTreeSet<(String, String)>,
    /// (group, kind) → what the webhook lacks for it.
    unintercepted: BTreeMap<(String, String), String>,
}

impl Default for StampedKinds {
    fn default() -> Self {
        StampedKinds::with(std::iter::empty())
    }
}

/// Why an owner kind proves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotStamped {
    /// Neither built in nor configured.
    Unknown,
    /// Configured, but the webhook misses this (a sentence naming the missing rule).
    NotIntercepted(String),
}

impl StampedKinds {
    /// The built-in kinds plus `extra` (group, kind) pairs.
    pub fn with(extra: impl IntoIterator<Item = (String, String)>) -> StampedKinds {
        let builtin = BUILTIN_STAMPED
            .iter()
            .map(|gk| (gk.group.to_owned(), gk.kind.to_owned()));
        StampedKinds {
            kinds: builtin.chain(extra).collect(),
            unintercepted: BTreeMap::new(),
        }
    }

    /// These kinds less those for which `missing(group, kind)` names a rule the webhook lacks.
    pub fn intercepted_by(&self, missing: impl Fn(&str, &str) -> Option<String>) -> StampedKinds {
        let mut out = self.clone();
        for (group, kind) in &self.kinds {
            if let Some(why) = missing(group, kind) {
                out.kinds.remove(&(group.clone(), kind.clone()));
                out.unintercepted.insert((group.clone(), kind.clone()), why);
            }
        }
        out
    }

    /// Why objects of `kind` in the group of `api_version` (any version) prove nothing, `None`
    /// when they are stamped.
    pub fn why_not(&self, api_version: &str, kind: &str) -> Option<NotStamped> {
        let key = (group_of(api_version).to_owned(), kind.to_owned());
        if self.kinds.contains(&key) {
            return None;
        }
        Some(match self.unintercepted.get(&key) {
            Some(why) => NotStamped::NotIntercepted(why.clone()),
            None => NotStamped::Unknown,
        })
    }

    /// Whether objects of `kind` in the group of `api_version` are stamped (any version).
    pub fn contains(&self, api_version: &str, kind: &str) -> bool {
        self.why_not(api_version, kind).is_none()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read {kind} {namespace}/{name}: {detail}")]
pub struct LookupError {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub detail: String,
}

/// An owner object as the workload lookup walks it; its annotations verbatim.
pub fn owner_object(meta: &ObjectMeta) -> OwnerObject {
    let annotation = |key: &str| meta.annotations.as_ref().and_then(|a| a.get(key)).cloned();
    OwnerObject {
        uid: meta.uid.clone().unwrap_or_default(),
        owners: owner_refs(meta),
        user: annotation(k2h_contract::annotations::USER),
        stamp: annotation(k2h_contract::annotations::STAMP),
    }
}

pub trait OwnerLookup: Send + Sync {
    /// The object `owner` points to, `None` when it no longer exists.
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>>;
}

/// The managing controller among `refs`: the one marked `controller: true`.
pub fn controller_of(refs: &[OwnerRef]) -> Option<&OwnerRef> {
    refs.iter().find(|r| r.controller)
}

fn key(namespace: &str, r: &OwnerRef) -> WorkloadKey {
    WorkloadKey {
        namespace: namespace.to_owned(),
        api_version: r.api_version.clone(),
        kind: r.kind.clone(),
        name: r.name.clone(),
        uid: r.uid.clone(),
    }
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::new(Kind::Forbidden, code, message)
}

/// The refusal for an object whose user iddecorator did not sign; `what` names it.
fn unstamped(what: &str) -> ApiError {
    forbidden(
        "stamp_invalid",
        format!(
            "{what} carries kube2hadoop.io/user but no valid kube2hadoop.io/stamp: it was \
             written while iddecorator was not covering the namespace (before install, or \
             before the namespace was covered), or iddecorator and token-service have \
             different stamp keys; re-apply or recreate it so iddecorator stamps it"
        ),
    )
}

/// Whether `stamp` proves `user` in `namespace`.
fn signed(keys: &Keys, namespace: &str, user: &str, stamp: Option<&str>) -> bool {
    stamp.is_some_and(|s| keys.verify(namespace, user, s))
}

/// `Kind namespace/name` of an owner reference, as messages name it.
fn shown(namespace: &str, r: &OwnerRef) -> String {
    format!("{} {namespace}/{}", r.kind, r.name)
}

/// The workload of `pod`, proven: the pod and each object on its controller chain carry the
/// pod's user exactly with a stamp `keys` verify for the pod's namespace, and each owner is of
/// a stamped kind and exists with the uid the reference names.
pub async fn resolve(
    pod: &PodFacts,
    lookup: &dyn OwnerLookup,
    stamped: &StampedKinds,
    keys: &Keys,
) -> Result<WorkloadKey, ApiError> {
    let ns = pod.namespace.as_str();
    let pod_name = pod.display_name();
    let user = pod.user.as_deref().ok_or_else(|| {
        forbidden(
            "no_user_annotation",
            format!("pod {pod_name} has no kube2hadoop.io/user annotation"),
        )
    })?;
    if !signed(keys, ns, user, pod.stamp.as_deref()) {
        return Err(unstamped(&format!("pod {pod_name}")));
    }
    let Some(mut current) = controller_of(&pod.owners).cloned() else {
        return Ok(WorkloadKey::pod(pod));
    };
    for _ in 0..MAX_DEPTH {
        let owner = shown(ns, &current);
        // Before reading it: an unstamped kind proves nothing (and we may not read it).
        match stamped.why_not(&current.api_version, &current.kind) {
            None => {}
            Some(NotStamped::Unknown) => {
                let group = group_of(&current.api_version);
                return Err(forbidden(
                    "owner_not_stamped",
                    format!(
                        "pod {pod_name} is owned by {owner}, a kind iddecorator does not stamp, \
                         so nothing proves who wrote its pod template; to serve it, add \
                         {{group: {group:?}, kind: {}}} to iddecorator's policy `kinds:` (with \
                         its template paths) and to token-service's `stampedKinds`",
                        current.kind
                    ),
                ));
            }
            Some(NotStamped::NotIntercepted(missing)) => {
                return Err(forbidden(
                    "owner_not_stamped",
                    format!(
                        "pod {pod_name} is owned by {owner}, but {missing}, so such objects are \
                         admitted without iddecorator and nothing proves who wrote its pod \
                         template: add that rule (CREATE and UPDATE) to the webhook, as in \
                         manifests/base/webhooks.yaml"
                    ),
                ));
            }
        }
        let object = lookup.get(ns, &current).await.map_err(|e| {
            ApiError::new(
                Kind::Unavailable,
                "owner_lookup_failed",
                format!("cannot find the workload of pod {pod_name}: {e}"),
            )
        })?;
        let Some(object) = object else {
            return Err(forbidden(
                "owner_gone",
                format!(
                    "{owner}, which owns pod {pod_name}, no longer exists, so the pod's user \
                     cannot be proven; the pod is orphaned: recreate it from a workload"
                ),
            ));
        };
        if object.uid != current.uid {
            return Err(forbidden(
                "owner_replaced",
                format!(
                    "the {} {} that owns pod {pod_name} was deleted and recreated; the pod is \
                     orphaned",
                    current.kind, current.name
                ),
            ));
        }
        match object.user.as_deref() {
            None => {
                return Err(forbidden(
                    "owner_unannotated",
                    format!(
                        "{owner}, which owns pod {pod_name}, has no kube2hadoop.io/user \
                         annotation: was it created before iddecorator was installed, or in a \
                         namespace it did not cover? Recreate it"
                    ),
                ));
            }
            Some(theirs) if theirs != user => {
                return Err(forbidden(
                    "owner_user_mismatch",
                    format!(
                        "pod {pod_name} carries kube2hadoop.io/user {user:?} but its owner \
                         {owner} carries {theirs:?}: the pod was not made from that owner's \
                         stamped template"
                    ),
                ));
            }
            Some(_) => {}
        }
        if !signed(keys, ns, user, object.stamp.as_deref()) {
            return Err(unstamped(&format!("{owner}, which owns pod {pod_name},")));
        }
        match controller_of(&object.owners) {
            Some(next) => current = next.clone(),
            None => return Ok(key(ns, &current)),
        }
    }
    Err(ApiError::new(
        Kind::Internal,
        "owner_chain_too_long",
        format!("pod {pod_name} has an owner chain deeper than {MAX_DEPTH}; is there a cycle?"),
    ))
}

/// Whether `pod` still belongs to the workload with `uid` whose tokens were issued for pods of
/// `user` (`None`: unknown, any pod counts): it carries that very user and is that pod, or its
/// controller chain passes through that object, also when an owner further up has vanished
/// (pods outlive their owners while the garbage collector works, or when orphaned). A pod of
/// another user pointing its ownerReference at the workload must not keep its tokens renewed.
/// No kind checks: this only tells the ledger whether a workload still has pods, never whom
/// to serve. It stops
/// at kinds nobody stamps (no served workload lies above one, and token-service may not read
/// them), so a co-tenant's pod under, say, a ConfigMap cannot make the answer unknown.
pub async fn reaches(
    pod: &PodFacts,
    lookup: &dyn OwnerLookup,
    stamped: &StampedKinds,
    uid: &str,
    user: Option<&str>,
) -> Result<bool, LookupError> {
    if user.is_some_and(|u| pod.user.as_deref() != Some(u)) {
        return Ok(false);
    }
    if pod.uid == uid {
        return Ok(true);
    }
    let mut current = controller_of(&pod.owners).cloned();
    for _ in 0..MAX_DEPTH {
        let Some(r) = current else {
            return Ok(false);
        };
        if r.uid == uid {
            return Ok(true);
        }
        if !stamped.contains(&r.api_version, &r.kind) {
            return Ok(false);
        }
        current = match lookup.get(&pod.namespace, &r).await? {
            Some(object) if object.uid == r.uid => controller_of(&object.owners).cloned(),
            _ => None,
        };
    }
    Ok(false)
}

/// Kubernetes' plural of a kind: the lowercase kind plus `s` for every controller kind we meet
/// (replicasets, jobs, tfjobs, pytorchjobs, mpijobs, …), with the English exceptions spelled out.
pub fn plural(kind: &str) -> String {
    let lower = kind.to_ascii_lowercase();
    if lower.ends_with("ss")
        || lower.ends_with('x')
        || lower.ends_with("ch")
        || lower.ends_with("sh")
    {
        format!("{lower}es")
    } else if lower.ends_with('y') && !lower.ends_with("ay") && !lower.ends_with("ey") {
        format!("{}ies", &lower[..lower.len() - 1])
    } else {
        format!("{lower}s")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::fixtures::{FakeOwners, owned_pod, owner, stamp_keys};

    async fn code(pod: &PodFacts, fake: &FakeOwners, stamped: &StampedKinds) -> &'static str {
        resolve(pod, fake, stamped, &stamp_keys())
            .await
            .expect_err("refused")
            .code
    }

    #[tokio::test]
    async fn a_bare_pod_is_its_own_workload() {
        let k = resolve(
            &owned_pod(vec![]),
            &FakeOwners(HashMap::new()),
            &StampedKinds::default(),
            &stamp_keys(),
        )
        .await
        .expect("key");
        assert_eq!(
            (k.kind.as_str(), k.name.as_str(), k.uid.as_str()),
            ("Pod", "p", "pod-uid")
        );
    }

    #[tokio::test]
    async fn deployment_and_cronjob_chains_end_at_the_top_owner() {
        let fake = FakeOwners::alice(vec![
            ("web-abc", vec![owner("Deployment", "web")]),
            ("web", vec![]),
            ("nightly-1", vec![owner("CronJob", "nightly")]),
            ("nightly", vec![]),
            ("train", vec![]),
        ]);
        let stamped = StampedKinds::default();
        let k = resolve(
            &owned_pod(vec![owner("ReplicaSet", "web-abc")]),
            &fake,
            &stamped,
            &stamp_keys(),
        )
        .await
        .expect("d");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("Deployment", "web"));
        let k = resolve(
            &owned_pod(vec![owner("Job", "nightly-1")]),
            &fake,
            &stamped,
            &stamp_keys(),
        )
        .await
        .expect("c");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("CronJob", "nightly"));
        let k = resolve(
            &owned_pod(vec![owner("TFJob", "train")]),
            &fake,
            &stamped,
            &stamp_keys(),
        )
        .await
        .expect("tf");
        assert_eq!((k.kind.as_str(), k.name.as_str()), ("TFJob", "train"));
    }

    #[tokio::test]
    async fn only_the_controller_reference_is_followed() {
        let mut not_controller = owner("ConfigMap", "cm");
        not_controller.controller = false;
        let fake = FakeOwners::alice(vec![("db", vec![])]);
        let k = resolve(
            &owned_pod(vec![not_controller, owner("StatefulSet", "db")]),
            &fake,
            &StampedKinds::default(),
            &stamp_keys(),
        )
        .await
        .expect("sts");
        assert_eq!(k.kind, "StatefulSet");
    }

    #[tokio::test]
    async fn a_vanished_owner_is_refused_and_a_cycle_is_an_error() {
        let fake = FakeOwners::alice(vec![("rs", vec![owner("Deployment", "gone")])]);
        let pod = owned_pod(vec![owner("ReplicaSet", "rs")]);
        let e = resolve(&pod, &fake, &StampedKinds::default(), &stamp_keys())
            .await
            .expect_err("orphaned");
        assert_eq!(e.code, "owner_gone");
        assert!(e.message.contains("Deployment team-a/gone"), "{e}");
        let cyclic = FakeOwners::alice(vec![
            ("a", vec![owner("ReplicaSet", "b")]),
            ("b", vec![owner("ReplicaSet", "a")]),
        ]);
        let e = resolve(
            &owned_pod(vec![owner("ReplicaSet", "a")]),
            &cyclic,
            &StampedKinds::default(),
            &stamp_keys(),
        )
        .await
        .expect_err("cycle");
        assert_eq!(e.code, "owner_chain_too_long");
    }

    /// Objects written while iddecorator was not covering the namespace carry a consistent
    /// user but no stamp it signed: the pod and every owner must have one, for the pod's
    /// namespace, by one of the keys.
    #[tokio::test]
    async fn the_pod_and_every_owner_must_carry_a_valid_stamp() {
        let stamped = StampedKinds::default();
        let fake = FakeOwners::alice(vec![
            ("web-abc", vec![owner("Deployment", "web")]),
            ("web", vec![]),
            ("old-abc", vec![owner("Deployment", "old-unstamped")]),
            ("old-unstamped", vec![]),
        ]);
        let served = owned_pod(vec![owner("ReplicaSet", "web-abc")]);
        assert!(
            resolve(&served, &fake, &stamped, &stamp_keys())
                .await
                .is_ok()
        );
        let e = resolve(
            &owned_pod(vec![owner("ReplicaSet", "old-abc")]),
            &fake,
            &stamped,
            &stamp_keys(),
        )
        .await
        .expect_err("unstamped top");
        assert_eq!(e.code, "stamp_invalid");
        assert!(
            e.message
                .starts_with("Deployment team-a/old-unstamped, which owns pod team-a/p, carries"),
            "{e}"
        );
        assert!(e.message.contains("re-apply or recreate it"), "{e}");
        for stamp in [
            None,
            Some("v1.forged".to_owned()),
            Some(stamp_keys().sign("team-b", "alice")),
            Some(stamp_keys().sign("team-a", "bob")),
        ] {
            let mut p = served.clone();
            p.stamp = stamp;
            let e = resolve(&p, &fake, &stamped, &stamp_keys())
                .await
                .expect_err("pod stamp");
            assert_eq!(e.code, "stamp_invalid", "{:?}", p.stamp);
        }
        // Another key set refuses; one that also holds the signing key (rotation) serves.
        let other = Keys::parse("ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").unwrap();
        assert_eq!(
            resolve(&served, &fake, &stamped, &other)
                .await
                .expect_err("other key")
                .code,
            "stamp_invalid"
        );
        let rotating = Keys::parse(
            "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=\nMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        )
        .unwrap();
        assert!(resolve(&served, &fake, &stamped, &rotating).await.is_ok());
    }

    #[tokio::test]
    async fn every_owner_must_carry_the_pods_user_exactly() {
        let mut fake = FakeOwners::alice(vec![
            ("web-abc", vec![owner("Deployment", "web")]),
            ("web", vec![]),
        ]);
        let pod = owned_pod(vec![owner("ReplicaSet", "web-abc")]);
        let stamped = StampedKinds::default();
        fake.0.insert("web".into(), (vec![], Some("bob".into())));
        let e = resolve(&pod, &fake, &stamped, &stamp_keys())
            .await
            .expect_err("top");
        assert_eq!(e.code, "owner_user_mismatch");
        assert!(
            e.message.contains("Deployment team-a/web")
                && e.message.contains("\"alice\"")
                && e.message.contains("\"bob\""),
            "names the object and both values: {e}"
        );
        // No trimming, no case folding: a different string is a different user.
        for other in ["alice ", "Alice"] {
            fake.0.insert("web".into(), (vec![], Some(other.into())));
            assert_eq!(code(&pod, &fake, &stamped).await, "owner_user_mismatch");
        }
        fake.0.insert(
            "web-abc".into(),
            (vec![owner("Deployment", "web")], Some("bob".into())),
        );
        assert_eq!(code(&pod, &fake, &stamped).await, "owner_user_mismatch");
        fake.0
            .insert("web-abc".into(), (vec![owner("Deployment", "web")], None));
        let e = resolve(&pod, &fake, &stamped, &stamp_keys())
            .await
            .expect_err("none");
        assert_eq!(e.code, "owner_unannotated");
        assert!(e.message.contains("ReplicaSet team-a/web-abc"), "{e}");
    }

    #[tokio::test]
    async fn every_owner_must_be_of_a_stamped_kind() {
        let ray = OwnerRef {
            api_version: "ray.io/v1".into(),
            kind: "RayJob".into(),
            name: "ray".into(),
            uid: "uid-ray".into(),
            controller: true,
        };
        let fake = FakeOwners::alice(vec![("ray", vec![]), ("cm", vec![])]);
        let pod = owned_pod(vec![ray.clone()]);
        let e = resolve(&pod, &fake, &StampedKinds::default(), &stamp_keys())
            .await
            .expect_err("unstamped");
        assert_eq!(e.code, "owner_not_stamped");
        assert!(
            e.message.contains("RayJob team-a/ray") && e.message.contains("stampedKinds"),
            "names the kind and how to add it: {e}"
        );
        let configured = StampedKinds::with([("ray.io".to_owned(), "RayJob".to_owned())]);
        let k = resolve(&pod, &fake, &configured, &stamp_keys())
            .await
            .expect("configured");
        assert_eq!(k.kind, "RayJob");
        // Kind and group both count: a ConfigMap, or a look-alike kind in another group.
        let stamped = StampedKinds::default();
        assert_eq!(
            code(&owned_pod(vec![owner("ConfigMap", "cm")]), &fake, &stamped).await,
            "owner_not_stamped"
        );
        let mut fake_rs = owner("ReplicaSet", "cm");
        fake_rs.api_version = "evil.example.com/v1".into();
        assert_eq!(
            code(&owned_pod(vec![fake_rs]), &fake, &stamped).await,
            "owner_not_stamped"
        );
    }

    #[tokio::test]
    async fn a_kind_the_webhook_does_not_intercept_is_not_stamped() {
        let fake = FakeOwners::alice(vec![("mx", vec![])]);
        let pod = owned_pod(vec![owner("MXJob", "mx")]);
        let stamped = StampedKinds::default().intercepted_by(|_, kind| {
            (kind == "MXJob").then(|| "webhook w has no rule for CREATE of mxjobs".to_owned())
        });
        let e = resolve(&pod, &fake, &stamped, &stamp_keys())
            .await
            .expect_err("unintercepted");
        assert_eq!(e.code, "owner_not_stamped");
        assert!(
            e.message.contains("MXJob team-a/mx") && e.message.contains("CREATE of mxjobs"),
            "names the owner and the missing rule: {e}"
        );
        let tf = owned_pod(vec![owner("TFJob", "mx")]);
        assert_eq!(
            resolve(&tf, &fake, &stamped, &stamp_keys())
                .await
                .expect("tf")
                .kind,
            "TFJob"
        );
    }

    #[tokio::test]
    async fn a_pod_without_a_user_has_no_provable_workload() {
        let mut p = owned_pod(vec![]);
        p.user = None;
        let e = resolve(
            &p,
            &FakeOwners(HashMap::new()),
            &StampedKinds::default(),
            &stamp_keys(),
        )
        .await
        .expect_err("no user");
        assert_eq!(e.code, "no_user_annotation");
    }

    #[tokio::test]
    async fn liveness_follows_the_chain_past_vanished_owners() {
        let mut fake = FakeOwners::alice(vec![("rs", vec![owner("Deployment", "gone")])]);
        fake.0.insert(
            "rs".into(),
            (vec![owner("Deployment", "gone")], Some("bob".into())),
        );
        let pod = owned_pod(vec![owner("ReplicaSet", "rs")]);
        let stamped = StampedKinds::default();
        for (uid, want) in [
            ("uid-gone", true),
            ("uid-rs", true),
            ("pod-uid", true),
            ("uid-other", false),
        ] {
            assert_eq!(
                reaches(&pod, &fake, &stamped, uid, None)
                    .await
                    .expect("walk"),
                want,
                "{uid}"
            );
        }
        // An unstamped owner is never read: a lookup that would fail is not made.
        let unreadable = owned_pod(vec![owner("ConfigMap", "cm")]);
        assert!(
            !reaches(&unreadable, &Broken, &stamped, "uid-x", None)
                .await
                .expect("no lookup")
        );
        let cyclic = FakeOwners::alice(vec![
            ("a", vec![owner("ReplicaSet", "b")]),
            ("b", vec![owner("ReplicaSet", "a")]),
        ]);
        let pod = owned_pod(vec![owner("ReplicaSet", "a")]);
        assert!(
            !reaches(&pod, &cyclic, &stamped, "uid-x", None)
                .await
                .expect("bounded")
        );
    }

    #[tokio::test]
    async fn only_pods_of_the_records_user_keep_a_workload_alive() {
        let fake = FakeOwners::alice(vec![("rs", vec![owner("Deployment", "web")])]);
        let stamped = StampedKinds::default();
        let mut bobs = owned_pod(vec![owner("ReplicaSet", "rs")]);
        bobs.user = Some("bob".into());
        let alices = owned_pod(vec![owner("ReplicaSet", "rs")]);
        for (pod, user, want) in [
            (&alices, Some("alice"), true),
            (&bobs, Some("alice"), false),
            (&bobs, Some("bob"), true),
            // A record of an older version: the user is unknown, any pod counts.
            (&bobs, None, true),
        ] {
            assert_eq!(
                reaches(pod, &fake, &stamped, "uid-web", user)
                    .await
                    .expect("walk"),
                want,
                "{:?} for {user:?}",
                pod.user
            );
        }
        // Also the workload's own bare pod: another user's pod never matches its uid, but the
        // check holds for it too.
        let mut unannotated = owned_pod(vec![]);
        unannotated.user = None;
        assert!(
            !reaches(&unannotated, &fake, &stamped, "pod-uid", Some("alice"))
                .await
                .expect("bare")
        );
    }

    /// Every lookup fails (as `get` on a kind token-service has no RBAC for would).
    struct Broken;

    impl OwnerLookup for Broken {
        fn get<'a>(
            &'a self,
            namespace: &'a str,
            owner: &'a OwnerRef,
        ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
            Box::pin(async move {
                Err(LookupError {
                    kind: owner.kind.clone(),
                    namespace: namespace.to_owned(),
                    name: owner.name.clone(),
                    detail: "forbidden".into(),
                })
            })
        }
    }

    #[test]
    fn plurals_of_controller_kinds() {
        for (kind, plural_) in [
            ("ReplicaSet", "replicasets"),
            ("Job", "jobs"),
            ("CronJob", "cronjobs"),
            ("StatefulSet", "statefulsets"),
            ("TFJob", "tfjobs"),
            ("PyTorchJob", "pytorchjobs"),
            ("Deployment", "deployments"),
            ("DaemonSet", "daemonsets"),
            ("Policy", "policies"),
        ] {
            assert_eq!(plural(kind), plural_);
        }
    }
}
