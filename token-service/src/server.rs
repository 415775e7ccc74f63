//! The HTTP surface: `POST /v1/credentials`, `/healthz`, `/readyz`, `/metrics`.
//!
//! The credentials handler reads top to bottom as the decision it makes: limit the address,
//! prove the pod, limit the pod, decide the user, find the workload, issue; every step's
//! refusal is answered, counted and audited the same way.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method as HttpMethod, Request, Response, StatusCode, header};
use k2h_http::{Body, Readiness, json_response};
use prometheus_client::registry::Registry;

use crate::accounts::AccountLookup;
use crate::accounts::SharedAccounts;
use crate::audit::{AuditEvent, AuditSink, now_rfc3339, rfc3339_ms};
use crate::authorize::{Policy, Principal, authorize};
use crate::clock::Clock;
use crate::cluster::{Cluster, KubeError};
use crate::directory::Directory;
use crate::error::{ApiError, Kind};
use crate::events::{EventSink, Happened};
use crate::identity::{self, ReviewedPod, TokenCheck, TokenOrigin, VerifiedPod};
use crate::index::{IpLookup, PodIndex, SharedIndex};
use crate::issued::Issued;
use crate::issuer::{Issuer, Outcome};
use crate::metrics::Metrics;
use crate::pod::{PodFacts, canonical};
use crate::ratelimit::RateLimiter;
use crate::request;
use crate::review_cache::{
    self, Found, PodNow, ReviewCache, TokenDigest, Verdict, token_expiry_ms,
};
use crate::services::ServicesPolicy;
use crate::signed_token::{self, Unverified};
use crate::token_keys::TokenKeys;
use crate::workload::{OwnerLookup, StampedKinds, WorkloadKey, resolve};

pub const EXPIRES_HEADER: &str = "x-kube2hadoop-expires";
pub const CREDENTIALS_PATH: &str = "/v1/credentials";

/// Whether iddecorator's webhook covers a pod: `Err` names why not; `Ok` holds the kinds an
/// owner chain may consist of (the stamped kinds whose resources the webhook intercepts).
pub type Coverage = dyn Fn(&PodFacts) -> Result<StampedKinds, ApiError> + Send + Sync;

/// Which proofs of identity are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Modes {
    pub sa_token: bool,
    pub ip: bool,
    /// Where a service-account token may be sent from.
    pub sa_token_origin: TokenOrigin,
}

pub struct App {
    pub cluster: Arc<dyn Cluster>,
    pub owners: Arc<dyn OwnerLookup>,
    pub index: SharedIndex,
    /// ServiceAccount uids, from a watch: a cached review is used only while its account is
    /// as reviewed, and a fresh review of a deleted account is refused.
    pub accounts: SharedAccounts,
    /// Successful TokenReviews of pod-bound tokens, reused instead of the API round trip.
    pub reviews: ReviewCache,
    /// The API server's signing keys: a pod-bound token they vouch for needs no TokenReview.
    pub token_keys: TokenKeys,
    /// The wall clock tokens' lifetimes are judged by.
    pub clock: Clock,
    /// The configured `namespaceSelector`: an extra narrowing of what the webhook covers.
    pub served: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// Whether iddecorator's webhook covers the pod (`crate::coverage::check`), and which
    /// kinds an owner chain may consist of.
    pub covered: Arc<Coverage>,
    /// Whether the watches have delivered their first complete list.
    pub watches_ready: Arc<dyn Fn() -> bool + Send + Sync>,
    pub modes: Modes,
    /// Verify `kube2hadoop.io/stamp` on the pod and its owner chain.
    pub stamp_keys: k2h_contract::stamp::Keys,
    pub policy: Policy,
    /// Which services a pod may choose, and what it gets without choosing.
    pub services: ServicesPolicy,
    pub directory: Arc<dyn Directory>,
    pub issuer: Issuer,
    pub pod_limit: RateLimiter,
    pub peer_limit: RateLimiter,
    pub audit: AuditSink,
    /// Kubernetes Events on the workload (or the pod) for issues and refusals.
    pub events: Arc<dyn EventSink>,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
    pub readiness: Readiness,
}

pub async fn handle(app: Arc<App>, req: Request<Bytes>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&HttpMethod::GET, "/healthz") => k2h_http::respond::healthz(),
        (&HttpMethod::GET, "/readyz") => {
            if (app.watches_ready)() {
                k2h_http::respond::readyz(&app.readiness)
            } else {
                error_response(&ApiError::new(
                    Kind::Unavailable,
                    "not_ready",
                    "waiting for the first list of pods, namespaces and the webhook registration",
                ))
            }
        }
        (&HttpMethod::GET, "/metrics") => {
            app.metrics.cached_workloads.set(app.issuer.cached() as i64);
            app.metrics.indexed_pods.set(app.index.len() as i64);
            app.metrics
                .review_cache_entries
                .set(app.reviews.len() as i64);
            // Usable keys only: a set gone stale counts as none.
            let keys = app.token_keys.current().map_or(0, |k| k.len());
            app.metrics.token_keys.set(keys as i64);
            k2h_http::respond::metrics(&app.registry)
        }
        (&HttpMethod::POST, CREDENTIALS_PATH) => credentials(&app, &req).await,
        (_, CREDENTIALS_PATH) => error_response(&ApiError::new(
            Kind::Forbidden,
            "method_not_allowed",
            "use POST for /v1/credentials",
        ))
        .with_status(StatusCode::METHOD_NOT_ALLOWED),
        _ => k2h_http::json_error(StatusCode::NOT_FOUND, "no such endpoint"),
    }
}

trait WithStatus {
    fn with_status(self, status: StatusCode) -> Self;
}

impl WithStatus for Response<Body> {
    fn with_status(mut self, status: StatusCode) -> Self {
        *self.status_mut() = status;
        self
    }
}

/// The client's address as the serving loop saw it (a `SocketAddr` request extension).
fn peer_of(req: &Request<Bytes>) -> Option<IpAddr> {
    req.extensions()
        .get::<SocketAddr>()
        .map(|a| canonical(a.ip()))
}

