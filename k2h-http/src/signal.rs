//! SIGTERM (Kubernetes stopping the pod) and SIGINT (Ctrl-C) both start a graceful shutdown.
use crate::error::Error;
use std::future::Future;

/// Installs the handlers now, so a bad environment fails at start, and returns a future
/// that resolves with the signal's name when one arrives. Needs a running tokio runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = &'static str>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|source| Error::Signal {
        signal: "SIGTERM",
        source,
    })?;
    let mut int = signal(SignalKind::interrupt()).map_err(|source| Error::Signal {
        signal: "SIGINT",
        source,
    })?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}
