//! Entry point for the `token-service` fuzz target (`fuzz/`) and the regression test that
//! replays its corpus (`tests/fuzz_regressions.rs`). It panics when a property breaks, which is
//! the point: a fuzzer reports it.
//!
//! A credentials request has no body; what its caller and the API control reaches the service
//! as seven NUL-separated parts (JSON and header values cannot hold a NUL, so nothing is lost):
//! method, request target, `Authorization`, `Accept` (one value per line), the TokenReview the
//! API answers for the bearer token, the Pod the API returns, and the owner objects (a JSON
//! list of `ObjectMeta`) the workload lookup finds. Each part goes through the same pure
//! functions the request path uses, in the same order.

use std::collections::BTreeSet;
use std::net::IpAddr;

use bytes::Bytes;
use futures::executor::block_on;
use futures::future::BoxFuture;
use http::{HeaderValue, Request, header};
use k8s_openapi::api::authentication::v1::TokenReview;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::authorize::{Policy, authorize};
use crate::directory::{Directory, DirectoryError, RunAsStatus, UserStatus};
use crate::identity::{ReviewedPod, TokenOrigin, by_ip, by_review, review_target};
use crate::index::{IpLookup, PodIndex};
use crate::mapping::{MappingRules, valid_account};
use crate::pod::{OwnerRef, PodFacts, owner_refs};
use crate::request::{bearer_token, review_of, wants_json};
use crate::workload::owner_object;
use crate::workload::{
    LookupError, OwnerLookup, OwnerObject, StampedKinds, WorkloadKey, controller_of, reaches,
    resolve,
};

const PARTS: usize = 7;
const SA_PREFIX: &str = "system:serviceaccount:";
const SERVED: &str = "team-a";

/// Every namespace served, and only one.
fn served_sets() -> [&'static dyn Fn(&str) -> bool; 2] {
    [&|_| true, &|ns| ns == SERVED]
}

/// The mapping rules the fuzzer runs every annotation through: the default, and one that
/// strips prefixes, checks realms and lowercases.
fn rule_sets() -> [MappingRules; 2] {
    [
        MappingRules::default(),
        MappingRules {
            deny_prefixes: vec!["system:".into(), "admin".into()],
            strip_prefixes: vec!["oidc:".into(), "corp:".into()],
            strip_realm: true,
            realms: vec!["EXAMPLE.COM".into()],
            lowercase: true,
        },
    ]
}

/// See the module comment for the layout of `data`.
pub fn request(data: &[u8]) {
    let mut parts = data.splitn(PARTS, |b| *b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (method, target, authorization, accept) = (next(), next(), next(), next());
    let (review, pod, owners) = (next(), next(), next());

    // Only a request with a bearer token reaches a review in the server; the review's
    // properties hold regardless, so both are fuzzed independently.
    if let Some(token) = headers(method, target, authorization, accept) {
        check_signature(&token);
    }
    let target = serde_json::from_slice::<TokenReview>(review)
        .ok()
        .and_then(reviewed);
    let Ok(pod) = serde_json::from_slice::<Pod>(pod) else {
        return;
    };
    let facts = PodFacts::from_pod(&pod);
    check_facts(&pod, &facts);
    if let Some(target) = target {
        check_review(&target, &facts);
    }
    check_index(&facts);
    for mapping in rule_sets() {
        check_principal(&facts, mapping);
    }
    let owners: Vec<ObjectMeta> = serde_json::from_slice(owners).unwrap_or_default();
    check_workload(&facts, &Owners(owners));
}

/// An API server's key set whose private keys nobody has: whatever the token, it is never
/// vouched for, and checking it never panics.
fn check_signature(token: &str) {
    static KEYS: std::sync::OnceLock<Option<crate::signed_token::KeySet>> =
        std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let discovery = br#"{"issuer":"https://kubernetes.default.svc.cluster.local"}"#;
        let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig","alg":"ES256",
            "x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis",
            "y":"y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"},
            {"kty":"RSA","kid":"k2","use":"sig","alg":"RS256","e":"AQAB",
            "n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]}"#;
        crate::signed_token::KeySet::parse(discovery, jwks).ok()
    });
    if let Some(keys) = keys {
        for now in [0, 1_700_000_000, u64::MAX] {
            assert!(
                crate::signed_token::verify(keys, token, now).is_err(),
                "a token nobody could sign was vouched for"
            );
        }
    }
}

