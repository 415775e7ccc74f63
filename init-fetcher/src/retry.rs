//! When to try again: exponential backoff with full jitter, `Retry-After`, and when to refresh.
//!
//! Pure functions of their inputs (the random part is passed in), so the schedule is tested
//! without clocks.
use std::time::Duration;

use time::OffsetDateTime;

/// Exponential backoff: attempt `n` (0-based) waits a uniformly random time in
/// `[0, min(max, base * 2^n)]` ("full jitter"), so pods started together by one Deployment do
/// not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The longest wait after failed attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait after failed attempt `attempt`; `unit` is a random number in `[0, 1]`.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        self.ceiling(attempt).mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before the next attempt: the server's `Retry-After` when it gave one (it knows
    /// its own load better than we do), else the jittered backoff; never past `remaining`.
    pub fn next_wait(
        &self,
        attempt: u32,
        unit: f64,
        retry_after: Option<Duration>,
        remaining: Duration,
    ) -> Duration {
        retry_after
            .unwrap_or_else(|| self.delay(attempt, unit))
            .min(remaining)
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 §10.2.3). Unreadable values are
/// ignored (`None`), a date in the past is zero.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

/// When a refreshing sidecar fetches again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshSchedule {
    /// Never sooner than this after a successful fetch (protects the service).
    pub min: Duration,
    /// Never later: picks up tokens the service re-issued before the old ones expired.
    pub max: Duration,
}

impl RefreshSchedule {
    /// 80 % of the time left before the earliest expiry, within `[min, max]`; `max` when the
    /// service gave no expiry.
    pub fn next(&self, now: OffsetDateTime, expires: Option<OffsetDateTime>) -> Duration {
        let Some(expires) = expires else {
            return self.max;
        };
        let left = Duration::try_from(expires - now).unwrap_or(Duration::ZERO);
        left.mul_f64(0.8).clamp(self.min, self.max.max(self.min))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn backoff() -> Backoff {
        Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let b = backoff();
        let ms: Vec<u128> = (0..8).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let b = backoff();
        assert_eq!(b.delay(3, 0.0), Duration::ZERO);
        assert_eq!(b.delay(3, 1.0), Duration::from_millis(800));
        assert_eq!(b.delay(3, 0.5), Duration::from_millis(400));
        // Out-of-range randomness is clamped rather than trusted.
        assert_eq!(b.delay(3, 7.0), Duration::from_millis(800));
        assert_eq!(b.delay(3, -1.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_wins_and_nothing_waits_past_the_deadline() {
        let b = backoff();
        let long = Duration::from_secs(60);
        assert_eq!(
            b.next_wait(0, 1.0, Some(Duration::from_secs(3)), long),
            Duration::from_secs(3)
        );
        assert_eq!(b.next_wait(2, 1.0, None, long), Duration::from_millis(400));
        assert_eq!(
            b.next_wait(
                9,
                1.0,
                Some(Duration::from_secs(30)),
                Duration::from_secs(2)
            ),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn retry_after_values() {
        let now = datetime!(2026-11-25 12:00:00 UTC);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }

    #[test]
    fn refresh_at_80_percent_within_bounds() {
        let s = RefreshSchedule {
            min: Duration::from_secs(30),
            max: Duration::from_secs(3600),
        };
        let now = datetime!(2026-11-25 12:00:00 UTC);
        assert_eq!(
            s.next(now, Some(datetime!(2026-11-25 12:50:00 UTC))),
            Duration::from_secs(2400)
        );
        assert_eq!(
            s.next(now, Some(datetime!(2026-11-26 12:00:00 UTC))),
            Duration::from_secs(3600)
        );
        assert_eq!(
            s.next(now, Some(datetime!(2026-11-25 12:00:10 UTC))),
            Duration::from_secs(30)
        );
        assert_eq!(
            s.next(now, Some(datetime!(2026-11-25 11:00:00 UTC))),
            Duration::from_secs(30)
        );
        assert_eq!(s.next(now, None), Duration::from_secs(3600));
    }
}
