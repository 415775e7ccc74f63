//! The token ledger against the real beds: renewal, re-issue before the max lifetime, a killed
//! and restarted service that loses nothing, and cancellation when the workload is deleted.
//!
//! Needs the local control plane (`make e2e-up`, `source e2e/.state/env`) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). It starts its own PRIVATE Kerberized
//! HDFS (`K2H_HADOOP_STATE=e2e/.state/hadoop-lifecycle`) with a 20 s renew interval and a 60 s
//! max lifetime, so nobody else's tokens live that short, and stops it at the end. The ledger
//! and its Lease live in their own namespace, so token services of other suites never act on
//! these tokens (nor this one on theirs).
//!
//! One Deployment walks the whole life, about 90 s:
//! issue → renewed past the first 20 s (client still works, NameNode logged renewDelegationToken)
//! → service killed and restarted → re-issued before 60 s (new sequence number in the ledger, old
//! set cancelled, the new file works past the first token's max date, exactly two
//! getDelegationToken calls in all) → Deployment deleted → token refused ("can't be found in
//! cache") and the ledger Secret gone.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use e2e::objects::{self};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use rustls_pki_types::ServerName;
use serde::Deserialize;

const RENEW_INTERVAL_MS: &str = "20000";
const MAX_LIFETIME_MS: u64 = 60_000;
const LEDGER_NAMESPACE: &str = "k2h-lifecycle";
const START_TIMEOUT: Duration = Duration::from_secs(120);
const POD_TIMEOUT: Duration = Duration::from_secs(90);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Renewal at 18 s, re-issue at about 54 s after the issue: generous, still bounded.
const LIFE_TIMEOUT: Duration = Duration::from_secs(90);
const CANCEL_TIMEOUT: Duration = Duration::from_secs(60);

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn hadoop_state() -> PathBuf {
    e2e_dir().join(".state/hadoop-lifecycle")
}

#[derive(Debug, Deserialize)]
struct Cluster {
    service_principal: String,
    service_keytab: PathBuf,
    krb5_conf: PathBuf,
    nameservices: Vec<NameService>,
    hadoop_conf_dir: PathBuf,
    audit_log: PathBuf,
}

#[derive(Debug, Deserialize)]
struct NameService {
    name: Option<String>,
    namenodes: Vec<NameNodeJson>,
}

#[derive(Debug, Deserialize)]
struct NameNodeJson {
    rpc: String,
    http: String,
}

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs a bed script (with the private Hadoop state) and returns its stdout.
fn script(name: &str, args: &[&str]) -> String {
    let path = e2e_dir().join("scripts").join(name);
    let out = Command::new(&path)
        .args(args)
        .env("K2H_HADOOP_STATE", hadoop_state())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed (e2e/scripts/install-deps.sh installs what it needs):\n{}",
        path.display(),
        show(&out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The private short-lived HDFS, stopped when dropped.
struct HadoopBed(Cluster);

impl HadoopBed {
    fn up() -> HadoopBed {
        let path = PathBuf::from(script(
            "hadoop-up.sh",
            &[
                "--renew-interval-ms",
                RENEW_INTERVAL_MS,
                "--max-lifetime-ms",
                &MAX_LIFETIME_MS.to_string(),
            ],
        ));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        HadoopBed(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not a cluster.json: {e}", path.display())),
        )
    }

    fn audit(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.0.audit_log).unwrap_or_default()).into_owned()
    }

    fn count(&self, cmd: &str) -> usize {
        self.audit()
            .lines()
            .filter(|l| l.contains(&format!("cmd={cmd}\t")) || l.contains(&format!("cmd={cmd} ")))
            .count()
    }

    fn ls(&self, token_file: &Path) -> Output {
        let script = e2e_dir().join("scripts/hadoop-client.sh");
        Command::new(&script)
            .args(["ls", "/user/alice"])
            .env("K2H_HADOOP_STATE", hadoop_state())
            .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
            .env("HADOOP_CONF_DIR", &self.0.hadoop_conf_dir)
            .env("KRB5_CONFIG", &self.0.krb5_conf)
            .env_remove("KRB5_CLIENT_KTNAME")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
    }
}

impl Drop for HadoopBed {
    fn drop(&mut self) {
        let _ = Command::new(e2e_dir().join("scripts/hadoop-down.sh"))
            .env("K2H_HADOOP_STATE", hadoop_state())
            .output();
    }
}

