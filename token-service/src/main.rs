//! token-service: flags and file → checked settings → watches, directory, Hadoop client,
//! ledger and its leader election → HTTPS until SIGTERM.
// Denied, not forbidden: `memory` holds the one allowed call (glibc's malloc_trim, when
// jemalloc is not the allocator).
#![deny(unsafe_code)]

mod memory;

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use k2h_http::tls::watch_cert_files;
use k2h_http::{Readiness, ServeConfig, init_logging, serve, server_config};
use kube::config::{KubeConfigOptions, Kubeconfig};
use prometheus_client::registry::Registry;
use token_service::accounts::SharedAccounts;
use token_service::audit::AuditSink;
use token_service::authorize::Policy;
use token_service::clock::system_clock;
use token_service::cluster::events::KubeEvents;
use token_service::cluster::keys::fetch_keys;
use token_service::cluster::lease::{self, LeaseConfig};
use token_service::cluster::secrets::KubeSecrets;
use token_service::cluster::{
    Kube, KubeWorkloads, WatchedTops, watch_namespaces, watch_pods, watch_service_accounts,
    watch_webhook,
};
use token_service::config::{Cli, DirectorySettings, Settings};
use token_service::coverage;
use token_service::directory::cached::Cached;
use token_service::directory::ldap::Ldap;
use token_service::directory::static_users::StaticUsers;
use token_service::directory::{Directory, Failures};
use token_service::events::EventSink;
use token_service::hadoop::auth::{Authenticator, NoAuth};
use token_service::hadoop::hive::Hive;
use token_service::hadoop::http::{Caller, HttpConfig, build_client};
use token_service::hadoop::kms::Kms;
use token_service::hadoop::spnego::{self, Spnego};
use token_service::hadoop::webhdfs::WebHdfs;
use token_service::hadoop::yarn::Yarn;
use token_service::hadoop::{Federation, TokenEndpoint};
use token_service::index::SharedIndex;
use token_service::issuer::Issuer;
use token_service::ledger::reconcile::{ReconcileConfig, Reconciler};
use token_service::ledger::{Ledger, Persist};
use token_service::metrics::{DirectoryMetrics, Metrics};
use token_service::ratelimit::{Limit, RateLimiter};
use token_service::review_cache::ReviewCache;
use token_service::server::{App, handle};
use token_service::token_keys::TokenKeys;

/// Set on the re-executed process, so a mismatch that survives the re-exec is an error, not a loop.
const REEXEC_MARKER: &str = "K2H_TOKEN_SERVICE_KRB5_ENV";
const TLS_RELOAD: Duration = Duration::from_secs(10);
/// A credentials request has no meaningful body.
const MAX_BODY: usize = 16 * 1024;
const LEASE_NAME: &str = "kube2hadoop-token-service";

