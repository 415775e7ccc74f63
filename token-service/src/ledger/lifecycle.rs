//! What to do with one ledger entry now: pure functions over plain numbers, so every rule is a
//! unit test with a made-up clock.
//!
//! Rules (those of YARN's DelegationTokenRenewer and Spark's token manager): renew when 90 % of the current window has
//! passed; when a renewal could no longer buy a full window before the max date, obtain a fresh
//! set instead; a set that expired unrenewed is re-issued while the workload runs (never
//! silently dropped); a workload that is gone has its tokens cancelled.

use std::time::Duration;

/// Whether the workload still needs tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// The pod index has not finished its first list: judge nothing.
    Unknown,
}

/// The facts one decision needs (ms since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub now_ms: u64,
    pub window_start_ms: u64,
    pub expires_at_ms: u64,
    pub max_date_ms: Option<u64>,
    pub next_attempt_ms: Option<u64>,
    pub liveness: Liveness,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do before this time.
    WaitUntil(u64),
    Renew,
    Reissue,
    Cancel,
}

/// The share of the window after which a set is renewed (YARN's 90 %).
const RENEW_AT_PERMILLE: u64 = 900;

pub fn renew_at(window_start_ms: u64, expires_at_ms: u64) -> u64 {
    let window = expires_at_ms.saturating_sub(window_start_ms);
    window_start_ms.saturating_add(window.saturating_mul(RENEW_AT_PERMILLE) / 1000)
}

pub fn decide(f: &Facts) -> Action {
    match f.liveness {
        Liveness::Gone => return retry_or(f, Action::Cancel),
        Liveness::Unknown => return Action::WaitUntil(f.now_ms.saturating_add(1_000)),
        Liveness::Alive => {}
    }
    let window = f.expires_at_ms.saturating_sub(f.window_start_ms);
    let renewal_falls_short = f
        .max_date_ms
        .is_some_and(|max| max.saturating_sub(f.now_ms) < window);
    if f.now_ms >= f.expires_at_ms {
        // Expired by our record, but the server decides: a process killed with a renewal in
        // flight leaves the set renewed at the server and not in the record, and re-issuing
        // would cancel the file the pods hold. So renew; a renewal that fails re-issues at once
        // (reconcile).
        return retry_or(
            f,
            if renewal_falls_short {
                Action::Reissue
            } else {
                Action::Renew
            },
        );
    }
    let due = renew_at(f.window_start_ms, f.expires_at_ms);
    if f.now_ms < due {
        return Action::WaitUntil(due);
    }
    retry_or(
        f,
        if renewal_falls_short {
            Action::Reissue
        } else {
            Action::Renew
        },
    )
}

/// After a failure the action waits for its backoff, except that a set about to expire is not
/// left to die waiting.
fn retry_or(f: &Facts, action: Action) -> Action {
    match f.next_attempt_ms {
        Some(at) if at > f.now_ms && (action == Action::Cancel || at < f.expires_at_ms) => {
            Action::WaitUntil(at)
        }
        _ => action,
    }
}

/// Exponential backoff after `failures` consecutive failures: base·2ⁿ⁻¹, capped.
pub fn backoff(failures: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e2e bed's numbers: renew interval 20 s, max lifetime 60 s, issued at 0.
    fn facts(now_ms: u64, window_start_ms: u64, expires_at_ms: u64) -> Facts {
        Facts {
            now_ms,
            window_start_ms,
            expires_at_ms,
            max_date_ms: Some(60_000),
            next_attempt_ms: None,
            liveness: Liveness::Alive,
        }
    }

    #[test]
    fn renews_at_ninety_percent_of_the_window() {
        assert_eq!(decide(&facts(0, 0, 20_000)), Action::WaitUntil(18_000));
        assert_eq!(decide(&facts(17_999, 0, 20_000)), Action::WaitUntil(18_000));
        assert_eq!(decide(&facts(18_000, 0, 20_000)), Action::Renew);
        // Renewed at 18 s: the next window is 18..38 s.
        assert_eq!(
            decide(&facts(18_000, 18_000, 38_000)),
            Action::WaitUntil(36_000)
        );
        assert_eq!(decide(&facts(36_000, 18_000, 38_000)), Action::Renew);
    }

    #[test]
    fn reissues_when_a_renewal_cannot_buy_a_full_window() {
        // Renewed at 36 s: Hadoop caps the expiry at the max date, 56 s.
        assert_eq!(decide(&facts(54_000, 36_000, 56_000)), Action::Reissue);
        // A short final window (max date near) triggers the re-issue at 90 % of it as well.
        assert_eq!(
            decide(&facts(57_000, 54_000, 60_000)),
            Action::WaitUntil(59_400)
        );
        assert_eq!(decide(&facts(59_400, 54_000, 60_000)), Action::Reissue);
    }

    #[test]
    fn an_expired_set_of_a_running_workload_is_renewed_first_and_never_dropped() {
        // The record may be stale (a renewal whose answer was lost): the server decides.
        assert_eq!(decide(&facts(21_000, 0, 20_000)), Action::Renew);
        // Past its max date no renewal helps.
        let mut f = facts(90_000, 0, 20_000);
        f.max_date_ms = Some(60_000);
        assert_eq!(decide(&f), Action::Reissue);
    }

    #[test]
    fn a_gone_workload_is_cancelled_and_an_unknown_one_is_left_alone() {
        let mut f = facts(5_000, 0, 20_000);
        f.liveness = Liveness::Gone;
        assert_eq!(decide(&f), Action::Cancel);
        f.liveness = Liveness::Unknown;
        assert!(matches!(decide(&f), Action::WaitUntil(_)));
        f.now_ms = 90_000;
        assert!(
            matches!(decide(&f), Action::WaitUntil(_)),
            "nothing is re-issued or cancelled before the index is ready"
        );
    }

    #[test]
    fn failures_wait_for_their_backoff_unless_the_set_would_expire() {
        let mut f = facts(18_000, 0, 20_000);
        f.next_attempt_ms = Some(19_000);
        assert_eq!(decide(&f), Action::WaitUntil(19_000));
        f.now_ms = 19_000;
        assert_eq!(decide(&f), Action::Renew);
        f.now_ms = 18_000;
        f.next_attempt_ms = Some(25_000);
        assert_eq!(
            decide(&f),
            Action::Renew,
            "a backoff past the expiry is cut short"
        );
        f.liveness = Liveness::Gone;
        assert_eq!(decide(&f), Action::WaitUntil(25_000));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let (base, cap) = (Duration::from_secs(1), Duration::from_secs(60));
        let seq: Vec<u64> = (1..=8).map(|n| backoff(n, base, cap).as_secs()).collect();
        assert_eq!(seq, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(backoff(u32::MAX, base, cap), cap);
    }
}
