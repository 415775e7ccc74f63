//! Per-caller token buckets: a pod (or an address, before it is identified) may ask `burst`
//! times at once and `per_minute` times a minute after that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Idle buckets are full again after this; forgetting them bounds memory.
const FORGET_AFTER: Duration = Duration::from_secs(600);
const SWEEP_EVERY: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct RateLimiter {
    limit: Limit,
    buckets: Mutex<(HashMap<String, Bucket>, usize)>,
}

impl RateLimiter {
    pub fn new(limit: Limit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// Takes one request from `key`'s bucket, or says how long until one is available.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now, true)
    }

    /// Whether `key` has a request left, without taking it.
    pub fn peek(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.bucket(key, now, false)
    }

    fn bucket(&self, key: &str, now: Instant, take: bool) -> Result<(), Duration> {
        let rate = f64::from(self.limit.per_minute) / 60.0;
        let burst = f64::from(self.limit.burst.max(1));
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let (buckets, calls) = &mut *guard;
        *calls += 1;
        if *calls % SWEEP_EVERY == 0 {
            buckets.retain(|_, b| now.saturating_duration_since(b.at) < FORGET_AFTER);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            return Ok(());
        }
        if rate <= 0.0 {
            return Err(FORGET_AFTER);
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peek_does_not_take() {
        let limiter = RateLimiter::new(Limit {
            per_minute: 6,
            burst: 1,
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(limiter.peek("addr", t0).is_ok());
        }
        assert!(limiter.check("addr", t0).is_ok());
        assert_eq!(limiter.peek("addr", t0), Err(Duration::from_secs(10)));
    }

    #[test]
    fn a_burst_then_the_steady_rate() {
        let limiter = RateLimiter::new(Limit {
            per_minute: 6,
            burst: 2,
        });
        let t0 = Instant::now();
        assert!(limiter.check("pod-a", t0).is_ok());
        assert!(limiter.check("pod-a", t0).is_ok());
        let wait = limiter.check("pod-a", t0).expect_err("burst spent");
        assert_eq!(wait, Duration::from_secs(10));
        assert!(limiter.check("pod-b", t0).is_ok(), "buckets are per key");
        assert!(limiter.check("pod-a", t0 + Duration::from_secs(10)).is_ok());
        assert!(
            limiter
                .check("pod-a", t0 + Duration::from_secs(11))
                .is_err()
        );
    }

    #[test]
    fn an_idle_bucket_refills_only_to_the_burst() {
        let limiter = RateLimiter::new(Limit {
            per_minute: 60,
            burst: 1,
        });
        let t0 = Instant::now();
        assert!(limiter.check("k", t0).is_ok());
        let later = t0 + Duration::from_secs(3600);
        assert!(limiter.check("k", later).is_ok());
        assert!(limiter.check("k", later).is_err());
    }
}
