//! Launching token-service processes against the beds, and talking to them over HTTPS.
//!
//! [`Options`] holds what tests vary (served namespaces, ledger namespace, extra config keys,
//! rate limits); [`Options::prepare`] writes the TLS files and config once, so a test can point a
//! client at a service that is not up yet, or kill a process and start another on the same
//! address and ledger. Processes are killed when their [`Service`] is dropped.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject as _;

use crate::hadoop::{Cluster, e2e_dir, show};

const START_TIMEOUT: Duration = Duration::from_secs(120);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds one of the workspace's binaries (debug) and returns its path.
pub fn binary(package: &str) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            package,
            "--bin",
            package,
            "--message-format=short",
        ])
        .current_dir(e2e_dir().join(".."))
        .output()
        .unwrap_or_else(|e| panic!("run cargo build -p {package}: {e}"));
    assert!(
        out.status.success(),
        "building {package} failed:\n{}",
        show(&out)
    );
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join("../target"))
        .join("debug")
        .join(package)
}

/// Set to a token-service binary to run the suite against it instead of this tree's (e.g. one
/// built from an older commit, to show an attack succeeding before its fix).
pub const BINARY_ENV: &str = "K2H_E2E_TOKEN_SERVICE_BIN";

fn service_binary() -> PathBuf {
    std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| binary("token-service"))
}

/// Waits for the started process `what` (e.g. `init-fetcher`) without blocking the runtime;
/// kills it and fails the test after `timeout`.
pub async fn wait_output(child: Child, what: &str, timeout: Duration) -> Output {
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(timeout, waiting).await {
        Ok(joined) => joined
            .expect("the waiting thread")
            .unwrap_or_else(|e| panic!("wait for {what}: {e}")),
        Err(_) => {
            // Our own child: end it by pid so the test does not leave it behind.
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("{what} still running after {}s", timeout.as_secs())
        }
    }
}

