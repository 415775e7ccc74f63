//! Pod-bound service-account tokens verified here, against the signing keys the API server
//! publishes (`/.well-known/openid-configuration`, `/openid/v1/jwks`), so that a pod's first
//! request costs no TokenReview.
//!
//! This check can only vouch for a token, never refuse one: whatever it cannot vouch for (keys
//! not loaded, a key id it does not know, another issuer, a bad signature, expired or not yet
//! valid by our clock, not bound to a pod) goes to a TokenReview, and the API server decides.
//! A token it vouches for names a pod and a service account with their uids; the caller then
//! requires both, as the pod index and the ServiceAccount watch hold them now, exactly as for a
//! cached review (`review_cache::judge_facts`). That is what the API server itself checks of a
//! bound token: its signature, issuer, audience, lifetime, and that the objects it is bound to
//! still exist with those uids (deleting the pod or the account revokes it).

use std::collections::HashMap;
use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::identity::{AUDIENCE, ReviewedPod, SA_PREFIX};

/// No pod-bound token comes near this; a longer one is not parsed here.
const MAX_TOKEN: usize = 16 * 1024;
/// Keys taken from one key set at most: an API server has one per signing key file.
const MAX_KEYS: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error(
        "the API server's OpenID discovery document cannot be read ({0}); is \
         --service-account-issuer a URL?"
    )]
    Discovery(String),
    #[error("the API server's service-account key set (/openid/v1/jwks) cannot be read ({0})")]
    KeySet(String),
    #[error(
        "the API server's service-account key set holds no RSA or P-256/P-384 key; tokens are \
         reviewed by the API server"
    )]
    NoUsableKey,
}

/// The API server's token issuer and public signing keys by key id, each with the one
/// validation its tokens get (built once here, not per request).
pub struct KeySet {
    issuer: String,
    keys: HashMap<String, (DecodingKey, Validation)>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeySet")
            .field("issuer", &self.issuer)
            .field("key_ids", &ids)
            .finish()
    }
}

#[derive(serde::Deserialize)]
struct Discovery {
    issuer: String,
}

/// The one algorithm a key may sign with, from the key itself: a token's header never picks
/// how it is checked (no `none`, no HMAC with a public key as the secret).
fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Some(Algorithm::ES256),
            EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        },
        _ => None,
    }
}

/// What every token signed with an `alg` key must carry. Its lifetime is judged in [`verify`]
/// against the caller's clock, not the library's.
fn validation(alg: Algorithm, issuer: &str) -> Validation {
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.leeway = 0;
    validation
}

impl KeySet {
    /// From the discovery document and the key set as the API server serves them. Keys of
    /// kinds the API server does not sign service-account tokens with are left out.
    pub fn parse(discovery: &[u8], jwks: &[u8]) -> Result<KeySet, KeysError> {
        let discovery: Discovery =
            serde_json::from_slice(discovery).map_err(|e| KeysError::Discovery(e.to_string()))?;
        if discovery.issuer.is_empty() {
            return Err(KeysError::Discovery("no issuer".into()));
        }
        // Key by key: one of a kind this library cannot read (a P-521 key) leaves the others.
        #[derive(serde::Deserialize)]
        struct Keys {
            keys: Vec<serde_json::Value>,
        }
        let set: Keys =
            serde_json::from_slice(jwks).map_err(|e| KeysError::KeySet(e.to_string()))?;
        let mut keys = HashMap::new();
        for value in set.keys.into_iter().take(MAX_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
                continue;
            };
            let (Some(kid), Some(alg)) = (jwk.common.key_id.as_ref(), algorithm_of(&jwk)) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid.clone(), (key, validation(alg, &discovery.issuer)));
            }
        }
        if keys.is_empty() {
            return Err(KeysError::NoUsableKey);
        }
        Ok(KeySet {
            issuer: discovery.issuer,
            keys,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why a token was not vouched for; it then goes to a TokenReview.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unverified {
    /// Not three base64url parts with a JSON header, or too long.
    Malformed,
    /// No key id, or one the key set does not hold (a rotated key, or not the API server's).
    UnknownKey,
    /// Signature, algorithm, issuer or audience does not check out.
    Invalid,
    /// Expired or not yet valid by this machine's clock.
    OutsideLifetime,
    /// A valid token, but not bound to a pod (a Secret-based or node-bound token).
    NotPodBound,
}

impl Unverified {
    pub fn as_str(self) -> &'static str {
        match self {
            Unverified::Malformed => "malformed",
            Unverified::UnknownKey => "unknown_key",
            Unverified::Invalid => "invalid",
            Unverified::OutsideLifetime => "outside_lifetime",
            Unverified::NotPodBound => "not_pod_bound",
        }
    }
}

/// What a token this module vouched for establishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// As a TokenReview would name it; `service_account_uid` is always set.
    pub target: ReviewedPod,
    pub service_account_uid: String,
    /// The node the pod was on when the token was minted, if the token says.
    pub node: Option<String>,
    /// The token's `exp`, in milliseconds since the epoch.
    pub exp_ms: u64,
}