fn main() -> ExitCode {
    let settings = match Settings::load(Cli::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("token-service: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(krb) = &settings.kerberos
        && spnego::check_env(krb, |v| std::env::var_os(v)).is_err()
    {
        // Kerberos reads its settings from the environment, which cannot be changed safely once
        // threads run: start again with it set, before any thread exists.
        if std::env::var_os(REEXEC_MARKER).is_some() {
            eprintln!("token-service: the Kerberos environment did not take effect after re-exec");
            return ExitCode::from(2);
        }
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!(
                    "token-service: cannot find its own executable to set the Kerberos environment: {e}"
                );
                return ExitCode::from(2);
            }
        };
        let err = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .envs(spnego::process_env(krb))
            .env(REEXEC_MARKER, "1")
            .exec();
        eprintln!("token-service: cannot re-execute with the Kerberos environment: {err}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("token-service: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("token-service: {e}");
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("{0}")]
    Http(#[from] k2h_http::Error),
    #[error("Kubernetes client: {0}")]
    Kube(String),
    #[error("directory: {0}")]
    Directory(String),
    #[error("Hadoop client: {0}")]
    Hadoop(String),
    #[error("cannot open the audit log {path}: {source}")]
    Audit {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--stamp-key-file {path}: {reason}")]
    StampKey { path: String, reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// iddecorator's stamp keys; errors name the file and the problem, never a key.
fn stamp_keys(path: &std::path::Path) -> Result<k2h_contract::stamp::Keys, StartError> {
    let bad = |reason: String| StartError::StampKey {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    k2h_contract::stamp::Keys::parse(&text).map_err(|e| bad(e.to_string()))
}

async fn kube_client(settings: &Settings) -> Result<kube::Client, StartError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let err = |e: &dyn std::fmt::Display| StartError::Kube(e.to_string());
    let mut config = match &settings.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| err(&e))?;
            let options = KubeConfigOptions {
                context: settings.kube_context.clone(),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| err(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| err(&e))?,
    };
    // No read timeout on the client: it would cut every watch that sees no event for that long
    // (the pod index then goes stale and refuses lookups until a relist). Watches detect dead
    // connections themselves (server timeout + margin), and every other API call is bounded
    // by `kube_timeout` where it is made.
    config.read_timeout = None;
    config.connect_timeout = Some(settings.kube_timeout);
    kube::Client::try_from(config).map_err(|e| err(&e))
}

fn directory(
    settings: &Settings,
    metrics: &DirectoryMetrics,
) -> Result<Arc<dyn Directory>, StartError> {
    Ok(match &settings.directory {
        DirectorySettings::Ldap { ldap, cache } => {
            // The pool tells the cache of connections the server closed; the cache notes
            // failed checks itself.
            let failures = Failures::default();
            let ldap = Ldap::observed((**ldap).clone(), failures.clone(), metrics.clone())
                .map_err(|e| StartError::Directory(e.to_string()))?;
            Arc::new(Cached::new(ldap, *cache, failures, metrics.clone()))
        }
        DirectorySettings::Static(Some(path)) => {
            Arc::new(StaticUsers::load(path).map_err(|e| StartError::Directory(e.to_string()))?)
        }
        DirectorySettings::Static(None) => Arc::new(StaticUsers::embedded()),
    })
}

fn token_source(settings: &Settings, metrics: &Metrics) -> Result<Arc<Federation>, StartError> {
    let err = |e: &dyn std::fmt::Display| StartError::Hadoop(e.to_string());
    let client = build_client(&HttpConfig {
        timeout: settings.hadoop_timeout,
        ..HttpConfig::default()
    })
    .map_err(|e| err(&e))?;
    let spnego = match &settings.kerberos {
        Some(krb) => Some(Spnego::new(krb.clone()).map_err(|e| err(&e))?),
        None => None,
    };
    let superuser = settings
        .kerberos
        .as_ref()
        .and_then(|krb| krb.principal.split(['/', '@']).next())
        .unwrap_or("kube2hadoop")
        .to_owned();
    let auth: Arc<dyn Authenticator> = match &spnego {
        Some(spnego) => Arc::new(spnego.clone()),
        None => Arc::new(NoAuth),
    };
    let caller = Caller::new(client, auth, settings.hadoop_timeout, superuser.clone());
    let mut endpoints: Vec<Arc<dyn TokenEndpoint>> = Vec::new();
    for ns in &settings.nameservices {
        endpoints.push(Arc::new(
            WebHdfs::new(ns.clone(), caller.clone()).map_err(|e| err(&e))?,
        ));
    }
    for kms in &settings.kms {
        endpoints.push(Arc::new(
            Kms::new(kms.clone(), caller.clone()).map_err(|e| err(&e))?,
        ));
    }
    for yarn in &settings.yarn {
        endpoints.push(Arc::new(
            Yarn::new(yarn.clone(), caller.clone()).map_err(|e| err(&e))?,
        ));
    }
    for hive in &settings.hive {
        endpoints.push(Arc::new(
            Hive::new(
                hive.clone(),
                spnego.clone(),
                settings.hadoop_timeout,
                superuser.clone(),
            )
            .map_err(|e| err(&e))?,
        ));
    }
    Ok(Arc::new(
        Federation::new(endpoints)
            .map_err(|e| err(&e))?
            .observed(metrics.provider_observer()),
    ))
}

async fn run(settings: Settings) -> Result<(), StartError> {
    // Held until `run` returns: dropping it flushes the queued log lines.
    let _log = init_logging(settings.log_format, settings.log.as_deref())?;
    let (resolver, cert_watcher) = watch_cert_files(
        settings.tls_cert_file.clone(),
        settings.tls_key_file.clone(),
    )?;
    let tls = server_config(resolver.clone())?;
    let stamp_keys = stamp_keys(&settings.stamp_key_file)?;
    let client = kube_client(&settings).await?;
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    memory::register(&mut registry);
    let directory = directory(&settings, &metrics.directory)?;
    let source = token_source(&settings, &metrics)?;
    let open_audit = || match &settings.audit_log {
        Some(path) => AuditSink::file(path).map_err(|source| StartError::Audit {
            path: path.display().to_string(),
            source,
        }),
        None => Ok(AuditSink::Tracing),
    };
    let audit = open_audit()?;
    // Appends of whole lines: the request path and the ledger loop share the file safely.
    let ledger_audit = Arc::new(open_audit()?);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: settings.listen,
            source,
        })?;
    let signal = k2h_http::signal::shutdown_signal()?;
    cert_watcher.spawn(TLS_RELOAD);
    memory::spawn_trim();

    let reviews = ReviewCache::new(
        settings.review_cache,
        system_clock(),
        metrics.review_cache_observer(),
    );
    let index = SharedIndex::default();
    let forget = reviews.clone();
    watch_pods(client.clone(), index.clone(), move |uid| {
        forget.forget_pod(uid)
    });
    // Only bound tokens name service accounts: no watch without them.
    let accounts = SharedAccounts::default();
    if settings.modes.sa_token {
        let forget = reviews.clone();
        watch_service_accounts(client.clone(), accounts.clone(), move |ns, name| {
            forget.forget_account(ns, name)
        });
    }
    let token_keys = if settings.modes.sa_token {
        TokenKeys::new(settings.token_keys_refresh)
    } else {
        TokenKeys::disabled()
    };
    spawn_token_keys(&token_keys, &client, settings.kube_timeout, &metrics);
    let namespaces = watch_namespaces(client.clone(), &settings.namespace_selector);
    let webhook = watch_webhook(
        client.clone(),
        &settings.webhook_configuration,
        &settings.mutating_webhook,
    );
    let kube = Arc::new(Kube::new(client.clone(), settings.kube_timeout));
    let tops = Arc::new(WatchedTops::new(client.clone()));
    let ledger_cfg = &settings.ledger;
    let ledger = Ledger::new(
        Arc::new(KubeSecrets::new(
            client.clone(),
            &ledger_cfg.namespace,
            settings.kube_timeout,
        )),
        ledger_cfg.namespace.clone(),
        system_clock(),
    );
    // Every replica serves; only the Lease holder renews, re-issues and cancels.
    let leader = lease::run(
        client.clone(),
        LeaseConfig {
            name: LEASE_NAME.into(),
            namespace: ledger_cfg.namespace.clone(),
            holder: ledger_cfg.replica_id.clone(),
            duration: ledger_cfg.lease_duration,
            renew_deadline: ledger_cfg.lease_renew_deadline,
            retry_period: (ledger_cfg.lease_duration / 5).max(Duration::from_secs(1)),
        },
        settings.kube_timeout,
    );

    k2h_http::expiry::register(&mut registry, "token-service", resolver);
    let events: Arc<dyn EventSink> = KubeEvents::start(
        client,
        Some(ledger_cfg.replica_id.clone()),
        settings.kube_timeout,
        metrics.clone(),
    );
    let persist: Arc<dyn Persist> = Arc::new(ledger.clone());
    let issuer = Issuer::with_ledger(
        source.clone(),
        settings.issuer.clone(),
        system_clock(),
        metrics.observer(),
        Some(persist),
    );
    Reconciler {
        ledger,
        source,
        serving: Arc::new(issuer.clone()),
        workloads: Arc::new(KubeWorkloads {
            kube: kube.clone(),
            index: index.clone(),
            tops,
            stamped: settings.stamped.clone(),
        }),
        leader,
        audit: ledger_audit,
        events: events.clone(),
        metrics: metrics.clone(),
        clock: system_clock(),
        cfg: ReconcileConfig {
            period: ledger_cfg.period,
            ..ReconcileConfig::default()
        },
    }
    .spawn();
    let readiness = Readiness::default();
    let (served, ready_ns, ready_index) = (namespaces.clone(), namespaces.clone(), index.clone());
    let ready_webhook = webhook.clone();
    let app = Arc::new(App {
        cluster: kube.clone(),
        owners: kube,
        index,
        accounts,
        reviews,
        token_keys,
        clock: system_clock(),
        served: Arc::new(move |ns| served.is_served(ns)),
        // One definition of what is covered: the webhook as registered, read now.
        covered: {
            let stamped = settings.stamped.clone();
            Arc::new(move |pod| {
                if !namespaces.is_current() {
                    return Err(if namespaces.is_ready() {
                        coverage::stale("namespaces")
                    } else {
                        coverage::loading("namespaces")
                    });
                }
                let labels = namespaces.labels(&pod.namespace);
                coverage::check(&webhook.current(), labels.as_ref(), pod, &stamped)
            })
        },
        watches_ready: Arc::new(move || {
            ready_ns.is_ready() && ready_index.is_ready() && ready_webhook.is_ready()
        }),
        modes: settings.modes,
        stamp_keys,
        policy: Policy {
            mapping: settings.mapping.clone(),
            superusers: settings.superusers.clone(),
        },
        services: settings.services.clone(),
        directory,
        issuer,
        pod_limit: RateLimiter::new(settings.pod_limit),
        // Charged only for failed identifications (bad tokens, unknown addresses): it stops
        // floods without making pods that share an address share a budget.
        peer_limit: RateLimiter::new(Limit {
            per_minute: settings.pod_limit.per_minute.saturating_mul(10),
            burst: settings.pod_limit.burst.saturating_mul(10),
        }),
        audit,
        events,
        metrics,
        registry: Arc::new(registry),
        readiness: readiness.clone(),
    });
    tracing::info!(
        listen = %settings.listen,
        sa_token = settings.modes.sa_token,
        token_review_cache_ttl = ?settings.review_cache.ttl,
        ip = settings.modes.ip,
        namespaces = %settings.namespace_selector,
        webhook = %format!("{}/{}", settings.webhook_configuration, settings.mutating_webhook),
        ledger = %settings.ledger.namespace,
        replica = %settings.ledger.replica_id,
        allocator = memory::ALLOCATOR_NAME,
        "serving"
    );
    serve(
        listener,
        tls,
        ServeConfig {
            max_body_bytes: MAX_BODY,
            ..ServeConfig::default()
        },
        readiness,
        move |req| handle(Arc::clone(&app), req),
        async move {
            let name = signal.await;
            tracing::info!(signal = name, "shutting down");
        },
    )
    .await;
    Ok(())
}

/// Keeps the API server's signing keys current, logging when they change or cannot be read:
/// until they are loaded, every bound token is reviewed by the API server.
fn spawn_token_keys(keys: &TokenKeys, client: &kube::Client, timeout: Duration, metrics: &Metrics) {
    let client = client.clone();
    let metrics = metrics.clone();
    let mut shown = String::new();
    keys.spawn(
        move || {
            let client = client.clone();
            Box::pin(async move { fetch_keys(&client, timeout).await })
        },
        move |result| {
            metrics.token_key_read(result.is_ok());
            match result {
                Ok(set) => {
                    let now = format!("{set:?}");
                    if now != shown {
                        tracing::info!(keys = %now, "bound service-account tokens are verified against the API server's published keys");
                        shown = now;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the API server's service-account signing keys; bound tokens are reviewed by the API server (TokenReview) until they are read");
                }
            }
        },
    );
}
