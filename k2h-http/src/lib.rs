//! HTTPS serving shared by iddecorator and token-service.
//!
//! Parts, each in its own module:
//! - [`tls`]: a rustls server config whose certificate can be swapped while serving;
//! - [`expiry`]: the served certificate's expiry as a metric, for alerts;
//! - [`reload`]: polls files by content hash and swaps in newly parsed values (TLS pair, policy);
//! - [`serve`]: accept loop, TLS handshake, HTTP/1.1 + HTTP/2, body cap, graceful shutdown;
//! - [`respond`]: `/healthz`, `/readyz`, `/metrics` and JSON error responses;
//! - [`logging`]: tracing subscriber setup (`text` or `json`).
#![forbid(unsafe_code)]

pub mod error;
pub mod expiry;
pub mod logging;
pub mod reload;
pub mod respond;
pub mod serve;
pub mod signal;
pub mod tls;

pub use error::Error;
pub use logging::{LogFormat, LogGuard, init_logging};
pub use reload::{FileWatcher, ReloadCounters};
pub use respond::{Body, json_error, json_response};
pub use serve::{Readiness, ServeConfig, serve};
pub use tls::{CertResolver, load_certified_key, server_config};
