//! Time as the service reads it: milliseconds since the epoch behind a function, so tests of
//! expiry, renewal and backoff run on a made-up clock.

use std::sync::Arc;

pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}
