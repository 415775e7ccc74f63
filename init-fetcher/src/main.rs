use clap::Parser;

/// Placeholder until its issue lands.
#[derive(Parser)]
#[command(version, about)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
    eprintln!("not implemented yet");
    std::process::exit(2);
}
