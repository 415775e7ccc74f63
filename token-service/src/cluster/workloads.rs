//! Liveness of ledger workloads, as the reconciler asks for it: the adapter's lookups and the
//! pod index handed to the pure rules of [`crate::ledger::liveness`]. A workload's status
//! comes from the watches (the pod index for bare pods, [`WatchedTops`] for the rest) when
//! they say it runs, and from a read while they cannot answer or before it counts as ended.

use std::sync::Arc;

use futures::future::BoxFuture;

use super::Kube;
use super::tops::WatchedTops;
use crate::index::SharedIndex;
use crate::ledger::lifecycle::Liveness;
use crate::ledger::liveness::{OwnerStatus, StatusLookup, judge};
use crate::ledger::reconcile::WorkloadState;
use crate::pod::OwnerRef;
use crate::workload::{LookupError, OwnerLookup, OwnerObject, StampedKinds, WorkloadKey};

pub struct KubeWorkloads {
    pub kube: Arc<Kube>,
    pub index: SharedIndex,
    pub tops: Arc<WatchedTops>,
    pub stamped: StampedKinds,
}

impl WorkloadState for KubeWorkloads {
    fn liveness<'a>(
        &'a self,
        w: &'a WorkloadKey,
        submitter: Option<&'a str>,
    ) -> BoxFuture<'a, Liveness> {
        Box::pin(judge(w, submitter, &self.index, self, &self.stamped))
    }
}

impl StatusLookup for KubeWorkloads {
    fn status<'a>(&'a self, w: &'a WorkloadKey) -> BoxFuture<'a, Result<OwnerStatus, LookupError>> {
        Box::pin(async move {
            // A bare pod the index holds runs; one it lacks may be pending without an
            // address, so only a read tells.
            if self.index.holds_live(&w.uid) {
                return Ok(OwnerStatus::Running);
            }
            match self.tops.status(w).await {
                Some(OwnerStatus::Running) => Ok(OwnerStatus::Running),
                // A watch can trail without an error (a half-open connection, a lagging API
                // server): what would end a workload's tokens is confirmed by a consistent
                // read, about one read per cancellation.
                Some(_) | None => self.kube.status(w).await,
            }
        })
    }
}

impl OwnerLookup for KubeWorkloads {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        owner: &'a OwnerRef,
    ) -> BoxFuture<'a, Result<Option<OwnerObject>, LookupError>> {
        self.kube.get(namespace, owner)
    }
}
