//! The cluster under test: one client per kubeconfig context, impersonated controllers, and a
//! switch for iddecorator.
use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};
use tokio::process::Command;

/// Per-request read timeout of the suite's clients: a stuck apiserver fails the test instead of
/// hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Starting iddecorator may include building it.
const CTL_TIMEOUT: Duration = Duration::from_secs(300);
/// The command that stops and starts iddecorator (`… start|stop`); `up.sh` exports the script.
const CTL_ENV: &str = "K2H_E2E_IDDECORATOR_CTL";
const CTL_ENV_FALLBACK: &str = "K2H_E2E_IDDECORATOR_SCRIPT";

#[derive(Debug, thiserror::Error)]
pub enum BedError {
    #[error(
        "KUBECONFIG is not set: run `make e2e-up` and `source e2e/.state/env`, or point it at a \
         cluster prepared like e2e/cluster/bootstrap.yaml with contexts admin, alice and bob"
    )]
    NoKubeconfig,
    #[error("cannot read the kubeconfig named by KUBECONFIG: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error(
        "kubeconfig context {context:?} is unusable (the suite needs admin, alice and bob): {source}"
    )]
    Context {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a Kubernetes client for {who}: {source}")]
    Client {
        who: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "neither {CTL_ENV} nor {CTL_ENV_FALLBACK} is set: the suite cannot stop and start \
         iddecorator (source e2e/.state/env, or set {CTL_ENV} to a command taking start|stop)"
    )]
    NoIddecoratorCtl,
    #[error("`{command} {action}` failed ({status}); its output:\n{output}")]
    IddecoratorCtl {
        command: String,
        action: &'static str,
        status: String,
        output: String,
    },
}

/// Clients for the three contexts the suite needs.
pub struct Bed {
    pub admin: Client,
    pub alice: Client,
    pub bob: Client,
    kubeconfig: Kubeconfig,
}

impl Bed {
    /// Connect as admin, alice and bob using the kubeconfig named by `KUBECONFIG`.
    pub async fn connect() -> Result<Bed, BedError> {
        // kube's rustls backend needs a process-wide provider; a second install is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if std::env::var_os("KUBECONFIG").is_none() {
            return Err(BedError::NoKubeconfig);
        }
        let kubeconfig = Kubeconfig::read().map_err(BedError::Kubeconfig)?;
        let client = |ctx| client_for(&kubeconfig, ctx, None);
        Ok(Bed {
            admin: client("admin").await?,
            alice: client("alice").await?,
            bob: client("bob").await?,
            kubeconfig: kubeconfig.clone(),
        })
    }

    /// A client acting as `user` (admin impersonating it), e.g. a controller's service account.
    pub async fn impersonating(&self, user: &str) -> Result<Client, BedError> {
        client_for(&self.kubeconfig, "admin", Some(user)).await
    }

    /// Stop iddecorator (its webhook registrations stay) or start it and wait until it serves.
    pub async fn iddecorator(&self, action: IddecoratorAction) -> Result<(), BedError> {
        let command = std::env::var(CTL_ENV)
            .or_else(|_| std::env::var(CTL_ENV_FALLBACK))
            .map_err(|_| BedError::NoIddecoratorCtl)?;
        let mut words = command.split_whitespace();
        let program = words.next().ok_or(BedError::NoIddecoratorCtl)?;
        let action = action.as_str();
        let ctl_error = |status: String, output: String| BedError::IddecoratorCtl {
            command: command.clone(),
            action,
            status,
            output,
        };
        let run = Command::new(program)
            .args(words)
            .arg(action)
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(CTL_TIMEOUT, run)
            .await
            .map_err(|_| {
                ctl_error(
                    format!("timed out after {}s", CTL_TIMEOUT.as_secs()),
                    String::new(),
                )
            })?
            .map_err(|e| ctl_error(format!("cannot run it: {e}"), String::new()))?;
        if out.status.success() {
            return Ok(());
        }
        let output = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        Err(ctl_error(out.status.to_string(), output))
    }
}

#[derive(Debug, Clone, Copy)]
pub enum IddecoratorAction {
    Start,
    Stop,
}

impl IddecoratorAction {
    fn as_str(self) -> &'static str {
        match self {
            IddecoratorAction::Start => "start",
            IddecoratorAction::Stop => "stop",
        }
    }
}

async fn client_for(
    kubeconfig: &Kubeconfig,
    context: &str,
    impersonate: Option<&str>,
) -> Result<Client, BedError> {
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..Default::default()
    };
    let mut config = Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
        .await
        .map_err(|source| BedError::Context {
            context: context.to_owned(),
            source,
        })?;
    config.read_timeout = Some(READ_TIMEOUT);
    config.auth_info.impersonate = impersonate.map(str::to_owned);
    let who = impersonate.unwrap_or(context).to_owned();
    Client::try_from(config).map_err(|source| BedError::Client { who, source })
}
