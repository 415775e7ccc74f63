//! The token service's test doubles and sample data, in one place: pods and their owners, the
//! stamp key, a workload key, a clock the test moves, a token source that counts and can be
//! held, and an in-memory API server for Secrets with resourceVersion checks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use hadoop_token::{DelegationIdentifier, IdentifierFormat, Secret, Token};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::events::{EventSink, Happened, report};
use crate::hadoop::error::HadoopError;
use crate::hadoop::{IssuedToken, Renewal, SetError, TokenSet, TokenSource};
use crate::issued::{Expiry, Issued, describe};
use crate::ledger::StoreError;
use crate::ledger::store::{SecretApi, name_of};
use crate::pod::{OwnerRef, Phase, PodFacts};
use k2h_contract::kinds::BUILTIN_STAMPED;

use crate::workload::{LookupError, OwnerLookup, OwnerObject, WorkloadKey};

/// A Deployment `name` in team-a, uid `uid-<name>`.
pub fn workload(name: &str) -> WorkloadKey {
    WorkloadKey {
        namespace: "team-a".into(),
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

/// The stamp key of the tests (32 bytes, base64).
pub fn stamp_keys() -> k2h_contract::stamp::Keys {
    k2h_contract::stamp::Keys::parse("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")
        .expect("test key")
}

/// A running pod of alice's in `team-a` at `ip`, stamped by iddecorator.
pub fn pod(name: &str, uid: &str, ip: &str) -> PodFacts {
    PodFacts {
        namespace: "team-a".into(),
        name: name.into(),
        uid: uid.into(),
        ips: vec![ip.parse().expect("test IP")],
        phase: Phase::Running,
        host_network: false,
        deleting: false,
        node: Some("node-1".into()),
        service_account: Some("default".into()),
        user: Some("alice".into()),
        stamp: Some(stamp_keys().sign("team-a", "alice")),
        run_as: None,
        services: None,
        owners: Vec::new(),
    }
}

/// A controller reference with the apiVersion of its kind's group.
pub fn owner(kind: &str, name: &str) -> OwnerRef {
    let group = BUILTIN_STAMPED
        .iter()
        .find(|gk| gk.kind == kind)
        .map_or("example.com", |gk| gk.group);
    OwnerRef {
        api_version: if group.is_empty() {
            "v1".into()
        } else {
            format!("{group}/v1")
        },
        kind: kind.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        controller: true,
    }
}

/// Objects by name: their owner refs and user annotation.
pub struct FakeOwners(pub HashMap<String, (Vec<OwnerRef>, Option<String>)>);

impl FakeOwners {
    /// Every object carries alice, the fixture pod's user.
    pub fn alice(objects: Vec<(&str, Vec<OwnerRef>)>) -> FakeOwners {
        FakeOwners(
            objects
                .into_iter()
                .map(|(n, o)| (n.to_owned(), (o, Some("alice".to_owned()))))
                .collect(),
        )
    }
}

impl OwnerLookup for FakeOwners {
    fn get<'a>(
        &'a self,
        ns: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
        Box::pin(async move {
            Ok(self.0.get(&owner.name).map(|(owners, user)| OwnerObject {
                uid: format!("uid-{}", owner.name),
                owners: owners.clone(),
                user: user.clone(),
                // Stamped by iddecorator, except objects named `*-unstamped`.
                stamp: user
                    .as_deref()
                    .filter(|_| !owner.name.ends_with("-unstamped"))
                    .map(|u| stamp_keys().sign(ns, u)),
            }))
        })
    }
}

/// Alice's pod `p` owned `by` these references.
pub fn owned_pod(by: Vec<OwnerRef>) -> PodFacts {
    let mut p = pod("p", "pod-uid", "127.100.0.1");
    p.owners = by;
    p
}

/// One HDFS token of `owner` with sequence number `seq`, issued to pods of `owner` and
/// renewed until `expires_at_ms`.
pub fn issued(owner: &str, seq: i32, expires_at_ms: u64) -> Arc<Issued> {
    let renewal = Renewal {
        expires_at_ms,
        per_token: vec![("hdfs:ns1".into(), expires_at_ms)],
    };
    let set = token_set(owner, seq);
    let issued = Issued::obtained(
        owner,
        Some(owner.into()),
        crate::services::Selection::All,
        &set,
        Expiry::Renewed(&renewal),
    );
    Arc::new(issued.expect("the fixture's token encodes"))
}

/// A clock that reads `now`, which the test moves.
pub fn clock(now: &Arc<AtomicU64>) -> Clock {
    let now = Arc::clone(now);
    Arc::new(move || now.load(Ordering::SeqCst))
}
#[derive(Default)]
pub struct FakeSource {
    pub obtained: AtomicUsize,
    /// When set, `obtain` waits for a notification.
    pub gate: Option<Notify>,
    pub fail: bool,
    /// When set, a renewal extends the set to this clock + 1 000 s (else to 5 000 s).
    pub clock: Option<Arc<AtomicU64>>,
    /// Sequence numbers of the sets the server no longer knows: renewing them fails.
    pub forgotten: Mutex<Vec<i32>>,
    /// Sequence numbers of the sets renewed and cancelled, in order.
    pub renewed: Mutex<Vec<i32>>,
    pub cancelled: Mutex<Vec<i32>>,
}

pub fn seq(set: &TokenSet) -> i32 {
    describe(set)
        .first()
        .and_then(|t| t.sequence_number)
        .unwrap_or(-1)
}

pub fn url_string(owner: &str, seq: i32) -> String {
    let id = DelegationIdentifier {
        owner: owner.into(),
        renewer: "kube2hadoop".into(),
        max_date: 9_000_000,
        sequence_number: seq,
        master_key_id: 3,
        ..DelegationIdentifier::default()
    };
    Token {
        identifier: id.encode(IdentifierFormat::Writable),
        password: Secret::from(b"pw".as_slice()),
        kind: "HDFS_DELEGATION_TOKEN".into(),
        service: "ha-hdfs:ns1".into(),
    }
    .to_url_string()
}

/// One HDFS token of `owner` with sequence number `seq`, as `obtain` returns it.
pub fn token_set(owner: &str, seq: i32) -> TokenSet {
    TokenSet {
        tokens: vec![IssuedToken::new(
            "hdfs:ns1".into(),
            "HDFS_DELEGATION_TOKEN".into(),
            "ha-hdfs:ns1".into(),
            url_string(owner, seq),
        )],
    }
}

/// What the NameNode answers for a token it no longer knows.
pub fn forgotten() -> SetError {
    SetError {
        failures: vec![(
            "hdfs:ns1".into(),
            HadoopError::TokenNotFound {
                endpoint: "nn1".into(),
                message: "token can't be found in cache".into(),
            },
        )],
    }
}

impl TokenSource for FakeSource {
    fn obtain<'a>(
        &'a self,
        user: &'a str,
        _: &'a crate::services::Selection,
    ) -> BoxFuture<'a, Result<TokenSet, SetError>> {
        Box::pin(async move {
            let n = self.obtained.fetch_add(1, Ordering::SeqCst) as i32;
            if let Some(gate) = &self.gate {
                gate.notified().await;
            }
            if self.fail {
                return Err(SetError {
                    failures: vec![("hdfs:ns1".into(), HadoopError::Config("down".into()))],
                });
            }
            Ok(token_set(user, 40 + n))
        })
    }

    fn renew<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<Renewal, SetError>> {
        Box::pin(async move {
            if self.forgotten.lock().expect("lock").contains(&seq(set)) {
                return Err(forgotten());
            }
            self.renewed.lock().expect("lock").push(seq(set));
            let expires_at_ms = self
                .clock
                .as_ref()
                .map_or(5_000_000, |now| now.load(Ordering::SeqCst) + 1_000_000);
            Ok(Renewal {
                expires_at_ms,
                per_token: vec![("hdfs:ns1".into(), expires_at_ms)],
            })
        })
    }

    fn cancel<'a>(&'a self, set: &'a TokenSet) -> BoxFuture<'a, Result<(), SetError>> {
        Box::pin(async move {
            self.cancelled.lock().expect("lock").push(seq(set));
            Ok(())
        })
    }
}