fn ldap_bed() -> HashMap<String, String> {
    let env_file = PathBuf::from(script("ldap-up.sh", &[]));
    std::fs::read_to_string(&env_file)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", env_file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn kubeconfig() -> PathBuf {
    PathBuf::from(std::env::var_os("KUBECONFIG").unwrap_or_else(|| {
        panic!("KUBECONFIG is not set: run `make e2e-up` and `source e2e/.state/env`")
    }))
}

fn binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "-p", "token-service", "--bin", "token-service"])
        .current_dir(e2e_dir().join(".."))
        .output()
        .expect("run cargo build -p token-service");
    assert!(
        out.status.success(),
        "building token-service failed:\n{}",
        show(&out)
    );
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join("../target"))
        .join("debug/token-service")
}

/// Everything a token-service process needs; processes are started and killed from it.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    audit: PathBuf,
    binary: PathBuf,
}

impl Setup {
    fn new(cluster: &Cluster) -> Setup {
        let ldap = ldap_bed();
        let dir = tempfile::tempdir().expect("temp dir");
        let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("rcgen");
        let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert_file, key.cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.signing_key.serialize_pem()).expect("write key");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(key.cert.der().clone()).expect("trust our cert");
        let tls = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
        );
        let nameservices: Vec<_> = cluster
            .nameservices
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                serde_json::json!({
                    "name": ns.name.clone().unwrap_or_else(|| format!("nn{i}")),
                    "namenodes": ns.namenodes.iter()
                        .map(|nn| serde_json::json!({"http": nn.http, "rpc": nn.rpc}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let config = serde_json::json!({
            "nameservices": nameservices,
            "kerberos": {
                "principal": cluster.service_principal,
                "keytab": cluster.service_keytab,
                "krb5Conf": cluster.krb5_conf,
            },
            "ldap": {
                "url": ldap["K2H_LDAP_URL"],
                "bindDn": ldap["K2H_LDAP_BIND_DN"],
                "bindPasswordFile": ldap["K2H_LDAP_BIND_PASSWORD_FILE"],
                "baseDn": format!("ou=people,{}", ldap["K2H_LDAP_BASE_DN"]),
                "groupBaseDn": format!("ou=groups,{}", ldap["K2H_LDAP_BASE_DN"]),
                "allowedGroup": "hadoop-users",
            },
            "ledgerNamespace": LEDGER_NAMESPACE,
            "ledgerPeriodSeconds": 1,
            "leaseDurationSeconds": 6,
            "leaseRenewDeadlineSeconds": 4,
        });
        let config_file = dir.path().join("config.yaml");
        std::fs::write(&config_file, config.to_string()).expect("write config");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        Setup {
            audit: dir.path().join("audit.log"),
            dir,
            config: config_file,
            cert: cert_file,
            key: key_file,
            tls,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            binary: binary(),
        }
    }

    fn log(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("service-{n}.log"))
    }

    /// Starts process number `n` and waits until it is ready.
    async fn start(&self, n: usize) -> Service {
        let child = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--tls-cert-file")
            .arg(&self.cert)
            .arg("--tls-key-file")
            .arg(&self.key)
            .arg("--kubeconfig")
            .arg(kubeconfig())
            .args(["--kube-context", "admin"])
            .args(["--namespace-selector", "kubernetes.io/metadata.name=team-a"])
            .args(["--replica-id", &format!("lifecycle-{n}")])
            .arg("--audit-log")
            .arg(&self.audit)
            .args(["--pod-rate", "600", "--pod-burst", "50"])
            .env("RUST_LOG", "info,token_service=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log(n)).expect("service log"))
            .spawn()
            .expect("start token-service");
        let mut service = Service {
            child,
            log: self.log(n),
        };
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "token-service exited ({status}) at start:\n{}",
                    service.log_tail()
                );
            }
            if let Ok((200, _)) = self.request("GET", "/readyz", None).await {
                return service;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "token-service not ready after {}s:\n{}",
                START_TIMEOUT.as_secs(),
                service.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// One HTTPS request, from `from` (a pod's loopback IP) when given.
    async fn request(
        &self,
        method: &str,
        path: &str,
        from: Option<IpAddr>,
    ) -> Result<(u16, Bytes), String> {
        let exchange = async {
            let tcp = match from {
                Some(ip) => e2e::pods::connect_from(ip, self.addr).await,
                None => tokio::net::TcpStream::connect(self.addr).await,
            }
            .map_err(|e| e.to_string())?;
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
            let req = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, self.addr.to_string())
                .body(Full::new(Bytes::new()))
                .map_err(|e| e.to_string())?;
            let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
    }

    /// The credentials file for the pod at `ip`.
    async fn credentials(&self, ip: IpAddr) -> Result<Bytes, Error> {
        let (status, body) = self
            .request("POST", "/v1/credentials", Some(ip))
            .await
            .map_err(Error::Check)?;
        ensure(status == 200, || {
            format!(
                "credentials for the pod at {ip}: HTTP {status} {}",
                String::from_utf8_lossy(&body)
            )
        })?;
        Ok(body)
    }

    fn audit_outcomes(&self) -> Vec<String> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["outcome"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// A token-service process, killed when dropped.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// SIGKILL: no chance to tidy up, as a crash or an evicted pod.
    fn kill(mut self) {
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

/// The ledger record of `deployment`, if its Secret exists.
async fn ledger_record(bed: &Bed, deployment: &str) -> Result<Option<serde_json::Value>, Error> {
    let secrets: Api<Secret> = Api::namespaced(bed.admin.clone(), LEDGER_NAMESPACE);
    let list = secrets
        .list(
            &ListParams::default().labels("app.kubernetes.io/managed-by=kube2hadoop-token-service"),
        )
        .await
        .step("listing the ledger Secrets")?;
    let wanted = format!("Deployment {NAMESPACE}/{deployment}");
    Ok(list
        .items
        .into_iter()
        .find(|s| {
            s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kube2hadoop.io/workload"))
                == Some(&wanted)
        })
        .and_then(|s| s.data?.get("record.json").cloned())
        .and_then(|b| serde_json::from_slice(&b.0).ok()))
}

/// Waits until the record satisfies `ready`, and returns it.
async fn wait_record(
    bed: &Bed,
    deployment: &str,
    what: &str,
    timeout: Duration,
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Result<serde_json::Value, Error> {
    until(what, timeout, || async {
        Ok::<_, Error>(match ledger_record(bed, deployment).await? {
            Some(r) if ready(&r) => Poll::Ready(r),
            Some(r) => Poll::Pending(format!(
                "renewals {}, reissues {}, last error {}",
                r["renewals"], r["reissues"], r["last_error"]
            )),
            None => Poll::Pending("no ledger Secret".into()),
        })
    })
    .await
}

fn sequence(record: &serde_json::Value) -> i64 {
    record["tokens"][0]["sequence_number"]
        .as_i64()
        .unwrap_or(-1)
}

async fn ensure_namespace(bed: &Bed) -> Result<(), Error> {
    let api: Api<Namespace> = Api::all(bed.admin.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(LEDGER_NAMESPACE.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    match api.create(&PostParams::default(), &ns).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).step("creating the ledger namespace"),
    }
}

async fn first_running_pod_ip(bed: &Bed, id: &TestId) -> Result<IpAddr, Error> {
    let api: Api<Pod> = Api::namespaced(bed.admin.clone(), NAMESPACE);
    let lp = ListParams::default().labels(&id.selector());
    until("a running pod of the Deployment", POD_TIMEOUT, || {
        let (api, lp) = (api.clone(), lp.clone());
        async move {
            let pods = api.list(&lp).await.step("listing the test's pods")?.items;
            let ip = pods.iter().find_map(|p| {
                let s = p.status.as_ref()?;
                (s.phase.as_deref() == Some("Running") && p.metadata.deletion_timestamp.is_none())
                    .then_some(())?;
                s.pod_ip.as_deref()?.parse::<IpAddr>().ok()
            });
            Ok::<_, Error>(match ip {
                Some(ip) => Poll::Ready(ip),
                None => Poll::Pending(format!("{} pods, none running", pods.len())),
            })
        }
    })
    .await
}

fn write_token(dir: &Path, name: &str, file: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, file).expect("write the credentials file");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_reissued_survive_a_restart_and_are_cancelled_with_the_workload() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let hadoop = HadoopBed::up();
    ensure_namespace(&bed).await.expect("ledger namespace");
    let setup = Setup::new(&hadoop.0);
    let mut service = Some(setup.start(1).await);
    let id = TestId::new("lc");
    let files = tempfile::tempdir().expect("temp dir");
    let result = async {
        let granted_before = hadoop.count("getDelegationToken");
        Api::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(&id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let ip = first_running_pod_ip(&bed, &id).await?;
        let first = setup.credentials(ip).await?;
        let f1 = write_token(files.path(), "first", &first);
        let ls = hadoop.ls(&f1);
        ensure(ls.status.success(), || format!("hadoop ls with the first file:\n{}", show(&ls)))?;
        let issued = ledger_record(&bed, id.name())
            .await?
            .ok_or_else(|| Error::Check("no ledger Secret after the first request".into()))?;
        let (seq1, issued_at) = (sequence(&issued), issued["issued_at_ms"].as_u64().unwrap_or(0));

        // Renewed at 90 % of the 20 s window, by the first process.
        let renewed = wait_record(&bed, id.name(), "a renewal", LIFE_TIMEOUT, |r| {
            r["renewals"].as_u64() >= Some(1)
        })
        .await?;
        ensure(sequence(&renewed) == seq1, || "renewal changed the token".into())?;

        // Killed without warning, started again: the ledger is all it knows.
        if let Some(s) = service.take() {
            s.kill();
        }
        service = Some(setup.start(2).await);

        // Past the original renew interval the first file still works: it was renewed.
        let interval_end = issued_at + 20_000;
        let now = now_ms();
        if now < interval_end + 1_000 {
            tokio::time::sleep(Duration::from_millis(interval_end + 1_000 - now)).await;
        }
        let ls = hadoop.ls(&f1);
        ensure(ls.status.success(), || {
            format!("hadoop ls past the first renew interval:\n{}", show(&ls))
        })?;
        ensure(hadoop.count("renewDelegationToken") >= 2, || {
            "the NameNode audit log shows no renewDelegationToken by the ledger".into()
        })?;

        // Re-issued before the 60 s max lifetime, by the restarted process.
        let reissued = wait_record(&bed, id.name(), "a re-issue", LIFE_TIMEOUT, |r| {
            r["reissues"].as_u64() >= Some(1)
        })
        .await?;
        let seq2 = sequence(&reissued);
        ensure(seq2 != seq1, || format!("re-issue kept sequence number {seq1}"))?;
        let second = setup.credentials(ip).await?;
        ensure(second != first, || "the service still serves the first file".into())?;
        let f2 = write_token(files.path(), "second", &second);
        let first_max = issued_at + MAX_LIFETIME_MS;
        let now = now_ms();
        if now < first_max + 1_000 {
            tokio::time::sleep(Duration::from_millis(first_max + 1_000 - now)).await;
        }
        let ls = hadoop.ls(&f2);
        ensure(ls.status.success(), || {
            format!("hadoop ls with the re-issued file past the first max date:\n{}", show(&ls))
        })?;
        let grants = hadoop.count("getDelegationToken") - granted_before;
        ensure(grants == 2, || {
            format!("the NameNode issued {grants} token sets, expected 2 (issue, re-issue): a restart must not add any")
        })?;

        // The Deployment goes: its tokens are cancelled and its ledger entry removed.
        Api::<Deployment>::namespaced(bed.alice.clone(), NAMESPACE)
            .delete(id.name(), &DeleteParams::background())
            .await
            .step("alice deletes the Deployment")?;
        until("the ledger Secret to go", CANCEL_TIMEOUT, || async {
            Ok::<_, Error>(match ledger_record(&bed, id.name()).await? {
                None => Poll::Ready(()),
                Some(r) => Poll::Pending(format!("still there, last error {}", r["last_error"])),
            })
        })
        .await?;
        let ls = hadoop.ls(&f2);
        let said = show(&ls);
        ensure(!ls.status.success() && said.contains("can't be found in cache"), || {
            format!("hadoop ls after the Deployment was deleted should be refused:\n{said}")
        })?;
        let outcomes = setup.audit_outcomes();
        for wanted in ["issued", "renewed", "reissued", "cancelled"] {
            ensure(outcomes.iter().any(|o| o == wanted), || {
                format!("no {wanted:?} audit line in {outcomes:?}")
            })?;
        }
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    let tail = service.as_ref().map(Service::log_tail).unwrap_or_default();
    drop(service);
    if let Err(e) = result {
        panic!("token lifecycle: {e}\nservice log:\n{tail}");
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
