//! init-fetcher: runs as a pod's init container, fetches the pod's Hadoop delegation tokens from
//! token-service and writes the credentials file. `print` inspects such a file.
#![forbid(unsafe_code)]

mod print;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hadoop_token::Credentials;

/// Exit code of a subcommand that is not implemented yet (clap uses 2 for usage errors too).
const EXIT_UNIMPLEMENTED: u8 = 2;

#[derive(Parser)]
#[command(version, about, propagate_version = true)]
struct Cli {
    /// Without a subcommand, `fetch` runs.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch this pod's tokens from token-service and write the credentials file (the default;
    /// not implemented yet)
    Fetch,
    /// Keep the credentials file fresh while the pod runs (not implemented yet)
    Refresh,
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
    match Cli::parse().command.unwrap_or(Command::Fetch) {
        Command::Fetch => unimplemented_command("fetch"),
        Command::Refresh => unimplemented_command("refresh"),
        Command::Print(args) => run_print(&args),
    }
}

fn unimplemented_command(name: &str) -> ExitCode {
    eprintln!("init-fetcher {name}: not implemented yet");
    ExitCode::from(EXIT_UNIMPLEMENTED)
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
