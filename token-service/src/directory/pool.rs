//! A few established connections shared by all requests. An LDAP connection multiplexes
//! operations (each request clones the handle), so a slot is shared, not lent out: the bound
//! is on connections, not on requests in flight.
//!
//! A connection that failed is never handed out again; the next request on its slot opens a
//! new one. Requests that queued behind a connection attempt that failed get its error rather
//! than each trying again in turn, so a dead or hung server costs a request one connect
//! timeout, as it did without a pool.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::DirectoryError;

/// The default number of connections: see `Pool::new`.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// A shared connection as the pool sees it.
pub trait Connection: Clone + Send + Sync + 'static {
    /// Whether it can take operations: not retired, and its driver still runs.
    fn usable(&mut self) -> bool;
    /// Marks it as no longer the pool's: its end is then expected, not a lost connection,
    /// and no request gets it again.
    fn retire(&self);
}

/// Opens and binds one connection.
pub type Connect<C> = Box<dyn Fn() -> BoxFuture<'static, Result<C, DirectoryError>> + Send + Sync>;

struct Slot<C> {
    conn: Option<C>,
    /// When the last connection attempt failed, and how.
    failed: Option<(Instant, DirectoryError)>,
}

pub struct Pool<C> {
    slots: Vec<Mutex<Slot<C>>>,
    next: AtomicUsize,
    connect: Connect<C>,
}

impl<C: Connection> Pool<C> {
    /// `size` connections at most (at least one). A few are enough: every request is a couple
    /// of small indexed searches, one connection carries them concurrently, and more only
    /// spread the load over the server's threads and limit what one lost connection fails.
    pub fn new(size: usize, connect: Connect<C>) -> Pool<C> {
        Pool {
            slots: (0..size.max(1))
                .map(|_| {
                    Mutex::new(Slot {
                        conn: None,
                        failed: None,
                    })
                })
                .collect(),
            next: AtomicUsize::new(0),
            connect,
        }
    }

    /// A usable connection from the next slot in turn, opened now if the slot has none.
    pub async fn get(&self) -> Result<C, DirectoryError> {
        let asked = Instant::now();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        // Held while connecting, so a slot never opens two connections at once. (`new` makes
        // at least one slot, and the index is taken modulo their number.)
        let mut slot = self.slots[index].lock().await;
        if let Some(conn) = slot.conn.as_mut() {
            if conn.usable() {
                return Ok(conn.clone());
            }
            conn.retire();
            slot.conn = None;
        }
        if let Some((at, e)) = &slot.failed
            && *at > asked
        {
            return Err(e.clone());
        }
        match (self.connect)().await {
            Ok(conn) => {
                slot.conn = Some(conn.clone());
                slot.failed = None;
                Ok(conn)
            }
            Err(e) => {
                slot.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Never hands out `conn` again: an operation on it failed. Its slot reconnects at its
    /// next use; requests still running on it finish or fail by themselves.
    pub fn discard(&self, conn: &C) {
        conn.retire();
    }

    /// Connections held now (tests; the open-connection gauge counts them in production).
    pub fn held(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.try_lock().is_ok_and(|s| s.conn.is_some()))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    use super::*;

    #[derive(Clone)]
    struct Fake {
        id: usize,
        retired: Arc<AtomicBool>,
        closed: Arc<AtomicBool>,
    }

    impl Connection for Fake {
        fn usable(&mut self) -> bool {
            !self.retired.load(Ordering::SeqCst) && !self.closed.load(Ordering::SeqCst)
        }
        fn retire(&self) {
            self.retired.store(true, Ordering::SeqCst);
        }
    }

    /// A server that takes `delay` to accept a connection, refuses them while `down`, and
    /// counts the attempts.
    #[derive(Clone, Default)]
    struct Server {
        attempts: Arc<AtomicUsize>,
        down: Arc<AtomicBool>,
        delay: Duration,
    }

    impl Server {
        fn pool(&self, size: usize) -> Pool<Fake> {
            let server = self.clone();
            Pool::new(
                size,
                Box::new(move || {
                    let server = server.clone();
                    Box::pin(async move {
                        let id = server.attempts.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(server.delay).await;
                        if server.down.load(Ordering::SeqCst) {
                            return Err(DirectoryError::Unavailable {
                                url: "ldap://x".into(),
                                detail: format!("attempt {id} refused"),
                            });
                        }
                        Ok(Fake {
                            id,
                            retired: Arc::default(),
                            closed: Arc::default(),
                        })
                    })
                }),
            )
        }

        fn attempts(&self) -> usize {
            self.attempts.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn connections_are_reused_and_bounded() {
        let server = Server::default();
        let pool = server.pool(2);
        let mut ids = Vec::new();
        for _ in 0..10 {
            ids.push(pool.get().await.expect("up").id);
        }
        assert_eq!(server.attempts(), 2);
        assert_eq!(ids, [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
        assert_eq!(pool.held(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_connect_per_slot() {
        let server = Server {
            delay: Duration::from_secs(1),
            ..Server::default()
        };
        let pool = server.pool(2);
        let got = futures::future::join_all((0..20).map(|_| pool.get())).await;
        assert!(got.iter().all(Result::is_ok));
        assert_eq!(server.attempts(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_discarded_or_closed_connection_is_replaced() {
        let server = Server::default();
        let pool = server.pool(1);
        let first = pool.get().await.expect("up");
        pool.discard(&first);
        let second = pool.get().await.expect("reconnected");
        assert_eq!((first.id, second.id), (0, 1));
        second.closed.store(true, Ordering::SeqCst);
        let third = pool.get().await.expect("reconnected again");
        assert_eq!(third.id, 2);
        assert!(
            second.retired.load(Ordering::SeqCst),
            "a connection found closed is retired, so its end does not count as lost"
        );
        assert_eq!(pool.get().await.expect("kept").id, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_share_a_failed_connect_then_the_next_request_retries() {
        let server = Server {
            delay: Duration::from_secs(5),
            ..Server::default()
        };
        server.down.store(true, Ordering::SeqCst);
        let pool = server.pool(1);
        let started = Instant::now();
        let got = futures::future::join_all((0..5).map(|_| pool.get())).await;
        assert!(got.iter().all(Result::is_err));
        assert_eq!(server.attempts(), 1, "one attempt for all who waited on it");
        assert_eq!(started.elapsed(), Duration::from_secs(5), "not 5 × 5 s");
        server.down.store(false, Ordering::SeqCst);
        assert!(pool.get().await.is_ok(), "a later request tries again");
        assert_eq!(server.attempts(), 2);
    }
}
