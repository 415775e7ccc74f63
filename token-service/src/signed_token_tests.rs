use base64::Engine;
use serde_json::json;

use super::*;
use crate::fixtures::Signer;

const NOW: u64 = 1_000_000;

fn b64(v: &serde_json::Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn a_bound_token_signed_by_a_published_key_names_its_pod_and_account() {
    let signer = Signer::new("k1");
    let v = verify(&signer.key_set(), &signer.token(NOW - 5), NOW).expect("verified");
    assert_eq!(
        v.target,
        ReviewedPod {
            namespace: "team-a".into(),
            service_account: "default".into(),
            name: "web-1".into(),
            uid: "u1".into(),
            username: "system:serviceaccount:team-a:default".into(),
            service_account_uid: Some("sa1".into()),
        }
    );
    assert_eq!(v.service_account_uid, "sa1");
    assert_eq!(v.node.as_deref(), Some("node-1"));
    assert_eq!(v.exp_ms, (NOW - 5 + 600) * 1000);
}

#[test]
fn another_key_under_the_same_id_is_not_vouched_for() {
    let published = Signer::new("k1");
    let attacker = Signer::new("k1");
    assert_eq!(
        verify(&published.key_set(), &attacker.token(NOW), NOW),
        Err(Unverified::Invalid)
    );
    // A signature cut off or altered, and claims altered after signing.
    let token = published.token(NOW);
    let (message, _) = token.rsplit_once('.').expect("three parts");
    assert_eq!(
        verify(&published.key_set(), &format!("{message}.AAAA"), NOW),
        Err(Unverified::Invalid)
    );
    let (header, rest) = token.split_once('.').expect("three parts");
    let (_, signature) = rest.split_once('.').expect("three parts");
    let mut claims = published.claims(NOW);
    claims["kubernetes.io"]["pod"]["uid"] = json!("u2");
    let forged = format!("{header}.{}.{signature}", b64(&claims));
    assert_eq!(
        verify(&published.key_set(), &forged, NOW),
        Err(Unverified::Invalid)
    );
}

#[test]
fn the_header_never_chooses_how_a_token_is_checked() {
    let signer = Signer::new("k1");
    let claims = signer.claims(NOW);
    // alg none, unsigned.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": "k1"})),
        b64(&claims)
    );
    assert!(verify(&signer.key_set(), &none, NOW).is_err());
    // HS256 keyed by the public key's bytes: the classic confusion.
    let jwks = String::from_utf8(signer.jwks()).expect("utf-8");
    let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwks.as_bytes());
    let message = format!(
        "{}.{}",
        b64(&json!({"alg": "HS256", "kid": "k1"})),
        b64(&claims)
    );
    let tag = ring::hmac::sign(&mac_key, message.as_bytes());
    let hs = format!(
        "{message}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    );
    assert_eq!(
        verify(&signer.key_set(), &hs, NOW),
        Err(Unverified::Invalid)
    );
    // A header alg other than the key's, even one the library knows.
    let rs = signer.sign(&json!({"alg": "RS256", "kid": "k1"}), &claims);
    assert_eq!(
        verify(&signer.key_set(), &rs, NOW),
        Err(Unverified::Invalid)
    );
}

#[test]
fn keys_it_does_not_hold_go_to_a_review() {
    let signer = Signer::new("k1");
    let other = Signer::new("k2");
    assert_eq!(
        verify(&signer.key_set(), &other.token(NOW), NOW),
        Err(Unverified::UnknownKey)
    );
    let no_kid = signer.sign(&json!({"alg": "ES256"}), &signer.claims(NOW));
    assert_eq!(
        verify(&signer.key_set(), &no_kid, NOW),
        Err(Unverified::UnknownKey)
    );
    for junk in [
        "",
        "a.b",
        "not-a-token",
        "a.b.c.d",
        &"x".repeat(MAX_TOKEN + 1),
    ] {
        assert!(verify(&signer.key_set(), junk, NOW).is_err(), "{junk:?}");
    }
}

/// A token of `signer` whose claims `f` changed, checked at `NOW`.
fn with_claims(
    signer: &Signer,
    keys: &KeySet,
    f: &dyn Fn(&mut serde_json::Value),
) -> Result<Verified, Unverified> {
    let mut claims = signer.claims(NOW);
    f(&mut claims);
    verify(keys, &signer.sign(&signer.header(), &claims), NOW)
}

