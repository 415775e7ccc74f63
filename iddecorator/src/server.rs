//! HTTP routing and the two admission endpoints.
//!
//! Handlers stay thin: decode the AdmissionReview, call [`crate::decision`], log one line,
//! wrap the answer. Bodies arrive already size-capped by `k2h_http::serve`. The one outbound
//! call, reading the pod a CONNECT names, is made here and its result passed to the decision.
use crate::decision::{self, Decision};
use crate::metrics::{Endpoint, Metrics, Outcome};
use crate::pods::PodReader;
use crate::policy::Policy;
use crate::review;
use arc_swap::ArcSwap;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use k2h_http::Readiness;
use k2h_http::respond::{self, Body, json_error, json_response};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::response::StatusSummary;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

/// Shared state of every request.
pub struct App {
    pub policy: Arc<ArcSwap<Policy>>,
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    /// Reads the pod of a CONNECT request (exec, attach, port-forward).
    pub pods: PodReader,
}

/// Routes one request. Never panics on input; unknown paths are 404, wrong methods 405.
pub async fn route(app: Arc<App>, req: Request<Bytes>) -> Response<Body> {
    let path = req.uri().path();
    let (allowed, response) = match path {
        "/mutate" | "/validate" => {
            let endpoint = if path == "/mutate" {
                Endpoint::Mutate
            } else {
                Endpoint::Validate
            };
            let response = if req.method() == Method::POST {
                Some(admission(&app, endpoint, &req).await)
            } else {
                None
            };
            ("POST", response)
        }
        "/healthz" => ("GET", is_get(&req).then(respond::healthz)),
        "/readyz" => ("GET", is_get(&req).then(|| respond::readyz(&app.readiness))),
        "/metrics" => (
            "GET",
            is_get(&req).then(|| respond::metrics(&app.metrics.registry)),
        ),
        _ => return json_error(StatusCode::NOT_FOUND, format!("no endpoint {path}")),
    };
    response.unwrap_or_else(|| {
        let mut r = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{path} only answers {allowed}"),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allowed));
        r
    })
}

fn is_get(req: &Request<Bytes>) -> bool {
    req.method() == Method::GET || req.method() == Method::HEAD
}

async fn admission(app: &App, endpoint: Endpoint, req: &Request<Bytes>) -> Response<Body> {
    let start = Instant::now();
    let invalid = |message: String| {
        app.metrics
            .observe(endpoint, "", "", Outcome::Invalid, start.elapsed());
        tracing::warn!(endpoint = endpoint.as_str(), %message, "rejected a request that is not an AdmissionReview");
        json_error(StatusCode::BAD_REQUEST, message)
    };
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let json = ct
            .to_str()
            .map(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            })
            .unwrap_or(false);
        if !json {
            app.metrics
                .observe(endpoint, "", "", Outcome::Invalid, start.elapsed());
            return json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json (an admission.k8s.io/v1 AdmissionReview)",
            );
        }
    }
    let request = match review::request_of(req.body()) {
        Ok(r) => r,
        Err(e) => return invalid(e.to_string()),
    };

    // Only `/validate` decides CONNECTs (the mutating webhook is not registered for them).
    let pod = match (endpoint, decision::pod_to_read(&request)) {
        (Endpoint::Validate, Some((namespace, name))) => Some(app.pods.read(namespace, name).await),
        _ => None,
    };
    let policy = app.policy.load();
    // Label only kinds the policy knows, so a caller cannot grow the metric without bound.
    let kind = if policy
        .workload(&request.kind.group, &request.kind.kind)
        .is_some()
    {
        request.kind.kind.as_str()
    } else {
        "other"
    };
    let operation = operation_name(&request.operation);
    let decided = std::panic::catch_unwind(AssertUnwindSafe(|| match endpoint {
        Endpoint::Mutate => decision::mutate(&request, &policy),
        Endpoint::Validate => decision::validate_with(&request, &policy, pod.as_ref()),
    }));
    let (outcome, response) = match decided {
        Ok(d) => answer(&request, d),
        Err(_) => (Outcome::Panic, None),
    };
    let took = start.elapsed();
    app.metrics
        .observe(endpoint, kind, operation, outcome, took);
    log_line(endpoint, &request, operation, outcome, &response, took);
    match response {
        Some(review) => json_response(StatusCode::OK, &review),
        None => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "internal error deciding request {}; see the iddecorator log",
                request.uid
            ),
        ),
    }
}

