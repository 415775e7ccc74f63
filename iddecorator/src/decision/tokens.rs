//! TokenRequests (`serviceaccounts/token` CREATE) for our audience: only kubelets may make them.
//!
//! token-service takes a service-account token bound to a pod, for audience `kube2hadoop`, as
//! proof that the caller is that pod. The default `edit` role lets anyone in the namespace mint
//! such a token bound to anyone's pod (`kubectl create token --bound-object-name`), which would
//! let them fetch that pod's user's credentials. Pods get their token from the projected volume
//! `kube2hadoop.io/inject` adds, which the kubelet mints as its node; and a node may mint only
//! for pods bound to it (Node authorizer, NodeRestriction). So nobody but a node needs to.
use super::{Decision, allow, groups};
use k2h_contract::names::{AUDIENCE, NODES_GROUP, is_node};
use kube::core::{
    DynamicObject,
    admission::{AdmissionRequest, Operation},
};

/// Why a TokenRequest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error(
        "only kubelets may request service-account tokens for audience {AUDIENCE}; {requester} may not. Pods get one from the projected volume that {inject} adds; a token for another audience is not affected",
        inject = k2h_contract::annotations::INJECT
    )]
    NotANode { requester: String },
    #[error("TokenRequest carries no readable spec.audiences ({0}); iddecorator cannot check it")]
    Unreadable(String),
}

/// Whether this is a TokenRequest (CREATE on `serviceaccounts/token`).
pub fn is_token_request(req: &AdmissionRequest<DynamicObject>) -> bool {
    matches!(req.operation, Operation::Create)
        && req.resource.group.is_empty()
        && req.resource.resource == "serviceaccounts"
        && req.sub_resource.as_deref() == Some("token")
}

/// Allow unless the token is for our audience and the requester is not a node.
pub fn decide(req: &AdmissionRequest<DynamicObject>) -> Decision {
    let refusal = match audiences(req) {
        Err(e) => Some(e),
        Ok(auds) if !auds.iter().any(|a| a == AUDIENCE) => None,
        Ok(_) => {
            let username = req.user_info.username.as_deref().unwrap_or_default();
            // Both, as the apiserver sets them for kubelets: the name alone could be a
            // client certificate's CN without the group, the group alone a misconfiguration.
            let node = is_node(username) && groups(req).iter().any(|g| g == NODES_GROUP);
            (!node).then(|| Refusal::NotANode {
                requester: username.to_owned(),
            })
        }
    };
    match refusal {
        None => allow(json_patch::Patch(Vec::new())),
        Some(r) => Decision::Deny {
            reason: r.to_string(),
        },
    }
}

/// `spec.audiences` as the apiserver passes it to admission: already defaulted to the API
/// audiences when the requester gave none (which may include ours).
fn audiences(req: &AdmissionRequest<DynamicObject>) -> Result<Vec<String>, Refusal> {
    let object = req
        .object
        .as_ref()
        .ok_or_else(|| Refusal::Unreadable("no object".into()))?;
    let value = object
        .data
        .pointer("/spec/audiences")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    if value.is_null() {
        return Ok(Vec::new());
    }
    serde_json::from_value(value).map_err(|e| Refusal::Unreadable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::decode;
    use super::*;
    use serde_json::{Value, json};

    fn request(
        username: &str,
        groups: &[&str],
        audiences: Value,
    ) -> AdmissionRequest<DynamicObject> {
        decode(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                "resource": {"group": "", "version": "v1", "resource": "serviceaccounts"},
                "subResource": "token",
                "name": "default",
                "namespace": "team-a",
                "operation": "CREATE",
                "userInfo": {"username": username, "groups": groups},
                "object": {
                    "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "metadata": {"name": "default", "namespace": "team-a"},
                    "spec": {"audiences": audiences, "expirationSeconds": 600,
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "alice-0"}},
                },
                "oldObject": null,
                "dryRun": false,
            }
        }))
    }

    fn allowed(d: &Decision) -> bool {
        matches!(d, Decision::Allow { patch } if patch.0.is_empty())
    }

    #[test]
    fn only_nodes_mint_for_our_audience() {
        let ours = json!(["kube2hadoop"]);
        let node = request("system:node:kwok-node-0", &["system:nodes"], ours.clone());
        assert!(is_token_request(&node));
        assert!(allowed(&decide(&node)));
        for (user, groups) in [
            ("bob", vec!["team-a"]),
            ("admin", vec!["system:masters"]),
            ("system:node:kwok-node-0", vec![]),
            ("mallory", vec!["system:nodes"]),
        ] {
            let d = decide(&request(user, &groups, ours.clone()));
            let Decision::Deny { reason } = d else {
                panic!("{user}: {d:?}");
            };
            assert!(
                reason.starts_with(&format!(
                    "only kubelets may request service-account tokens for audience kube2hadoop; {user} may not"
                )),
                "{reason}"
            );
        }
        // Our audience among others counts too.
        let d = decide(&request(
            "bob",
            &[],
            json!(["https://kubernetes.default.svc", "kube2hadoop"]),
        ));
        assert!(!allowed(&d));
    }

    #[test]
    fn other_audiences_are_not_ours_to_judge() {
        for auds in [json!(["vault"]), json!([]), Value::Null] {
            assert!(allowed(&decide(&request("bob", &[], auds))));
        }
        let d = decide(&request("bob", &[], json!("kube2hadoop")));
        assert!(!allowed(&d), "an unreadable audience list is denied");
    }

    #[test]
    fn validate_routes_token_requests_here() {
        let p = crate::policy::Policy::default();
        let req = request("bob", &[], json!(["kube2hadoop"]));
        assert!(!allowed(&super::super::validate(&req, &p)));
        assert!(allowed(&super::super::mutate(&req, &p)));
    }
}