/// Keeps every Event emitted, for assertions.
#[derive(Default)]
pub struct RecordedEvents(pub Mutex<Vec<(WorkloadKey, Happened)>>);

impl RecordedEvents {
    /// (regarded object's name, the Event's reason), in order.
    pub fn reasons(&self) -> Vec<(String, &'static str)> {
        let events = self.0.lock().expect("lock");
        events
            .iter()
            .map(|(w, h)| (w.name.clone(), report(h).reason))
            .collect()
    }
}

impl EventSink for RecordedEvents {
    fn emit(&self, regarding: &WorkloadKey, happened: Happened) {
        self.0
            .lock()
            .expect("lock")
            .push((regarding.clone(), happened));
    }
}

/// An in-memory API server for Secrets with resourceVersion checks.
#[derive(Default)]
pub struct FakeSecrets {
    pub objects: Mutex<HashMap<String, KubeSecret>>,
    version: Mutex<u64>,
}

impl FakeSecrets {
    fn bump(&self, secret: &KubeSecret) -> KubeSecret {
        let mut v = self.version.lock().expect("lock");
        *v += 1;
        let mut s = secret.clone();
        s.metadata.resource_version = Some(v.to_string());
        s
    }

    pub fn count(&self) -> usize {
        self.objects.lock().expect("lock").len()
    }
}

