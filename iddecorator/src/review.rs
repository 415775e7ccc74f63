//! The AdmissionReview envelope: what a body must be before anything is decided on it. Pure, so
//! the server and the `admission` fuzz target read bodies the same way.
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionReview};

/// Why a body is not a request to decide; the server answers it with 400.
#[derive(Debug, thiserror::Error)]
pub enum InvalidReview {
    #[error("body is not an admission.k8s.io/v1 AdmissionReview: {0}")]
    NotAReview(serde_json::Error),
    #[error(
        "expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got {api_version:?} {kind:?}"
    )]
    WrongType { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
}

/// The request an `admission.k8s.io/v1` AdmissionReview body carries.
pub fn request_of(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, InvalidReview> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(InvalidReview::NotAReview)?;
    // The webhooks register `admissionReviewVersions: [v1]`: an API server sends nothing else.
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(InvalidReview::WrongType {
            api_version: review.types.api_version,
            kind: review.types.kind,
        });
    }
    review.try_into().map_err(|_| InvalidReview::NoRequest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_v1_review_with_a_request_is_decided() {
        let err = |body: &str| request_of(body.as_bytes()).map(|_| ()).unwrap_err();
        assert!(matches!(err("[]"), InvalidReview::NotAReview(_)));
        assert_eq!(
            err(r#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":null}"#)
                .to_string(),
            r#"expected apiVersion admission.k8s.io/v1 kind AdmissionReview, got "admission.k8s.io/v1beta1" "AdmissionReview""#
        );
        assert!(matches!(
            err(r#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#),
            InvalidReview::NoRequest
        ));
        let pod = include_str!("../../bench/fixtures/pod-create.json");
        assert!(request_of(pod.as_bytes()).is_ok());
    }
}
