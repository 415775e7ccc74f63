//! The real binary over real TLS: admission round trip, bad input, HTTP/2, certificate
//! rotation without restart, SIGTERM. Every wait is bounded.
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const POD_CREATE: &str = include_str!("../../bench/fixtures/pod-create.json");
const DEPLOYMENT_CREATE: &str = include_str!("../../bench/fixtures/deployment-create.json");
const MAX_BODY: usize = 64 * 1024;

/// A test CA that issues serving certificates for `localhost` and 127.0.0.1.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL clients take a leaf whose issuer equals its subject for self-signed.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube2hadoop test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Pki { ca }
    }

    fn ca_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// Writes a fresh serving pair into `dir` by rename, as a rotation would; returns its DER.
    fn issue(&self, dir: &Path) -> Vec<u8> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        for (name, text) in [("tls.key", key.serialize_pem()), ("tls.crt", cert.pem())] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text).unwrap();
            std::fs::rename(&tmp, dir.join(name)).unwrap();
        }
        cert.der().to_vec()
    }
}

/// The running binary; killed on drop so a failing test leaves nothing behind.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(dir: &Path) -> Server {
    let port = free_port();
    let stamp_key = dir.join("stamp.key");
    std::fs::write(&stamp_key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_iddecorator"))
        .arg("--stamp-key-file")
        .arg(&stamp_key)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert-file")
        .arg(dir.join("tls.crt"))
        .arg("--tls-key-file")
        .arg(dir.join("tls.key"))
        .args(["--max-body-bytes", &MAX_BODY.to_string()])
        .args(["--reload-interval", "200ms", "--shutdown-grace", "5s"])
        .args(["--log-format", "json"])
        .arg("--config")
        .arg(dir.join("policy.yaml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iddecorator binary starts");
    Server {
        child,
        base: format!("https://localhost:{port}"),
    }
}

fn client(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .tls_info(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn wait_ready(server: &mut Server, http: &reqwest::Client) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = server.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("iddecorator exited with {status} before becoming ready:\n{err}");
        }
        if let Ok(r) = http.get(format!("{}/readyz", server.base)).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "iddecorator not ready within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(
    http: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
    content_type: &str,
) -> (reqwest::StatusCode, Value) {
    let r = http
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request answered");
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{url} answered non-JSON ({e}): {text}"));
    (status, v)
}

/// [`post`] of a JSON body.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    body: impl Into<reqwest::Body>,
) -> (reqwest::StatusCode, Value) {
    post(http, url, body, "application/json").await
}