impl SecretApi for FakeSecrets {
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<KubeSecret>, StoreError>> {
        Box::pin(async move { Ok(self.objects.lock().expect("lock").get(name).cloned()) })
    }

    fn list(&self) -> BoxFuture<'_, Result<Vec<Arc<KubeSecret>>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .objects
                .lock()
                .expect("lock")
                .values()
                .map(|s| Arc::new(s.clone()))
                .collect())
        })
    }

    fn create<'a>(
        &'a self,
        secret: &'a KubeSecret,
    ) -> BoxFuture<'a, Result<KubeSecret, StoreError>> {
        Box::pin(async move {
            let name = name_of(secret).to_owned();
            if self.objects.lock().expect("lock").contains_key(&name) {
                return Err(StoreError::Conflict(name));
            }
            let stored = self.bump(secret);
            self.objects
                .lock()
                .expect("lock")
                .insert(name, stored.clone());
            Ok(stored)
        })
    }

    fn replace<'a>(
        &'a self,
        secret: &'a KubeSecret,
    ) -> BoxFuture<'a, Result<KubeSecret, StoreError>> {
        Box::pin(async move {
            let name = name_of(secret).to_owned();
            let current = self.objects.lock().expect("lock").get(&name).cloned();
            match current {
                Some(c) if c.metadata.resource_version == secret.metadata.resource_version => {
                    let stored = self.bump(secret);
                    self.objects
                        .lock()
                        .expect("lock")
                        .insert(name, stored.clone());
                    Ok(stored)
                }
                _ => Err(StoreError::Conflict(name)),
            }
        })
    }

    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.objects.lock().expect("lock").remove(name);
            Ok(())
        })
    }
}

/// An API server's service-account signer: a P-256 key, its discovery document and key set,
/// and bound tokens as it would mint them (or as an attacker would shape them).
pub struct Signer {
    pair: ring::signature::EcdsaKeyPair,
    pub kid: String,
    pub issuer: String,
}

impl Signer {
    pub fn new(kid: &str) -> Signer {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("a P-256 key");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("the key just made");
        Signer {
            pair,
            kid: kid.into(),
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
        }
    }

    pub fn discovery(&self) -> Vec<u8> {
        serde_json::json!({"issuer": self.issuer, "jwks_uri": "https://x/openid/v1/jwks"})
            .to_string()
            .into_bytes()
    }

    /// The key set as `/openid/v1/jwks` serves it.
    pub fn jwks(&self) -> Vec<u8> {
        use ring::signature::KeyPair;
        let point = self.pair.public_key().as_ref();
        let b64 = |b: &[u8]| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
        };
        serde_json::json!({"keys": [{
            "use": "sig", "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }]})
        .to_string()
        .into_bytes()
    }

    pub fn key_set(&self) -> crate::signed_token::KeySet {
        crate::signed_token::KeySet::parse(&self.discovery(), &self.jwks()).expect("key set")
    }

    /// A compact JWS of `header` and `claims`, signed with this key.
    pub fn sign(&self, header: &serde_json::Value, claims: &serde_json::Value) -> String {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature = self
            .pair
            .sign(&ring::rand::SystemRandom::new(), message.as_bytes())
            .expect("signing");
        format!(
            "{message}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    /// What the API server puts in a token bound to pod `web-1` (uid `u1`) of team-a running
    /// as `default` (uid `sa1`) on node-1, valid from `iat` for ten minutes.
    pub fn claims(&self, iat: u64) -> serde_json::Value {
        serde_json::json!({
            "aud": ["kube2hadoop"], "iss": self.issuer, "sub": "system:serviceaccount:team-a:default",
            "iat": iat, "nbf": iat, "exp": iat + 600, "jti": "j1",
            "kubernetes.io": {
                "namespace": "team-a",
                "node": {"name": "node-1", "uid": "n1"},
                "pod": {"name": "web-1", "uid": "u1"},
                "serviceaccount": {"name": "default", "uid": "sa1"},
            },
        })
    }

    pub fn header(&self) -> serde_json::Value {
        serde_json::json!({"alg": "ES256", "kid": self.kid})
    }

    /// A token bound to `web-1` as [`Signer::claims`] describes it.
    pub fn token(&self, iat: u64) -> String {
        self.sign(&self.header(), &self.claims(iat))
    }
}
