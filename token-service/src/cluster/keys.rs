//! The API server's service-account signing keys, read as any OIDC relying party reads them:
//! the discovery document for the issuer, then the key set. Both are public within the
//! cluster (`system:service-account-issuer-discovery`); the token service's ClusterRole grants
//! them too.

use std::time::Duration;

use crate::signed_token::{KeySet, KeysError};

use super::{Cause, KubeError, bounded};

const DISCOVERY: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/openid/v1/jwks";

/// Why the keys could not be loaded: the API server did not answer, or answered nonsense.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    #[error(transparent)]
    Keys(#[from] KeysError),
}

async fn get(client: &kube::Client, timeout: Duration, path: &str) -> Result<String, KubeError> {
    let request = http::Request::get(path)
        .body(Vec::new())
        .map_err(|e| KubeError {
            what: format!("build the request for {path}"),
            cause: Cause::Api(kube::Error::HttpError(e)),
        })?;
    bounded(
        timeout,
        &format!("read {path}"),
        client.request_text(request),
    )
    .await
}

impl crate::token_keys::FetchFailure for FetchError {
    fn answered(&self) -> bool {
        match self {
            FetchError::Keys(_) => true,
            // Discovery off or access refused is an answer; an overloaded or restarting API
            // server (429, 5xx), a timeout, a failed connection or a full queue is not: the
            // keys held may vouch until stale, as local verification saves it load.
            FetchError::Kube(e) => matches!(
                &e.cause,
                Cause::Api(kube::Error::Api(status)) if [401, 403, 404].contains(&status.code)
            ),
        }
    }
}

/// One read of the issuer and the keys, each call under `timeout`.
pub async fn fetch_keys(client: &kube::Client, timeout: Duration) -> Result<KeySet, FetchError> {
    let discovery = get(client, timeout, DISCOVERY).await?;
    let jwks = get(client, timeout, JWKS).await?;
    Ok(KeySet::parse(discovery.as_bytes(), jwks.as_bytes())?)
}
