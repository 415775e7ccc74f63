//! The server loop: accept, TLS handshake, HTTP/1.1 + HTTP/2, capped bodies, graceful stop.
//!
//! Handlers see a `Request<Bytes>`: the body is read here, under a size cap and a time limit,
//! so no handler can forget either. A panicking handler becomes a 500, not a dead connection.
use crate::respond::{Body, json_error};
use bytes::Bytes;
use futures::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Limits of the serving loop. `Default` suits an admission webhook.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
    /// A client that has not finished the TLS handshake by then is dropped.
    pub handshake_timeout: Duration,
    /// HTTP/1 request headers must arrive within this time.
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this time, else 408.
    pub body_read_timeout: Duration,
    /// After a shutdown signal, open connections get this long to finish.
    pub shutdown_grace: Duration,
    /// Between the shutdown signal and closing the listener: `/readyz` already fails, new
    /// connections are still served, so that load balancers that have not yet dropped this
    /// replica (endpoint propagation) do not meet a closed port. Zero where a preStop hook
    /// already waits.
    pub shutdown_delay: Duration,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_body_bytes: 8 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(20),
            shutdown_delay: Duration::ZERO,
            max_connections: 1024,
        }
    }
}

/// Whether `/readyz` says ready: set when accepting starts, cleared when shutdown begins.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Serves until `shutdown` resolves, then stops accepting, asks every open connection to
/// finish (HTTP/2 GOAWAY, HTTP/1 close after the current response) and waits at most
/// `shutdown_grace` for them.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    config: ServeConfig,
    readiness: Readiness,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Bytes>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = TlsAcceptor::from(tls);
    let handler = Arc::new(handler);
    let config = Arc::new(config);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);

    readiness.set(true);
    let (delay, unready) = (config.shutdown_delay, readiness.clone());
    let shutdown = async move {
        shutdown.await;
        if !delay.is_zero() {
            unready.set(false);
            tracing::info!(
                delay_s = delay.as_secs_f64(),
                "not ready; still accepting until load balancers have dropped this replica"
            );
            tokio::time::sleep(delay).await;
        }
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed; stop rather than spin
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Subscribe before the task starts so a shutdown racing this connection still reaches it.
        let watcher = graceful.watcher();
        let (acceptor, handler, config, builder) = (
            acceptor.clone(),
            handler.clone(),
            config.clone(),
            builder.clone(),
        );
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(config.handshake_timeout, acceptor.accept(stream))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (handler, config) = (handler.clone(), config.clone());
                async move { Ok::<_, Infallible>(handle(req, peer, &config, &*handler).await) }
            });
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    readiness.set(false);
    drop(listener);
    tracing::info!(
        open = graceful.count(),
        grace_s = config.shutdown_grace.as_secs_f64(),
        "stopped accepting; draining open connections"
    );
    if tokio::time::timeout(config.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period over; closing the remaining connections");
    }
}

async fn handle<H, F>(
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
    config: &ServeConfig,
    handler: &H,
) -> Response<Body>
where
    H: Fn(Request<Bytes>) -> F,
    F: Future<Output = Response<Body>>,
{
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let max = config.max_body_bytes;
    // Far too large: answer at once and let the connection close.
    if declared.is_some_and(|n| n > 2 * max as u64) {
        return too_large(config);
    }
    let read = tokio::time::timeout(config.body_read_timeout, read_capped(body, max)).await;
    let bytes = match read {
        Ok(Ok(Some(bytes))) => bytes,
        Ok(Ok(None)) => return too_large(config),
        Ok(Err(e)) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            );
        }
        Err(_) => {
            return json_error(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive in time",
            );
        }
    };
    let mut request = Request::from_parts(parts, bytes);
    // Handlers that identify callers by address (token-service) read it from here.
    request.extensions_mut().insert(peer);
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    match AssertUnwindSafe(async { handler(request).await })
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            tracing::error!(%method, %path, "handler panicked; answered 500");
            json_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Reads at most `max` bytes. A larger body is read on and discarded up to `max` more bytes