/// The request as hyper hands it over; returns the bearer token it carries, if any.
fn headers(method: &[u8], target: &[u8], authorization: &[u8], accept: &[u8]) -> Option<String> {
    let mut builder = Request::builder().method(method).uri(target);
    if let Ok(v) = HeaderValue::from_bytes(authorization) {
        builder = builder.header(header::AUTHORIZATION, v);
    }
    for value in accept.split(|b| *b == b'\n') {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            builder = builder.header(header::ACCEPT, v);
        }
    }
    let req = builder.body(Bytes::new()).ok()?;
    let _ = (req.method(), req.uri().path(), req.uri().query());
    let json = wants_json(req.headers());
    let accepted = req.headers().get_all(header::ACCEPT).iter();
    assert_eq!(
        json,
        accepted
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json")),
    );
    let value = req.headers().get(header::AUTHORIZATION)?;
    let token = bearer_token(value).ok()?;
    let text = value.to_str().unwrap_or_default();
    assert!(
        !token.is_empty() && token == token.trim(),
        "token {token:?}"
    );
    assert_eq!(
        text.strip_prefix("Bearer ").map(str::trim),
        Some(token),
        "the token is what follows `Bearer `"
    );
    Some(token.to_owned())
}

/// The pod a review names, checked against the review it came from.
fn reviewed(review: TokenReview) -> Option<ReviewedPod> {
    let review = review_of(review.status);
    let target = review_target(&review).ok()?;
    assert!(
        review.authenticated,
        "an unauthenticated review named {target:?}"
    );
    assert!(
        review.audiences.iter().any(|a| a == "kube2hadoop"),
        "a review for other audiences named {target:?}"
    );
    assert_eq!(
        review.username.as_deref(),
        Some(format!("{SA_PREFIX}{}:{}", target.namespace, target.service_account).as_str()),
        "namespace and service account come from the username"
    );
    assert_eq!(target.username, review.username.clone().unwrap_or_default());
    let single = |key: &str| review.extra.get(key).cloned().unwrap_or_default();
    assert_eq!(
        single("authentication.kubernetes.io/pod-name"),
        vec![target.name.clone()]
    );
    assert_eq!(
        single("authentication.kubernetes.io/pod-uid"),
        vec![target.uid.clone()]
    );
    assert!(!target.name.is_empty() && !target.uid.is_empty());
    Some(target)
}

