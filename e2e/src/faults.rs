//! A fault-injecting TCP proxy for the fault tests: placed between a client under test (the
//! token service) and a real server (the NameNode's HTTP port, the KDC), it forwards bytes until
//! a test flips a switch.
//!
//! - [`Mode::Forward`]: a plain pipe.
//! - [`Mode::Refuse`]: the listening socket is closed, so connecting fails with "connection
//!   refused" exactly as when the server's process is gone; open connections are cut.
//! - [`Mode::Blackhole`]: connections are accepted and whatever is sent is swallowed, never
//!   answered (a hung server or a dropped route).
//! - [`Mode::HoldResponses`]: requests reach the server, its answers are kept back while the
//!   switch stays on. With a pattern, only connections whose client sent bytes containing it
//!   (e.g. `op=RENEWDELEGATIONTOKEN`) are held. This lands a kill of the client *inside* a call
//!   the server has already carried out.
//!
//! The proxy runs on its own thread with its own runtime, so it keeps serving while the test's
//! runtime is blocked in a synchronous helper; it stops when the [`Proxy`] is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Refuse,
    Blackhole,
    /// Hold the server's answers on connections whose requests contained the pattern (all
    /// connections when `None`).
    HoldResponses(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error("fault proxy: cannot listen on {addr}: {source}; is another process on that port?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("fault proxy: cannot start its runtime thread: {0}")]
    Runtime(#[source] std::io::Error),
}

/// What the proxy saw, for a test's conditions and failure messages.
#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicUsize,
    /// Connections whose answers are being held right now.
    holding: AtomicUsize,
    /// Server answers (read calls with data) held back since the proxy started.
    held_answers: AtomicUsize,
}

/// A running proxy from `addr` to `upstream`.
pub struct Proxy {
    pub addr: SocketAddr,
    pub upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    counters: Arc<Counters>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<Proxy, FaultError> {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(|source| FaultError::Bind {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| FaultError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| FaultError::Bind { addr, source })?;
        let (mode, mode_rx) = watch::channel(Mode::Forward);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let counters = Arc::new(Counters::default());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(FaultError::Runtime)?;
        let c = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name(format!("fault-proxy-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        _ = serve(listener, addr, upstream, mode_rx, c) => {}
                        _ = stop_rx => {}
                    }
                });
            })
            .map_err(FaultError::Runtime)?;
        Ok(Proxy {
            addr,
            upstream,
            mode,
            counters,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        self.mode.borrow().clone()
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Server answers held back so far (by [`Mode::HoldResponses`]).
    pub fn held_answers(&self) -> usize {
        self.counters.held_answers.load(Ordering::SeqCst)
    }

    /// Connections currently holding answers.
    pub fn holding(&self) -> usize {
        self.counters.holding.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts while the mode allows; in `Refuse` the listener is dropped and bound again (same
/// port) when the mode changes back.
async fn serve(
    first: std::net::TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
) {
    let mut listener = TcpListener::from_std(first).ok();
    loop {
        if *mode.borrow_and_update() == Mode::Refuse {
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // Coming back from Refuse: the port was ours a moment ago, retry briefly if the
            // kernel has not released it yet.
            match TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    eprintln!("fault proxy {addr}: rebinding failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        };
        tokio::select! {
            accepted = l.accept() => {
                let Ok((client, _)) = accepted else { continue };
                counters.accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(client, upstream, mode.clone(), Arc::clone(&counters)));
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One proxied connection: two pumps, each obeying the mode as it changes.
async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    counters: Arc<Counters>,
) {
    if *mode.borrow() == Mode::Blackhole {
        // Read and drop until the client gives up.
        let mut sink = [0u8; 4096];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    // Whether this connection's client sent the pattern of the current hold.
    let matched = Arc::new(Mutex::new(Vec::<u8>::new()));
    let seen = Arc::clone(&matched);
    let mut up_mode = mode.clone();
    let upward = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            {
                // Keep a bounded tail of what the client sent, for pattern matching.
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                s.extend_from_slice(&buf[..n]);
                let excess = s.len().saturating_sub(64 * 1024);
                s.drain(..excess);
            }
            if cut(&mut up_mode) {
                break;
            }
            if server_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_wr.shutdown().await;
    };
    let mut down_mode = mode;
    let downward = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            // Hold this answer while the mode says so for this connection.
            let mut counted = false;
            loop {
                let hold = match &*down_mode.borrow_and_update() {
                    Mode::HoldResponses(None) => true,
                    Mode::HoldResponses(Some(p)) => {
                        let s = matched.lock().unwrap_or_else(|p| p.into_inner());
                        contains(&s, p.as_bytes())
                    }
                    _ => false,
                };
                if !hold {
                    break;
                }
                if !counted {
                    counted = true;
                    counters.held_answers.fetch_add(1, Ordering::SeqCst);
                    counters.holding.fetch_add(1, Ordering::SeqCst);
                }
                if down_mode.changed().await.is_err() {
                    break;
                }
            }
            if counted {
                counters.holding.fetch_sub(1, Ordering::SeqCst);
            }
            if cut(&mut down_mode) {
                break;
            }
            if client_wr.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_wr.shutdown().await;
    };
    // Either side ending ends the connection (a held answer ends when its client dies).
    tokio::select! {
        _ = upward => {}
        _ = downward => {}
    }
}

/// Refuse and Blackhole cut connections that were open when the switch flipped.
fn cut(mode: &mut watch::Receiver<Mode>) -> bool {
    matches!(*mode.borrow(), Mode::Refuse | Mode::Blackhole)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server that prefixes its answers, standing in for the real upstream.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind echo");
        let addr = l.local_addr().expect("echo addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(addr: SocketAddr, msg: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(msg).await?;
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).await?;
        Ok(buf)
    }

    #[tokio::test]
    async fn forwards_refuses_and_forwards_again_on_the_same_port() {
        let proxy = Proxy::start(echo().await).expect("proxy");
        assert_eq!(
            round_trip(proxy.addr, b"one").await.expect("forward"),
            b"one"
        );
        proxy.set(Mode::Refuse);
        let mut refused = false;
        for _ in 0..100 {
            match TcpStream::connect(proxy.addr).await {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                // A connection queued while the listener was closing is reset, not refused.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("connecting in Refuse: {e}"),
                Ok(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "the port still accepts in Refuse");
        proxy.set(Mode::Forward);
        let mut back = None;
        for _ in 0..100 {
            if let Ok(v) = round_trip(proxy.addr, b"two").await {
                back = Some(v);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(back.as_deref(), Some(b"two".as_slice()));
    }

    #[tokio::test]
    async fn holds_answers_only_for_matching_requests_until_released() {
        let proxy = Proxy::start(echo().await).expect("proxy");
        proxy.set(Mode::HoldResponses(Some("RENEW".into())));
        assert_eq!(
            round_trip(proxy.addr, b"GET").await.expect("not held"),
            b"GET"
        );
        let held = tokio::spawn(round_trip(proxy.addr, b"RENEW"));
        for _ in 0..200 {
            if proxy.holding() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(proxy.holding(), 1, "the matching answer is held");
        assert!(!held.is_finished());
        proxy.set(Mode::Forward);
        assert_eq!(held.await.expect("join").expect("released"), b"RENEW");
        assert_eq!(proxy.held_answers(), 1);
    }
}
