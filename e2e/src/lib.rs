//! Helpers for the end-to-end suite; the tests live in `tests/`.
//!
//! The suite runs against whatever `KUBECONFIG` names, as long as it has the contexts `admin`,
//! `alice` and `bob` and the objects of `e2e/cluster/bootstrap.yaml` (namespace `team-a`, the
//! TFJob CRD, the training operator's service account). `make e2e-up` builds such a bed locally.
//! - [`bed`]: clients per context and per impersonated controller, iddecorator on/off;
//! - [`objects`]: manifests, the user annotation, ownership lookups, cleanup by test label;
//! - [`pods`]: a pod's IP once running, connections from that IP (loopback on the local bed);
//! - [`wait`]: polling with a deadline;
//! - [`ledger`]: a token-service ledger namespace per test; [`fixture`]: a test's set-up;
//! - [`hadoop`], [`ldap`]: the Kerberized HDFS and LDAP beds;
//! - [`token_service`]: token-service processes started by tests, and HTTPS to them;
//! - [`rogue`]: a hostile mutating webhook served from the test process;
//! - [`kubectl`], [`cert_manager`]: the manifests checks (`tests/manifests.rs`);
//! - [`installed`]: kube2hadoop installed as pods (`tests/installed.rs`, `tests/helm.rs`).
#![forbid(unsafe_code)]

pub mod balancer;
pub mod bed;
pub mod cert_manager;
pub mod events;
pub mod faults;
pub mod fixture;
pub mod hadoop;
pub mod installed;
pub mod kubectl;
pub mod ldap;
pub mod ledger;
pub mod objects;
pub mod pods;
pub mod restart;
pub mod rogue;
pub mod token_service;
pub mod wait;

pub use bed::Bed;
pub use objects::{NAMESPACE, TestId, USER_ANNOTATION};

/// Why an e2e step failed; tests return it so cleanup still runs and the message says what broke.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Bed(#[from] bed::BedError),
    #[error(transparent)]
    Rogue(#[from] rogue::RogueError),
    #[error(transparent)]
    Wait(#[from] wait::WaitError),
    #[error(transparent)]
    Kubectl(#[from] kubectl::KubectlError),
    #[error("Kubernetes API call failed while {step}: {source}")]
    Kube {
        step: String,
        #[source]
        source: kube::Error,
    },
    #[error("a test manifest does not decode as {kind}: {source}")]
    Manifest {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("check failed: {0}")]
    Check(String),
}

/// Attach the step being performed to a kube error.
pub trait KubeStep<T> {
    fn step(self, step: impl Into<String>) -> Result<T, Error>;
}

impl<T> KubeStep<T> for Result<T, kube::Error> {
    fn step(self, step: impl Into<String>) -> Result<T, Error> {
        self.map_err(|source| Error::Kube {
            step: step.into(),
            source,
        })
    }
}

/// Fail the test with `msg` unless `cond` holds (an `assert!` that lets cleanup run).
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), Error> {
    if cond {
        Ok(())
    } else {
        Err(Error::Check(msg()))
    }
}
