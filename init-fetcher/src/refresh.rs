//! `refresh`: a native sidecar that keeps the credentials file current.
//!
//! The first fetch behaves exactly like `fetch` (the pod must not start without tokens). Then it
//! fetches again at 80 % of the time left before the earliest expiry (within the configured
//! interval bounds), rewriting the file only when the service returned different bytes (it
//! re-issues tokens near their max lifetime). Failures after that are logged and retried with
//! backoff while the current file is still valid; once it has expired the process exits (the
//! kubelet restarts it, which makes the problem visible). SIGTERM is handled by the caller,
//! which drops this future: every await point is a safe place to stop.
use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug, error, info, warn};
use zeroize::Zeroizing;

use crate::cli::Config;
use crate::client::AttemptError;
use crate::fetch::{self, FetchError};
use crate::retry::RefreshSchedule;

/// Runs until an unrecoverable error; success never returns.
pub async fn run(config: &Config, schedule: RefreshSchedule) -> Result<(), FetchError> {
    let client = fetch::client(config)?;
    info!(url = client.url(), out = %config.out.display(), "fetching credentials, then refreshing");
    let first = fetch::until_deadline(&client, config).await?;
    fetch::write(config, &first)?;
    let mut written: Zeroizing<Vec<u8>> = first.bytes;
    let mut expires = first.expires;
    let mut failures = 0u32;
    let mut wait = schedule.next(OffsetDateTime::now_utc(), expires);
    loop {
        debug!(wait_s = wait.as_secs(), "next refresh");
        tokio::time::sleep(wait).await;
        let now = OffsetDateTime::now_utc();
        let problem = match client.attempt(config.attempt_timeout).await {
            Ok(fetched) => {
                let on_disk = std::fs::read(&config.out).map(Zeroizing::new).ok();
                let unchanged = fetched.bytes == written && on_disk.as_ref() == Some(&written);
                let result = if unchanged {
                    debug!("credentials unchanged");
                    Ok(())
                } else {
                    fetch::write(config, &fetched)
                };
                match result {
                    Ok(()) => {
                        written = fetched.bytes;
                        expires = fetched.expires;
                        failures = 0;
                        wait = schedule.next(OffsetDateTime::now_utc(), expires);
                        continue;
                    }
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => {
                let retry_after = match &e {
                    AttemptError::Transient { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let text = e.to_string();
                if let Some(after) = retry_after {
                    // The service asked for a pause; respect it but keep the failure count.
                    wait = after;
                    warn!(error = %text, wait_s = after.as_secs(), "refresh failed, retrying");
                    failures = failures.saturating_add(1);
                    if expired(expires, now) {
                        return Err(expired_error(expires, text));
                    }
                    continue;
                }
                text
            }
        };
        if expired(expires, now) {
            error!(error = %problem, "refresh failed and the tokens have expired");
            return Err(expired_error(expires, problem));
        }
        let left = expires
            .map(|e| Duration::try_from(e - now).unwrap_or(Duration::ZERO))
            .unwrap_or(schedule.max);
        wait = config
            .backoff
            .next_wait(failures, rand::random::<f64>(), None, left)
            .max(Duration::from_secs(1));
        warn!(error = %problem, wait_ms = wait.as_millis() as u64, "refresh failed, the current file is still valid; retrying");
        failures = failures.saturating_add(1);
    }
}

fn expired(expires: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    expires.is_some_and(|e| e <= now)
}

fn expired_error(expires: Option<OffsetDateTime>, last: String) -> FetchError {
    FetchError::Expired {
        expired: expires
            .and_then(|e| {
                e.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default(),
        last,
    }
}
