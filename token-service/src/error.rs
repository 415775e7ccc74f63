//! What a caller is told when it gets no credentials: an HTTP status, a stable code and a
//! message the pod's owner (or the admin) can act on.

use http::StatusCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No usable proof of which pod is calling (401).
    Unauthenticated,
    /// The pod is known but may not have credentials (403).
    Forbidden,
    /// The proof names a pod that does not exist (any more) (404).
    NotFound,
    /// Too many requests from this pod (429).
    RateLimited,
    /// A Hadoop service failed (502).
    Upstream,
    /// A dependency we must consult is down, or we are not ready (503): fail closed.
    Unavailable,
    /// A bug or an unexpected state (500).
    Internal,
}

/// A refusal, with a message meant for whoever runs the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: Kind,
    /// Stable machine-readable code, e.g. `no_user_annotation`.
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: Kind, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.kind {
            Kind::Unauthenticated => StatusCode::UNAUTHORIZED,
            Kind::Forbidden => StatusCode::FORBIDDEN,
            Kind::NotFound => StatusCode::NOT_FOUND,
            Kind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Kind::Upstream => StatusCode::BAD_GATEWAY,
            Kind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Kind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The JSON body: `{"error": code, "message": text}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": self.code, "message": self.message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status_and_the_body_carries_code_and_message() {
        let cases = [
            (Kind::Unauthenticated, 401),
            (Kind::Forbidden, 403),
            (Kind::NotFound, 404),
            (Kind::RateLimited, 429),
            (Kind::Upstream, 502),
            (Kind::Unavailable, 503),
            (Kind::Internal, 500),
        ];
        for (kind, status) in cases {
            let e = ApiError::new(kind, "c", "m");
            assert_eq!(e.status().as_u16(), status, "{kind:?}");
        }
        let e = ApiError::new(Kind::Forbidden, "no_user_annotation", "pod x has none");
        assert_eq!(
            e.body(),
            serde_json::json!({"error": "no_user_annotation", "message": "pod x has none"})
        );
    }
}
