//! The token service against the whole bed: the local control plane (`make e2e-up`), the
//! Kerberized HDFS (`e2e/scripts/hadoop-up.sh --kms`, started when not running) and slapd
//! (`e2e/scripts/ldap-up.sh`, started when not running). Each test builds and starts its own
//! token-service process on a free loopback port, serving namespaces team-a and kube2hadoop.
//!
//! Pods get loopback addresses 127.100.x.y from kwok, so "calling from the pod" means binding
//! the client socket to that address.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use e2e::objects::{self, TEST_LABEL};
use e2e::wait::{Poll, until};
use e2e::{Bed, Error, KubeStep, NAMESPACE, TestId, ensure};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use rustls_pki_types::ServerName;
use serde::Deserialize;

const UNSERVED_NAMESPACE: &str = "default";
/// Served, but not covered by iddecorator: its pods carry no user annotation.
const UNDECORATED_NAMESPACE: &str = "kube2hadoop";
const START_TIMEOUT: Duration = Duration::from_secs(120);
const POD_TIMEOUT: Duration = Duration::from_secs(90);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

fn e2e_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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

/// Runs a bed script and returns its stdout; a failure ends the test with the script's words.
fn script(name: &str, args: &[&str]) -> String {
    let path = e2e_dir().join("scripts").join(name);
    let out = Command::new(&path)
        .args(args)
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

fn show(out: &Output) -> String {
    format!(
        "exit {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn hadoop_bed() -> Cluster {
    // Same flags as the other Hadoop tests, so a running bed is reused rather than restarted.
    let path = PathBuf::from(script("hadoop-up.sh", &["--kms"]));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not a cluster.json: {e}", path.display()))
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

/// A running token-service process, killed when dropped.
struct Service {
    child: std::process::Child,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    audit: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "build",
            "-p",
            "token-service",
            "--bin",
            "token-service",
            "--message-format=short",
        ])
        .current_dir(e2e_dir().join(".."))
        .output()
        .expect("run cargo build -p token-service");
    assert!(
        out.status.success(),
        "building token-service failed:\n{}",
        show(&out)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| e2e_dir().join("../target"));
    target.join("debug/token-service")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

async fn start_service() -> Service {
    let cluster = hadoop_bed();
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
    });
    // JSON is YAML.
    let config_file = dir.path().join("config.yaml");
    std::fs::write(&config_file, config.to_string()).expect("write config");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let audit = dir.path().join("audit.log");
    let log = dir.path().join("service.log");
    let child = Command::new(binary())
        .arg("--config")
        .arg(&config_file)
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--tls-cert-file")
        .arg(&cert_file)
        .arg("--tls-key-file")
        .arg(&key_file)
        .arg("--kubeconfig")
        .arg(kubeconfig())
        .args(["--kube-context", "admin"])
        .args([
            "--namespace-selector",
            "kubernetes.io/metadata.name in (team-a,kube2hadoop)",
        ])
        .arg("--audit-log")
        .arg(&audit)
        .args(["--pod-rate", "600", "--pod-burst", "50"])
        .env("RUST_LOG", "info,token_service=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("service log"))
        .spawn()
        .expect("start token-service");
    let mut service = Service {
        child,
        addr,
        tls,
        audit,
        log,
        _dir: dir,
    };
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = service.child.try_wait() {
            panic!(
                "token-service exited ({status}) at start:\n{}",
                service.log_text()
            );
        }
        if let Ok((200, _, _)) = service.request("GET", "/readyz", None, None, false).await {
            return service;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "token-service not ready after {}s:\n{}",
            START_TIMEOUT.as_secs(),
            service.log_text()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// What the service answered.
struct Answer {
    status: u16,
    headers: hyper::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    fn text(&self) -> String {
        format!(
            "HTTP {} {}",
            self.status,
            String::from_utf8_lossy(&self.body)
        )
    }
}

impl Service {
    fn log_text(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// One HTTPS request over a connection whose source address is `from` (any when `None`).
    async fn request(
        &self,
        method: &str,
        path: &str,
        from: Option<IpAddr>,
        bearer: Option<&str>,
        json: bool,
    ) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
        let exchange = async {
            let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
            if let Some(ip) = from {
                socket
                    .bind(SocketAddr::new(ip, 0))
                    .map_err(|e| format!("bind {ip}: {e}"))?;
            }
            let tcp = socket.connect(self.addr).await.map_err(|e| e.to_string())?;
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
            Ok((parts.status.as_u16(), parts.headers, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {}s", REQUEST_TIMEOUT.as_secs()))?
    }

    async fn credentials(&self, from: Option<IpAddr>, bearer: Option<&str>, json: bool) -> Answer {
        let (status, headers, body) = self
            .request("POST", "/v1/credentials", from, bearer, json)
            .await
            .unwrap_or_else(|e| panic!("POST /v1/credentials failed: {e}\n{}", self.log_text()));
        Answer {
            status,
            headers,
            body,
        }
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Waits until `n` pods labelled for `id` in `namespace` run with an address, and returns them.
async fn running_pods(
    bed: &Bed,
    namespace: &str,
    id: &TestId,
    n: usize,
) -> Result<Vec<Pod>, Error> {
    let api: Api<Pod> = Api::namespaced(bed.admin.clone(), namespace);
    let lp = ListParams::default().labels(&id.selector());
    until(
        &format!("{n} running pods of {}", id.name()),
        POD_TIMEOUT,
        || {
            let (api, lp) = (api.clone(), lp.clone());
            async move {
                let pods = api.list(&lp).await.step("listing the test's pods")?.items;
                let ready: Vec<Pod> = pods
                    .iter()
                    .filter(|p| {
                        let s = p.status.as_ref();
                        s.and_then(|s| s.phase.as_deref()) == Some("Running")
                            && s.and_then(|s| s.pod_ip.as_deref()).is_some()
                            && p.metadata.deletion_timestamp.is_none()
                    })
                    .cloned()
                    .collect();
                Ok::<_, Error>(if ready.len() >= n {
                    Poll::Ready(ready)
                } else {
                    Poll::Pending(format!("{} of {} pods running", ready.len(), pods.len()))
                })
            }
        },
    )
    .await
}

fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("a running pod has an IP")
}

/// A service-account token bound to `pod`, for our audience (what a projected volume holds).
async fn bound_token(bed: &Bed, pod: &Pod) -> Result<String, Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or(NAMESPACE);
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let api: Api<ServiceAccount> = Api::namespaced(bed.admin.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec!["kube2hadoop".into()],
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            expiration_seconds: Some(600),
        },
        ..TokenRequest::default()
    };
    let answer = api
        .create_token_request(&sa, &PostParams::default(), &request)
        .await
        .step("requesting a bound service-account token")?;
    answer
        .status
        .map(|s| s.token)
        .ok_or_else(|| Error::Check("TokenRequest returned no token".into()))
}

fn hadoop_ls(cluster: &Cluster, token_file: &Path, path: &str) -> Output {
    let script = e2e_dir().join("scripts/hadoop-client.sh");
    Command::new(&script)
        .args(["ls", path])
        .env("HADOOP_TOKEN_FILE_LOCATION", token_file)
        .env("HADOOP_CONF_DIR", &cluster.hadoop_conf_dir)
        .env("KRB5_CONFIG", &cluster.krb5_conf)
        .env_remove("KRB5_CLIENT_KTNAME")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()))
}

/// NameNode audit lines since `offset` that issued a delegation token for `user`.
fn token_grants_since(cluster: &Cluster, offset: usize, user: &str) -> usize {
    let text = std::fs::read(&cluster.audit_log).unwrap_or_default();
    String::from_utf8_lossy(&text[offset.min(text.len())..])
        .lines()
        .filter(|l| l.contains("cmd=getDelegationToken") && l.contains(&format!("ugi={user} ")))
        .count()
}

fn audit_size(cluster: &Cluster) -> usize {
    std::fs::metadata(&cluster.audit_log)
        .map(|m| m.len() as usize)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_deployment_gets_one_token_set_by_sa_token_that_a_hadoop_client_uses() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let service = start_service().await;
    let cluster = hadoop_bed();
    let id = TestId::new("ts-sa");
    let result = async {
        let before = audit_size(&cluster);
        let deployments = Api::namespaced(bed.alice.clone(), NAMESPACE);
        deployments
            .create(&PostParams::default(), &objects::deployment(&id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let pods = running_pods(&bed, NAMESPACE, &id, 2).await?;
        let first = service
            .credentials(None, Some(&bound_token(&bed, &pods[0]).await?), true)
            .await;
        ensure(first.status == 200, || {
            format!("first pod: {}\n{}", first.text(), service.log_text())
        })?;
        let v: serde_json::Value = serde_json::from_slice(&first.body).expect("JSON answer");
        ensure(v["user"] == "alice", || format!("issued to {}", v["user"]))?;
        ensure(first.headers.contains_key("x-kube2hadoop-expires"), || {
            "no expiry header".into()
        })?;
        use base64::Engine;
        let file = base64::engine::general_purpose::STANDARD
            .decode(v["file"].as_str().unwrap_or_default())
            .expect("base64 file");

        let second = service
            .credentials(None, Some(&bound_token(&bed, &pods[1]).await?), false)
            .await;
        ensure(second.status == 200, || {
            format!("second pod: {}", second.text())
        })?;
        ensure(
            second
                .headers
                .get(hyper::header::CONTENT_TYPE)
                .map(|v| v.as_bytes())
                == Some(b"application/octet-stream".as_slice()),
            || "the file is served as application/octet-stream".into(),
        )?;
        ensure(second.body.as_ref() == file.as_slice(), || {
            "the second pod of the Deployment got a different token set".into()
        })?;

        let dir = tempfile::tempdir().expect("temp dir");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, &file).expect("write the credentials file");
        let ls = hadoop_ls(&cluster, &token_file, "/user/alice");
        ensure(ls.status.success(), || {
            format!("hadoop ls /user/alice as alice:\n{}", show(&ls))
        })?;
        let grants = token_grants_since(&cluster, before, "alice");
        ensure(grants == 1, || {
            format!("the NameNode issued {grants} tokens for alice's Deployment, expected 1")
        })?;
        let outcomes: Vec<_> = service
            .audit_lines()
            .iter()
            .map(|l| l["outcome"].as_str().unwrap_or_default().to_owned())
            .collect();
        ensure(outcomes == ["issued", "reused"], || {
            format!("audit outcomes {outcomes:?}")
        })?;
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    result.expect("alice's Deployment by service-account token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_by_sa_token_say_why() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let service = start_service().await;
    let id = TestId::new("ts-no");
    let result = async {
        let pods: Api<Pod> = Api::namespaced(bed.bob.clone(), NAMESPACE);
        // bob claims alice in the annotation; iddecorator writes bob.
        pods.create(
            &PostParams::default(),
            &objects::pod(&id, &format!("{}-bob", id.name()), "alice")?,
        )
        .await
        .step("bob creates a pod claiming alice")?;
        let mut run_as = objects::pod(&id, &format!("{}-runas", id.name()), "bob")?;
        run_as
            .metadata
            .annotations
            .get_or_insert_default()
            .insert("kube2hadoop.io/run-as".into(), "svc-etl".into());
        pods.create(&PostParams::default(), &run_as)
            .await
            .step("bob creates a pod running as svc-etl")?;
        for (namespace, suffix) in [
            (UNDECORATED_NAMESPACE, "bare"),
            (UNSERVED_NAMESPACE, "unserved"),
        ] {
            let mut pod = objects::pod(&id, &format!("{}-{suffix}", id.name()), "alice")?;
            pod.metadata.namespace = Some(namespace.into());
            pod.metadata.annotations = None;
            Api::<Pod>::namespaced(bed.admin.clone(), namespace)
                .create(&PostParams::default(), &pod)
                .await
                .step(format!("admin creates a pod in {namespace}"))?;
        }
        let team = running_pods(&bed, NAMESPACE, &id, 2).await?;
        let find = |pods: &[Pod], suffix: &str| {
            pods.iter()
                .find(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.ends_with(suffix))
                })
                .cloned()
                .expect("the pod was created")
        };
        let bob = service
            .credentials(
                None,
                Some(&bound_token(&bed, &find(&team, "-bob")).await?),
                true,
            )
            .await;
        ensure(bob.status == 200, || {
            format!("bob's own pod: {}", bob.text())
        })?;
        let v: serde_json::Value = serde_json::from_slice(&bob.body).expect("JSON");
        ensure(v["user"] == "bob", || {
            format!("bob's pod got tokens for {}", v["user"])
        })?;

        let refused = service
            .credentials(
                None,
                Some(&bound_token(&bed, &find(&team, "-runas")).await?),
                false,
            )
            .await;
        ensure(
            refused.status == 403 && refused.code() == "run_as_refused",
            || format!("bob running as svc-etl: {}", refused.text()),
        )?;

        let bare = running_pods(&bed, UNDECORATED_NAMESPACE, &id, 1).await?;
        let answer = service
            .credentials(None, Some(&bound_token(&bed, &bare[0]).await?), false)
            .await;
        ensure(
            answer.status == 403
                && answer.code() == "no_user_annotation"
                && answer
                    .text()
                    .contains("was it created before iddecorator was installed?"),
            || format!("pod without annotation: {}", answer.text()),
        )?;

        let unserved = running_pods(&bed, UNSERVED_NAMESPACE, &id, 1).await?;
        let answer = service
            .credentials(None, Some(&bound_token(&bed, &unserved[0]).await?), false)
            .await;
        ensure(
            answer.status == 403 && answer.code() == "namespace_not_served",
            || format!("pod in an unserved namespace: {}", answer.text()),
        )?;

        let answer = service.credentials(None, Some("not-a-token"), false).await;
        ensure(answer.status == 401, || {
            format!("garbage token: {}", answer.text())
        })?;
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    for namespace in [UNDECORATED_NAMESPACE, UNSERVED_NAMESPACE] {
        let _ = Api::<Pod>::namespaced(bed.admin.clone(), namespace)
            .delete_collection(
                &kube::api::DeleteParams::background(),
                &ListParams::default().labels(&format!("{TEST_LABEL}={}", id.name())),
            )
            .await;
    }
    result.expect("refusals by service-account token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_identified_by_source_address_and_impostors_refused() {
    let bed = Bed::connect()
        .await
        .expect("the e2e control plane (make e2e-up)");
    let service = start_service().await;
    let id = TestId::new("ts-ip");
    let result = async {
        Api::namespaced(bed.alice.clone(), NAMESPACE)
            .create(&PostParams::default(), &objects::deployment(&id, "alice")?)
            .await
            .step("alice creates a Deployment")?;
        let mut host = objects::pod(&id, &format!("{}-host", id.name()), "alice")?;
        host.metadata
            .labels
            .get_or_insert_default()
            .insert("app".into(), "host".into());
        if let Some(spec) = host.spec.as_mut() {
            spec.host_network = Some(true);
        }
        Api::<Pod>::namespaced(bed.admin.clone(), NAMESPACE)
            .create(&PostParams::default(), &host)
            .await
            .step("admin creates a hostNetwork pod")?;
        let pods = running_pods(&bed, NAMESPACE, &id, 3).await?;
        let (hosts, workers): (Vec<_>, Vec<_>) = pods.iter().partition(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false)
        });
        let mut files = Vec::new();
        for pod in workers.iter().take(2) {
            let answer = service.credentials(Some(pod_ip(pod)), None, false).await;
            ensure(answer.status == 200, || {
                format!(
                    "pod {:?} at {}: {}\n{}",
                    pod.metadata.name,
                    pod_ip(pod),
                    answer.text(),
                    service.log_text()
                )
            })?;
            files.push(answer.body.clone());
        }
        ensure(files.len() == 2 && files[0] == files[1], || {
            "one token set per Deployment".into()
        })?;
        let methods: Vec<_> = service
            .audit_lines()
            .iter()
            .map(|l| l["identity_method"].as_str().unwrap_or_default().to_owned())
            .collect();
        ensure(methods.iter().all(|m| m == "ip"), || {
            format!("identity methods {methods:?}")
        })?;

        let nobody: IpAddr = "127.100.255.254".parse().expect("ip");
        let answer = service.credentials(Some(nobody), None, false).await;
        ensure(
            answer.status == 401 && answer.code() == "unknown_address",
            || format!("a process at no pod's address: {}", answer.text()),
        )?;

        let host = hosts
            .first()
            .ok_or_else(|| Error::Check("the hostNetwork pod did not run".into()))?;
        let answer = service.credentials(Some(pod_ip(host)), None, false).await;
        ensure(
            answer.status >= 400
                && ["host_network", "ambiguous_address"].contains(&answer.code().as_str()),
            || format!("the hostNetwork pod at {}: {}", pod_ip(host), answer.text()),
        )?;
        Ok::<_, Error>(())
    }
    .await;
    id.cleanup(&bed.admin).await;
    result.expect("identification by source address");
}
