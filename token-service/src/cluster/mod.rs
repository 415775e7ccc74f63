//! The Kubernetes adapter. Every call the service makes to the API server goes through
//! [`bounded`], under one timeout, and fails with a [`KubeError`]: the request path's reads
//! (TokenReview, pods, owner objects) here, the ledger's Secrets in [`secrets`], the leader
//! Lease in [`lease`], Events in [`events`], workload liveness in [`workloads`], the watches
//! in [`watch`]. What is decided on their answers is pure code elsewhere (`identity`,
//! `workload`, `ledger::liveness`, `events`); the HTTP layer turns a [`KubeError`] into its
//! answer.

pub mod events;
pub mod keys;
pub mod lease;
pub mod secrets;
pub mod tops;
pub mod watch;
pub mod watched_pod;
pub mod workloads;

use std::net::IpAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use tokio::sync::Semaphore;

use crate::identity::{AUDIENCE, Review};
use crate::ledger::liveness::{OwnerStatus, StatusLookup, status_of};
use crate::pod::{OwnerRef, PodFacts};
use crate::workload::{LookupError, OwnerLookup, OwnerObject, WorkloadKey, owner_object, plural};

pub use tops::WatchedTops;
pub use watch::{
    ServedNamespaces, WebhookRegistration, watch_namespaces, watch_pods, watch_retry_delay,
    watch_service_accounts, watch_webhook,
};
pub use workloads::KubeWorkloads;

/// A Kubernetes API call that failed or did not answer in time.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} at the Kubernetes API: {cause}")]
pub struct KubeError {
    /// What the call was for, as a phrase after "cannot".
    pub what: String,
    pub cause: Cause,
}

#[derive(Debug, thiserror::Error)]
pub enum Cause {
    #[error("no answer within {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("{0}")]
    Api(kube::Error),
    /// The service's own limit on calls in flight was reached and stayed so.
    #[error("no free slot among the service's concurrent API calls within {}s", .0.as_secs())]
    Busy(Duration),
}

impl KubeError {
    /// The API server refused a write because the object changed since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(&self.cause, Cause::Api(kube::Error::Api(e)) if e.code == 409)
    }
}

/// Runs one API call for `what`, bounded by `timeout`.
pub async fn bounded<T>(
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    let failed = |cause| KubeError {
        what: what.to_owned(),
        cause,
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(failed(Cause::Api(e))),
        Err(_) => Err(failed(Cause::Timeout(timeout))),
    }
}

/// At most this many request-path calls, and ledger calls, are in flight at once (separate
/// slots: a burst of requests never holds up the ledger's writes). A burst (2,000 workloads'
/// first requests, each walking its owner chain) otherwise opens one connection per concurrent
/// call, and the client pool keeps every one of them for 90 s after: most of the service's
/// memory after the burst, and a load the API server did not need. The Lease and Events have
/// their own paths and never wait here.
pub const REQUEST_CALLS: usize = 32;
pub const LEDGER_CALLS: usize = 8;
pub(crate) static REQUEST_SLOTS: Semaphore = Semaphore::const_new(REQUEST_CALLS);
pub(crate) static LEDGER_SLOTS: Semaphore = Semaphore::const_new(LEDGER_CALLS);

