//! CONNECT into a pod (`kubectl exec`, `attach`, `port-forward`, and the apiserver's HTTP proxy
//! `pods/<name>:<port>/proxy`): whoever gets in can read the credentials file in the pod's
//! memory volume, or talk to a server in the pod that hands it out, so only the pod's user and
//! pod-access admins may. Controllers do not exec, so trusted controllers get no exception here.
//!
//! The request carries `PodExecOptions` (or `PodAttachOptions`, `PodPortForwardOptions`,
//! `PodProxyOptions`), not the pod: the shell reads the pod and passes what it found as a [`PodLookup`], so the
//! decision stays a pure function.
use super::{Decision, allow, groups};
use crate::policy::Policy;
use k2h_contract::annotations::USER;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, Operation},
};

/// The pod subresources whose CONNECT reaches into a running pod.
const SUBRESOURCES: &[&str] = &["exec", "attach", "portforward", "proxy"];

/// What the shell found when it read the pod a CONNECT names.
#[derive(Debug, Clone, PartialEq)]
pub enum PodLookup {
    /// The pod's metadata.
    Found(Box<ObjectMeta>),
    /// No such pod: denied too (the apiserver would answer 404 anyway, and an absent pod is
    /// not proof that nobody's credentials are there).
    NotFound,
    /// Could not read it (no client configured, API error, timeout): denied, fail closed.
    Unavailable(String),
}

/// The pod (namespace, name) a request needs read before it can be decided: a CONNECT on
/// `pods/exec`, `pods/attach`, `pods/portforward` or `pods/proxy`.
pub fn pod_to_read(req: &AdmissionRequest<DynamicObject>) -> Option<(&str, &str)> {
    let sub = req.sub_resource.as_deref()?;
    let connect = matches!(req.operation, Operation::Connect)
        && req.resource.group.is_empty()
        && req.resource.resource == "pods"
        && SUBRESOURCES.contains(&sub);
    let name = if sub == "proxy" {
        proxied_pod(&req.name)
    } else {
        req.name.as_str()
    };
    connect.then(|| (req.namespace.as_deref().unwrap_or_default(), name))
}

/// The pod name in a `pods/proxy` request, which names `[scheme:]name[:port]` (as the
/// apiserver splits it). Pod names hold no `:`, so anything else is returned whole: no pod has
/// that name, and the request is denied.
fn proxied_pod(id: &str) -> &str {
    let parts: Vec<&str> = id.split(':').collect();
    match parts.as_slice() {
        [name] | [name, _] | [_, name, _] => name,
        _ => id,
    }
}