#[test]
fn issuer_audience_and_lifetime_are_checked_without_leeway() {
    let signer = Signer::new("k1");
    let keys = signer.key_set();
    let with = |f: &dyn Fn(&mut serde_json::Value)| with_claims(&signer, &keys, f);
    assert_eq!(
        with(&|c| c["iss"] = json!("https://elsewhere")),
        Err(Unverified::Invalid)
    );
    assert_eq!(
        with(&|c| c["aud"] = json!(["https://kubernetes.default.svc"])),
        Err(Unverified::Invalid)
    );
    assert!(
        with(&|c| c["aud"] = json!("kube2hadoop")).is_ok(),
        "aud as a string"
    );
    assert_eq!(
        with(&|c| c
            .as_object_mut()
            .map(|o| o.remove("aud"))
            .map(drop)
            .unwrap_or(())),
        Err(Unverified::Invalid)
    );
    assert_eq!(
        with(&|c| c["exp"] = json!(NOW)),
        Err(Unverified::OutsideLifetime)
    );
    assert!(with(&|c| c["exp"] = json!(NOW + 1)).is_ok());
    assert_eq!(
        with(&|c| c["nbf"] = json!(NOW + 1)),
        Err(Unverified::OutsideLifetime)
    );
}

#[test]
fn past_the_lifetime_the_pod_asked_for_a_token_goes_to_a_review() {
    let signer = Signer::new("k1");
    let mut claims = signer.claims(NOW - 100);
    claims["exp"] = json!(NOW + 31_536_000);
    claims["kubernetes.io"]["warnafter"] = json!(NOW);
    let token = signer.sign(&signer.header(), &claims);
    assert_eq!(
        verify(&signer.key_set(), &token, NOW),
        Err(Unverified::OutsideLifetime)
    );
    assert!(verify(&signer.key_set(), &token, NOW - 1).is_ok());
}

#[test]
fn only_tokens_bound_to_a_pod_are_vouched_for() {
    let signer = Signer::new("k1");
    let keys = signer.key_set();
    let with = |f: &dyn Fn(&mut serde_json::Value)| with_claims(&signer, &keys, f);
    let remove = |path: &'static str| {
        move |c: &mut serde_json::Value| {
            if let Some(o) = c["kubernetes.io"].as_object_mut() {
                o.remove(path);
            }
        }
    };
    assert_eq!(with(&remove("pod")), Err(Unverified::NotPodBound));
    assert_eq!(
        with(&|c| c["kubernetes.io"]["secret"] = json!({"name": "s", "uid": "s1"})),
        Err(Unverified::NotPodBound)
    );
    assert_eq!(
        with(&|c| {
            c.as_object_mut().map(|o| o.remove("kubernetes.io"));
        }),
        Err(Unverified::NotPodBound)
    );
    // The subject must be the bound account, and no name or uid may be empty.
    assert_eq!(
        with(&|c| c["sub"] = json!("system:serviceaccount:team-b:default")),
        Err(Unverified::Invalid)
    );
    assert_eq!(
        with(&|c| c["kubernetes.io"]["pod"]["uid"] = json!("")),
        Err(Unverified::Invalid)
    );
    assert_eq!(
        with(&|c| c["kubernetes.io"]["serviceaccount"]["uid"] = json!("")),
        Err(Unverified::Invalid)
    );
    assert!(with(&remove("node")).is_ok(), "node is optional");
}

#[test]
fn key_sets_keep_only_signing_keys_and_say_what_is_wrong() {
    let signer = Signer::new("k1");
    assert!(matches!(
        KeySet::parse(b"{}", &signer.jwks()),
        Err(KeysError::Discovery(_))
    ));
    assert!(matches!(
        KeySet::parse(&signer.discovery(), b"<html>"),
        Err(KeysError::KeySet(_))
    ));
    let symmetric = br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
    assert_eq!(
        KeySet::parse(&signer.discovery(), symmetric).err(),
        Some(KeysError::NoUsableKey)
    );
    // A key this library cannot read (P-521) leaves the others usable.
    let mut jwks: serde_json::Value = serde_json::from_slice(&signer.jwks()).expect("json");
    if let Some(keys) = jwks["keys"].as_array_mut() {
        keys.insert(
            0,
            json!({"kty": "EC", "crv": "P-521", "alg": "ES512", "kid": "p521", "use": "sig",
                   "x": "AQ", "y": "AQ"}),
        );
    }
    let set = KeySet::parse(&signer.discovery(), jwks.to_string().as_bytes()).expect("keys");
    assert_eq!(set.len(), 1);
    assert!(verify(&set, &signer.token(NOW), NOW).is_ok());
    let set = signer.key_set();
    assert_eq!(set.len(), 1);
    assert_eq!(set.issuer(), signer.issuer);
    assert!(!format!("{set:?}").contains(" x"), "{set:?}");
}
