//! A fake Hadoop REST server on loopback for the unit tests: answers what the test's closure
//! says and records every request. It does no SPNEGO; tests pick the authenticator.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::auth::{Authenticator, NoAuth};
use super::http::{Caller, HttpConfig, build_client};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub authorization: Option<String>,
    /// Headers by lower-case name (the last value of a repeated one).
    pub headers: HashMap<String, String>,
    pub body: String,
}

pub enum Reply {
    Json(u16, serde_json::Value),
    /// 200 with `WWW-Authenticate: Negotiate <token>` and an empty JSON body.
    WithNegotiate(String, serde_json::Value),
    /// Never answers (for timeouts).
    Hang,
}

pub fn remote(status: u16, exception: &str, class: &str, message: &str) -> Reply {
    Reply::Json(
        status,
        serde_json::json!({"RemoteException": {
            "exception": exception, "javaClassName": class, "message": message}}),
    )
}

pub fn standby() -> Reply {
    remote(
        403,
        "StandbyException",
        "org.apache.hadoop.ipc.StandbyException",
        "Operation category READ is not supported in state standby",
    )
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct FakeServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the fake server");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = Arc::clone(&handler);
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let handler = Arc::clone(&handler);
                        let log = Arc::clone(&log);
                        async move { Ok::<_, Infallible>(answer(req, &*handler, &log).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeServer { addr, seen, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log lock").clone()
    }
}

async fn answer(
    req: hyper::Request<hyper::body::Incoming>,
    handler: &Handler,
    log: &Mutex<Vec<Seen>>,
) -> hyper::Response<Full<Bytes>> {
    let query = req
        .uri()
        .query()
        .map(|q| {
            reqwest::Url::parse(&format!("http://x/?{q}"))
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let mut seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query,
        authorization: req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: String::new(),
    };
    seen.body = http_body_util::BodyExt::collect(req.into_body())
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    log.lock().expect("log lock").push(seen.clone());
    let (status, negotiate, body) = match handler(&seen) {
        Reply::Json(status, body) => (status, None, body),
        Reply::WithNegotiate(token, body) => (200, Some(token), body),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (500, None, serde_json::Value::Null)
        }
    };
    let mut response = hyper::Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(token) = negotiate {
        response = response.header(
            hyper::header::WWW_AUTHENTICATE,
            format!("Negotiate {token}"),
        );
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid fake response")
}

/// A caller with no authentication and the given timeout.
pub fn caller(timeout: Duration) -> Caller {
    caller_with(Arc::new(NoAuth), timeout)
}

pub fn caller_with(auth: Arc<dyn Authenticator>, timeout: Duration) -> Caller {
    let cfg = HttpConfig {
        timeout,
        ..HttpConfig::default()
    };
    Caller::new(
        build_client(&cfg).expect("HTTP client"),
        auth,
        timeout,
        "kube2hadoop",
    )
}

/// A port nothing listens on: bound, then released.
pub async fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

pub fn token_reply(url_string: &str) -> Reply {
    Reply::Json(200, serde_json::json!({"Token": {"urlString": url_string}}))
}

pub fn expiry_reply(ms: u64) -> Reply {
    Reply::Json(200, serde_json::json!({"long": ms}))
}
