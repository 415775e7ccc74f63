//! iddecorator: stamps the authenticated submitter on workloads.
//!
//! The admission decision is a pure function ([`decision::mutate`], [`decision::validate`]) of
//! the request and the [`policy::Policy`]; everything that touches the network lives in the
//! binary's shell.
#![forbid(unsafe_code)]

pub mod annotations;
pub mod decision;
// Test code, never in release binaries: the fuzz targets and tests/fuzz_regressions.rs enable
// `fuzzing`; unit tests see `fuzz` without it.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod injection;
pub mod pointer;
pub mod policy;
pub mod review;
pub mod trust;
pub mod username;
pub mod workload;

// The binary's shell: flags, HTTPS endpoints, metrics; `certs` for installs without cert-manager.
pub mod certs;
pub mod cli;
pub mod metrics;
pub mod pods;
pub mod server;
