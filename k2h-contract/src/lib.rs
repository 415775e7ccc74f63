//! The contract between iddecorator and token-service.
//!
//! Both binaries are joined only by Kubernetes objects, so everything one writes and the other
//! trusts is named here once: the annotation keys, the kinds iddecorator stamps, which trusted
//! controller may pass on a value for which owner kinds, the service-account audience, and how
//! token-service finds the webhook whose coverage it must share.
#![forbid(unsafe_code)]

pub mod annotations;
#[cfg(feature = "cli-check")]
pub mod cli;
pub mod coverage;
pub mod duration;
pub mod kinds;
pub mod names;
pub mod services;
pub mod stamp;
