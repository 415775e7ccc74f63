//! Runs `init-fetcher fetch` and `refresh` against a fake HTTPS token service on loopback.
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hadoop_token::Format;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use rcgen::{CertificateParams, KeyPair};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

mod common;
use common::stderr;

/// Every wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(60);

/// One canned answer of the fake service.
#[derive(Clone)]
struct Reply {
    status: u16,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

fn ok(body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        body,
        headers: vec![("x-kube2hadoop-expires", "2099-01-01T00:00:00Z".into())],
    }
}

fn error(status: u16, code: &str, message: &str) -> Reply {
    Reply {
        status,
        body: format!(r#"{{"error":"{code}","message":"{message}"}}"#).into_bytes(),
        headers: vec![("content-type", "application/json".into())],
    }
}

/// The fake service: answers from `script` in order, repeating the last one; records the
/// Authorization header of each request.
#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Option<String>>>>,
}

impl Script {
    fn new(replies: Vec<Reply>) -> Script {
        Script {
            replies: Arc::new(Mutex::new(replies.into())),
            seen: Arc::default(),
        }
    }

    fn push(&self, r: Reply) {
        self.replies.lock().unwrap().push_back(r);
    }

    fn requests(&self) -> Vec<Option<String>> {
        self.seen.lock().unwrap().clone()
    }

    fn next(&self, req: &Request<hyper::body::Incoming>) -> Reply {
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        self.seen.lock().unwrap().push(auth);
        if req.method() != hyper::Method::POST || req.uri().path() != "/v1/credentials" {
            return error(404, "not_found", "wrong endpoint");
        }
        let mut q = self.replies.lock().unwrap();
        if q.len() > 1 {
            q.pop_front().unwrap()
        } else {
            q.front().cloned().expect("script has a reply")
        }
    }
}

/// A CA and a serving certificate for localhost, written as the fetcher's CA file.
struct Pki {
    dir: tempfile::TempDir,
    tls: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca =
            rcgen::CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
        Pki {
            dir,
            tls: Arc::new(tls),
        }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// Serve `script` on `listener` until the test ends.
fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, script: Script) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    let r = script.next(&req);
                    async move {
                        let mut resp = Response::new(Full::new(Bytes::from(r.body)));
                        *resp.status_mut() = StatusCode::from_u16(r.status).unwrap();
                        for (k, v) in r.headers {
                            resp.headers_mut().insert(k, v.parse().unwrap());
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn start(pki: &Pki, script: Script) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, pki.tls.clone(), script);
    addr
}

/// A credentials file as the service sends it, numbered `seq`.
fn body(seq: i32) -> Vec<u8> {
    common::credentials(seq).encode(Format::Writable).to_vec()
}

/// A fake service answering from `replies`, and a directory for the fetcher's file.
struct Bed {
    pki: Pki,
    script: Script,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    out: PathBuf,
}

impl Bed {
    async fn start(replies: Vec<Reply>) -> Bed {
        let pki = Pki::new();
        let script = Script::new(replies);
        let addr = start(&pki, script.clone()).await;
        let (dir, out) = out_dir();
        Bed {
            pki,
            script,
            addr,
            dir,
            out,
        }
    }

    fn fetcher(&self, sub: &str, extra: &[&str]) -> Command {
        fetcher(sub, self.addr, &self.pki, &self.out, extra)
    }

    /// Runs the fetcher to its end.
    async fn run(&self, sub: &str, extra: &[&str]) -> Output {
        finish(self.fetcher(sub, extra).spawn().unwrap()).await
    }
}

/// An empty directory for the fetcher's output, and the file it is to write there.
fn out_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("token");
    (dir, out)
}

fn fetcher(sub: &str, addr: SocketAddr, pki: &Pki, out: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_init-fetcher"));
    if !sub.is_empty() {
        cmd.arg(sub);
    }
    cmd.args(["--url", &format!("https://localhost:{}", addr.port())])
        .arg("--ca-file")
        .arg(pki.ca())
        .arg("--out")
        .arg(out)
        .args(["--max-backoff", "500ms", "--attempt-timeout", "5s"])
        .args(extra)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: Child) -> Output {
    tokio::time::timeout(BOUND, child.wait_with_output())
        .await
        .expect("init-fetcher ends within the bound")
        .expect("init-fetcher runs")
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", stderr(o));
}

