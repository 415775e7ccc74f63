//! Entry points for the fuzz targets in `fuzz/` and the regression tests that replay their
//! corpus (`tests/fuzz_regressions.rs`). They panic when a property breaks, which is the point:
//! a fuzzer reports it. Input that the server would reject before deciding is ignored.
use crate::decision::{Decision, PodLookup, mutate, validate, validate_only, validate_with};
use crate::policy::Policy;
use crate::review;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{DynamicObject, admission::AdmissionRequest};
use serde_json::Value;
use std::sync::OnceLock;

/// The `injection:` section of [`rich_policy`], every setting changed from its default; on its
/// own, the policy of the test that checks each setting reaches the fetcher.
pub const INJECTION_POLICY: &str = r#"
injection:
  image: registry.example/k2h/init-fetcher:1.2.3
  tokenServiceUrl: https://k2h.example:9443
  caFile: /etc/ssl/k2h-ca.pem
  deadline: 5m
  tokenExpirationSeconds: 7200
"#;

/// The rest of [`rich_policy`].
const RICH_RULES: &str = r#"
trustedControllers:
  - {username: system:serviceaccount:kube-system:replicaset-controller, ownerKinds: [apps/ReplicaSet]}
  - {username: system:serviceaccount:kube-system:job-controller, ownerKinds: [batch/Job]}
  - {username: system:serviceaccount:ray-system:kuberay-operator, ownerKinds: [ray.io/RayCluster, example.com/Fanout]}
podAccessAdmins: {groups: [system:masters, ops], users: [root]}
usernames:
  stripPrefixes: ["oidc:", "corp:"]
  rewrite: {pattern: '(?P<name>[a-z][a-z0-9_-]*)@corp\.example', replacement: '${name}'}
  serviceAccounts: {"system:serviceaccount:etl:runner": etl}
kinds:
  - {group: ray.io, kind: RayCluster, templatePaths: [spec.headGroupSpec.template, "spec.workerGroupSpecs[].template"]}
  - {group: example.com, kind: Fanout, templatePaths: ["spec.*.template"]}
  - {group: apps, kind: Deployment, templatePaths: [spec.template]}
"#;

/// A policy exercising everything that changes the decision: username mapping, a changed
/// trusted-controller list, a custom kind with wildcard template paths, and injection settings.
pub fn rich_policy() -> Policy {
    Policy::from_yaml(&[RICH_RULES, INJECTION_POLICY].concat())
        .unwrap_or_else(|e| panic!("fuzz::rich_policy must be valid: {e}"))
}

fn policies() -> &'static [Policy; 2] {
    static POLICIES: OnceLock<[Policy; 2]> = OnceLock::new();
    POLICIES.get_or_init(|| [Policy::default(), rich_policy()])
}

/// Bytes → AdmissionRequest (read by [`review::request_of`], as the server reads a body) →
/// `/mutate` and `/validate` under the default and the rich policy; see [`check_request`].
pub fn admission(data: &[u8]) {
    let Ok(request) = review::request_of(data) else {
        return;
    };
    for policy in policies() {
        check_request(&request, policy);
    }
}

/// The admission invariants: when `/mutate` allows, its patch applies to the object it was
/// computed from, the patched object still decodes, `/validate` of it allows and mutating it
/// again changes nothing; when `/mutate` denies, `/validate` of the same request denies too.
/// Requests only `/validate` decides (CONNECT, TokenRequest) pass `/mutate` unchanged and are
/// decided with a reason whatever the pod lookup found.
pub fn check_request(request: &AdmissionRequest<DynamicObject>, policy: &Policy) {
    if validate_only(request) {
        let unchanged = mutate(request, policy);
        assert!(
            matches!(&unchanged, Decision::Allow { patch } if patch.0.is_empty()),
            "mutate of a validate-only request: {unchanged:?}"
        );
        let owned = ObjectMeta {
            annotations: Some(
                [(
                    k2h_contract::annotations::USER.to_owned(),
                    "alice".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        };
        let lookups = [
            None,
            Some(PodLookup::Found(Box::new(owned))),
            Some(PodLookup::Found(Box::default())),
            Some(PodLookup::NotFound),
            Some(PodLookup::Unavailable("timed out".into())),
        ];
        for pod in &lookups {
            if let Decision::Deny { reason } = validate_with(request, policy, pod.as_ref()) {
                assert!(!reason.is_empty(), "deny without a reason");
            }
        }
        return;
    }
    match mutate(request, policy) {
        Decision::Allow { patch } => {
            let Some(object) = &request.object else {
                assert!(
                    patch.0.is_empty(),
                    "patch {patch:?} for a request without object"
                );
                return;
            };
            let mut doc = serde_json::to_value(object).unwrap_or(Value::Null);
            if let Err(e) = json_patch::patch(&mut doc, &patch.0) {
                panic!("patch {patch:?} does not apply to the object it was computed from: {e}");
            }
            let patched: DynamicObject = serde_json::from_value(doc.clone())
                .unwrap_or_else(|e| panic!("patched object does not decode ({e}): {doc}"));
            let mut again = request.clone();
            again.object = Some(patched);
            let validated = validate(&again, policy);
            assert!(
                matches!(&validated, Decision::Allow { patch } if patch.0.is_empty()),
                "validate of the patched object: {validated:?}; patched object: {doc}"
            );
            let remutated = mutate(&again, policy);
            assert!(
                matches!(&remutated, Decision::Allow { patch } if patch.0.is_empty()),
                "mutate is not idempotent: {remutated:?}; patched object: {doc}"
            );
        }
        Decision::Deny { reason } => {
            assert!(!reason.is_empty(), "deny without a reason");
            let validated = validate(request, policy);
            assert!(
                matches!(validated, Decision::Deny { .. }),
                "mutate denied ({reason}) but validate allows"
            );
        }
    }
}

/// Bytes → policy file: parsing never panics, whatever the text.
pub fn policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Policy::from_yaml(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rich_policy_is_valid_and_garbage_is_ignored() {
        assert_eq!(policies().len(), 2);
        for garbage in [&b""[..], b"{}", b"{\"request\":null}", b"\xff", b"[1,2]"] {
            admission(garbage);
            policy(garbage);
        }
    }
}