fn decoded_patch(review: &Value) -> Vec<Value> {
    assert_eq!(review["response"]["patchType"], "JSONPatch", "{review}");
    let b64 = review["response"]["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Whether applying `patch` to the request's object leaves `kube2hadoop.io/user` = `user`
/// at `annotations_path` (e.g. `/metadata/annotations`).
fn patched_user(request: &Value, patch: &[Value], annotations_path: &str) -> Option<String> {
    let mut object = request["request"]["object"].clone();
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(patch.to_vec())).unwrap();
    json_patch::patch(&mut object, &patch).expect("patch applies to the object");
    object
        .pointer(annotations_path)?
        .get("kube2hadoop.io/user")?
        .as_str()
        .map(str::to_owned)
}

async fn served_cert(http: &reqwest::Client, base: &str) -> Vec<u8> {
    let r = http.get(format!("{base}/healthz")).send().await.unwrap();
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info with the peer certificate")
        .to_vec()
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

async fn wait_for_metric(http: &reqwest::Client, base: &str, line: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(http, base).await;
        if text.contains(line) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {line:?} in /metrics within 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webhook_over_tls_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let first_cert = pki.issue(dir.path());
    write_atomically(&dir.path().join("policy.yaml"), "{}\n");
    let mut server = start(dir.path());
    let http1 = client(&pki.ca_der(), &[b"http/1.1"]);
    wait_ready(&mut server, &http1).await;
    let base = server.base.clone();

    // A Pod CREATE by alice claiming to be bob: the patch stamps alice.
    let (status, review) = post_json(&http1, &format!("{base}/mutate"), POD_CREATE).await;
    assert_eq!(status, 200, "{review}");
    let request: Value = serde_json::from_str(POD_CREATE).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["response"]["uid"], request["request"]["uid"]);
    assert_eq!(review["response"]["allowed"], true);
    let patch = decoded_patch(&review);
    assert_eq!(
        patched_user(&request, &patch, "/metadata/annotations").as_deref(),
        Some("alice"),
        "patch {patch:?}"
    );

    // A Deployment CREATE: the pod template is stamped too.
    let (status, review) = post_json(&http1, &format!("{base}/mutate"), DEPLOYMENT_CREATE).await;
    assert_eq!(status, 200, "{review}");
    let request: Value = serde_json::from_str(DEPLOYMENT_CREATE).unwrap();
    let patch = decoded_patch(&review);
    assert_eq!(
        patched_user(&request, &patch, "/spec/template/metadata/annotations").as_deref(),
        Some("alice")
    );

    // /validate on the unpatched object (annotation says bob, submitter alice): denied, 403.
    let (status, review) = post_json(&http1, &format!("{base}/validate"), POD_CREATE).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["response"]["allowed"], false, "{review}");
    assert_eq!(review["response"]["status"]["code"], 403);
    assert!(
        review["response"]["status"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert!(review["response"].get("patch").is_none());

    // Bad input: each gets a JSON error and the server keeps going.
    let mutate = format!("{base}/mutate");
    let (s, e) = post_json(&http1, &mutate, "{not json").await;
    assert_eq!(s, 400, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("AdmissionReview"),
        "{e}"
    );
    let (s, e) = post_json(&http1, &mutate, vec![0xff_u8, 0x00, 0x13]).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post_json(&http1, &mutate, r#"{"apiVersion":"v1","kind":"Pod"}"#).await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post_json(
        &http1,
        &mutate,
        r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#,
    )
    .await;
    assert_eq!(s, 400, "{e}");
    let (s, e) = post(&http1, &mutate, POD_CREATE, "text/plain").await;
    assert_eq!(s, 415, "{e}");
    let (s, e) = post_json(&http1, &mutate, vec![b' '; MAX_BODY + 1]).await;
    assert_eq!(s, 413, "{e}");
    let r = http1.get(&mutate).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let r = http1.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // HTTP/2 via ALPN gives the same answer.
    let http2 = client(&pki.ca_der(), &[b"h2"]);
    let r = http2
        .post(&mutate)
        .header("content-type", "application/json")
        .body(POD_CREATE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let review: Value = r.json().await.unwrap();
    assert_eq!(review["response"]["allowed"], true);

    // Still answering, and the requests were counted.
    let metrics = scrape(&http1, &base).await;
    assert!(
        metrics.contains("iddecorator_admission_requests_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("decision=\"invalid\""), "{metrics}");
    assert!(
        metrics.contains("iddecorator_admission_duration_seconds_bucket"),
        "{metrics}"
    );
    assert_eq!(
        http1
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Rotation: new files, same process; a new connection sees the new certificate.
    assert_eq!(
        served_cert(&client(&pki.ca_der(), &[b"http/1.1"]), &base).await,
        first_cert
    );
    let second_cert = pki.issue(dir.path());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let fresh = client(&pki.ca_der(), &[b"http/1.1"]);
        if served_cert(&fresh, &base).await == second_cert {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rotated certificate not served within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = scrape(&http1, &base).await;
    assert!(
        metrics.contains("k2h_reloads_total{target=\"tls\",result=\"success\"}"),
        "{metrics}"
    );

    // Policy reload: a bad file is counted and ignored (requests still decided), a good one
    // is taken.
    let policy = dir.path().join("policy.yaml");
    write_atomically(&policy, "notAField: [\n");
    wait_for_metric(
        &http1,
        &base,
        "k2h_reloads_total{target=\"policy\",result=\"failure\"} 1",
    )
    .await;
    let (status, review) = post_json(&http1, &mutate, POD_CREATE).await;
    assert_eq!(status, 200, "{review}");
    assert_eq!(review["response"]["allowed"], true);
    write_atomically(&policy, "# still the defaults\n{}\n");
    wait_for_metric(
        &http1,
        &base,
        "k2h_reloads_total{target=\"policy\",result=\"success\"} 1",
    )
    .await;

    // SIGTERM: exits 0, promptly (bounded by the 5 s grace plus slack).
    let pid = server.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "iddecorator did not exit within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn bad_configuration_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let policy: PathBuf = dir.path().join("policy.yaml");
    std::fs::write(&policy, "notAField: true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_iddecorator"))
        .args(["--listen", "localhost"])
        .args(["--tls-cert-file", "/nonexistent/tls.crt"])
        .args(["--tls-key-file", "/nonexistent/tls.key"])
        .arg("--config")
        .arg(&policy)
        .args(["--shutdown-grace", "forever"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "--listen",
        "/nonexistent/tls.crt",
        "policy.yaml",
        "--shutdown-grace",
    ] {
        assert!(err.contains(needle), "stderr lacks {needle:?}:\n{err}");
    }
}

#[test]
fn help_and_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_iddecorator"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--tls-cert-file",
        "--config",
        "--log-format",
        "IDDECORATOR_LISTEN",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_iddecorator"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}