#[track_caller]
fn assert_logged(o: &Output, text: &str) {
    let err = stderr(o);
    assert!(err.contains(text), "{err}");
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A port nothing listens on yet.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// What injection does: the CA as PEM text in K2H_FETCH_CA_PEM, no file. Without a CA the
/// server is not trusted; garbage is refused before any request.
#[tokio::test]
async fn the_ca_can_be_given_inline_in_the_environment() {
    let body = body(1);
    let bed = Bed::start(vec![ok(body.clone())]).await;
    let inline = |pem: String| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_init-fetcher"));
        cmd.args([
            "fetch",
            "--url",
            &format!("https://localhost:{}", bed.addr.port()),
        ])
        .arg("--out")
        .arg(&bed.out)
        .args(["--deadline", "2s", "--max-backoff", "500ms"])
        .env("K2H_FETCH_CA_PEM", pem)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
        cmd
    };
    let pem = std::fs::read_to_string(bed.pki.ca()).unwrap();
    let o = finish(inline(pem).spawn().unwrap()).await;
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&bed.out).unwrap(), body);
    let o = finish(inline("not a certificate".into()).spawn().unwrap()).await;
    assert_exit(&o, 1);
    assert_logged(&o, "--ca-pem (K2H_FETCH_CA_PEM)");
}

#[tokio::test]
async fn success_writes_the_file_with_mode_0440_and_sends_the_sa_token() {
    use std::os::unix::fs::PermissionsExt as _;
    let body = body(1);
    let bed = Bed::start(vec![ok(body.clone())]).await;
    let sa = bed.dir.path().join("sa-token");
    std::fs::write(&sa, "header.payload.sig\n").unwrap();
    let sa_arg = sa.to_str().unwrap().to_owned();
    let o = bed.run("fetch", &["--sa-token-file", &sa_arg]).await;
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&bed.out).unwrap(), body);
    let mode = std::fs::metadata(&bed.out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o440);
    assert_eq!(
        bed.script.requests(),
        [Some("Bearer header.payload.sig".to_owned())]
    );
    assert_eq!(files(bed.dir.path()), ["sa-token", "token"]);
    let err = stderr(&o);
    assert!(err.contains("credentials file written"), "{err}");
    assert!(
        !err.contains("TOPSECRET") && !err.contains("payload"),
        "{err}"
    );
}

#[tokio::test]
async fn refused_fails_fast_with_the_message() {
    let bed = Bed::start(vec![error(
        403,
        "forbidden",
        "pod ml/train has no kube2hadoop.io/user",
    )])
    .await;
    let o = bed.run("fetch", &["--deadline", "60s"]).await;
    assert_exit(&o, 2);
    assert_logged(&o, "HTTP 403: pod ml/train has no kube2hadoop.io/user");
    assert_eq!(bed.script.requests().len(), 1);
    assert!(files(bed.dir.path()).is_empty());
}

#[tokio::test]
async fn an_address_not_known_yet_is_retried_until_the_service_knows_the_pod() {
    // A kubelet starts init containers before the API server has the pod's IP.
    let unknown = error(
        401,
        "unknown_address",
        "no running pod has address 10.244.0.7",
    );
    let bed = Bed::start(vec![unknown.clone(), unknown, ok(body(1))]).await;
    let o = bed.run("fetch", &["--deadline", "60s"]).await;
    assert_exit(&o, 0);
    assert_eq!(bed.script.requests().len(), 3);
    assert_logged(&o, "does not know this pod's address yet");
}

#[tokio::test]
async fn unavailable_then_success() {
    let body = body(2);
    let bed = Bed::start(vec![
        error(503, "unavailable", "NameNode unreachable"),
        error(429, "rate_limited", "slow down"),
        ok(body.clone()),
    ])
    .await;
    // Without --sa-token-file the request carries no Authorization (identity by source IP).
    let o = bed.run("", &[]).await;
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&bed.out).unwrap(), body);
    assert_eq!(bed.script.requests(), [None, None, None]);
    assert_logged(&o, "NameNode unreachable");
}

#[tokio::test]
async fn service_down_at_first_then_up_before_the_deadline() {
    let pki = Pki::new();
    let addr = free_addr();
    let (_dir, out) = out_dir();
    let child = fetcher("fetch", addr, &pki, &out, &["--deadline", "45s"])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let body = body(3);
    let script = Script::new(vec![ok(body.clone())]);
    let listener = TcpListener::bind(addr).await.unwrap();
    serve(listener, pki.tls.clone(), script);
    let o = finish(child).await;
    assert_exit(&o, 0);
    assert_eq!(std::fs::read(&out).unwrap(), body);
    assert_logged(&o, "retrying");
}

