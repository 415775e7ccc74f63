//! `fetch`: ask the token service until it answers or the deadline passes, then write the file.
//!
//! Exit codes (also in `--help` of the binary):
//! 0 written; 1 bad flags or CA; 2 refused by the service (401/403/404; an unknown address
//! after [`ADDRESS_GRACE`]); 3 deadline passed
//! (or, for `refresh`, tokens expired while the service kept failing); 4 the service sent
//! something unusable; 5 local I/O (file or service-account token); 6 stopped by SIGTERM.
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::atomic_write::{self, WriteError};
use crate::cli::{Config, ConfigError};
use crate::client::{AttemptError, Client, Fetched, SetupError};

/// Why `fetch` (or `refresh`) ended without success; each maps to a documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Refused(AttemptError),
    #[error("no credentials within {} s; last problem: {last}", deadline.as_secs())]
    Deadline { deadline: Duration, last: String },
    #[error("tokens expired at {expired} and the token service keeps failing: {last}")]
    Expired { expired: String, last: String },
    #[error("{0}")]
    BadResponse(AttemptError),
    #[error("{0}")]
    SaToken(AttemptError),
    #[error("cannot write the credentials file {path}")]
    Write {
        path: String,
        #[source]
        source: WriteError,
    },
    #[error("stopped by SIGTERM before the credentials file was written")]
    Terminated,
}

impl FetchError {
    pub fn exit_code(&self) -> u8 {
        match self {
            FetchError::Config(_) | FetchError::Setup(_) => 1,
            FetchError::Refused(_) => 2,
            FetchError::Deadline { .. } | FetchError::Expired { .. } => 3,
            FetchError::BadResponse(_) => 4,
            FetchError::SaToken(_) | FetchError::Write { .. } => 5,
            FetchError::Terminated => 6,
        }
    }
}

/// The client, once the output directory is known to exist: a missing volume is reported
/// before the service is asked, not after.
pub fn client(config: &Config) -> Result<Client, FetchError> {
    let dir = config
        .out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        return Err(FetchError::Write {
            path: config.out.display().to_string(),
            source: WriteError::Io {
                step: "use the directory",
                dir: dir.to_owned(),
                source: std::io::ErrorKind::NotFound.into(),
            },
        });
    }
    Ok(Client::new(
        &config.url,
        &config.ca,
        config.sa_token_file.clone(),
        config.connect_timeout,
        config.attempt_timeout,
        config.source_address,
    )?)
}

/// How long an unknown address is retried, from the first such answer: the kubelet reports a new pod's IP to the API
/// server while its init containers may already run, and the service learns it by watch.
pub const ADDRESS_GRACE: Duration = Duration::from_secs(30);

/// Attempts until success or the deadline; fails at once when the service refuses the pod or
/// answers garbage (retrying would not help).
pub async fn until_deadline(client: &Client, config: &Config) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    let deadline = started + config.deadline;
    let mut attempt = 0u32;
    // When the service first said it does not know this pod's address.
    let mut unknown_since: Option<Instant> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let error = match client.attempt(remaining).await {
            Ok(fetched) => return Ok(fetched),
            Err(e) => e,
        };
        let retry_after = match &error {
            AttemptError::Transient { retry_after, .. } => *retry_after,
            AttemptError::AddressNotKnown { .. }
                if unknown_since.get_or_insert_with(Instant::now).elapsed() < ADDRESS_GRACE =>
            {
                None
            }
            AttemptError::Refused { .. } | AttemptError::AddressNotKnown { .. } => {
                return Err(FetchError::Refused(error));
            }
            AttemptError::BadResponse(_) => return Err(FetchError::BadResponse(error)),
            AttemptError::SaToken { .. } => return Err(FetchError::SaToken(error)),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(FetchError::Deadline {
                deadline: config.deadline,
                last: error.to_string(),
            });
        }
        let wait = config
            .backoff
            .next_wait(attempt, rand::random::<f64>(), retry_after, remaining);
        warn!(
            attempt = attempt + 1,
            wait_ms = wait.as_millis() as u64,
            error = %error,
            "token service not ready, retrying"
        );
        tokio::time::sleep(wait).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Write what was fetched; logs sizes and expiry, never bytes.
pub fn write(config: &Config, fetched: &Fetched) -> Result<(), FetchError> {
    atomic_write::write(&config.out, &fetched.bytes, config.file_mode).map_err(|source| {
        FetchError::Write {
            path: config.out.display().to_string(),
            source,
        }
    })?;
    info!(
        path = %config.out.display(),
        tokens = fetched.tokens,
        bytes = fetched.bytes.len(),
        expires = %shown_expiry(fetched),
        "credentials file written"
    );
    Ok(())
}

pub fn shown_expiry(fetched: &Fetched) -> String {
    fetched
        .expires
        .and_then(|e| {
            e.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// `fetch`: the whole one-shot run.
pub async fn run(config: &Config) -> Result<(), FetchError> {
    let client = client(config)?;
    info!(url = client.url(), out = %config.out.display(), deadline_s = config.deadline.as_secs(), "fetching credentials");
    let fetched = until_deadline(&client, config).await?;
    write(config, &fetched)
}
