//! The ledger: every workload's token set, stored as one Secret per (workload, Hadoop user) in
//! the service's own namespace, so restarts and other replicas serve the same set, and the one
//! elected replica can renew, re-issue and cancel it.
//!
//! Layers: [`store`] (Secrets ↔ entries, optimistic concurrency), [`lifecycle`] (pure decisions
//! over plain data), [`lease`] (who runs the loop), [`reconcile`] (the loop that acts).

pub mod lease;
pub mod lifecycle;
pub mod reconcile;
pub mod store;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::issuer::Issued;
use crate::workload::WorkloadKey;

pub use store::{Entry, Ledger, Record, StoreError};

/// What a save decided: our set is now the workload's, or another replica stored one first.
pub enum Saved {
    Ours,
    /// Serve this one and cancel ours: never two live sets for one workload.
    Theirs(Arc<Issued>),
}

/// The issuer's view of the ledger.
pub trait Persist: Send + Sync {
    /// The stored set of the workload, if any that is still usable.
    fn load<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<Arc<Issued>>, StoreError>>;
    /// Stores a set just obtained.
    fn save<'a>(
        &'a self,
        workload: &'a WorkloadKey,
        issued: &'a Arc<Issued>,
    ) -> BoxFuture<'a, Result<Saved, StoreError>>;
}
