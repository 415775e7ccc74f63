//! Who is asking: a pod proven by its bound service-account token or by its source address.
//!
//! [`VerifiedPod`] can only be built by [`by_review`] and [`by_ip`], so nothing that skipped
//! those checks can reach authorization or issuance.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::accounts::AccountLookup;
use crate::error::{ApiError, Kind};
use crate::index::IpLookup;
use crate::pod::PodFacts;

/// The audience bound tokens must be minted for, so a token meant for another service cannot be
/// replayed here.
pub use k2h_contract::names::AUDIENCE;
const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
pub const SA_PREFIX: &str = "system:serviceaccount:";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    SaToken,
    Ip,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::SaToken => "sa-token",
            Method::Ip => "ip",
        }
    }
}

/// What vouched for a bound token (SA-token mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// A TokenReview, asked now.
    Review,
    /// A TokenReview kept by the cache (`crate::review_cache`).
    CachedReview,
    /// Its signature, against the API server's published keys (`crate::signed_token`).
    Signature,
}

impl TokenCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenCheck::Review => "token_review",
            TokenCheck::CachedReview => "review_cache",
            TokenCheck::Signature => "signature",
        }
    }
}

/// A pod that passed one of the two checks, with how it was proven.
#[derive(Debug, Clone)]
pub struct VerifiedPod {
    pod: Arc<PodFacts>,
    method: Method,
    /// The service account TokenReview authenticated (SA-token mode only).
    service_account: Option<String>,
    /// SA-token mode: what vouched for the token (`None` in IP mode).
    token_check: Option<TokenCheck>,
}

impl VerifiedPod {
    pub fn pod(&self) -> &PodFacts {
        &self.pod
    }
    pub fn method(&self) -> Method {
        self.method
    }
    pub fn service_account(&self) -> Option<&str> {
        self.service_account.as_deref()
    }
    pub fn token_check(&self) -> Option<TokenCheck> {
        self.token_check
    }
}

/// The parts of a TokenReview status we decide on.
#[derive(Debug, Clone, Default)]
pub struct Review {
    pub authenticated: bool,
    pub username: Option<String>,
    /// `status.user.uid`: for a service-account token, the account's uid.
    pub uid: Option<String>,
    pub audiences: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub error: Option<String>,
}

/// The pod a successful review names; it still has to be found and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewedPod {
    pub namespace: String,
    pub service_account: String,
    pub name: String,
    pub uid: String,
    pub username: String,
    /// The account's uid as the review reported it, if it did.
    pub service_account_uid: Option<String>,
}

fn unauthenticated(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(Kind::Unauthenticated, code, message)
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(Kind::Forbidden, code, message)
}

/// Reads the pod out of a review, refusing anything that is not a pod-bound token for us.
pub fn review_target(review: &Review) -> Result<ReviewedPod, ApiError> {
    if !review.authenticated {
        return Err(unauthenticated(
            "token_rejected",
            format!(
                "the bearer token was not accepted by the Kubernetes API{}: mount a projected \
                 service-account token with audience {AUDIENCE:?}",
                review
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        ));
    }
    // The review asks for our audience; an answer that does not list it (an empty list too,
    // as an API server that ignores audiences would give) proves the token is not for us.
    if !review.audiences.iter().any(|a| a == AUDIENCE) {
        return Err(unauthenticated(
            "wrong_audience",
            format!("the bearer token is not for audience {AUDIENCE:?}"),
        ));
    }
    let username = review.username.clone().unwrap_or_default();
    let (namespace, service_account) = username
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
        .ok_or_else(|| {
            unauthenticated(
                "not_a_service_account",
                format!("the bearer token belongs to {username:?}, not to a pod's service account"),
            )
        })?;
    let single = |key: &str| match review.extra.get(key).map(Vec::as_slice) {
        Some([one]) if !one.is_empty() => Some(one.clone()),
        _ => None,
    };
    let (Some(name), Some(uid)) = (single(EXTRA_POD_NAME), single(EXTRA_POD_UID)) else {
        return Err(unauthenticated(
            "token_not_pod_bound",
            format!(
                "the token of {username} is not bound to a pod: use a projected \
                 service-account token (TokenRequest bound to the pod), not a Secret token"
            ),
        ));
    };
    Ok(ReviewedPod {
        namespace: namespace.to_owned(),
        service_account: service_account.to_owned(),
        name,
        uid,
        username,
        service_account_uid: review.uid.clone().filter(|u| !u.is_empty()),
    })
}

/// Where a bound service-account token may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// Only from an address of the pod it is bound to: a token stolen from a pod (its file
    /// read, its request intercepted) is worth nothing elsewhere.
    Pod,
    /// From anywhere: for networks that translate pod addresses on the way to the service.
    Any,
}