/// Wraps a decision in an AdmissionReview, as JSON. `None` when it cannot be encoded.
fn answer(
    request: &AdmissionRequest<DynamicObject>,
    decision: Decision,
) -> (Outcome, Option<serde_json::Value>) {
    let base = AdmissionResponse::from(request);
    let (outcome, response) = match decision {
        Decision::Allow { patch } if patch.0.is_empty() => (Outcome::Allow, Ok(base)),
        Decision::Allow { patch } => (Outcome::Patch, base.with_patch(patch)),
        Decision::Deny { reason } => {
            let mut denied = base.deny(reason);
            denied.result.code = 403;
            denied.result.reason = "Forbidden".into();
            denied.result.status = Some(StatusSummary::Failure);
            (Outcome::Deny, Ok(denied))
        }
    };
    let encoded = response
        .map_err(|e| e.to_string())
        .and_then(|r| serde_json::to_value(r.into_review()).map_err(|e| e.to_string()))
        .map(base64_patch);
    match encoded {
        Ok(v) => (outcome, Some(v)),
        Err(e) => {
            tracing::error!(uid = %request.uid, error = %e, "cannot encode the AdmissionReview response");
            (Outcome::Panic, None)
        }
    }
}

/// kube-core serializes the patch bytes as a JSON number array; the API documents (and
/// other clients expect) a base64 string, which is what Go's `[]byte` uses.
fn base64_patch(mut review: serde_json::Value) -> serde_json::Value {
    if let Some(slot) = review.pointer_mut("/response/patch") {
        let bytes: Option<Vec<u8>> = serde_json::from_value(slot.take()).ok();
        *slot = serde_json::Value::String(
            base64::engine::general_purpose::STANDARD.encode(bytes.unwrap_or_default()),
        );
    }
    review
}

fn operation_name(op: &Operation) -> &'static str {
    match op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
        Operation::Connect => "CONNECT",
    }
}

