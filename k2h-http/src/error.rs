//! Errors of the serving shell. Messages name the file or address and what to check.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} file {path}: {source}")]
    ReadFile {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate file {path} holds no usable PEM certificate: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "TLS key file {path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1 expected): {reason}"
    )]
    BadKey { path: PathBuf, reason: String },
    #[error("TLS certificate {cert} and key {key} do not form a usable pair: {source}")]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build the TLS server configuration: {0}")]
    TlsConfig(#[source] rustls::Error),
    #[error("cannot use file {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("cannot listen on {addr}: {source} (is the port in use or privileged?)")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up logging: {0}")]
    Logging(String),
}
