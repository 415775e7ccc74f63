//! Liveness of ledger workloads, as the reconciler asks for it: the adapter's lookups and the
//! pod index handed to the pure rules of [`crate::ledger::liveness`].

use std::sync::Arc;

use futures::future::BoxFuture;

use super::Kube;
use crate::index::SharedIndex;
use crate::ledger::lifecycle::Liveness;
use crate::ledger::liveness::judge;
use crate::ledger::reconcile::WorkloadState;
use crate::workload::{StampedKinds, WorkloadKey};

pub struct KubeWorkloads {
    pub kube: Arc<Kube>,
    pub index: SharedIndex,
    pub stamped: StampedKinds,
}

impl WorkloadState for KubeWorkloads {
    fn liveness<'a>(
        &'a self,
        w: &'a WorkloadKey,
        submitter: Option<&'a str>,
    ) -> BoxFuture<'a, Liveness> {
        Box::pin(judge(
            w,
            submitter,
            &self.index,
            self.kube.as_ref(),
            &self.stamped,
        ))
    }
}