#[derive(serde::Deserialize)]
struct Named {
    name: String,
    uid: String,
}

#[derive(serde::Deserialize)]
struct NodeRef {
    name: String,
}

#[derive(serde::Deserialize)]
struct Bound {
    namespace: String,
    pod: Option<Named>,
    serviceaccount: Named,
    node: Option<NodeRef>,
    /// The lifetime the pod asked for, where the API server extended `exp` past it (kubelet
    /// tokens, by default about a year): past it, the kubelet has long replaced the token.
    warnafter: Option<u64>,
    /// A Secret-based token names its Secret: never pod-bound.
    secret: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    nbf: Option<u64>,
    iat: Option<u64>,
    #[serde(rename = "kubernetes.io")]
    kubernetes: Option<Bound>,
}

/// Whether `token` is a pod-bound token the API server signed for [`AUDIENCE`], valid at
/// `now_s` (seconds since the epoch) by this machine's clock, with no leeway.
pub fn verify(keys: &KeySet, token: &str, now_s: u64) -> Result<Verified, Unverified> {
    if token.len() > MAX_TOKEN {
        return Err(Unverified::Malformed);
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| Unverified::Malformed)?;
    let kid = header.kid.ok_or(Unverified::UnknownKey)?;
    let (key, validation) = keys.keys.get(&kid).ok_or(Unverified::UnknownKey)?;
    let claims = jsonwebtoken::decode::<Claims>(token, key, validation)
        .map_err(|_| Unverified::Invalid)?
        .claims;
    let starts = claims.nbf.or(claims.iat).unwrap_or(0);
    if now_s >= claims.exp || now_s < starts {
        return Err(Unverified::OutsideLifetime);
    }
    let bound = claims.kubernetes.ok_or(Unverified::NotPodBound)?;
    if bound.warnafter.is_some_and(|w| now_s >= w) {
        return Err(Unverified::OutsideLifetime);
    }
    if bound.secret.is_some() {
        return Err(Unverified::NotPodBound);
    }
    let pod = bound.pod.ok_or(Unverified::NotPodBound)?;
    let account = bound.serviceaccount;
    // The subject and the bound objects are one statement by the API server; if they ever
    // disagree, it is not this module's to pick one.
    let expected = format!("{SA_PREFIX}{}:{}", bound.namespace, account.name);
    let any_empty = [
        &bound.namespace,
        &account.name,
        &account.uid,
        &pod.name,
        &pod.uid,
    ]
    .iter()
    .any(|s| s.is_empty());
    if claims.sub != expected || any_empty || account.name.contains(':') {
        return Err(Unverified::Invalid);
    }
    Ok(Verified {
        target: ReviewedPod {
            namespace: bound.namespace,
            service_account: account.name,
            name: pod.name,
            uid: pod.uid,
            username: claims.sub,
            service_account_uid: Some(account.uid.clone()),
        },
        service_account_uid: account.uid,
        node: bound.node.map(|n| n.name),
        exp_ms: claims.exp.saturating_mul(1000),
    })
}

#[cfg(test)]
#[path = "signed_token_tests.rs"]
mod tests;