/// Whatever is derived from one Pod is derived the same way every time.
fn check_facts(pod: &Pod, facts: &PodFacts) {
    assert_eq!(&PodFacts::from_pod(pod), facts, "from_pod is deterministic");
    let written = |key: &str| {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    assert_eq!(
        facts.user,
        written("kube2hadoop.io/user").filter(|u| !u.is_empty()),
        "the user annotation is kept verbatim, never trimmed"
    );
    if let Some(run_as) = &facts.run_as {
        assert!(!run_as.trim().is_empty(), "a blank run-as asks for nothing");
        assert_eq!(Some(run_as), written("kube2hadoop.io/run-as").as_ref());
    }
    assert_eq!(facts.uid, pod.metadata.uid.clone().unwrap_or_default());
}

/// A pod verified by a review is the pod the review named: same UID and service account.
fn check_review(target: &ReviewedPod, facts: &PodFacts) {
    assert!(by_review(target.clone(), None, &|_| true, TokenOrigin::Any, None).is_err());
    // Sent from the first address the pod lists, or from none.
    let from = facts.ips.first().copied();
    for served in served_sets() {
        let verified = by_review(
            target.clone(),
            Some(facts.clone()),
            served,
            TokenOrigin::Pod,
            from,
        );
        let Ok(verified) = verified else {
            continue;
        };
        assert!(
            from.is_some(),
            "verified a token sent from no address of its pod"
        );
        let pod = verified.pod();
        assert_eq!(pod.uid, target.uid, "verified a pod with another UID");
        assert_eq!(
            pod.service_account.as_deref().unwrap_or("default"),
            target.service_account,
            "verified a pod running as another service account"
        );
        assert_eq!(verified.service_account(), Some(target.username.as_str()));
        assert!(pod.is_live() && !pod.deleting && served(&pod.namespace));
    }
}

/// An address leads to the live pod holding it, and to nobody once that pod is gone.
fn check_index(facts: &PodFacts) {
    let mut index = PodIndex::default();
    index.apply(facts.clone());
    let indexed = facts.is_live() && !facts.ips.is_empty() && !facts.uid.is_empty();
    assert_eq!(index.len(), usize::from(indexed));
    for ip in &facts.ips {
        let lookup = index.lookup(*ip);
        if let IpAddr::V4(v4) = ip {
            let mapped = IpAddr::V6(v4.to_ipv6_mapped());
            assert_eq!(index.lookup(mapped), lookup, "{mapped} is {ip}");
        }
        match &lookup {
            IpLookup::One(p) => assert!(indexed && p.as_ref() == facts),
            IpLookup::Nobody => assert!(!indexed),
            IpLookup::Ambiguous(_) => panic!("one pod made {ip} ambiguous"),
        }
        for served in served_sets() {
            if let Ok(v) = by_ip(lookup.clone(), *ip, served) {
                let pod = v.pod();
                assert!(pod.uid == facts.uid && !pod.host_network && !pod.deleting);
                assert!(served(&pod.namespace));
            }
        }
    }
    index.delete(&facts.uid);
    for ip in &facts.ips {
        assert_eq!(
            index.lookup(*ip),
            IpLookup::Nobody,
            "{ip} still leads somewhere"
        );
    }
}

/// Grants everything, so authorization reaches its own checks (run-as, superusers).
struct AllowAll;

impl Directory for AllowAll {
    fn describe(&self) -> String {
        "fuzz: everyone allowed".into()
    }
    fn user<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<UserStatus, DirectoryError>> {
        // As LDAP does: any case matches, the stored name (lowercase here) is returned.
        let name = user.to_ascii_lowercase();
        Box::pin(async { Ok(UserStatus::Allowed { name }) })
    }
    fn run_as<'a>(
        &'a self,
        _: &'a str,
        account: &'a str,
    ) -> BoxFuture<'a, Result<RunAsStatus, DirectoryError>> {
        let account = account.to_ascii_lowercase();
        Box::pin(async { Ok(RunAsStatus::Allowed { account }) })
    }
}

/// A mapped user is always a valid account name, and never a superuser.
fn check_principal(facts: &PodFacts, mapping: MappingRules) {
    let mapped = facts.user.as_deref().map(|u| mapping.map(u));
    if let Some(Ok(name)) = &mapped {
        assert!(valid_account(name), "{:?} mapped to {name:?}", facts.user);
        assert_eq!(facts.user.as_deref().map(|u| mapping.map(u)), mapped);
    }
    let policy = Policy {
        mapping,
        superusers: BTreeSet::from(["hdfs".to_owned(), "alice".to_owned()]),
    };
    let Ok(principal) = block_on(authorize(facts, &policy, &AllowAll)) else {
        return;
    };
    let canonical = mapped
        .clone()
        .and_then(Result::ok)
        .map(|m| m.to_ascii_lowercase());
    assert_eq!(canonical, Some(principal.requester.clone()));
    assert_eq!(Some(&principal.submitter), facts.user.as_ref());
    assert_eq!(
        principal.submitter.trim(),
        principal.submitter,
        "a user annotation with surrounding whitespace is refused"
    );
    assert_eq!(
        principal.run_as,
        facts.run_as.as_ref().map(|a| a.to_ascii_lowercase())
    );
    assert!(valid_account(&principal.hadoop_user));
    assert!(
        !policy
            .superusers
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&principal.hadoop_user)),
        "{} is a superuser in another case",
        principal.hadoop_user
    );
}

/// Owner objects by name, as the API would return them.
struct Owners(Vec<ObjectMeta>);

fn fuzz_keys() -> k2h_contract::stamp::Keys {
    // A fixed 32-byte key: the fuzzer explores shapes, not secrets.
    k2h_contract::stamp::Keys::parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        .unwrap_or_else(|e| panic!("fuzz key: {e}"))
}