async fn credentials(app: &App, req: &Request<Bytes>) -> Response<Body> {
    let mut event = AuditEvent {
        time: now_rfc3339(),
        ..AuditEvent::default()
    };
    let peer = peer_of(req);
    event.ip = peer.map(|p| p.to_string());
    let mut regarding = None;
    let result = issue(app, req, peer, &mut event, &mut regarding).await;
    let method = event.identity_method.unwrap_or("none");
    match result {
        Ok((issued, outcome)) => {
            event.outcome = outcome.as_str();
            event.tokens = issued.tokens.clone();
            app.metrics.request(outcome.as_str(), method);
            app.audit.record(&event);
            if let (Outcome::Issued, Some(w)) = (outcome, &regarding) {
                let happened = Happened::Issued {
                    hadoop_user: issued.hadoop_user.clone(),
                    tokens: issued.tokens.clone(),
                };
                app.events.emit(w, happened);
            }
            success_response(req, &issued)
        }
        Err(e) => {
            event.outcome = "denied";
            event.reason = Some(format!("{}: {}", e.code, e.message));
            app.metrics.request(e.code, method);
            app.audit.record(&event);
            // Only an identified pod's refusal is told to its owner; a rate-limited one
            // already asks too often.
            if let Some(w) = regarding.filter(|_| e.kind != Kind::RateLimited) {
                app.events.emit(&w, refused(&e));
            }
            tracing::info!(code = e.code, status = e.status().as_u16(), "{}", e.message);
            error_response(&e)
        }
    }
}

async fn issue(
    app: &App,
    req: &Request<Bytes>,
    peer: Option<IpAddr>,
    event: &mut AuditEvent,
    regarding: &mut Option<WorkloadKey>,
) -> Result<(Arc<Issued>, Outcome), ApiError> {
    // Only failed identifications are charged to the address: many pods may share one (SNAT,
    // a token service outside the cluster), but a flood of bad tokens from one address must not
    // turn into a flood of TokenReviews. Identified callers are limited per pod below.
    let peer_key = format!("addr:{}", peer.map(|p| p.to_string()).unwrap_or_default());
    app.peer_limit
        .peek(&peer_key, Instant::now())
        .map_err(|wait| rate_limited("address", wait))?;
    let verified = match identify(app, req, peer).await {
        Ok(v) => v,
        Err(e) => {
            let _ = app.peer_limit.check(&peer_key, Instant::now());
            return Err(e);
        }
    };
    let pod = verified.pod();
    event.identity_method = Some(verified.method().as_str());
    event.token_check = verified.token_check().map(|c| c.as_str());
    event.pod_namespace = Some(pod.namespace.clone());
    event.pod_name = Some(pod.name.clone());
    event.pod_uid = Some(pod.uid.clone());
    event.node = pod.node.clone();
    event.kubernetes_user = pod.user.clone();
    *regarding = Some(WorkloadKey::pod(pod));
    // Only a pod iddecorator necessarily saw has a user annotation worth reading.
    let stamped = (app.covered)(pod)?;
    limit(&app.pod_limit, &format!("pod:{}", pod.uid), "pod")?;
    let principal: Principal = authorize(pod, &app.policy, app.directory.as_ref()).await?;
    event.hadoop_user = Some(principal.hadoop_user.clone());
    event.run_as = principal.run_as.clone();
    let services = app.services.select(pod.services.as_deref())?;
    event.services = services.stored();
    let workload: WorkloadKey =
        resolve(pod, app.owners.as_ref(), &stamped, &app.stamp_keys).await?;
    event.workload = Some(workload.to_string());
    *regarding = Some(workload.clone());
    app.issuer
        .credentials(
            &workload,
            &principal.hadoop_user,
            &principal.submitter,
            &services,
        )
        .await
}

fn limit(limiter: &RateLimiter, key: &str, what: &str) -> Result<(), ApiError> {
    limiter
        .check(key, Instant::now())
        .map_err(|wait| rate_limited(what, wait))
}

fn rate_limited(what: &str, wait: std::time::Duration) -> ApiError {
    ApiError::new(
        Kind::RateLimited,
        "rate_limited",
        format!(
            "too many requests from this {what}; retry in {}s",
            wait.as_secs().max(1)
        ),
    )
}

async fn identify(
    app: &App,
    req: &Request<Bytes>,
    peer: Option<IpAddr>,
) -> Result<VerifiedPod, ApiError> {
    let served = |ns: &str| (app.served)(ns);
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        if !app.modes.sa_token {
            return Err(ApiError::new(
                Kind::Unauthenticated,
                "sa_token_disabled",
                "this token service does not accept service-account tokens; call without an \
                 Authorization header from the pod's own address",
            ));
        }
        let token = request::bearer_token(value)?;
        return by_token(app, token, &served, peer).await;
    }
    if !app.modes.ip {
        return Err(ApiError::new(
            Kind::Unauthenticated,
            "token_required",
            format!(
                "send the pod's bound service-account token (audience {:?}) as \
                 `Authorization: Bearer <token>`",
                identity::AUDIENCE
            ),
        ));
    }
    let peer = peer.ok_or_else(|| {
        ApiError::new(
            Kind::Internal,
            "no_peer_address",
            "the server cannot see the client's address, so it cannot identify pods by IP",
        )
    })?;
    if !(app.watches_ready)() {
        return Err(ApiError::new(
            Kind::Unavailable,
            "not_ready",
            "the pod index is still loading; retry shortly",
        ));
    }
    // The check and the lookup under one lock: the answer comes from an index that follows
    // the API server, never from one a failed watch left behind.
    let lookup = app.index.lookup_current(peer).ok_or_else(|| {
        ApiError::new(
            Kind::Unavailable,
            "index_stale",
            "the pod index lost its watch on the Kubernetes API and is relisting; pods are not \
             identified by address until it is whole again, retry shortly",
        )
    })?;
    let lookup = match lookup {
        IpLookup::Nobody => live_lookup(app, peer).await?,
        known => known,
    };
    identity::by_ip(lookup, peer, &served)
}