#[tokio::test]
async fn deadline_passes() {
    let bed = Bed::start(vec![error(503, "unavailable", "still starting")]).await;
    let o = bed.run("fetch", &["--deadline", "2s"]).await;
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("no credentials within 2 s"), "{err}");
    assert!(err.contains("still starting"), "{err}");
    assert!(bed.script.requests().len() >= 2);
    assert!(files(bed.dir.path()).is_empty());
}

#[tokio::test]
async fn garbage_body_writes_nothing() {
    let bed = Bed::start(vec![ok(b"<html>proxy error</html>".to_vec())]).await;
    let o = bed.run("fetch", &[]).await;
    assert_exit(&o, 4);
    assert_logged(&o, "not a Hadoop credentials file");
    assert!(files(bed.dir.path()).is_empty());
}
#[tokio::test]
async fn bad_configuration_exits_1_with_every_problem() {
    let o = Command::new(env!("CARGO_BIN_EXE_init-fetcher"))
        .args(["fetch", "--deadline", "never"])
        .env_remove("K2H_FETCH_URL")
        .env_remove("K2H_FETCH_CA_FILE")
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    for want in ["--url", "--ca-file", "--deadline"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let o = Command::new(env!("CARGO_BIN_EXE_init-fetcher"))
        .args(["fetch", "--no-such-flag"])
        .output()
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
}

#[tokio::test]
async fn refresh_rewrites_on_change_and_stops_on_sigterm() {
    let first = body(10);
    let second = body(11);
    let bed = Bed::start(vec![ok(first.clone()), ok(first.clone())]).await;
    let child = bed
        .fetcher("refresh", &["--min-interval", "1s", "--max-interval", "1s"])
        .spawn()
        .unwrap();
    wait_for(&bed.out, &first).await;
    bed.script.push(error(503, "unavailable", "renewing"));
    bed.script.push(ok(second.clone()));
    wait_for(&bed.out, &second).await;
    let pid = child.id().expect("child still running").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = finish(child).await;
    assert_exit(&o, 0);
    let err = stderr(&o);
    assert!(err.contains("refresh failed"), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert_eq!(files(bed.dir.path()), ["token"]);
    // The second answer was identical to the first: one write for it, not two.
    assert_eq!(err.matches("credentials file written").count(), 2, "{err}");
}

async fn wait_for(path: &Path, want: &[u8]) {
    tokio::time::timeout(BOUND, async {
        while std::fs::read(path).ok().as_deref() != Some(want) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} never held the expected bytes", path.display()));
}

#[tokio::test]
async fn refresh_exits_when_tokens_expire_while_the_service_fails() {
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let mut first = ok(body(20));
    first.headers = vec![(
        "x-kube2hadoop-expires",
        soon.format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
    )];
    let bed = Bed::start(vec![first, error(502, "upstream", "NameNode down")]).await;
    let o = bed
        .run("refresh", &["--min-interval", "1s", "--max-interval", "1s"])
        .await;
    assert_exit(&o, 3);
    let err = stderr(&o);
    assert!(err.contains("the current file is still valid"), "{err}");
    assert!(err.contains("tokens expired at"), "{err}");
    assert!(err.contains("NameNode down"), "{err}");
}

/// A service that identifies pods by source IP sees the address given with --source-address.
#[tokio::test]
async fn connects_from_the_source_address() {
    let pki = Pki::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_dir, out) = out_dir();
    let child = fetcher(
        "fetch",
        addr,
        &pki,
        &out,
        &["--source-address", "127.0.0.2", "--deadline", "3s"],
    )
    .spawn()
    .unwrap();
    // The first connection is enough: drop it, and the fetcher gives up at its deadline.
    let (tcp, peer) = tokio::time::timeout(BOUND, listener.accept())
        .await
        .expect("the fetcher connects")
        .unwrap();
    drop(tcp);
    drop(listener);
    assert_eq!(peer.ip(), std::net::IpAddr::from([127, 0, 0, 2]));
    let o = finish(child).await;
    assert_exit(&o, 3);
}
