//! A hostile mutating webhook served from the test process: it rewrites the user annotation of
//! every object it sees, after iddecorator has set it. Registered with its own certificate
//! authority and an objectSelector, so it only touches the objects of the test that starts it.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::objects::USER_ANNOTATION;

/// AdmissionReviews are small; anything larger is refused.
const MAX_BODY: usize = 1 << 20;
/// Where the apiserver reaches the test process. The local bed's apiserver is on loopback; a
/// kind cluster needs the host's address on the kind network (e.g. 172.18.0.1).
const HOST_ENV: &str = "K2H_E2E_ROGUE_HOST";

#[derive(Debug, thiserror::Error)]
pub enum RogueError {
    #[error("cannot generate the rogue webhook's certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("cannot build the rogue webhook's TLS config: {0}")]
    Tls(#[from] rustls::Error),
    #[error(
        "cannot listen for the rogue webhook on {addr} (set {HOST_ENV} to an address of this host the apiserver can reach): {source}"
    )]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the rogue webhook's registration does not decode: {0}")]
    Registration(#[source] serde_json::Error),
}

/// A running rogue webhook; stops serving when dropped.
pub struct RogueWebhook {
    url: String,
    ca_pem: String,
    server: JoinHandle<()>,
}

impl RogueWebhook {
    /// Serve on a free port; every admitted object gets `USER_ANNOTATION: forged_user`.
    pub async fn start(forged_user: &str) -> Result<RogueWebhook, RogueError> {
        let host = std::env::var(HOST_ENV).unwrap_or_else(|_| "127.0.0.1".to_owned());
        let (ca_pem, tls) = tls_config(&host)?;
        let addr = format!("{host}:0");
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| RogueError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let local: SocketAddr = listener
            .local_addr()
            .map_err(|source| RogueError::Listen { addr, source })?;
        let forged = Arc::new(forged_user.to_owned());
        let acceptor = TlsAcceptor::from(tls);
        let server = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, forged) = (acceptor.clone(), forged.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| handle(req, forged.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        let url = match local {
            SocketAddr::V6(a) => format!("https://[{}]:{}/mutate", a.ip(), a.port()),
            SocketAddr::V4(a) => format!("https://{a}/mutate"),
        };
        Ok(RogueWebhook {
            url,
            ca_pem,
            server,
        })
    }

    /// Its registration: after iddecorator (configurations run in name order), reinvoked when
    /// iddecorator's reinvocation changes the object back, limited to objects labelled
    /// `label=value`, pods only.
    pub fn registration(
        &self,
        name: &str,
        label: &str,
        value: &str,
    ) -> Result<MutatingWebhookConfiguration, RogueError> {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        serde_json::from_value(json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [{
                "name": "rogue.e2e.kube2hadoop.io",
                "admissionReviewVersions": ["v1"],
                "clientConfig": {"url": self.url, "caBundle": ca},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": 5,
                "reinvocationPolicy": "IfNeeded",
                "objectSelector": {"matchLabels": {label: value}},
                "rules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["pods"],
                }],
            }],
        }))
        .map_err(RogueError::Registration)
    }
}

impl Drop for RogueWebhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A throwaway CA and a serving certificate for `host` signed by it; returns the CA's PEM.
fn tls_config(host: &str) -> Result<(String, Arc<rustls::ServerConfig>), RogueError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec![host.to_owned()])?.signed_by(&key, &ca)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((ca.pem(), Arc::new(config)))
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    forged: Arc<String>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, json!({}))),
    };
    let Ok(review) = serde_json::from_slice::<Value>(&body) else {
        return Ok(reply(StatusCode::BAD_REQUEST, json!({})));
    };
    Ok(reply(StatusCode::OK, forge(&review, &forged)))
}

/// The AdmissionReview response that sets the user annotation to `forged`.
fn forge(review: &Value, forged: &str) -> Value {
    let request = &review["request"];
    let has_annotations = request["object"]["metadata"]["annotations"].is_object();
    let patch = if has_annotations {
        json!([{"op": "add", "path": format!("/metadata/annotations/{}", USER_ANNOTATION.replace('/', "~1")), "value": forged}])
    } else {
        json!([{"op": "add", "path": "/metadata/annotations", "value": {USER_ANNOTATION: forged}}])
    };
    let patch = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": request["uid"], "allowed": true, "patchType": "JSONPatch", "patch": patch},
    })
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forges_an_existing_annotation() {
        let review = json!({"request": {"uid": "u1", "object": {"metadata": {"annotations": {USER_ANNOTATION: "alice"}}}}});
        let resp = forge(&review, "mallory");
        assert_eq!(resp["response"]["uid"], "u1");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(resp["response"]["patch"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let patch: Value = serde_json::from_slice(&patch).unwrap_or_default();
        assert_eq!(
            patch[0]["path"],
            "/metadata/annotations/kube2hadoop.io~1user"
        );
        assert_eq!(patch[0]["value"], "mallory");
    }

    #[test]
    fn adds_annotations_when_there_are_none() {
        let resp = forge(
            &json!({"request": {"uid": "u2", "object": {"metadata": {}}}}),
            "mallory",
        );
        let patch = base64::engine::general_purpose::STANDARD
            .decode(resp["response"]["patch"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let patch: Value = serde_json::from_slice(&patch).unwrap_or_default();
        assert_eq!(patch[0]["value"][USER_ANNOTATION], "mallory");
    }
}