/// The reviewed pod, as the API returns it now, must be that very pod and still running, and
/// the token must come from it when `origin` says so (`peer`: the caller's address).
pub fn by_review(
    target: ReviewedPod,
    pod: Option<PodFacts>,
    served: &dyn Fn(&str) -> bool,
    origin: TokenOrigin,
    peer: Option<IpAddr>,
) -> Result<VerifiedPod, ApiError> {
    verify_reviewed(&target, pod.map(Arc::new), served, origin, peer)
}

/// As [`by_review`], for a token vouched for without asking the API server now (`check`: a
/// review the cache kept, `crate::review_cache`, or its signature, `crate::signed_token`) and
/// the pod as the pod index holds it now: every check a fresh review gets runs again.
pub fn by_watched_pod(
    target: &ReviewedPod,
    pod: Arc<PodFacts>,
    check: TokenCheck,
    served: &dyn Fn(&str) -> bool,
    origin: TokenOrigin,
    peer: Option<IpAddr>,
) -> Result<VerifiedPod, ApiError> {
    let mut verified = verify_reviewed(target, Some(pod), served, origin, peer)?;
    verified.token_check = Some(check);
    Ok(verified)
}

fn verify_reviewed(
    target: &ReviewedPod,
    pod: Option<Arc<PodFacts>>,
    served: &dyn Fn(&str) -> bool,
    origin: TokenOrigin,
    peer: Option<IpAddr>,
) -> Result<VerifiedPod, ApiError> {
    let shown = format!("{}/{}", target.namespace, target.name);
    let pod = pod.ok_or_else(|| {
        ApiError::new(
            Kind::NotFound,
            "pod_not_found",
            format!("pod {shown} named by the token does not exist"),
        )
    })?;
    if pod.uid != target.uid {
        return Err(ApiError::new(
            Kind::NotFound,
            "pod_replaced",
            format!("pod {shown} was replaced since the token was issued (uid differs)"),
        ));
    }
    // Right after the uid: a token sent from elsewhere learns nothing more about its pod.
    check_origin(&pod, &shown, origin, peer)?;
    if pod.service_account.as_deref().unwrap_or("default") != target.service_account {
        return Err(unauthenticated(
            "service_account_mismatch",
            format!(
                "pod {shown} does not run as service account {}",
                target.service_account
            ),
        ));
    }
    if pod.deleting {
        return Err(forbidden(
            "pod_terminating",
            format!("pod {shown} is being deleted"),
        ));
    }
    if !pod.is_live() {
        return Err(forbidden(
            "pod_not_running",
            format!("pod {shown} is not running"),
        ));
    }
    check_served(&pod, served)?;
    Ok(VerifiedPod {
        pod,
        method: Method::SaToken,
        service_account: Some(target.username.clone()),
        token_check: Some(TokenCheck::Review),
    })
}

/// Whether the ServiceAccount watch settles the account a fresh review named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCheck {
    /// It exists with the reviewed uid.
    Settled,
    /// The watch says it is gone or has another uid, or is not current: the API server itself
    /// is asked (a metadata read), as a review still passes for 60 s after an account's
    /// deletion was asked (and from the API server's own cache for 10 s more), and the watch
    /// may lag.
    AskTheApi,
}

pub fn account_check(target: &ReviewedPod, now: &AccountLookup) -> AccountCheck {
    match now {
        AccountLookup::Present(uid)
            if target
                .service_account_uid
                .as_ref()
                .is_none_or(|reviewed| reviewed == uid) =>
        {
            AccountCheck::Settled
        }
        AccountLookup::Present(_) | AccountLookup::Absent | AccountLookup::Stale => {
            AccountCheck::AskTheApi
        }
    }
}

