//! Stopping and starting pieces of the bed for the fault tests: control-plane components
//! (`e2e/scripts/restart.sh`), slapd (`e2e/scripts/ldap-ctl.sh`), iddecorator replicas run by
//! the test itself, and a kubeconfig that reaches the API server through a [`Balancer`] the
//! test can cut.
//!
//! [`Balancer`]: crate::balancer::Balancer

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::hadoop::{e2e_dir, show};

/// A component as `e2e/scripts/restart.sh` names it.
#[derive(Debug, Clone, Copy)]
pub enum Component {
    KubeApiserver,
}

impl Component {
    fn name(self) -> &'static str {
        match self {
            Component::KubeApiserver => "kube-apiserver",
        }
    }
}

/// Runs a bed script with `args`; a failure ends the test with the script's output.
fn run(script: &str, args: &[&str]) {
    let path = e2e_dir().join("scripts").join(script);
    let out = Command::new(&path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{}",
        path.display(),
        show(&out)
    );
}

/// Stops a control-plane component of the bed named by `K2H_E2E_STATE_DIR`.
pub fn stop(component: Component) {
    run("restart.sh", &["stop", component.name()]);
}

/// Starts it again with the flags, ports and data it had, and waits until it is healthy.
pub fn start(component: Component) {
    run("restart.sh", &["start", component.name()]);
}

/// Stops slapd, keeping its URL, data and bind password.
pub fn ldap_stop() {
    run("ldap-ctl.sh", &["stop"]);
}

/// Starts slapd again on the same URL and waits until it answers.
pub fn ldap_start() {
    run("ldap-ctl.sh", &["start"]);
}

/// The pid slapd runs under (to pause it with SIGSTOP, as a hung directory).
pub fn ldap_pid() -> u32 {
    let dir = state_dir().join("ldap/slapd.pid");
    std::fs::read_to_string(&dir)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no slapd pid in {}", dir.display()))
}

/// Sends `signal` (e.g. `TERM`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, signal: &str) {
    let out = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(out.status.success(), "kill -{signal} {pid}: {}", show(&out));
}

/// The bed's state directory (`K2H_E2E_STATE`, written by up.sh's env file).
pub fn state_dir() -> PathBuf {
    std::env::var_os("K2H_E2E_STATE")
        .or_else(|| std::env::var_os("K2H_E2E_STATE_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join(".state"))
}

/// An environment variable up.sh's env file sets.
pub fn bed_env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: source the bed's env file (make e2e-up)"))
}

/// Writes a copy of the admin kubeconfig whose server is `server` (a balancer in front of the
/// API server) and returns its path under `dir`.
pub fn kubeconfig_via(dir: &Path, server: SocketAddr) -> PathBuf {
    let original = crate::token_service::kubeconfig();
    let text = std::fs::read_to_string(&original)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", original.display()));
    let apiserver = bed_env("K2H_E2E_APISERVER");
    assert!(
        text.contains(&apiserver),
        "{} does not name the API server {apiserver}",
        original.display()
    );
    let path = dir.join("kubeconfig-via-balancer");
    std::fs::write(
        &path,
        text.replace(&apiserver, &format!("https://{server}")),
    )
    .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// An iddecorator process started by a test, as one replica of a Deployment would run.
pub struct Replica {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

/// How long a replica may take to exit after SIGTERM (its grace period plus slack).
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

impl Replica {
    /// Starts `binary` on `addr` with the bed's certificate and policy; appends to `log`.
    pub fn spawn(binary: &Path, addr: SocketAddr, log: &Path) -> Replica {
        let pki = PathBuf::from(bed_env("K2H_E2E_PKI"));
        // As iddecorator.sh: a policy written into the bed wins, else the built-in defaults.
        let policy = [
            state_dir().join("iddecorator-policy.yaml"),
            e2e_dir().join("cluster/iddecorator-policy.yaml"),
        ]
        .into_iter()
        .find(|p| p.exists());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let mut cmd = Command::new(binary);
        if let Some(policy) = policy {
            cmd.arg("--config").arg(policy);
        }
        let child = cmd
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--tls-cert-file")
            .arg(pki.join("iddecorator.crt"))
            .arg("--tls-key-file")
            .arg(pki.join("iddecorator.key"))
            .arg("--stamp-key-file")
            .arg(pki.join("stamp.key"))
            .args(["--log-format", "json", "--shutdown-grace", "10s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Replica {
            child,
            addr,
            log: log.to_owned(),
        }
    }

    /// `Err` with the end of its log if the process has exited.
    pub fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            other => Err(format!(
                "iddecorator on {} exited ({other:?}):\n{}",
                self.addr,
                crate::token_service::tail(&self.log, 20)
            )),
        }
    }

    /// SIGTERM (what the kubelet sends after preStop), then waits for the exit; returns how it
    /// ended.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = tokio::time::Instant::now() + EXIT_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => panic!(
                    "iddecorator on {} did not exit within {}s of SIGTERM:\n{}",
                    self.addr,
                    EXIT_TIMEOUT.as_secs(),
                    crate::token_service::tail(&self.log, 20)
                ),
            }
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
