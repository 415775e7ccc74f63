//! The API server's signing keys as last read, and the loop that keeps them current.
//!
//! A key removed at the API server (a rotation that retires it) must stop vouching for tokens
//! here too: the keys are read again every `refresh`; an answer with no usable key empties the
//! set at once; a read that gets no answer is retried every [`MIN_INTERVAL`], and a set not
//! confirmed for `refresh` + [`STALE_GRACE`] is not used at all (every token is then reviewed
//! by the API server). A token with a key id the set does not hold asks for an early read, at
//! most one per [`MIN_INTERVAL`].

use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::Notify;

use crate::clock::{Clock, monotonic_clock};
use crate::signed_token::KeySet;

/// The default period between reads of the key set.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Longer than this, a retired key would vouch for too long; refused in the configuration.
pub const MAX_REFRESH: Duration = Duration::from_secs(300);
/// Reads are never closer together than this, whatever unknown key ids arrive.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How long past a missed read a set is still used (reads are retried meanwhile).
pub const STALE_GRACE: Duration = Duration::from_secs(60);

/// Why a read of the keys failed, as the refresh loop needs to know it.
pub trait FetchFailure: std::fmt::Display + Send + 'static {
    /// The API server answered, with nothing usable (no discovery, no usable key, refused):
    /// the keys held so far must not vouch any more. Otherwise (no answer) they may, until
    /// stale.
    fn answered(&self) -> bool;
}

#[derive(Default)]
struct State {
    set: Option<Arc<KeySet>>,
    /// When `set` was last read successfully, on the monotonic clock.
    confirmed_ms: u64,
}

/// Shared by the request path (reads) and the refresh loop (writes); cheap to clone.
#[derive(Clone)]
pub struct TokenKeys {
    state: Arc<RwLock<State>>,
    wake: Arc<Notify>,
    refresh: Duration,
    monotonic: Clock,
}

impl TokenKeys {
    /// `refresh` zero: no local verification, every token goes to a TokenReview.
    pub fn new(refresh: Duration) -> TokenKeys {
        TokenKeys {
            state: Arc::default(),
            wake: Arc::default(),
            refresh,
            monotonic: monotonic_clock(),
        }
    }

    pub fn disabled() -> TokenKeys {
        TokenKeys::new(Duration::ZERO)
    }

    /// The same holder on another monotonic clock (tests).
    pub fn with_monotonic(mut self, monotonic: Clock) -> TokenKeys {
        self.monotonic = monotonic;
        self
    }

    pub fn is_enabled(&self) -> bool {
        !self.refresh.is_zero()
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        match self.state.read() {
            Ok(g) => f(&g),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// The key set, if one was confirmed recently enough to vouch for tokens.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        if !self.is_enabled() {
            return None;
        }
        let max_age = u64::try_from((self.refresh + STALE_GRACE).as_millis()).unwrap_or(u64::MAX);
        let now = (self.monotonic)();
        self.read(|s| {
            s.set
                .clone()
                .filter(|_| now.saturating_sub(s.confirmed_ms) <= max_age)
        })
    }

    pub fn install(&self, set: KeySet) {
        let now = (self.monotonic)();
        self.write(|state| {
            state.set = Some(Arc::new(set));
            state.confirmed_ms = now;
        });
    }

    /// No keys vouch any more (the API server answered with none usable).
    pub fn clear(&self) {
        self.write(|state| state.set = None);
    }

    fn write(&self, f: impl FnOnce(&mut State)) {
        match self.state.write() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// A token named a key id the set does not hold: read the keys again soon.
    pub fn ask_refresh(&self) {
        self.wake.notify_one();
    }

    /// Reads the keys now and then every `refresh` (sooner when asked, or after a failed
    /// read), for as long as the process runs. `fetch` reads them once; `report` hears each
    /// outcome (logs, metrics).
    pub fn spawn<E: FetchFailure>(
        &self,
        fetch: impl Fn() -> BoxFuture<'static, Result<KeySet, E>> + Send + 'static,
        mut report: impl FnMut(Result<&KeySet, &E>) + Send + 'static,
    ) {
        if !self.is_enabled() {
            return;
        }
        let keys = self.clone();
        tokio::spawn(async move {
            loop {
                let read = match fetch().await {
                    Ok(set) => {
                        report(Ok(&set));
                        keys.install(set);
                        true
                    }
                    Err(e) => {
                        if e.answered() {
                            keys.clear();
                        }
                        report(Err(&e));
                        false
                    }
                };
                tokio::time::sleep(MIN_INTERVAL).await;
                // A failed read is retried after MIN_INTERVAL; a good one waits out the period,
                // or less when a token names a key id the set does not hold.
                if read {
                    let rest = keys.refresh.saturating_sub(MIN_INTERVAL);
                    tokio::select! {
                        () = tokio::time::sleep(rest) => {}
                        () = keys.wake.notified() => {}
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn key_set() -> KeySet {
        let discovery = br#"{"issuer":"https://kubernetes.default.svc"}"#;
        let jwks = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k1","use":"sig",
            "x":"WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis",
            "y":"y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE"}]}"#;
        KeySet::parse(discovery, jwks).expect("a key set")
    }

    #[test]
    fn a_set_serves_for_a_period_and_a_grace_after_its_last_confirmation() {
        let now = Arc::new(AtomicU64::new(1_000));
        let clock = now.clone();
        let keys = TokenKeys::new(Duration::from_secs(60))
            .with_monotonic(Arc::new(move || clock.load(Ordering::SeqCst)));
        assert!(keys.current().is_none(), "nothing read yet");
        keys.install(key_set());
        assert!(keys.current().is_some());
        now.store(1_000 + 120_000, Ordering::SeqCst);
        assert!(keys.current().is_some(), "a period and the grace");
        now.store(1_000 + 120_001, Ordering::SeqCst);
        assert!(keys.current().is_none(), "unconfirmed past them");
        keys.install(key_set());
        assert!(keys.current().is_some(), "confirmed again");
        keys.clear();
        assert!(keys.current().is_none(), "an answer with no usable key");
    }

    #[test]
    fn a_zero_period_turns_local_verification_off() {
        let keys = TokenKeys::disabled();
        keys.install(key_set());
        assert!(!keys.is_enabled());
        assert!(keys.current().is_none());
    }
}