/// The account as the API server has it now (`Some(uid)`, `None`: not found) must be the one
/// the review named: deleting a service account, or deleting and recreating it, revokes its
/// tokens.
pub fn account_confirmed(target: &ReviewedPod, live_uid: Option<&str>) -> Result<(), ApiError> {
    let shown = format!("{}/{}", target.namespace, target.service_account);
    match live_uid {
        None => Err(unauthenticated(
            "service_account_deleted",
            format!("service account {shown} of this token was deleted, which revokes its tokens"),
        )),
        Some(uid)
            if target
                .service_account_uid
                .as_ref()
                .is_some_and(|r| r != uid) =>
        {
            Err(unauthenticated(
                "service_account_replaced",
                format!(
                    "service account {shown} was deleted and created again since this token was \
                     issued, which revokes its tokens"
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Under [`TokenOrigin::Pod`], the caller's address must be one of the pod's.
fn check_origin(
    pod: &PodFacts,
    shown: &str,
    origin: TokenOrigin,
    peer: Option<IpAddr>,
) -> Result<(), ApiError> {
    if origin == TokenOrigin::Any || peer.is_some_and(|p| pod.ips.contains(&p)) {
        return Ok(());
    }
    // The kubelet starts the init container before it reports the pod's address: retry.
    if pod.ips.is_empty() {
        return Err(ApiError::new(
            Kind::Unavailable,
            "pod_address_pending",
            format!("pod {shown} has no address recorded yet; retry shortly"),
        ));
    }
    let from = peer.map_or_else(|| "an unknown address".to_owned(), |p| p.to_string());
    Err(unauthenticated(
        "token_origin_mismatch",
        format!(
            "the token of pod {shown} was sent from {from}, not from the pod's own address: a \
             pod's token is only accepted from that pod. If your network translates pod \
             addresses on the way to the token service (SNAT), an admin can set \
             saTokenOrigin: any"
        ),
    ))
}

/// The one live pod holding the caller's address, if it may use this mode.
pub fn by_ip(
    lookup: IpLookup,
    peer: IpAddr,
    served: &dyn Fn(&str) -> bool,
) -> Result<VerifiedPod, ApiError> {
    let pod = match lookup {
        IpLookup::One(pod) => pod,
        IpLookup::Nobody => {
            return Err(unauthenticated(
                "unknown_address",
                format!(
                    "no running pod has address {peer}: call from a pod, or send a bound \
                     service-account token"
                ),
            ));
        }
        IpLookup::Ambiguous(pods) => {
            let names: Vec<_> = pods.iter().map(|p| p.display_name()).collect();
            return Err(unauthenticated(
                "ambiguous_address",
                format!(
                    "address {peer} is held by several pods ({}): send a bound service-account \
                     token instead",
                    names.join(", ")
                ),
            ));
        }
    };
    let shown = pod.display_name();
    if pod.host_network {
        return Err(forbidden(
            "host_network",
            format!(
                "pod {shown} uses the host network, so its address proves nothing: send a bound \
                 service-account token instead"
            ),
        ));
    }
    if pod.deleting {
        return Err(forbidden(
            "pod_terminating",
            format!("pod {shown} is being deleted"),
        ));
    }
    check_served(&pod, served)?;
    Ok(VerifiedPod {
        pod,
        method: Method::Ip,
        service_account: None,
        token_check: None,
    })
}

fn check_served(pod: &PodFacts, served: &dyn Fn(&str) -> bool) -> Result<(), ApiError> {
    if served(&pod.namespace) {
        return Ok(());
    }
    Err(forbidden(
        "namespace_not_served",
        format!(
            "pod {} is in namespace {}, which this token service does not serve (its labels do \
             not match the configured namespace selector)",
            pod.display_name(),
            pod.namespace
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::pod;

    const PEER: &str = "127.100.0.1";

    fn peer() -> IpAddr {
        PEER.parse().expect("ip")
    }

    fn all(_: &str) -> bool {
        true
    }

    fn review() -> Review {
        Review {
            authenticated: true,
            username: Some("system:serviceaccount:team-a:default".into()),
            uid: Some("sa1".into()),
            audiences: vec![AUDIENCE.into()],
            extra: BTreeMap::from([
                (EXTRA_POD_NAME.into(), vec!["web-1".into()]),
                (EXTRA_POD_UID.into(), vec!["u1".into()]),
            ]),
            error: None,
        }
    }

    #[test]
    fn a_pod_bound_token_for_a_live_pod_verifies() {
        let target = review_target(&review()).expect("target");
        assert_eq!(
            (target.namespace.as_str(), target.name.as_str()),
            ("team-a", "web-1")
        );
        let v = by_review(
            target,
            Some(pod("web-1", "u1", PEER)),
            &all,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect("ok");
        assert_eq!(v.method(), Method::SaToken);
        assert_eq!(
            v.service_account(),
            Some("system:serviceaccount:team-a:default")
        );
    }

    #[test]
    fn reviews_that_do_not_name_a_pod_for_us_are_refused() {
        let mut r = review();
        r.authenticated = false;
        r.error = Some("token expired".into());
        let e = review_target(&r).expect_err("unauthenticated");
        assert_eq!((e.code, e.kind), ("token_rejected", Kind::Unauthenticated));
        assert!(e.message.contains("token expired"));

        let mut r = review();
        r.audiences = vec!["https://kubernetes.default.svc".into()];
        assert_eq!(review_target(&r).expect_err("aud").code, "wrong_audience");
        r.audiences.clear();
        assert_eq!(
            review_target(&r).expect_err("no audience").code,
            "wrong_audience"
        );

        for odd in [
            "alice",
            "system:serviceaccount::default",
            "system:serviceaccount:team-a:",
            "system:serviceaccount:team-a:a:b",
        ] {
            let mut r = review();
            r.username = Some(odd.into());
            assert_eq!(
                review_target(&r).expect_err(odd).code,
                "not_a_service_account",
                "{odd}"
            );
        }

        let mut r = review();
        r.extra.clear();
        assert_eq!(
            review_target(&r).expect_err("unbound").code,
            "token_not_pod_bound"
        );
    }

    #[test]
    fn the_reviewed_pod_must_still_be_that_pod_and_alive() {
        let target = || review_target(&review()).expect("target");
        let e = by_review(target(), None, &all, TokenOrigin::Pod, Some(peer())).expect_err("gone");
        assert_eq!((e.code, e.status().as_u16()), ("pod_not_found", 404));
        let e = by_review(
            target(),
            Some(pod("web-1", "u9", PEER)),
            &all,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect_err("uid");
        assert_eq!(e.code, "pod_replaced");
        let mut p = pod("web-1", "u1", PEER);
        p.deleting = true;
        assert_eq!(
            by_review(target(), Some(p), &all, TokenOrigin::Pod, Some(peer()))
                .expect_err("del")
                .code,
            "pod_terminating"
        );
        let mut p = pod("web-1", "u1", PEER);
        p.service_account = Some("other".into());
        assert_eq!(
            by_review(target(), Some(p), &all, TokenOrigin::Pod, Some(peer()))
                .expect_err("sa")
                .code,
            "service_account_mismatch"
        );
        let e = by_review(
            target(),
            Some(pod("web-1", "u1", PEER)),
            &|_| false,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect_err("unserved");
        assert_eq!((e.code, e.kind), ("namespace_not_served", Kind::Forbidden));
    }

    #[test]
    fn a_token_counts_only_from_its_own_pod_unless_any_origin_is_allowed() {
        let target = || review_target(&review()).expect("target");
        let live = || Some(pod("web-1", "u1", PEER));
        let elsewhere: IpAddr = "127.100.0.66".parse().expect("ip");
        for from in [Some(elsewhere), None] {
            let e = by_review(target(), live(), &all, TokenOrigin::Pod, from).expect_err("replay");
            assert_eq!(
                (e.code, e.kind),
                ("token_origin_mismatch", Kind::Unauthenticated)
            );
        }
        let e = by_review(target(), live(), &all, TokenOrigin::Pod, Some(elsewhere))
            .expect_err("replay");
        assert!(e.message.contains("127.100.0.66"), "{}", e.message);
        assert!(by_review(target(), live(), &all, TokenOrigin::Pod, Some(peer())).is_ok());
        assert!(by_review(target(), live(), &all, TokenOrigin::Any, Some(elsewhere)).is_ok());
        assert!(by_review(target(), live(), &all, TokenOrigin::Any, None).is_ok());
        // Before the kubelet reports the pod's address: retried, not refused.
        let mut unaddressed = pod("web-1", "u1", PEER);
        unaddressed.ips.clear();
        let e = by_review(
            target(),
            Some(unaddressed),
            &all,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect_err("pending");
        assert_eq!((e.code, e.kind), ("pod_address_pending", Kind::Unavailable));
        // From elsewhere, a token of a pod being deleted learns only the mismatch.
        let mut leaving = pod("web-1", "u1", PEER);
        leaving.deleting = true;
        let e = by_review(
            target(),
            Some(leaving),
            &all,
            TokenOrigin::Pod,
            Some(elsewhere),
        )
        .expect_err("replay");
        assert_eq!(e.code, "token_origin_mismatch");
    }

    #[test]
    fn a_cached_review_is_checked_like_a_fresh_one() {
        let target = review_target(&review()).expect("target");
        assert_eq!(target.service_account_uid.as_deref(), Some("sa1"));
        let live = Arc::new(pod("web-1", "u1", PEER));
        let v = by_watched_pod(
            &target,
            live.clone(),
            TokenCheck::CachedReview,
            &all,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect("ok");
        assert_eq!(v.method(), Method::SaToken);
        let elsewhere: IpAddr = "127.100.0.66".parse().expect("ip");
        let e = by_watched_pod(
            &target,
            live,
            TokenCheck::CachedReview,
            &all,
            TokenOrigin::Pod,
            Some(elsewhere),
        )
        .expect_err("replayed");
        assert_eq!(e.code, "token_origin_mismatch");
        let e = by_watched_pod(
            &target,
            Arc::new(pod("web-1", "u9", PEER)),
            TokenCheck::Signature,
            &all,
            TokenOrigin::Pod,
            Some(peer()),
        )
        .expect_err("replaced");
        assert_eq!(e.code, "pod_replaced");
    }

    #[test]
    fn a_deleted_or_recreated_service_account_revokes_its_tokens() {
        let target = review_target(&review()).expect("target");
        let present = |uid: &str| AccountLookup::Present(uid.into());
        assert_eq!(
            account_check(&target, &present("sa1")),
            AccountCheck::Settled
        );
        assert_eq!(
            account_check(&target, &AccountLookup::Stale),
            AccountCheck::AskTheApi,
            "without a current watch the API server is asked"
        );
        for now in [present("sa2"), AccountLookup::Absent] {
            assert_eq!(account_check(&target, &now), AccountCheck::AskTheApi);
        }
        assert!(account_confirmed(&target, Some("sa1")).is_ok());
        let e = account_confirmed(&target, None).expect_err("deleted");
        assert_eq!(
            (e.code, e.kind),
            ("service_account_deleted", Kind::Unauthenticated)
        );
        let e = account_confirmed(&target, Some("sa2")).expect_err("recreated");
        assert_eq!(e.code, "service_account_replaced");
        // A review that reported no uid: only existence can be checked.
        let mut r = review();
        r.uid = None;
        let unknown = review_target(&r).expect("target");
        assert_eq!(unknown.service_account_uid, None);
        assert_eq!(
            account_check(&unknown, &present("sa2")),
            AccountCheck::Settled
        );
        assert!(account_confirmed(&unknown, Some("sa2")).is_ok());
        assert!(account_confirmed(&unknown, None).is_err());
    }

    #[test]
    fn by_ip_needs_exactly_one_ordinary_pod_in_a_served_namespace() {
        let one = |p: PodFacts| IpLookup::One(Arc::new(p));
        let v = by_ip(one(pod("a", "u1", PEER)), peer(), &all).expect("ok");
        assert_eq!((v.method(), v.pod().name.as_str()), (Method::Ip, "a"));
        assert_eq!(v.service_account(), None);

        let e = by_ip(IpLookup::Nobody, peer(), &all).expect_err("nobody");
        assert_eq!((e.code, e.status().as_u16()), ("unknown_address", 401));
        let two = IpLookup::Ambiguous(vec![
            Arc::new(pod("a", "u1", PEER)),
            Arc::new(pod("b", "u2", PEER)),
        ]);
        let e = by_ip(two, peer(), &all).expect_err("two");
        assert!(
            e.message.contains("team-a/a") && e.message.contains("team-a/b"),
            "{e}"
        );
        let mut host = pod("h", "u3", PEER);
        host.host_network = true;
        assert_eq!(
            by_ip(one(host), peer(), &all).expect_err("host").code,
            "host_network"
        );
        let e = by_ip(one(pod("a", "u1", PEER)), peer(), &|ns| ns != "team-a").expect_err("ns");
        assert_eq!(e.code, "namespace_not_served");
    }
}
