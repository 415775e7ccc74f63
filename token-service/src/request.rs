//! What a credentials request carries that its caller controls (the `Authorization` and
//! `Accept` headers), and the TokenReview answer about it, read by pure functions so the
//! `token-service` fuzz target can drive them without a server (`crate::fuzz`).

use http::{HeaderMap, HeaderValue, header};
use k8s_openapi::api::authentication::v1::TokenReviewStatus;

use crate::error::{ApiError, Kind};
use crate::identity::Review;

/// The service-account token of an `Authorization: Bearer <token>` header, trimmed.
pub fn bearer_token(value: &HeaderValue) -> Result<&str, ApiError> {
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                Kind::Unauthenticated,
                "bad_authorization",
                "the Authorization header must be `Bearer <service-account token>`",
            )
        })
}

/// Whether the caller asked for the JSON answer rather than the raw credentials file.
pub fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"))
}

/// The parts of a TokenReview's status we decide on; a missing status authenticates nobody.
pub fn review_of(status: Option<TokenReviewStatus>) -> Review {
    let status = status.unwrap_or_default();
    let user = status.user.unwrap_or_default();
    Review {
        authenticated: status.authenticated.unwrap_or(false),
        username: user.username,
        uid: user.uid,
        audiences: status.audiences.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
        error: status.error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(raw: &[u8]) -> Result<String, &'static str> {
        let value = HeaderValue::from_bytes(raw).map_err(|_| "not a header value")?;
        bearer_token(&value).map(str::to_owned).map_err(|e| e.code)
    }

    #[test]
    fn only_a_non_empty_bearer_token_is_taken() {
        assert_eq!(bearer(b"Bearer abc.def"), Ok("abc.def".into()));
        assert_eq!(bearer(b"Bearer   abc  "), Ok("abc".into()));
        for bad in [
            &b"Bearer "[..],
            b"Bearer    ",
            b"bearer abc",
            b"Basic eDp5",
            b"Bearerabc",
        ] {
            assert_eq!(bearer(bad), Err("bad_authorization"), "{bad:?}");
        }
        assert_eq!(bearer(b"Bearer \xff"), Err("bad_authorization"), "not text");
    }

    #[test]
    fn json_is_wanted_when_any_accept_value_names_it() {
        let mut headers = HeaderMap::new();
        assert!(!wants_json(&headers));
        headers.append(header::ACCEPT, HeaderValue::from_static("text/plain"));
        assert!(!wants_json(&headers));
        headers.append(
            header::ACCEPT,
            HeaderValue::from_static("application/json;q=0.9"),
        );
        assert!(wants_json(&headers));
    }

    #[test]
    fn a_review_without_status_authenticates_nobody() {
        let review = review_of(None);
        assert!(!review.authenticated && review.username.is_none());
    }
}