/// [`bounded`], once one of `slots` is free. The wait has its own limit (`timeout` again), so
/// a call that starts gets the whole of its timeout: a write is never cut short by a queue.
pub async fn limited<T>(
    slots: &'static Semaphore,
    timeout: Duration,
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, KubeError> {
    let _slot = match tokio::time::timeout(timeout, slots.acquire()).await {
        Ok(Ok(slot)) => slot,
        // The semaphores are static and never closed; a wait that ends without a slot is busy.
        Ok(Err(_)) | Err(_) => {
            return Err(KubeError {
                what: what.to_owned(),
                cause: Cause::Busy(timeout),
            });
        }
    };
    bounded(timeout, what, call).await
}

/// The API resource of `kind` in `api_version` (`apps/v1`, `v1`), its plural as the stamped
/// kinds spell it.
pub(crate) fn resource_of(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    ApiResource::from_gvk_with_plural(&gvk, &plural(kind))
}

/// What the request path asks of the API server.
pub trait Cluster: Send + Sync {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, KubeError>>;
    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodFacts>, KubeError>>;
    /// The pods holding `ip` now, read from the API server itself.
    fn pods_at(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<PodFacts>, KubeError>>;
    /// The uid of ServiceAccount `namespace/name` (`None`: it does not exist), read from the
    /// API server itself.
    fn service_account<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KubeError>>;
}

/// The API server, through one client and one timeout.
pub struct Kube {
    client: kube::Client,
    timeout: Duration,
}

impl Kube {
    pub fn new(client: kube::Client, timeout: Duration) -> Kube {
        Kube { client, timeout }
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, KubeError> {
        limited(&REQUEST_SLOTS, self.timeout, what, call).await
    }

    async fn token_review(&self, token: &str) -> Result<Review, KubeError> {
        // The token is a credential: it goes into the review body only, never into a message.
        let request = TokenReview {
            spec: TokenReviewSpec {
                audiences: Some(vec![AUDIENCE.to_owned()]),
                token: Some(token.to_owned()),
            },
            ..TokenReview::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = self
            .call(
                "review the bearer token",
                api.create(&PostParams::default(), &request),
            )
            .await?;
        Ok(crate::request::review_of(answer.status))
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Option<PodFacts>, KubeError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let pod = self.call("read the pod", api.get_opt(name)).await?;
        Ok(pod.as_ref().map(PodFacts::from_pod))
    }

    async fn get_service_account(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, KubeError> {
        // Metadata only: the uid is all that is compared.
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let found = self
            .call("read the service account", api.get_metadata_opt(name))
            .await?;
        // One being deleted has revoked its tokens, however long a finalizer keeps it.
        Ok(found
            .filter(|sa| sa.metadata.deletion_timestamp.is_none())
            .map(|sa| sa.metadata.uid.unwrap_or_default()))
    }

    async fn list_pods_at(&self, ip: IpAddr) -> Result<Vec<PodFacts>, KubeError> {
        let api: Api<Pod> = Api::all(self.client.clone());
        // No resourceVersion: a consistent read from etcd, not the possibly lagging watch cache.
        let params = ListParams::default().fields(&format!("status.podIP={ip}"));
        let list = self
            .call(
                "list the pods holding the caller's address",
                api.list(&params),
            )
            .await?;
        Ok(list.items.iter().map(PodFacts::from_pod).collect())
    }

    fn dynamic(&self, namespace: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
        let resource = resource_of(api_version, kind);
        Api::namespaced_with(self.client.clone(), namespace, &resource)
    }

    /// One read of the object `kind`/`name`; its failure names the object, as [`LookupError`]
    /// does.
    async fn read_named<T>(
        &self,
        namespace: &str,
        kind: &str,
        name: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, LookupError> {
        self.call("read", call).await.map_err(|e| LookupError {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            detail: e.cause.to_string(),
        })
    }

    /// The object of `kind` (in `api_version`) named `name`, whole: workload status needs its
    /// `status`.
    async fn object(
        &self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>, LookupError> {
        let api = self.dynamic(namespace, api_version, kind);
        self.read_named(namespace, kind, name, api.get_opt(name))
            .await
    }

    /// An owner's metadata only (what [`owner_object`] reads): a large pod template is neither
    /// sent nor parsed on every request.
    async fn get_owner(
        &self,
        namespace: &str,
        owner: &OwnerRef,
    ) -> Result<Option<OwnerObject>, LookupError> {
        let api = self.dynamic(namespace, &owner.api_version, &owner.kind);
        let found = self
            .read_named(
                namespace,
                &owner.kind,
                &owner.name,
                api.get_metadata_opt(&owner.name),
            )
            .await?;
        Ok(found.map(|o| owner_object(&o.metadata)))
    }

    async fn workload_status(&self, w: &WorkloadKey) -> Result<OwnerStatus, LookupError> {
        let object = self
            .object(&w.namespace, &w.api_version, &w.kind, &w.name)
            .await?;
        Ok(status_of(
            w,
            object
                .as_ref()
                .map(|o| (o.metadata.uid.as_deref(), o.data.get("status"))),
        ))
    }
}

impl Cluster for Kube {
    fn review<'a>(&'a self, token: &'a str) -> BoxFuture<'a, Result<Review, KubeError>> {
        Box::pin(self.token_review(token))
    }

    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodFacts>, KubeError>> {
        Box::pin(self.get_pod(namespace, name))
    }

    fn pods_at(&self, ip: IpAddr) -> BoxFuture<'_, Result<Vec<PodFacts>, KubeError>> {
        Box::pin(self.list_pods_at(ip))
    }

    fn service_account<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KubeError>> {
        Box::pin(self.get_service_account(namespace, name))
    }
}

impl OwnerLookup for Kube {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
        Box::pin(self.get_owner(namespace, owner))
    }
}

impl StatusLookup for Kube {
    fn status<'a>(
        &'a self,
        workload: &'a WorkloadKey,
    ) -> BoxFuture<'a, Result<OwnerStatus, LookupError>> {
        Box::pin(self.workload_status(workload))
    }
}
