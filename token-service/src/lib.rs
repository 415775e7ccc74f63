//! The token service: proves which pod asks, and obtains, renews and cancels Hadoop
//! delegation tokens for the user its annotation names.
#![forbid(unsafe_code)]

pub mod hadoop;

pub mod accounts;
pub mod audit;
pub mod authorize;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod coverage;
pub mod directory;
pub mod error;
pub mod events;
#[cfg(test)]
mod fixtures;
// Test code, never in release binaries: the fuzz target and tests/fuzz_regressions.rs enable
// `fuzzing`; unit tests see `fuzz` without it.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
pub mod identity;
pub mod index;
pub mod issued;
pub mod issuer;
pub mod ledger;
pub mod mapping;
pub mod metrics;
pub mod pod;
pub mod ratelimit;
pub mod request;
pub mod review_cache;
pub mod server;
pub mod services;
pub mod signed_token;
pub mod token_keys;
pub mod workload;