/// (`Ok(None)`), so an HTTP/1 client that is still sending sees our 413 instead of a reset;
/// past that the connection is dropped.
async fn read_capped(mut body: Incoming, max: usize) -> Result<Option<Bytes>, hyper::Error> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        seen = seen.saturating_add(data.len());
        if seen <= max {
            buf.extend_from_slice(&data);
        } else if seen > 2 * max {
            return Ok(None);
        }
    }
    Ok((seen <= max).then(|| buf.freeze()))
}

fn too_large(config: &ServeConfig) -> Response<Body> {
    json_error(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than the limit of {} bytes",
            config.max_body_bytes
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{CertResolver, certified_key_from_pem, server_config, tests::self_signed};
    use arc_swap::ArcSwap;
    use http_body_util::Full;
    use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on a free loopback port whose handler echoes the body length.
    async fn start(
        max: usize,
    ) -> (
        std::net::SocketAddr,
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let config = ServeConfig {
            max_body_bytes: max,
            ..ServeConfig::default()
        };
        let (addr, cert, tx, task, _) = start_with(config).await;
        (addr, cert, tx, task)
    }

    async fn start_with(
        config: ServeConfig,
    ) -> (
        std::net::SocketAddr,
        String,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
        Readiness,
    ) {
        let (cert, key) = self_signed("localhost");
        let ck =
            certified_key_from_pem(cert.as_bytes(), key.as_bytes(), "c".as_ref(), "k".as_ref())
                .unwrap();
        let tls = server_config(CertResolver::new(Arc::new(ArcSwap::from_pointee(ck)))).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let readiness = Readiness::default();
        let task = tokio::spawn(serve(
            listener,
            tls,
            config,
            readiness.clone(),
            |req: Request<Bytes>| async move {
                if req.uri().path() == "/panic" {
                    panic!("test panic");
                }
                Response::new(Full::new(Bytes::from(format!("len={}", req.body().len()))))
            },
            async {
                let _ = rx.await;
            },
        ));
        (addr, cert, tx, task, readiness)
    }

    /// One HTTP/1.1 request over TLS with a raw body; returns the status line and body.
    async fn request(
        addr: std::net::SocketAddr,
        ca_pem: &str,
        path: &str,
        body: &[u8],
        declare_len: bool,
    ) -> String {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap();
        let head = if declare_len {
            format!(
                "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
        } else {
            format!(
                "POST {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
                body.len()
            )
        };
        tls.write_all(head.as_bytes()).await.unwrap();
        // The server may answer 413 and close before reading everything; ignore write errors.
        let _ = tls.write_all(body).await;
        if !declare_len {
            let _ = tls.write_all(b"\r\n0\r\n\r\n").await;
        }
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn body_cap_gives_413_and_server_keeps_serving() {
        let (addr, ca, stop, task) = start(1024).await;
        let ok = request(addr, &ca, "/x", &[b'a'; 1024], true).await;
        assert!(
            ok.starts_with("HTTP/1.1 200") && ok.ends_with("len=1024"),
            "{ok}"
        );
        let declared = request(addr, &ca, "/x", &[b'a'; 1025], true).await;
        assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
        assert!(declared.contains("limit of 1024 bytes"), "{declared}");
        let chunked = request(addr, &ca, "/x", &[b'a'; 4096], false).await;
        assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
        let panicked = request(addr, &ca, "/panic", b"", true).await;
        assert!(panicked.starts_with("HTTP/1.1 500"), "{panicked}");
        let again = request(addr, &ca, "/x", b"abc", true).await;
        assert!(again.ends_with("len=3"), "{again}");
        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("serve returns after shutdown")
            .unwrap();
    }

    #[tokio::test]
    async fn a_shutdown_delay_turns_unready_first_and_keeps_serving_new_connections() {
        let (addr, ca, stop, task, readiness) = start_with(ServeConfig {
            // Long enough for one request on a loaded machine; the test never waits it out
            // except at the end.
            shutdown_delay: Duration::from_secs(5),
            ..ServeConfig::default()
        })
        .await;
        while !readiness.is_ready() {
            tokio::task::yield_now().await;
        }
        stop.send(()).unwrap();
        while readiness.is_ready() {
            tokio::task::yield_now().await;
        }
        let during = request(addr, &ca, "/x", b"abcd", true).await;
        assert!(during.ends_with("len=4"), "served while unready: {during}");
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("serve returns after the delay")
            .unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "the listener is closed after the delay"
        );
    }
}
