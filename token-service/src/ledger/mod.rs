//! The ledger: every workload's token set, stored as one Secret per (workload, Hadoop user) in
//! the service's own namespace, so restarts and other replicas serve the same set, and the one
//! elected replica can renew, re-issue and cancel it.
//!
//! Layers: [`store`] (Secrets ↔ entries, optimistic concurrency), [`record`] (what an entry
//! says and how each action changes it), [`lifecycle`] (pure decisions over plain data),
//! [`liveness`] (whether a workload still runs), [`reconcile`] (the loop that acts). The
//! Kubernetes side (the Secrets, the leader Lease) is in `cluster`.

pub mod lifecycle;
pub mod liveness;
pub mod reconcile;
pub mod record;
pub mod store;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::hadoop::{Renewal, TokenSet};
use crate::issued::Issued;
use crate::services::Selection;
use crate::workload::WorkloadKey;

pub use record::Record;
pub use store::{Entry, Ledger, StoreError};

/// What a save decided: our set is now the workload's, or another replica stored one first.
pub enum Saved {
    Ours,
    /// Ours is recorded over a set that was expired by its record: cancel that one, nobody
    /// renews it any more.
    Replaced(TokenSet),
    /// Serve this one and cancel ours: never two live sets for one workload.
    Theirs(Arc<Issued>),
}

/// What the ledger holds for a workload.
pub enum Loaded {
    /// Serve it.
    Usable(Arc<Issued>),
    /// Expired by its record, which may be stale (a process killed before it recorded a
    /// renewal's answer): renew it first, replace it only if that fails.
    Expired(Box<Entry>),
}

/// The sets being served (the issuer's cache), told of every change the ledger makes.
pub trait Serving: Send + Sync {
    /// Serve `issued` from now on: the ledger renewed or re-issued the workload's set.
    fn replace(&self, workload: &WorkloadKey, issued: Arc<Issued>);
    /// Serve nothing for it any more: the set was cancelled.
    fn forget(&self, workload: &WorkloadKey, hadoop_user: &str, services: &Selection);
}

/// The issuer's view of the ledger.
pub trait Persist: Send + Sync {
    /// The stored set of the workload for `user` and `services`, if any.
    fn load<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        user: &'a str,
        services: &'a Selection,
    ) -> BoxFuture<'a, Result<Option<Loaded>, StoreError>>;
    /// Stores a set just obtained.
    fn save<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        issued: &'a Arc<Issued>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;
    /// Records a renewal of `expired`'s set; the set to serve. If another replica changed the
    /// entry meanwhile, its set if usable, else a conflict (the caller retries).
    fn renewed<'a>(
        &'a self,
        expired: &'a Entry,
        renewal: &'a Renewal,
    ) -> BoxFuture<'a, Result<Arc<Issued>, StoreError>>;
}
