//! The servers of one HA group (NameNodes, ResourceManagers, metastores): tried in order, the one
//! that answered last first, moving on only past servers that are down or standing by.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::error::HadoopError;
use super::http::Endpoint;

/// A server of an HA group, as logs name it.
pub trait Server {
    fn label(&self) -> &str;
}

impl Server for Endpoint {
    fn label(&self) -> &str {
        Endpoint::label(self)
    }
}

pub struct Failover<S = Endpoint> {
    endpoints: Vec<S>,
    active: AtomicUsize,
}

impl Failover<Endpoint> {
    /// `what` names the group in the error for an empty list (`nameservice ns1: no NameNode`).
    pub fn new<'a>(
        urls: impl IntoIterator<Item = &'a str>,
        what: impl FnOnce() -> String,
    ) -> Result<Failover, HadoopError> {
        let endpoints = urls
            .into_iter()
            .map(Endpoint::parse)
            .collect::<Result<Vec<_>, _>>()?;
        Failover::of(endpoints, what)
    }
}

impl<S: Server> Failover<S> {
    /// A group of already parsed servers; `what` as for [`Failover::new`].
    pub fn of(
        endpoints: Vec<S>,
        what: impl FnOnce() -> String,
    ) -> Result<Failover<S>, HadoopError> {
        if endpoints.is_empty() {
            return Err(HadoopError::Config(what()));
        }
        Ok(Failover {
            endpoints,
            active: AtomicUsize::new(0),
        })
    }

    /// Runs `call` on each server in turn until one answers or fails in a way `next` does not
    /// accept. When every server was passed over, a single server's own error is returned (it
    /// says more than a wrapper), else `exhausted` of all of them.
    pub async fn run<'s, T, F, Fut>(
        &'s self,
        mut call: F,
        next: impl Fn(&HadoopError) -> bool,
        exhausted: impl FnOnce(Vec<HadoopError>) -> HadoopError,
    ) -> Result<T, HadoopError>
    where
        F: FnMut(&'s S) -> Fut,
        Fut: Future<Output = Result<T, HadoopError>>,
    {
        let n = self.endpoints.len();
        let first = self.active.load(Ordering::Relaxed) % n;
        let mut attempts = Vec::new();
        for i in (0..n).map(|k| (first + k) % n) {
            match call(&self.endpoints[i]).await {
                Ok(answer) => {
                    self.active.store(i, Ordering::Relaxed);
                    return Ok(answer);
                }
                Err(e) if next(&e) => {
                    tracing::debug!(server = self.endpoints[i].label(), error = %e, "trying the next server of the group");
                    attempts.push(e);
                }
                Err(e) => return Err(e),
            }
        }
        if n == 1
            && let Some(e) = attempts.pop()
        {
            return Err(e);
        }
        Err(exhausted(attempts))
    }
}
