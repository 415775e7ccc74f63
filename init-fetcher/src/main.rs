//! init-fetcher: runs as a pod's init container (`fetch`) or native sidecar (`refresh`),
//! fetches the pod's Hadoop delegation tokens from token-service and writes the credentials
//! file. `print` inspects such a file.
#![forbid(unsafe_code)]

mod atomic_write;
mod cli;
mod client;
mod fetch;
mod print;
mod refresh;
mod retry;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hadoop_token::Credentials;

use crate::cli::{FetchArgs, RefreshArgs};
use crate::fetch::FetchError;

const EXIT_CODES: &str = "\
Exit codes of fetch and refresh:
  0  credentials file written (refresh: stopped by SIGTERM)
  1  bad flags, environment variables or CA file
  2  the token service refused this pod (HTTP 401/403/404; an address it does not know yet
     is retried for 30 s first); its reason is printed
  3  deadline passed without credentials (refresh: tokens expired while the service failed)
  4  the token service sent something that is not a credentials file (nothing is written)
  5  local I/O: cannot write the file or read the service-account token
  6  stopped by SIGTERM before the first file was written";

#[derive(Parser)]
#[command(
    version,
    about,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES
)]
struct Cli {
    /// Without a subcommand, `fetch` runs with these flags.
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    fetch: FetchArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch this pod's tokens from token-service and write the credentials file (the default)
    #[command(after_help = EXIT_CODES)]
    Fetch(FetchArgs),
    /// Fetch, then keep the credentials file fresh while the pod runs (native sidecar)
    #[command(after_help = EXIT_CODES)]
    Refresh(RefreshArgs),
    /// Show the tokens of a Hadoop credentials file, like `hadoop dtutil print`
    Print(PrintArgs),
}

#[derive(Args)]
struct PrintArgs {
    /// Credentials file (HDTS, format 0 or 1), e.g. the one HADOOP_TOKEN_FILE_LOCATION names
    file: PathBuf,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors are exit code 1 here: 2 means "refused by the service".
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command.unwrap_or(Command::Fetch(cli.fetch)) {
        Command::Fetch(args) => {
            cli::init_logging(args.log_format);
            let result = args.config().map_err(FetchError::from);
            finish(result.and_then(|config| {
                runtime(async move { until_sigterm(fetch::run(&config)).await })
            }))
        }
        Command::Refresh(args) => {
            cli::init_logging(args.fetch.log_format);
            let result = args.config().map_err(FetchError::from);
            finish(result.and_then(|(config, schedule)| {
                runtime(async move {
                    match until_sigterm(refresh::run(&config, schedule)).await {
                        Err(FetchError::Terminated) if config.out.exists() => {
                            tracing::info!("SIGTERM: stopping");
                            Ok(())
                        }
                        other => other,
                    }
                })
            }))
        }
        Command::Print(args) => run_print(&args),
    }
}

/// A single-threaded runtime: one request at a time needs no more, and it keeps the sidecar
/// small.
fn runtime<F: Future<Output = Result<(), FetchError>>>(f: F) -> Result<(), FetchError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            FetchError::Setup(client::SetupError::Client(format!(
                "cannot start the async runtime: {e}"
            )))
        })?
        .block_on(f)
}

/// Runs `f` until it ends or SIGTERM arrives; dropping `f` removes any temporary file.
async fn until_sigterm<F: Future<Output = Result<(), FetchError>>>(f: F) -> Result<(), FetchError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(|e| {
        FetchError::Setup(client::SetupError::Client(format!(
            "cannot handle SIGTERM: {e}"
        )))
    })?;
    tokio::select! {
        result = f => result,
        _ = term.recv() => Err(FetchError::Terminated),
    }
}

fn finish(result: Result<(), FetchError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code(), "{}", error_chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

fn run_print(args: &PrintArgs) -> ExitCode {
    let (credentials, format) = match Credentials::read_file(&args.file) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let report = print::Report::new(&args.file, &credentials, format);
    if args.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_text());
    }
    let mut failed = false;
    for token in report.invalid_tokens() {
        failed = true;
        eprintln!(
            "error: token {:?} of kind {:?} in {} has an identifier that does not decode",
            token.alias,
            token.kind,
            args.file.display()
        );
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `outer: cause: cause`, so one line carries both the path and the offset.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn every_flag_and_subcommand_has_help() {
        let undocumented = k2h_contract::cli::undocumented(&Cli::command());
        assert!(undocumented.is_empty(), "without help: {undocumented:?}");
    }
}