/// Identification by bound service-account token: a cached review if the pod index and the
/// ServiceAccount watch show its pod and account as reviewed, else a TokenReview and a read of
/// the pod. Either way the pod then gets the same checks (`identity`).
async fn by_token(
    app: &App,
    token: &str,
    served: &(dyn Fn(&str) -> bool + Sync),
    peer: Option<IpAddr>,
) -> Result<VerifiedPod, ApiError> {
    let origin = app.modes.sa_token_origin;
    let digest = TokenDigest::of(token);
    let found = app
        .reviews
        .lookup(&digest, |cached| watched(app, &cached.target, peer));
    if let Found::Hit(cached, pod) = found {
        let check = TokenCheck::CachedReview;
        return identity::by_watched_pod(&cached.target, pod, check, served, origin, peer);
    }
    if let Some(verified) = by_signature(app, token, digest, served, peer)? {
        return Ok(verified);
    }
    let review = app
        .cluster
        .review(token)
        .await
        .map_err(kubernetes_unavailable)?;
    let target = identity::review_target(&review)?;
    let pod = app
        .cluster
        .pod(&target.namespace, &target.name)
        .await
        .map_err(kubernetes_unavailable)?;
    let verified = identity::by_review(target.clone(), pod, served, origin, peer)?;
    // The API server caches its own token reviews (10 s by default): a token of a deleted
    // account may still pass one. The watch tells; the API server confirms what it says.
    let account = app
        .accounts
        .lookup(&target.namespace, &target.service_account);
    if identity::account_check(&target, &account) == identity::AccountCheck::AskTheApi {
        let live = app
            .cluster
            .service_account(&target.namespace, &target.service_account)
            .await
            .map_err(kubernetes_unavailable)?;
        identity::account_confirmed(&target, live.as_deref())?;
    }
    app.reviews.insert(digest, &target, token_expiry_ms(token));
    Ok(verified)
}

/// The pod and account `target` names, as the pod index and the ServiceAccount watch hold
/// them now.
fn watched(app: &App, target: &ReviewedPod, peer: Option<IpAddr>) -> (PodNow, AccountLookup) {
    let origin = app.modes.sa_token_origin;
    let pod = match app.index.pod_current(&target.uid) {
        None => PodNow::Stale,
        Some(None) => PodNow::Absent,
        // An address another live pod claims too: ask the API server (bypass).
        Some(Some(pod)) if !sole_holder(app, origin, peer, &pod.uid) => PodNow::Stale,
        Some(Some(pod)) => PodNow::Present(pod),
    };
    let account = app
        .accounts
        .lookup(&target.namespace, &target.service_account);
    (pod, account)
}

/// A token the API server's published keys vouch for (`signed_token`), bound to a pod and an
/// account the watches show unchanged: identified with no API call, then checked as after a
/// review. `Ok(None)`: not vouched for here (no keys, an unknown key, a watch that disagrees
/// or lags…), and a TokenReview decides.
fn by_signature(
    app: &App,
    token: &str,
    digest: TokenDigest,
    served: &(dyn Fn(&str) -> bool + Sync),
    peer: Option<IpAddr>,
) -> Result<Option<VerifiedPod>, ApiError> {
    let checked = |result: &str| app.metrics.signature_check(result);
    let Some(keys) = app.token_keys.current() else {
        if app.token_keys.is_enabled() {
            checked("no_keys");
        }
        return Ok(None);
    };
    let signed = match signed_token::verify(&keys, token, (app.clock)() / 1000) {
        Ok(signed) => signed,
        Err(why) => {
            if why == Unverified::UnknownKey {
                app.token_keys.ask_refresh();
            }
            checked(why.as_str());
            return Ok(None);
        }
    };
    let (pod, account) = watched(app, &signed.target, peer);
    let verdict =
        review_cache::judge_facts(&signed.target, &signed.service_account_uid, &pod, &account);
    // A token minted on one node for a pod the index places on another is not this pod's.
    let on_its_node = |pod: &PodFacts| {
        signed
            .node
            .as_deref()
            .is_none_or(|node| pod.node.as_deref() == Some(node))
    };
    let pod = match (verdict, pod) {
        (Verdict::Hit, PodNow::Present(pod)) if on_its_node(&pod) => pod,
        _ => {
            checked("watch_differs");
            return Ok(None);
        }
    };
    checked("verified");
    let verified = identity::by_watched_pod(
        &signed.target,
        pod,
        TokenCheck::Signature,
        served,
        app.modes.sa_token_origin,
        peer,
    )?;
    app.reviews
        .insert(digest, &signed.target, Some(signed.exp_ms));
    Ok(Some(verified))
}

/// Whether the index gives the caller's address to the cached pod alone. A deleted pod's
/// address reused before the index saw the deletion is claimed twice: such a request gets a
/// fresh review and a read of the pod, not the cached identity (origin `any` checks no address).
fn sole_holder(app: &App, origin: TokenOrigin, peer: Option<IpAddr>, uid: &str) -> bool {
    match (origin, peer) {
        (TokenOrigin::Pod, Some(ip)) => matches!(
            app.index.lookup_current(ip),
            Some(IpLookup::One(holder)) if holder.uid == uid
        ),
        (TokenOrigin::Pod, None) => false,
        (TokenOrigin::Any, _) => true,
    }
}

/// A pod's init container may ask before the watch has brought the pod's address to the
/// index (the kubelet reports the IP and starts it at once); a refusal then would fail the
/// pod. The API server answers for addresses the index does not know, so a new pod is served
/// and nothing is answered from older data than the index holds.
async fn live_lookup(app: &App, peer: IpAddr) -> Result<IpLookup, ApiError> {
    let mut found = PodIndex::default();
    let pods = app.cluster.pods_at(canonical(peer)).await;
    for pod in pods.map_err(kubernetes_unavailable)? {
        found.apply(pod);
    }
    let lookup = found.lookup(peer);
    if !matches!(lookup, IpLookup::Nobody) {
        tracing::debug!(%peer, "address not indexed yet; identified from the API server");
    }
    Ok(lookup)
}

