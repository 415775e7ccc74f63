//! A loopback TCP balancer that behaves like a Kubernetes Service as kube-proxy implements it,
//! for the fault tests: new connections go round-robin to the backends that are ready (their
//! HTTPS `/readyz` answered 200 at the last probe) and not terminating (the EndpointSlice
//! marks a deleted pod terminating at once); an open connection stays with its backend; a
//! connection the chosen backend refuses is not retried elsewhere (iptables does not either),
//! it is closed and counted. It can also be cut: every open connection is dropped and new ones
//! are closed at once, as when a network path or the server behind it goes away.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often backends are probed (a readinessProbe with `periodSeconds` below one).
pub const PROBE_PERIOD: Duration = Duration::from_millis(250);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Backend {
    addr: SocketAddr,
    /// Last probe answered 200 (always true without probing).
    ready: AtomicBool,
    /// Taken out of rotation by the test (pod deleted): no new connections.
    terminating: AtomicBool,
    connections: AtomicU64,
}

/// What the balancer saw, for the test's report and assertions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub accepted: u64,
    /// Closed at once: no ready backend, the backend refused, or the balancer was cut.
    pub dropped: u64,
}

struct Shared {
    backends: Vec<Backend>,
    next: AtomicUsize,
    accepted: AtomicU64,
    dropped: AtomicU64,
    /// Bumped by [`Balancer::cut`]: connections opened before it end.
    generation: watch::Sender<u64>,
    cut: AtomicBool,
}

impl Shared {
    /// Round-robin over backends that are ready and not terminating.
    fn pick(&self) -> Option<(usize, SocketAddr)> {
        let n = self.backends.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n).map(|k| (start + k) % n).find_map(|i| {
            let b = &self.backends[i];
            let usable = b.ready.load(Ordering::SeqCst) && !b.terminating.load(Ordering::SeqCst);
            usable.then_some((i, b.addr))
        })
    }
}

/// A running balancer; its tasks end when it is dropped.
pub struct Balancer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Balancer {
    /// Listens on `listen` and forwards to `backends`. With `probe`, a backend gets connections
    /// only once its `/readyz` answers 200 over TLS with that client config; without, every
    /// backend counts as ready.
    pub async fn start(
        listen: SocketAddr,
        backends: &[SocketAddr],
        probe: Option<Arc<rustls::ClientConfig>>,
    ) -> std::io::Result<Balancer> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            backends: backends
                .iter()
                .map(|a| Backend {
                    addr: *a,
                    ready: AtomicBool::new(probe.is_none()),
                    terminating: AtomicBool::new(false),
                    connections: AtomicU64::new(0),
                })
                .collect(),
            next: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            generation: watch::channel(0).0,
            cut: AtomicBool::new(false),
        });
        let mut tasks = vec![tokio::spawn(accept_loop(listener, Arc::clone(&shared)))];
        if let Some(tls) = probe {
            tasks.push(tokio::spawn(probe_loop(Arc::clone(&shared), tls)));
        }
        Ok(Balancer {
            addr,
            shared,
            tasks,
        })
    }

    /// Takes backend `i` out of rotation (its pod is being deleted); open connections stay.
    pub fn terminating(&self, i: usize) {
        self.shared.backends[i]
            .terminating
            .store(true, Ordering::SeqCst);
    }

    /// Puts backend `i` back (a new pod on the same address); it gets connections once a probe
    /// finds it ready.
    pub fn replaced(&self, i: usize) {
        let b = &self.shared.backends[i];
        b.ready.store(false, Ordering::SeqCst);
        b.terminating.store(false, Ordering::SeqCst);
    }

    /// Whether backend `i` is in rotation.
    pub fn in_rotation(&self, i: usize) -> bool {
        let b = &self.shared.backends[i];
        b.ready.load(Ordering::SeqCst) && !b.terminating.load(Ordering::SeqCst)
    }

    /// Drops every open connection and closes new ones until [`Balancer::restore`].
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.shared.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    pub fn counts(&self) -> Counts {
        Counts {
            accepted: self.shared.accepted.load(Ordering::SeqCst),
            dropped: self.shared.dropped.load(Ordering::SeqCst),
        }
    }

    /// Connections each backend was given.
    pub fn per_backend(&self) -> Vec<u64> {
        self.shared
            .backends
            .iter()
            .map(|b| b.connections.load(Ordering::SeqCst))
            .collect()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.cut();
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if shared.cut.load(Ordering::SeqCst) {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                return;
            }
            let Some((i, to)) = shared.pick() else {
                shared.dropped.fetch_add(1, Ordering::SeqCst);
                return;
            };
            let mut generation = shared.generation.subscribe();
            let backend = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(to)).await
            {
                Ok(Ok(s)) => s,
                _ => {
                    shared.dropped.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            };
            shared.backends[i]
                .connections
                .fetch_add(1, Ordering::SeqCst);
            let (mut client, mut backend) = (client, backend);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut backend) => {}
                _ = generation.changed() => {}
            }
        });
    }
}

async fn probe_loop(shared: Arc<Shared>, tls: Arc<rustls::ClientConfig>) {
    loop {
        for b in &shared.backends {
            let ok = tokio::time::timeout(PROBE_TIMEOUT, readyz(b.addr, Arc::clone(&tls)))
                .await
                .unwrap_or(false);
            b.ready.store(ok, Ordering::SeqCst);
        }
        tokio::time::sleep(PROBE_PERIOD).await;
    }
}

/// `GET /readyz` over a fresh TLS connection, as a kubelet's httpGet probe does.
async fn readyz(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> bool {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
            .ok()?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/readyz")
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<Bytes>::new())
            .ok()?;
        let response = sender.send_request(req).await.ok()?;
        let ok = response.status() == hyper::StatusCode::OK;
        let _ = response.into_body().collect().await;
        Some(ok)
    };
    attempt.await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A backend that answers every connection with `tag` and closes.
    async fn tagged(tag: &'static [u8]) -> std::io::Result<SocketAddr> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(tag).await;
            }
        });
        Ok(addr)
    }

    async fn read_via(b: &Balancer) -> Vec<u8> {
        let mut out = Vec::new();
        if let Ok(mut s) = TcpStream::connect(b.addr).await {
            let _ = s.read_to_end(&mut out).await;
        }
        out
    }

    #[tokio::test]
    async fn rotates_skips_terminating_backends_and_cuts() -> std::io::Result<()> {
        let (a, c) = (tagged(b"a").await?, tagged(b"c").await?);
        let any: SocketAddr = "127.0.0.1:0".parse().map_err(std::io::Error::other)?;
        let b = Balancer::start(any, &[a, c], None).await?;
        let mut seen = vec![read_via(&b).await, read_via(&b).await];
        seen.sort();
        assert_eq!(seen, vec![b"a".to_vec(), b"c".to_vec()]);
        b.terminating(0);
        for _ in 0..3 {
            assert_eq!(read_via(&b).await, b"c");
        }
        b.cut();
        assert_eq!(read_via(&b).await, b"", "closed while cut");
        b.restore();
        assert_eq!(read_via(&b).await, b"c");
        assert_eq!(b.counts().dropped, 1);
        Ok(())
    }
}