pub fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").unwrap_or_else(|| {
        panic!("KUBECONFIG is not set: run `make e2e-up` and `source e2e/.state/env`")
    }))
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<_> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A TLS client (ring provider, safe defaults) trusting only `roots`.
pub fn client_tls(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// What a test chooses about its token-service.
#[derive(Debug, Clone)]
pub struct Options {
    namespaces: Vec<String>,
    ledger_namespace: String,
    extra_config: serde_json::Map<String, serde_json::Value>,
    pod_rate: Option<(u32, u32)>,
    replica_prefix: Option<String>,
    on_node: bool,
    hdfs_for_pods: bool,
}

impl Options {
    /// Serves `namespaces` (by name) and keeps its ledger in `ledger_namespace`, which the test
    /// owns (see [`crate::ledger::LedgerNamespace`]).
    pub fn new(namespaces: &[&str], ledger_namespace: &str) -> Options {
        Options {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            ledger_namespace: ledger_namespace.to_owned(),
            extra_config: serde_json::Map::new(),
            pod_rate: None,
            replica_prefix: None,
            on_node: false,
            hdfs_for_pods: false,
        }
    }

    /// Adds a top-level key to the config file (e.g. `ledgerPeriodSeconds`).
    pub fn config(mut self, key: &str, value: serde_json::Value) -> Options {
        self.extra_config.insert(key.to_owned(), value);
        self
    }

    /// `--pod-rate` and `--pod-burst`.
    pub fn pod_rate(mut self, rate: u32, burst: u32) -> Options {
        self.pod_rate = Some((rate, burst));
        self
    }

    /// Process `n` gets `--replica-id <prefix>-<n>`.
    pub fn replica_ids(mut self, prefix: &str) -> Options {
        self.replica_prefix = Some(prefix.to_owned());
        self
    }

    /// Serves where the real node's pods reach the bed's token service (what the bed's
    /// injection names): the bridge address, port 8443, the bed's certificate for it.
    pub fn on_node(mut self) -> Options {
        self.on_node = true;
        self
    }

    /// Names HDFS tokens after the NameNode as the real node's pods reach it (the bed's
    /// `pod_namenode_rpc`), so a client in a pod selects them; clients on this machine, which
    /// reach it at 127.0.0.1, then do not.
    pub fn hdfs_for_pods(mut self) -> Options {
        self.hdfs_for_pods = true;
        self
    }

    /// Writes a self-signed certificate (its own CA) and the config for `cluster` and the LDAP
    /// bed, picks a free port and builds the binary; starts nothing.
    pub fn prepare(self, cluster: &Cluster) -> Launcher {
        let ldap = crate::ldap::env();
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (addr, tls) = if self.on_node {
            let node = crate::pods::RealNode::from_env();
            let pki = crate::hadoop::state_dir().join("pki");
            std::fs::copy(pki.join("token-service-node.crt"), &cert).expect("node cert");
            std::fs::copy(pki.join("token-service-node.key"), &key_file).expect("node key");
            let ca = std::fs::read(pki.join("ca.crt")).expect("the bed's CA");
            let mut roots = rustls::RootCertStore::empty();
            for der in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
                roots.add(der.expect("CA PEM")).expect("trust the bed's CA");
            }
            std::fs::copy(pki.join("ca.crt"), dir.path().join("ca.crt")).expect("copy CA");
            (node.token_service, client_tls(roots))
        } else {
            let key =
                rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("rcgen");
            std::fs::write(&cert, key.cert.pem()).expect("write cert");
            std::fs::write(&key_file, key.signing_key.serialize_pem()).expect("write key");
            let mut roots = rustls::RootCertStore::empty();
            roots.add(key.cert.der().clone()).expect("trust our cert");
            std::fs::copy(&cert, dir.path().join("ca.crt")).expect("copy CA");
            (
                SocketAddr::from(([127, 0, 0, 1], free_port())),
                client_tls(roots),
            )
        };
        let pod_rpc =
            if self.hdfs_for_pods {
                let rpc = cluster.pod_namenode_rpc.clone();
                Some(rpc.expect(
                    "the Hadoop bed has no pod_namenode_rpc: start it with the real node up",
                ))
            } else {
                None
            };
        let nameservices: Vec<_> = cluster
            .nameservices
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                serde_json::json!({
                    "name": ns.name.clone().unwrap_or_else(|| format!("nn{i}")),
                    "namenodes": ns.namenodes.iter()
                        .map(|nn| {
                            let rpc = match (&pod_rpc, i) {
                                (Some(rpc), 0) => rpc.clone(),
                                _ => nn.rpc.clone(),
                            };
                            serde_json::json!({"http": nn.http, "rpc": rpc})
                        })
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut config = serde_json::json!({
            "nameservices": nameservices,
            "kerberos": {
                "principal": cluster.service_principal,
                "keytab": cluster.service_keytab,
                "krb5Conf": cluster.krb5_conf,
            },
            "ldap": crate::ldap::service_config(&ldap),
            // The suites prove both ways of identifying a pod.
            "identityModes": ["sa-token", "ip"],
        });
        if let Some(map) = config.as_object_mut() {
            map.extend(self.extra_config.clone());
        }
        // JSON is YAML.
        let config_file = dir.path().join("config.yaml");
        std::fs::write(&config_file, config.to_string()).expect("write config");
        Launcher {
            addr,
            ca: dir.path().join("ca.crt"),
            audit: dir.path().join("audit.log"),
            config: config_file,
            cert,
            key: key_file,
            tls,
            binary: service_binary(),
            options: self,
            dir,
        }
    }
}

/// Everything a token-service process needs; processes are started (and restarted) from it.
pub struct Launcher {
    pub addr: SocketAddr,
    ca: PathBuf,
    audit: PathBuf,
    config: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    binary: PathBuf,
    options: Options,
    dir: tempfile::TempDir,
}

impl Launcher {
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The CA the service's certificate verifies with (the certificate itself, or the bed's CA
    /// for [`Options::on_node`]).
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }

    pub fn log_file(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("service-{n}.log"))
    }

    /// Starts process number `n` without waiting for it (a client's retries cover warm-up).
    pub fn spawn(&self, n: usize) -> Service {
        self.spawn_via(n, &kubeconfig())
    }

    /// Starts process number `n` and waits until it answers `/readyz`.
    pub async fn start(&self, n: usize) -> Service {
        let mut service = self.spawn(n);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "token-service exited ({status}) at start:\n{}",
                    service.log_tail(40)
                );
            }
            if let Ok(answer) = self.request("GET", "/readyz", None, None, false).await
                && answer.status == 200
            {
                return service;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "token-service not ready after {}s:\n{}",
                START_TIMEOUT.as_secs(),
                service.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// One HTTPS request over a connection whose source address is `from` (any when `None`).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        from: Option<IpAddr>,
        bearer: Option<&str>,
        json: bool,
    ) -> Result<Answer, String> {
        let exchange = async {
            let tcp = match from {
                Some(ip) => crate::pods::connect_from(ip, self.addr)
                    .await
                    .map_err(|e| format!("connect from {ip}: {e}"))?,
                None => tokio::net::TcpStream::connect(self.addr)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
            let name = ServerName::IpAddress(self.addr.ip().into());
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let mut req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, self.addr.to_string());
            if let Some(token) = bearer {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            if json {
                req = req.header(hyper::header::ACCEPT, "application/json");
            }
            let req = req
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// The service's audit log (shared by every process started here), one JSON value a line.
    pub fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// What the service answered.
pub struct Answer {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The machine-readable `error` of a refusal, empty otherwise.
    pub fn code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn text(&self) -> String {
        format!(
            "HTTP {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// A running token-service process, killed when dropped.
pub struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log, n)
    }

    /// Kills the process without warning (as a crash or an evicted pod would end).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Launcher {
    /// Like [`Launcher::spawn`], but the process reaches the API server through `kubeconfig`
    /// (e.g. one whose server is a balancer the test can cut).
    pub fn spawn_via(&self, n: usize, kubeconfig: &Path) -> Service {
        let o = &self.options;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--tls-cert-file")
            .arg(&self.cert)
            .arg("--tls-key-file")
            .arg(&self.key)
            // The bed's stamp key, which iddecorator signs with (e2e/scripts/pki.sh); by
            // environment, which a binary from before the stamp ignores (BINARY_ENV).
            .env(
                "TOKEN_SERVICE_STAMP_KEY_FILE",
                crate::hadoop::state_dir().join("pki/stamp.key"),
            )
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--kube-context", "admin"])
            .arg("--namespace-selector")
            .arg(format!(
                "kubernetes.io/metadata.name in ({})",
                o.namespaces.join(",")
            ))
            .args(["--ledger-namespace", &o.ledger_namespace])
            .arg("--audit-log")
            .arg(&self.audit);
        if let Some(prefix) = &o.replica_prefix {
            cmd.args(["--replica-id", &format!("{prefix}-{n}")]);
        }
        if let Some((rate, burst)) = o.pod_rate {
            cmd.args(["--pod-rate", &rate.to_string()])
                .args(["--pod-burst", &burst.to_string()]);
        }
        let log = self.log_file(n);
        let child = cmd
            .env("RUST_LOG", "info,token_service=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("service log"))
            .spawn()
            .expect("start token-service");
        Service { child, log }
    }
}

impl Service {
    /// Whether the process is still the one started (it has not exited or been restarted).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}