/// Why a CONNECT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error(
        "only {owner} (the pod's {USER}) or a pod-access admin (podAccessAdmins in the iddecorator policy) may {verb} this pod, whose containers may hold {owner}'s credentials; {requester} may not"
    )]
    NotOwner {
        owner: String,
        requester: String,
        verb: &'static str,
    },
    #[error("pod {pod} does not exist")]
    NotFound { pod: String },
    #[error(
        "iddecorator cannot read pod {pod} to check who may {verb} it: {reason}; denied until it can (see the iddecorator log; it needs `get pods` and --kubeconfig or in-cluster credentials)"
    )]
    Unreadable {
        pod: String,
        verb: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Username(#[from] crate::username::UsernameError),
}

/// Decide a CONNECT into a pod from what the shell read (`None`: it read nothing).
pub fn connect(
    req: &AdmissionRequest<DynamicObject>,
    policy: &Policy,
    pod: Option<&PodLookup>,
) -> Decision {
    match decide(req, policy, pod) {
        Ok(()) => allow(json_patch::Patch(Vec::new())),
        Err(refusal) => Decision::Deny {
            reason: refusal.to_string(),
        },
    }
}

fn decide(
    req: &AdmissionRequest<DynamicObject>,
    policy: &Policy,
    pod: Option<&PodLookup>,
) -> Result<(), Refusal> {
    let username = req.user_info.username.as_deref();
    if policy.is_pod_access_admin(username, groups(req)) {
        return Ok(());
    }
    let (namespace, name) = pod_to_read(req).unwrap_or_default();
    let shown = format!("{namespace}/{name}");
    let verb = match req.sub_resource.as_deref() {
        Some("attach") => "attach to",
        Some("portforward") => "port-forward to",
        Some("proxy") => "proxy to",
        _ => "exec into",
    };
    let meta = match pod {
        Some(PodLookup::Found(meta)) => meta,
        Some(PodLookup::NotFound) => return Err(Refusal::NotFound { pod: shown }),
        Some(PodLookup::Unavailable(reason)) => {
            return Err(Refusal::Unreadable {
                pod: shown,
                verb,
                reason: reason.clone(),
            });
        }
        None => {
            return Err(Refusal::Unreadable {
                pod: shown,
                verb,
                reason: "the pod was not read".into(),
            });
        }
    };
    let Some(owner) = meta.annotations.as_ref().and_then(|a| a.get(USER)) else {
        // No user: no credentials of anyone's to protect (token-service refuses such pods).
        return Ok(());
    };
    let requester = policy.map_username(username)?;
    if &requester == owner {
        Ok(())
    } else {
        Err(Refusal::NotOwner {
            owner: owner.clone(),
            requester,
            verb,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::decode;
    use super::*;
    use serde_json::json;

    fn request(sub: &str, username: &str, groups: &[&str]) -> AdmissionRequest<DynamicObject> {
        decode(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": sub,
                "name": "train-0",
                "namespace": "ml",
                "operation": "CONNECT",
                "userInfo": {"username": username, "groups": groups},
                "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "stdin": true},
                "oldObject": null,
                "dryRun": false,
            }
        }))
    }

    fn pod(user: Option<&str>) -> PodLookup {
        let mut meta = ObjectMeta {
            name: Some("train-0".into()),
            ..ObjectMeta::default()
        };
        if let Some(u) = user {
            meta.annotations = Some([(USER.to_owned(), u.to_owned())].into());
        }
        PodLookup::Found(Box::new(meta))
    }

    fn reason(d: Decision) -> String {
        match d {
            Decision::Deny { reason } => reason,
            other => panic!("expected Deny, got {other:?}"),
        }
    }

    fn allowed(d: Decision) -> bool {
        matches!(d, Decision::Allow { patch } if patch.0.is_empty())
    }

    #[test]
    fn which_requests_need_the_pod() {
        for sub in SUBRESOURCES {
            assert_eq!(
                pod_to_read(&request(sub, "bob", &[])),
                Some(("ml", "train-0"))
            );
        }
        assert_eq!(pod_to_read(&request("log", "bob", &[])), None);
        assert_eq!(pod_to_read(&request("binding", "bob", &[])), None);
    }

    #[test]
    fn a_proxied_pod_is_named_without_scheme_and_port() {
        for (id, pod) in [
            ("train-0", "train-0"),
            ("train-0:8080", "train-0"),
            ("https:train-0:8443", "train-0"),
            ("train-0:", "train-0"),
            ("a:b:c:d", "a:b:c:d"),
        ] {
            let mut req = request("proxy", "bob", &[]);
            req.name = id.into();
            assert_eq!(pod_to_read(&req), Some(("ml", pod)), "{id}");
        }
        // Only proxy names carry a port; other subresources are read as named.
        let mut req = request("exec", "bob", &[]);
        req.name = "train-0:8080".into();
        assert_eq!(pod_to_read(&req), Some(("ml", "train-0:8080")));
    }

    #[test]
    fn bob_may_not_proxy_to_alices_pod() {
        let p = Policy::default();
        let mut bob = request("proxy", "bob", &["team-a"]);
        bob.name = "train-0:8080".into();
        let r = reason(connect(&bob, &p, Some(&pod(Some("alice")))));
        assert!(r.contains("may proxy to this pod"), "{r}");
        assert!(r.ends_with("bob may not"), "{r}");
        let mut alice = request("proxy", "alice", &["team-a"]);
        alice.name = "train-0:8080".into();
        assert!(allowed(connect(&alice, &p, Some(&pod(Some("alice"))))));
        // The plain entry point reads nothing, so it denies.
        assert!(!allowed(super::super::validate(&bob, &p)));
    }

    #[test]
    fn only_the_pods_user_and_admins_get_in() {
        let p = Policy::default();
        for sub in SUBRESOURCES {
            let alice = request(sub, "alice", &["team-a"]);
            assert!(allowed(connect(&alice, &p, Some(&pod(Some("alice"))))));
            let bob = request(sub, "bob", &["team-a"]);
            let r = reason(connect(&bob, &p, Some(&pod(Some("alice")))));
            assert!(
                r.starts_with("only alice (the pod's kube2hadoop.io/user) or a pod-access admin"),
                "{r}"
            );
            assert!(r.ends_with("bob may not"), "{r}");
            let admin = request(sub, "admin", &["system:masters"]);
            assert!(allowed(connect(&admin, &p, Some(&pod(Some("alice"))))));
            // Trusted controllers do not exec.
            let rs = request(
                sub,
                "system:serviceaccount:kube-system:replicaset-controller",
                &[],
            );
            assert!(!allowed(connect(&rs, &p, Some(&pod(Some("alice"))))));
        }
        let r = reason(connect(
            &request("portforward", "bob", &[]),
            &p,
            Some(&pod(Some("alice"))),
        ));
        assert!(r.contains("may port-forward to this pod"), "{r}");
    }

    #[test]
    fn a_pod_without_a_user_is_open_to_its_namespace() {
        let p = Policy::default();
        assert!(allowed(connect(
            &request("exec", "bob", &[]),
            &p,
            Some(&pod(None))
        )));
    }

    #[test]
    fn names_are_compared_after_mapping() {
        let p = Policy::from_yaml("usernames: {stripPrefixes: ['oidc:']}").unwrap();
        let req = request("exec", "oidc:alice", &[]);
        assert!(allowed(connect(&req, &p, Some(&pod(Some("alice"))))));
    }

    #[test]
    fn configured_admins_replace_the_default() {
        let p = Policy::from_yaml("podAccessAdmins: {groups: [ops], users: [root]}").unwrap();
        let alices = Some(pod(Some("alice")));
        let masters = request("exec", "x", &["system:masters"]);
        assert!(!allowed(connect(&masters, &p, alices.as_ref())));
        assert!(allowed(connect(
            &request("exec", "x", &["ops"]),
            &p,
            alices.as_ref()
        )));
        assert!(allowed(connect(
            &request("exec", "root", &[]),
            &p,
            alices.as_ref()
        )));
    }

    #[test]
    fn an_unread_or_missing_pod_is_denied() {
        let p = Policy::default();
        let bob = request("exec", "bob", &[]);
        let r = reason(connect(&bob, &p, None));
        assert!(r.contains("cannot read pod ml/train-0"), "{r}");
        let r = reason(connect(
            &bob,
            &p,
            Some(&PodLookup::Unavailable("timed out after 2s".into())),
        ));
        assert!(r.contains("timed out after 2s; denied until it can"), "{r}");
        let r = reason(connect(&bob, &p, Some(&PodLookup::NotFound)));
        assert_eq!(r, "pod ml/train-0 does not exist");
        // The plain entry point reads nothing, so it denies too.
        assert!(!allowed(super::super::validate(&bob, &p)));
    }
}
