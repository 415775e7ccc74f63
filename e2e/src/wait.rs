//! Polling with a deadline: every wait in the suite is bounded and says what it waited for.
use std::future::Future;
use std::time::Duration;

use tokio::time::{Instant, sleep};

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(
        "gave up after {secs}s waiting for {what}; last seen: {last}. Check the test bed's \
         controller logs (e2e/.state/logs) for why it did not happen"
    )]
    Timeout {
        what: String,
        secs: u64,
        last: String,
    },
}

/// What one poll saw: done with a value, or not yet with a note on the current state.
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

/// Poll `check` until it is ready or `timeout` passes. Errors from `check` end the wait at once.
pub async fn until<T, E, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, E>>,
    E: From<WaitError>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check().await? {
            Poll::Ready(value) => return Ok(value),
            Poll::Pending(last) => last,
        };
        if Instant::now() >= deadline {
            return Err(WaitError::Timeout {
                what: what.to_owned(),
                secs: timeout.as_secs(),
                last,
            }
            .into());
        }
        sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_value_once_ready() {
        let mut n = 0;
        let got: Result<u32, WaitError> = until("n to reach 3", Duration::from_secs(10), || {
            n += 1;
            let v = n;
            async move {
                Ok(if v >= 3 {
                    Poll::Ready(v)
                } else {
                    Poll::Pending(format!("n={v}"))
                })
            }
        })
        .await;
        assert_eq!(got.ok(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_state() {
        let got: Result<(), WaitError> = until("never", Duration::from_secs(2), || async {
            Ok(Poll::Pending("still nothing".into()))
        })
        .await;
        let msg = got.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("never") && msg.contains("still nothing"),
            "{msg}"
        );
    }
}
