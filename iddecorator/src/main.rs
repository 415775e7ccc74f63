//! iddecorator: flags → checked config → HTTPS server until SIGTERM; or `certs`, which writes
//! certificates for the static-certs install and exits.
#![forbid(unsafe_code)]
use clap::Parser;
use iddecorator::cli::{Args, Cli, Command, Config};
use iddecorator::metrics::Metrics;
use iddecorator::pods::PodReader;
use iddecorator::server::{App, route};
use k2h_http::{Readiness, init_logging, serve, server_config, signal::shutdown_signal};
use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    match Cli::parse().into_command() {
        Command::Serve(args) => serve_main(args),
        Command::Certs(args) => certs_main(&args),
    }
}

fn certs_main(args: &iddecorator::certs::CertsArgs) -> ExitCode {
    match iddecorator::certs::run(args) {
        Ok(files) => {
            println!("wrote to {}: {}", args.out_dir.display(), files.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iddecorator certs: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve_main(args: Args) -> ExitCode {
    // Held to the end of main: dropping it flushes the queued log lines.
    let _log = match init_logging(args.log_format, args.log.as_deref()) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("iddecorator: {e}");
            return ExitCode::from(2);
        }
    };
    // Panics are caught per request (a 500); log them as log lines, not raw stderr text.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    // Everything is read and checked before the runtime starts serving.
    let config = match Config::from_args(&args) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("iddecorator: cannot start, fix these settings:");
            for e in &errors {
                eprintln!("  - {e}");
            }
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("iddecorator: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "iddecorator stopped");
            eprintln!("iddecorator: {e}");
            ExitCode::from(1)
        }
    }
}

/// Why serving stopped or never started.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Http(#[from] k2h_http::Error),
    #[error(transparent)]
    Client(#[from] iddecorator::pods::ClientError),
}

async fn run(config: Config) -> Result<(), RunError> {
    // kube's rustls backend needs a process-wide provider; a second install is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pods = PodReader::connect(config.kubeconfig, config.pod_read_timeout).await?;
    let mut metrics = Metrics::new();
    k2h_http::expiry::register(
        &mut metrics.registry,
        "iddecorator",
        config.cert_resolver.clone(),
    );
    let metrics = Arc::new(metrics);
    let tls = server_config(config.cert_resolver)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| k2h_http::Error::Bind {
            addr: config.listen,
            source,
        })?;
    let signal = shutdown_signal()?;
    let local = listener.local_addr().unwrap_or(config.listen);

    let cert_task = config
        .cert_watcher
        .with_counters(metrics.reloads.clone())
        .spawn(config.reload_interval);
    let policy_task = config.policy_watcher.map(|w| {
        w.with_counters(metrics.reloads.clone())
            .spawn(config.reload_interval)
    });

    let readiness = Readiness::default();
    let app = Arc::new(App {
        policy: config.policy,
        metrics,
        readiness: readiness.clone(),
        pods,
    });
    tracing::info!(listen = %local, version = env!("CARGO_PKG_VERSION"), "serving");
    let handler = move |req| route(app.clone(), req);
    serve(
        listener,
        tls,
        config.serve,
        readiness,
        handler,
        async move {
            let name = signal.await;
            tracing::info!(signal = name, "shutting down");
        },
    )
    .await;
    cert_task.abort();
    if let Some(t) = policy_task {
        t.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
