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

/// Milliseconds on the monotonic clock since the first call in this process: for durations
/// (TTLs) that a wall clock stepped back must not stretch.
pub fn monotonic_clock() -> Clock {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    Arc::new(move || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX))
}