impl OwnerLookup for Owners {
    fn get<'a>(
        &'a self,
        ns: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
        let found = self
            .0
            .iter()
            .find(|m| m.name.as_deref() == Some(owner.name.as_str()))
            .map(|m| {
                let mut object = owner_object(m);
                // The input's stamp when it has one (almost never valid), else a valid one, so
                // the fuzzer reaches the rest of the chain checks too.
                if object.stamp.is_none() {
                    object.stamp = object.user.as_deref().map(|u| fuzz_keys().sign(ns, u));
                }
                object
            });
        Box::pin(async move { Ok(found) })
    }
}

/// The workload key is deterministic, in the pod's namespace, and is either the bare pod or a
/// controller reference found on the way up.
fn check_workload(facts: &PodFacts, owners: &Owners) {
    let stamped = StampedKinds::default();
    let keys = fuzz_keys();
    let mut facts = facts.clone();
    if facts.stamp.is_none() {
        facts.stamp = facts
            .user
            .as_deref()
            .map(|u| keys.sign(&facts.namespace, u));
    }
    let facts = &facts;
    let first = block_on(resolve(facts, owners, &stamped, &keys));
    let again = block_on(resolve(facts, owners, &stamped, &keys));
    assert_eq!(first.as_ref().ok(), again.as_ref().ok());
    assert_eq!(
        first.as_ref().err().map(|e| e.code),
        again.as_ref().err().map(|e| e.code)
    );
    let Ok(key) = first else {
        return;
    };
    assert_eq!(key.namespace, facts.namespace);
    assert!(
        facts.user.is_some(),
        "a workload proven for a pod without a user"
    );
    assert!(
        stamped.contains(&key.api_version, &key.kind),
        "workload {key:?} is of a kind nobody stamps"
    );
    assert_eq!(
        block_on(reaches(facts, owners, &stamped, &key.uid, None)).ok(),
        Some(true),
        "the ledger would not see the pods of the workload they were served for"
    );
    let Some(controller) = controller_of(&facts.owners) else {
        assert_eq!(
            key,
            WorkloadKey {
                namespace: facts.namespace.clone(),
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: facts.name.clone(),
                uid: facts.uid.clone(),
            }
        );
        return;
    };
    let refs: Vec<OwnerRef> = std::iter::once(controller.clone())
        .chain(owners.0.iter().flat_map(owner_refs))
        .filter(|r| r.controller)
        .collect();
    assert!(
        refs.iter().any(|r| r.kind == key.kind
            && r.name == key.name
            && r.uid == key.uid
            && r.api_version == key.api_version),
        "workload {key:?} is no controller on the pod's chain"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(parts: [&str; PARTS]) -> Vec<u8> {
        parts.join("\0").into_bytes()
    }

    #[test]
    fn a_pod_bound_review_and_its_pod_pass_every_check() {
        let review = r#"{"status":{"authenticated":true,"audiences":["kube2hadoop"],"user":{
            "username":"system:serviceaccount:team-a:default","extra":{
            "authentication.kubernetes.io/pod-name":["web-1"],
            "authentication.kubernetes.io/pod-uid":["u1"]}}}}"#;
        let pod = r#"{"metadata":{"namespace":"team-a","name":"web-1","uid":"u1",
            "annotations":{"kube2hadoop.io/user":"bob@EXAMPLE.COM"},
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-x",
            "uid":"rs1","controller":true}]},
            "spec":{"containers":[]},"status":{"phase":"Running","podIP":"127.100.0.1"}}"#;
        let owners = r#"[{"name":"web-x","uid":"rs1","ownerReferences":[{"apiVersion":"apps/v1",
            "kind":"Deployment","name":"web","uid":"d1","controller":true}],
            "annotations":{"kube2hadoop.io/user":"bob@EXAMPLE.COM"}},
            {"name":"web","uid":"d1","annotations":{"kube2hadoop.io/user":"bob@EXAMPLE.COM"}}]"#;
        request(&input([
            "POST",
            "/v1/credentials",
            "Bearer t0ken",
            "application/json",
            review,
            pod,
            owners,
        ]));
    }

    #[test]
    fn short_and_garbled_inputs_are_ignored() {
        for data in [
            &b""[..],
            b"\0\0\0\0\0\0",
            b"\xff\0/\0Bearer \0\0{}\0{}\0[]",
            b"GET",
        ] {
            request(data);
        }
    }
}
