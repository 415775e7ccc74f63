//! Logging setup shared by the binaries: `--log-format text|json`, `RUST_LOG`-style filter.
//!
//! Lines go to stderr through a writer thread: on the admission path a synchronous `write(2)` per
//! request was 16 % of the webhook's CPU time (bench/README.md). The writer never drops lines: when
//! its queue is full, callers wait, because an audit or denial line must not be lost.
use crate::error::Error;
use std::io::IsTerminal;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// Lines waiting for the writer thread; callers wait when it is full.
const LOG_QUEUE_LINES: usize = 1024;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Keeps the log writer thread alive; dropping it flushes what is queued. Hold it in `main` for
/// the life of the process.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard(#[allow(dead_code)] WorkerGuard);

/// Installs the global subscriber. `filter` uses `RUST_LOG` syntax (e.g. `info,hyper=warn`);
/// `None` reads `RUST_LOG` and falls back to `info`.
pub fn init_logging(format: LogFormat, filter: Option<&str>) -> Result<LogGuard, Error> {
    let filter = match filter {
        Some(f) => EnvFilter::try_new(f).map_err(|e| {
            Error::Logging(format!(
                "log filter {f:?} is not valid (expected e.g. \"info\" or \"info,hyper=warn\"): {e}"
            ))
        })?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        // The default queue (128,000 lines) grew the webhook's RSS from 10 to 50 MiB under
        // load; a short queue bounds memory and still absorbs bursts.
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("log-writer")
        .finish(std::io::stderr());
    // Colours only on a terminal: escape codes in collected logs are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
    result.map_err(|e| Error::Logging(e.to_string()))?;
    Ok(LogGuard(guard))
}