/// One line per admission request: who, what, the answer; never the object itself.
fn log_line(
    endpoint: Endpoint,
    request: &AdmissionRequest<DynamicObject>,
    operation: &str,
    outcome: Outcome,
    response: &Option<serde_json::Value>,
    took: std::time::Duration,
) {
    let namespace = request.namespace.as_deref().unwrap_or("");
    let name = if request.name.is_empty() {
        request
            .object
            .as_ref()
            .and_then(|o| o.metadata.generate_name.as_deref())
            .unwrap_or("")
    } else {
        request.name.as_str()
    };
    let user = request.user_info.username.as_deref().unwrap_or("");
    let reason = response
        .as_ref()
        .and_then(|r| r.pointer("/response/status/message"))
        .and_then(|m| m.as_str())
        .unwrap_or("");
    let micros = took.as_micros() as u64;
    match outcome {
        Outcome::Panic => tracing::error!(
            endpoint = endpoint.as_str(), uid = %request.uid, kind = %request.kind.kind, operation,
            namespace, name, user, micros, "decision failed; answered 500"
        ),
        _ => tracing::info!(
            endpoint = endpoint.as_str(), uid = %request.uid, kind = %request.kind.kind, operation,
            namespace, name, user, decision = outcome.as_str(), reason, micros, "admission"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    const POD_CREATE: &str = include_str!("../../bench/fixtures/pod-create.json");

    fn app() -> Arc<App> {
        Arc::new(App {
            policy: Arc::new(ArcSwap::from_pointee(Policy::default())),
            metrics: Arc::new(Metrics::new()),
            readiness: Readiness::default(),
            pods: PodReader::none("no client in tests"),
        })
    }

    fn request(method: Method, path: &str, body: &str) -> Request<Bytes> {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Bytes::from(body.to_owned()))
            .unwrap()
    }

    async fn json(r: Response<Body>) -> serde_json::Value {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn pod_request() -> AdmissionRequest<DynamicObject> {
        review::request_of(POD_CREATE.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let app = app();
        let r = route(app.clone(), request(Method::GET, "/nope", "")).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = route(app.clone(), request(Method::GET, "/mutate", "")).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "POST");
        let r = route(app.clone(), request(Method::POST, "/healthz", "")).await;
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        let r = route(app.clone(), request(Method::GET, "/readyz", "")).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn malformed_reviews_are_400_and_counted() {
        let app = app();
        for body in [
            "",
            "[]",
            "{\"kind\":\"AdmissionReview\"}",
            "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\",\"request\":null}",
        ] {
            let r = route(app.clone(), request(Method::POST, "/validate", body)).await;
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
            assert!(json(r).await["error"].is_string());
        }
        let r = route(app.clone(), request(Method::GET, "/metrics", "")).await;
        let text =
            String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(
            text.contains("endpoint=\"validate\",kind=\"\",operation=\"\",decision=\"invalid\"} 4"),
            "{text}"
        );
    }

    /// A CONNECT names a pod the request does not carry: without a client the read fails and
    /// `/validate` denies, saying why (fail closed).
    #[tokio::test]
    async fn connect_without_a_pod_reader_is_denied_with_the_reason() {
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u1",
                "kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "subResource": "exec", "name": "train-0", "namespace": "ml",
                "operation": "CONNECT",
                "userInfo": {"username": "bob", "groups": ["system:authenticated"]},
                "object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"]},
            }
        })
        .to_string();
        let r = route(app(), request(Method::POST, "/validate", &review)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v = json(r).await;
        assert_eq!(v["response"]["allowed"], false);
        let message = v["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.contains(
                "cannot read pod ml/train-0 to check who may exec into it: no client in tests"
            ),
            "{message}"
        );
        // The mutating endpoint is not registered for CONNECT and leaves it alone.
        let r = route(app(), request(Method::POST, "/mutate", &review)).await;
        assert_eq!(json(r).await["response"]["allowed"], true);
    }

    #[test]
    fn deny_is_403_without_patch() {
        let req = pod_request();
        let (outcome, v) = answer(
            &req,
            Decision::Deny {
                reason: "no".into(),
            },
        );
        let v = v.unwrap();
        assert_eq!(outcome, Outcome::Deny);
        assert_eq!(v["response"]["uid"], req.uid.as_str());
        assert_eq!(v["response"]["allowed"], false);
        assert_eq!(v["response"]["status"]["code"], 403);
        assert_eq!(v["response"]["status"]["message"], "no");
        assert!(v["response"].get("patch").is_none());
    }

    #[test]
    fn empty_patch_sends_no_patch_type() {
        let (outcome, v) = answer(
            &pod_request(),
            Decision::Allow {
                patch: json_patch::Patch(vec![]),
            },
        );
        let v = v.unwrap();
        assert_eq!(outcome, Outcome::Allow);
        assert_eq!(v["response"]["allowed"], true);
        assert!(v["response"].get("patch").is_none());
        assert!(v["response"].get("patchType").is_none());
    }

    #[test]
    fn patch_is_base64() {
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "add", "path": "/metadata/annotations/kube2hadoop.io~1user", "value": "alice"}
        ]))
        .unwrap();
        let (outcome, v) = answer(
            &pod_request(),
            Decision::Allow {
                patch: patch.clone(),
            },
        );
        let v = v.unwrap();
        assert_eq!(outcome, Outcome::Patch);
        assert_eq!(v["response"]["patchType"], "JSONPatch");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v["response"]["patch"].as_str().unwrap())
            .unwrap();
        let back: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, patch);
    }
}
