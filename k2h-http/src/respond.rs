//! Small responses every kube2hadoop server needs: health, readiness, metrics, JSON errors.
use crate::serve::Readiness;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use prometheus_client::registry::Registry;

/// The response body type of every handler: small, fully buffered.
pub type Body = Full<Bytes>;

/// A JSON body with the given status. Serialization of our own types cannot fail in
/// practice; if it does, the client gets a 500 with a fixed message, not a panic.
pub fn json_response<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => with_type(status, body, "application/json"),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a JSON response");
            with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"error":"internal error: cannot encode the response"}"#.to_vec(),
                "application/json",
            )
        }
    }
}

/// `{"error": message}` with the given status.
pub fn json_error(status: StatusCode, message: impl AsRef<str>) -> Response<Body> {
    json_response(status, &serde_json::json!({ "error": message.as_ref() }))
}

/// Liveness: the process answers.
pub fn healthz() -> Response<Body> {
    with_type(
        StatusCode::OK,
        b"ok\n".to_vec(),
        "text/plain; charset=utf-8",
    )
}

/// Readiness: 200 while serving, 503 before start and once shutdown has begun.
pub fn readyz(readiness: &Readiness) -> Response<Body> {
    if readiness.is_ready() {
        with_type(
            StatusCode::OK,
            b"ready\n".to_vec(),
            "text/plain; charset=utf-8",
        )
    } else {
        with_type(
            StatusCode::SERVICE_UNAVAILABLE,
            b"not ready\n".to_vec(),
            "text/plain; charset=utf-8",
        )
    }
}

/// The registry in the OpenMetrics text format, which Prometheus scrapes natively.
pub fn metrics(registry: &Registry) -> Response<Body> {
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, registry) {
        Ok(()) => with_type(
            StatusCode::OK,
            text.into_bytes(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        ),
    }
}

fn with_type(status: StatusCode, body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use prometheus_client::metrics::counter::Counter;

    async fn text(r: Response<Body>) -> String {
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn error_is_json_with_message() {
        let r = json_error(StatusCode::BAD_REQUEST, "body is not \"JSON\"");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: serde_json::Value = serde_json::from_str(&text(r).await).unwrap();
        assert_eq!(v["error"], "body is not \"JSON\"");
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let ready = Readiness::default();
        assert_eq!(readyz(&ready).status(), StatusCode::SERVICE_UNAVAILABLE);
        ready.set(true);
        assert_eq!(readyz(&ready).status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_render_as_text() {
        let mut registry = Registry::default();
        let c = Counter::<u64>::default();
        registry.register("things", "Things seen", c.clone());
        c.inc();
        let body = text(metrics(&registry)).await;
        assert!(body.contains("things_total 1"), "{body}");
    }
}