/// A refusal as the namespace's readers see it. Failures of a dependency name addresses,
/// principals and directory details: those stay in the answer, the log and the audit.
fn refused(e: &ApiError) -> Happened {
    let message = match e.kind {
        Kind::Unavailable | Kind::Upstream | Kind::Internal => {
            "the token service cannot complete this request now; it is retried (admins: the \
             service's log and audit name the cause)"
                .to_owned()
        }
        _ => e.message.clone(),
    };
    Happened::Refused {
        code: e.code,
        message,
    }
}

/// The API server did not answer: the caller retries (the fetcher backs off), nothing is
/// decided without it.
fn kubernetes_unavailable(e: KubeError) -> ApiError {
    ApiError::new(Kind::Unavailable, "kubernetes_unavailable", e.to_string())
}

#[derive(serde::Serialize)]
struct JsonToken<'a> {
    kind: &'a str,
    service: &'a str,
    expires: String,
}

#[derive(serde::Serialize)]
struct JsonCredentials<'a> {
    user: &'a str,
    expires: String,
    tokens: Vec<JsonToken<'a>>,
    /// The HDTS file, base64.
    file: String,
}

fn success_response(req: &Request<Bytes>, issued: &Issued) -> Response<Body> {
    let expires = rfc3339_ms(issued.expires_at_ms);
    let mut response = if request::wants_json(req.headers()) {
        json_response(
            StatusCode::OK,
            &JsonCredentials {
                user: &issued.hadoop_user,
                expires: expires.clone(),
                tokens: issued
                    .tokens
                    .iter()
                    .map(|t| JsonToken {
                        kind: &t.kind,
                        service: &t.service,
                        expires: t
                            .expires_at_ms
                            .map(rfc3339_ms)
                            .unwrap_or_else(|| expires.clone()),
                    })
                    .collect(),
                file: base64::engine::general_purpose::STANDARD.encode(issued.file.as_slice()),
            },
        )
    } else {
        let mut r = Response::new(Body::new(Bytes::copy_from_slice(&issued.file)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        r
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&expires) {
        headers.insert(EXPIRES_HEADER, v);
    }
    response
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut response = json_response(e.status(), &e.body());
    if e.kind == Kind::RateLimited {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures::future::BoxFuture;
    use http_body_util::BodyExt;

    use super::*;
    use crate::accounts::{AccountEvent, AccountFacts, AccountsWriter};
    use crate::directory::static_users::StaticUsers;
    use crate::fixtures::pod;
    use crate::fixtures::{FakeSource, RecordedEvents};
    use crate::identity::Review;
    use crate::index::{IndexEvent, IndexWriter};
    use crate::issuer::IssuerConfig;
    use crate::mapping::MappingRules;
    use crate::pod::PodFacts;
    use crate::ratelimit::Limit;
    use crate::workload::{LookupError, OwnerObject};

    struct FakeCluster {
        /// The pod any review names, as a read finds it (`None`: deleted).
        pod: std::sync::Mutex<Option<PodFacts>>,
        /// What a live list by address finds (pods the index has not seen).
        live: Vec<PodFacts>,
        /// The uid of team-a/default as the API server has it (`None`: deleted).
        account: std::sync::Mutex<Option<String>>,
        reviews: AtomicUsize,
        account_reads: AtomicUsize,
    }

    impl Cluster for FakeCluster {
        fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, KubeError>> {
            self.reviews.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                // Like the API server's own token cache, it still says yes for a token whose
                // account went: only the service's own check refuses it.
                Ok(Review {
                    authenticated: token == "good" || token == GOOD_JWT,
                    username: Some("system:serviceaccount:team-a:default".into()),
                    uid: Some("sa1".into()),
                    audiences: vec![identity::AUDIENCE.into()],
                    extra: BTreeMap::from([
                        (
                            "authentication.kubernetes.io/pod-name".into(),
                            vec!["web-1".into()],
                        ),
                        (
                            "authentication.kubernetes.io/pod-uid".into(),
                            vec!["u1".into()],
                        ),
                    ]),
                    error: None,
                })
            })
        }

        fn pod<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Result<Option<PodFacts>, KubeError>> {
            let pod = self.pod.lock().expect("pod").clone();
            Box::pin(std::future::ready(Ok(pod)))
        }

        fn pods_at(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<PodFacts>, KubeError>> {
            let at = self.live.iter().filter(|p| p.ips.contains(&ip)).cloned();
            Box::pin(std::future::ready(Ok(at.collect())))
        }

        fn service_account<'a>(
            &'a self,
            _: &'a str,
            name: &'a str,
        ) -> BoxFuture<'a, Result<Option<String>, KubeError>> {
            self.account_reads.fetch_add(1, Ordering::SeqCst);
            let uid = self.account.lock().expect("account").clone();
            Box::pin(std::future::ready(Ok(uid.filter(|_| name == "default"))))
        }
    }

    /// Every owner exists, is a top object and was submitted by alice.
    struct AliceOwners;

    impl OwnerLookup for AliceOwners {
        fn get<'a>(
            &'a self,
            _: &'a str,
            owner: &'a crate::pod::OwnerRef,
        ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
            let object = OwnerObject {
                uid: owner.uid.clone(),
                owners: vec![],
                user: Some("alice".into()),
                stamp: Some(crate::fixtures::stamp_keys().sign("team-a", "alice")),
            };
            Box::pin(async move { Ok(Some(object)) })
        }
    }

    /// Label of test pods the webhook's objectSelector leaves out.
    /// The pod the fake coverage check refuses.
    const UNCOVERED_POD: &str = "uncovered";

    /// A bound token as the API server mints them: a JWT whose payload has `exp` (far ahead).
    const GOOD_JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln";

    struct Bed {
        app: Arc<App>,
        cluster: Arc<FakeCluster>,
        accounts: AccountsWriter,
        pods: IndexWriter,
        source: Arc<FakeSource>,
        events: Arc<RecordedEvents>,
        ready: Arc<AtomicBool>,
        _audit: tempfile::TempDir,
        audit_path: std::path::PathBuf,
    }

    fn bed(pods: Vec<PodFacts>) -> Bed {
        bed_with_live(pods, vec![])
    }

    fn bed_with_live(pods: Vec<PodFacts>, live: Vec<PodFacts>) -> Bed {
        bed_from(pods, live, TokenOrigin::Pod)
    }

    fn bed_from(pods: Vec<PodFacts>, live: Vec<PodFacts>, origin: TokenOrigin) -> Bed {
        let index = SharedIndex::default();
        let mut writer = IndexWriter::new(index.clone());
        writer.on_event(IndexEvent::Init);
        for p in pods {
            writer.on_event(IndexEvent::InitApply(p));
        }
        writer.on_event(IndexEvent::InitDone);
        let accounts = SharedAccounts::default();
        let mut accounts_writer = AccountsWriter::new(accounts.clone());
        accounts_writer.on_event(AccountEvent::Init);
        accounts_writer.on_event(AccountEvent::InitApply(AccountFacts {
            namespace: "team-a".into(),
            name: "default".into(),
            uid: "sa1".into(),
        }));
        accounts_writer.on_event(AccountEvent::InitDone);
        let cluster = Arc::new(FakeCluster {
            pod: std::sync::Mutex::new(Some(pod("web-1", "u1", "127.100.0.1"))),
            live,
            account: std::sync::Mutex::new(Some("sa1".into())),
            reviews: AtomicUsize::new(0),
            account_reads: AtomicUsize::new(0),
        });
        let source = Arc::new(FakeSource::default());
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let ready = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&ready);
        let dir = tempfile::tempdir().expect("tempdir");
        let audit_path = dir.path().join("audit.log");
        let events = Arc::new(RecordedEvents::default());
        let reviews = ReviewCache::new(
            crate::review_cache::ReviewCacheConfig::default(),
            Arc::new(|| 1_000_000),
            metrics.review_cache_observer(),
        );
        let app = App {
            cluster: cluster.clone(),
            owners: Arc::new(AliceOwners),
            index,
            accounts,
            reviews,
            // On, with no keys until a test installs some: every token is reviewed.
            token_keys: TokenKeys::new(std::time::Duration::from_secs(60)),
            clock: Arc::new(|| 1_000_000),
            served: Arc::new(|ns| ns == "team-a"),
            covered: Arc::new(|p| {
                if p.name == UNCOVERED_POD {
                    return Err(ApiError::new(
                        Kind::Forbidden,
                        "namespace_not_covered",
                        "outside the objectSelector",
                    ));
                }
                Ok(StampedKinds::default())
            }),
            watches_ready: Arc::new(move || flag.load(Ordering::SeqCst)),
            stamp_keys: crate::fixtures::stamp_keys(),
            modes: Modes {
                sa_token: true,
                ip: true,
                sa_token_origin: origin,
            },
            policy: Policy {
                mapping: MappingRules::default(),
                superusers: ["hdfs".to_owned()].into(),
            },
            services: ServicesPolicy {
                configured: ["hdfs"].into(),
                default: None,
            },
            directory: Arc::new(StaticUsers::embedded()),
            issuer: Issuer::new(
                source.clone(),
                IssuerConfig::default(),
                Arc::new(|| 0),
                metrics.observer(),
            ),
            pod_limit: RateLimiter::new(Limit {
                per_minute: 60,
                burst: 3,
            }),
            peer_limit: RateLimiter::new(Limit {
                per_minute: 600,
                burst: 100,
            }),
            audit: AuditSink::file(&audit_path).expect("audit file"),
            events: events.clone(),
            metrics,
            registry: Arc::new(registry),
            readiness: Readiness::default(),
        };
        Bed {
            app: Arc::new(app),
            cluster,
            accounts: accounts_writer,
            pods: writer,
            source,
            events,
            ready,
            _audit: dir,
            audit_path,
        }
    }

    fn request(from: &str, auth: Option<&str>, accept: Option<&str>) -> Request<Bytes> {
        let mut builder = Request::post(CREDENTIALS_PATH);
        if let Some(a) = auth {
            builder = builder.header(header::AUTHORIZATION, a);
        }
        if let Some(a) = accept {
            builder = builder.header(header::ACCEPT, a);
        }
        let mut req = builder.body(Bytes::new()).expect("request");
        let addr: SocketAddr = format!("{from}:40000").parse().expect("addr");
        req.extensions_mut().insert(addr);
        req
    }

    async fn call(bed: &Bed, req: Request<Bytes>) -> (StatusCode, http::HeaderMap, Bytes) {
        let response = handle(Arc::clone(&bed.app), req).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (parts.status, parts.headers, body)
    }

    fn error_of(body: &Bytes) -> (String, String) {
        let v: serde_json::Value = serde_json::from_slice(body).expect("JSON error body");
        (
            v["error"].as_str().unwrap_or_default().to_owned(),
            v["message"].as_str().unwrap_or_default().to_owned(),
        )
    }

    fn audit_lines(bed: &Bed) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&bed.audit_path)
            .expect("audit log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON audit line"))
            .collect()
    }

    #[tokio::test]
    async fn a_pod_at_its_address_gets_a_credentials_file_and_its_siblings_reuse_it() {
        let mut sibling = pod("web-2", "u2", "127.100.0.2");
        sibling.owners = vec![crate::pod::OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web-abc".into(),
            uid: "rs".into(),
            controller: true,
        }];
        let mut first = sibling.clone();
        first.name = "web-1".into();
        first.uid = "u1".into();
        first.ips = vec!["127.100.0.1".parse().expect("ip")];
        let bed = bed(vec![first, sibling]);
        let (status, headers, body) = call(&bed, request("127.100.0.1", None, None)).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        assert_eq!(headers[EXPIRES_HEADER], "1970-01-01T01:23:20Z");
        let creds = hadoop_token::Credentials::decode(&body).expect("HDTS file");
        assert_eq!(creds.tokens.len(), 1);
        let (status, _, _) = call(&bed, request("127.100.0.2", None, None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            bed.source.obtained.load(Ordering::SeqCst),
            1,
            "one Hadoop fetch per workload"
        );
        let lines = audit_lines(&bed);
        assert_eq!(lines[0]["outcome"], "issued");
        assert_eq!(lines[1]["outcome"], "reused");
        assert_eq!(lines[1]["pod_name"], "web-2");
        assert_eq!(lines[1]["identity_method"], "ip");
        assert_eq!(lines[1]["tokens"][0]["sequence_number"], 40);
        let text = std::fs::read_to_string(&bed.audit_path).expect("audit");
        assert!(!text.contains("cHc"), "no password in the audit log");
        // One Event for the one issue, on the workload the chain led to; reuses are quiet.
        assert_eq!(bed.events.reasons(), [("web-abc".into(), "TokensIssued")]);
    }

    #[tokio::test]
    async fn json_is_served_on_request_and_sa_tokens_identify_the_pod() {
        let bed = bed(vec![]);
        let (status, headers, body) = call(
            &bed,
            request("127.100.0.1", Some("Bearer good"), Some("application/json")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert!(headers[EXPIRES_HEADER].to_str().is_ok());
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["tokens"][0]["kind"], "HDFS_DELEGATION_TOKEN");
        let file = base64::engine::general_purpose::STANDARD
            .decode(v["file"].as_str().expect("file"))
            .expect("base64");
        assert!(file.starts_with(b"HDTS\x00"));
        assert_eq!(audit_lines(&bed)[0]["identity_method"], "sa-token");
        // The pod's token from another address: stolen, or this network translates addresses.
        let (status, _, body) = call(&bed, request("10.0.0.9", Some("Bearer good"), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "token_origin_mismatch")
        );
        let (status, _, body) = call(&bed, request("10.0.0.9", Some("Bearer bad"), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_of(&body).0, "token_rejected");
        let (status, _, body) = call(&bed, request("10.0.0.9", Some("Basic x"), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "bad_authorization")
        );
    }

    #[tokio::test]
    async fn refusals_carry_a_code_and_an_actionable_message() {
        let mut bare = pod("x", "u5", "127.100.0.5");
        bare.user = None;
        let mut host = pod("h", "u6", "127.100.0.6");
        host.host_network = true;
        let mut other_ns = pod("o", "u7", "127.100.0.7");
        other_ns.namespace = "team-z".into();
        let mut run_as = pod("r", "u8", "127.100.0.8");
        run_as.user = Some("bob".into());
        run_as.run_as = Some("svc-etl".into());
        let uncovered = pod(UNCOVERED_POD, "u9", "127.100.0.9");
        let mut laundered = pod("l", "u10", "127.100.0.10");
        laundered.user = Some("bob".into());
        laundered.stamp = Some(crate::fixtures::stamp_keys().sign("team-a", "bob"));
        laundered.owners = vec![crate::pod::OwnerRef {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "alices-rs".into(),
            uid: "rs".into(),
            controller: true,
        }];
        let mut spaced = pod("s", "u11", "127.100.0.11");
        spaced.user = Some("alice ".into());
        // Annotated while iddecorator was not covering the namespace: no stamp it signed.
        let mut unstamped = pod("f", "u12", "127.100.0.12");
        unstamped.stamp = None;
        let bed = bed(vec![
            bare, host, other_ns, run_as, uncovered, laundered, spaced, unstamped,
        ]);
        for (ip, status, code) in [
            ("127.100.0.5", 403, "no_user_annotation"),
            ("127.100.0.6", 403, "host_network"),
            ("127.100.0.7", 403, "namespace_not_served"),
            ("127.100.0.8", 403, "run_as_refused"),
            ("127.100.0.9", 403, "namespace_not_covered"),
            ("127.100.0.10", 403, "owner_user_mismatch"),
            ("127.100.0.11", 403, "user_annotation_invalid"),
            ("127.100.0.12", 403, "stamp_invalid"),
            ("127.100.0.99", 401, "unknown_address"),
        ] {
            let (got, _, body) = call(&bed, request(ip, None, None)).await;
            assert_eq!(
                (got.as_u16(), error_of(&body).0.as_str()),
                (status, code),
                "{ip}"
            );
        }
        let (_, _, body) = call(&bed, request("127.100.0.5", None, None)).await;
        assert_eq!(
            error_of(&body).1,
            "pod team-a/x has no kube2hadoop.io/user annotation: was it created before \
             iddecorator was installed?"
        );
        let denied = audit_lines(&bed);
        assert!(denied.iter().all(|l| l["outcome"] == "denied"));
        assert_eq!(bed.source.obtained.load(Ordering::SeqCst), 0);
        // Each identified pod hears of its refusal (on itself: no workload was proven); an
        // unknown address, and a pod refused while being identified (host network, a namespace
        // not served), name no pod to tell.
        let reasons = bed.events.reasons();
        assert_eq!(reasons.len(), 7, "{reasons:?}");
        assert!(reasons.iter().all(|(_, r)| *r == "TokensRefused"));
        assert_eq!(reasons[0].0, "x");
        assert!(!reasons.iter().any(|(n, _)| n.is_empty()));
    }

    #[tokio::test]
    async fn a_pod_chooses_configured_services_only_and_the_audit_says_which() {
        let mut chosen = pod("c", "u1", "127.100.0.1");
        chosen.services = Some(" HDFS ".into());
        let mut unconfigured = pod("y", "u2", "127.100.0.2");
        unconfigured.services = Some("hdfs,yarn".into());
        let mut unknown = pod("u", "u3", "127.100.0.3");
        unknown.services = Some("hdfs,ftp".into());
        let bed = bed(vec![
            chosen,
            unconfigured,
            unknown,
            pod("d", "u4", "127.100.0.4"),
        ]);
        let (status, _, body) = call(&bed, request("127.100.0.1", None, None)).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let (status, _, body) = call(&bed, request("127.100.0.2", None, None)).await;
        let (code, message) = error_of(&body);
        assert_eq!(
            (status.as_u16(), code.as_str()),
            (403, "service_not_configured")
        );
        assert!(message.contains("yarn"), "{message}");
        let (status, _, body) = call(&bed, request("127.100.0.3", None, None)).await;
        assert_eq!(
            (status.as_u16(), error_of(&body).0.as_str()),
            (403, "bad_services_annotation")
        );
        let (status, _, _) = call(&bed, request("127.100.0.4", None, None)).await;
        assert_eq!(status, StatusCode::OK);
        let lines = audit_lines(&bed);
        assert_eq!(lines[0]["services"], "hdfs");
        assert_eq!(lines[3]["services"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn a_pod_over_its_rate_is_told_to_wait_and_an_unready_index_says_so() {
        let bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        for _ in 0..3 {
            let (status, _, _) = call(&bed, request("127.100.0.1", None, None)).await;
            assert_eq!(status, StatusCode::OK);
        }
        let (status, headers, body) = call(&bed, request("127.100.0.1", None, None)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains_key(header::RETRY_AFTER));
        assert_eq!(error_of(&body).0, "rate_limited");

        bed.ready.store(false, Ordering::SeqCst);
        let (status, _, body) = call(&bed, request("127.100.0.2", None, None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
        );
        let ready = Request::get("/readyz").body(Bytes::new()).expect("req");
        assert_eq!(call(&bed, ready).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn a_stale_index_identifies_nobody_by_address_until_relisted() {
        let bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let mut writer = IndexWriter::new(bed.app.index.clone());
        writer.on_event(IndexEvent::Broken);
        let (status, _, body) = call(&bed, request("127.100.0.1", None, None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "index_stale")
        );
        assert_eq!(bed.source.obtained.load(Ordering::SeqCst), 0);
        // Bound tokens are checked against the API itself, not the index.
        let (status, _, _) = call(&bed, request("127.100.0.1", Some("Bearer good"), None)).await;
        assert_eq!(status, StatusCode::OK);
        writer.on_event(IndexEvent::Init);
        writer.on_event(IndexEvent::InitApply(pod("web-1", "u1", "127.100.0.1")));
        writer.on_event(IndexEvent::InitDone);
        let (status, _, _) = call(&bed, request("127.100.0.1", None, None)).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[tokio::test]
    async fn a_pod_the_index_has_not_seen_yet_is_identified_by_the_api_server() {
        let bed = bed_with_live(vec![], vec![pod("web-2", "u2", "127.100.0.2")]);
        let (status, _, body) = call(&bed, request("127.100.0.2", None, None)).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        let (status, _, body) = call(&bed, request("127.100.0.3", None, None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "unknown_address")
        );
    }

    #[tokio::test]
    async fn only_failed_identifications_are_charged_to_the_address() {
        // Pods behind one address (SNAT, a service outside the cluster) must not share one
        // budget; bad tokens from that address must still be cut off before TokenReview. Such
        // a network needs tokens accepted from any address.
        let bed = bed_from(vec![], vec![], TokenOrigin::Any);
        let from = "10.0.0.9";
        for _ in 0..3 {
            let (status, _, _) = call(&bed, request(from, Some("Bearer good"), None)).await;
            assert_eq!(status, StatusCode::OK);
        }
        for i in 0..100 {
            let (_, _, body) = call(&bed, request(from, Some("Bearer bad"), None)).await;
            assert_eq!(error_of(&body).0, "token_rejected", "bad token {i}");
        }
        let (status, _, body) = call(&bed, request(from, Some("Bearer bad"), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
        );
    }

    #[tokio::test]
    async fn health_metrics_and_wrong_methods() {
        let bed = bed(vec![]);
        let get = |p: &str| Request::get(p).body(Bytes::new()).expect("req");
        assert_eq!(call(&bed, get("/healthz")).await.0, StatusCode::OK);
        let (status, _, body) = call(&bed, get("/metrics")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(String::from_utf8_lossy(&body).contains("kube2hadoop_indexed_pods"));
        assert_eq!(
            call(&bed, get(CREDENTIALS_PATH)).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call(&bed, get("/nope")).await.0, StatusCode::NOT_FOUND);
    }

    fn sa_event(uid: &str) -> AccountFacts {
        AccountFacts {
            namespace: "team-a".into(),
            name: "default".into(),
            uid: uid.into(),
        }
    }

    const BEARER: &str = "Bearer eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDB9.c2ln";

    #[tokio::test]
    async fn a_cached_review_saves_the_round_trips_but_not_the_checks() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let reviews = || bed.cluster.reviews.load(Ordering::SeqCst);
        for _ in 0..2 {
            let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
            assert_eq!(status, StatusCode::OK, "{body:?}");
        }
        assert_eq!(
            reviews(),
            1,
            "the second request was answered from the cache"
        );
        assert_eq!(bed.app.reviews.len(), 1);
        let cached: Vec<_> = audit_lines(&bed)
            .iter()
            .map(|l| l["token_check"].clone())
            .collect();
        assert_eq!(
            cached,
            [
                serde_json::json!("token_review"),
                serde_json::json!("review_cache")
            ]
        );
        // Cached or not, the token counts only from its pod.
        let (status, _, body) = call(&bed, request("10.0.0.9", Some(BEARER), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "token_origin_mismatch")
        );
        assert_eq!(
            reviews(),
            2,
            "from another address the cached identity is not used: a fresh review"
        );
        let get = Request::get("/metrics").body(Bytes::new()).expect("req");
        let text = String::from_utf8_lossy(&call(&bed, get).await.2).into_owned();
        for want in [
            r#"kube2hadoop_token_review_cache_lookups_total{result="hit"} 1"#,
            r#"kube2hadoop_token_review_cache_lookups_total{result="bypassed"} 1"#,
            r#"kube2hadoop_token_review_cache_lookups_total{result="miss"} 1"#,
            "kube2hadoop_token_review_cache_entries 1",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }

        // The pod is deleted: the index sees it, the cache never answers for it again, and the
        // full review finds no pod.
        *bed.cluster.pod.lock().expect("pod") = None;
        bed.pods
            .on_event(IndexEvent::Delete(pod("web-1", "u1", "127.100.0.1")));
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::NOT_FOUND, "pod_not_found")
        );
        assert_eq!(reviews(), 3);
        assert!(bed.app.reviews.is_empty(), "a refused review is not cached");
    }

    #[tokio::test]
    async fn a_token_the_published_keys_vouch_for_needs_no_review_but_gets_every_check() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let reviews = || bed.cluster.reviews.load(Ordering::SeqCst);
        let signer = crate::fixtures::Signer::new("k1");
        let bearer = |token: String| format!("Bearer {token}");
        // No keys loaded yet: reviewed (the fake API server knows only its own tokens).
        let token = bearer(signer.token(995));
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(&token), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reviews(), 1);
        bed.app.token_keys.install(signer.key_set());
        for _ in 0..2 {
            let (status, _, body) = call(&bed, request("127.100.0.1", Some(&token), None)).await;
            assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        }
        assert_eq!(reviews(), 1, "the signature vouched, then the cache");
        let checks: Vec<_> = audit_lines(&bed)
            .iter()
            .filter(|l| l["outcome"] != "denied")
            .map(|l| l["token_check"].clone())
            .collect();
        assert_eq!(
            checks,
            [
                serde_json::json!("signature"),
                serde_json::json!("review_cache")
            ]
        );
        // Another key under the published id, an unknown id: not vouched for, reviewed.
        let forged = bearer(crate::fixtures::Signer::new("k1").token(995));
        let unknown = bearer(crate::fixtures::Signer::new("k9").token(995));
        for (n, t) in [forged, unknown].iter().enumerate() {
            let (status, _, _) = call(&bed, request("127.100.0.1", Some(t), None)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(reviews(), 2 + n);
        }
        // A token for a pod the index does not hold as signed (another uid): reviewed.
        let mut claims = signer.claims(995);
        claims["kubernetes.io"]["pod"]["uid"] = serde_json::json!("u-old");
        let replaced = bearer(signer.sign(&signer.header(), &claims));
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(&replaced), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reviews(), 4);
        // The account recreated (a new uid in the watch): the valid token is no longer vouched
        // for, by cache or signature.
        bed.accounts.on_event(AccountEvent::Apply(AccountFacts {
            namespace: "team-a".into(),
            name: "default".into(),
            uid: "sa2".into(),
        }));
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(&token), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reviews(), 5);
        // The pod deleted: likewise.
        bed.accounts.on_event(AccountEvent::Apply(sa_event("sa1")));
        bed.pods
            .on_event(IndexEvent::Delete(pod("web-1", "u1", "127.100.0.1")));
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(&token), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(reviews(), 6);
        let get = Request::get("/metrics").body(Bytes::new()).expect("req");
        let text = String::from_utf8_lossy(&call(&bed, get).await.2).into_owned();
        for want in [
            r#"kube2hadoop_token_signature_checks_total{result="no_keys"} 1"#,
            r#"kube2hadoop_token_signature_checks_total{result="verified"} 1"#,
            r#"kube2hadoop_token_signature_checks_total{result="invalid"} 1"#,
            r#"kube2hadoop_token_signature_checks_total{result="unknown_key"} 1"#,
            r#"kube2hadoop_token_signature_checks_total{result="watch_differs"} 3"#,
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    #[tokio::test]
    async fn a_vouched_token_from_another_address_or_a_terminating_pod_is_refused() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let signer = crate::fixtures::Signer::new("k1");
        bed.app.token_keys.install(signer.key_set());
        let token = format!("Bearer {}", signer.token(995));
        // From an address nobody holds: the origin check (under `pod`) refuses, no review.
        let (status, _, body) = call(&bed, request("10.0.0.9", Some(&token), None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            error_of(&body).0,
            "token_rejected",
            "reviewed: the index cannot place it"
        );
        let mut deleting = pod("web-1", "u1", "127.100.0.1");
        deleting.deleting = true;
        bed.pods.on_event(IndexEvent::Apply(deleting));
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(&token), None)).await;
        assert_ne!(status, StatusCode::OK, "a terminating pod gets nothing");
    }

    #[tokio::test]
    async fn a_cached_identity_is_not_used_from_an_address_another_pod_claims_too() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let reviews = || bed.cluster.reviews.load(Ordering::SeqCst);
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        // A new pod holds the address too (the old holder's deletion not seen yet): the
        // cached identity is not enough, the API server is asked again.
        bed.pods
            .on_event(IndexEvent::Apply(pod("other", "u2", "127.100.0.1")));
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the read pod still holds it: {body:?}"
        );
        assert_eq!(reviews(), 2, "a fresh review, not the cached one");
        let get = Request::get("/metrics").body(Bytes::new()).expect("req");
        let text = String::from_utf8_lossy(&call(&bed, get).await.2).into_owned();
        let bypassed = r#"kube2hadoop_token_review_cache_lookups_total{result="bypassed"} 1"#;
        assert!(text.contains(bypassed), "{text}");
    }

    #[tokio::test]
    async fn a_deleted_or_recreated_service_account_is_refused_cached_or_not() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(bed.cluster.account_reads.load(Ordering::SeqCst), 0);
        // Deleted: the watch says so, the API server confirms; its review still says yes.
        *bed.cluster.account.lock().expect("account") = None;
        bed.accounts.on_event(AccountEvent::Delete(sa_event("sa1")));
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "service_account_deleted")
        );
        assert_eq!(bed.cluster.reviews.load(Ordering::SeqCst), 2);
        assert!(bed.app.reviews.is_empty());
        // Created again under the same name: a new uid, which the old token does not name.
        *bed.cluster.account.lock().expect("account") = Some("sa2".into());
        bed.accounts.on_event(AccountEvent::Apply(sa_event("sa2")));
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "service_account_replaced")
        );
        assert!(bed.app.reviews.is_empty());
    }

    #[tokio::test]
    async fn a_stale_service_account_watch_bypasses_the_cache() {
        let mut bed = bed(vec![pod("web-1", "u1", "127.100.0.1")]);
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(status, StatusCode::OK);
        bed.accounts.on_event(AccountEvent::Broken);
        // While the watch is down the cache cannot tell: a review, and the account read from
        // the API server, as the review alone still passes for a while after a deletion.
        let (status, _, _) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bed.cluster.reviews.load(Ordering::SeqCst), 2);
        assert_eq!(bed.cluster.account_reads.load(Ordering::SeqCst), 1);
        // Deleted while the watch is down: the review still says yes, the read says gone.
        *bed.cluster.account.lock().expect("account") = None;
        let (status, _, body) = call(&bed, request("127.100.0.1", Some(BEARER), None)).await;
        assert_eq!(
            (status, error_of(&body).0.as_str()),
            (StatusCode::UNAUTHORIZED, "service_account_deleted")
        );
    }
}
