//! One request to token-service: `POST /v1/credentials` over HTTPS, optionally with the pod's
//! projected service-account token, classified into what the caller should do next.
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hadoop_token::Credentials;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::cli::CaSource;
use crate::retry::parse_retry_after;

/// The credentials endpoint, relative to `--url`.
pub const PATH: &str = "v1/credentials";
/// Header with the earliest expiry among the returned tokens (RFC 3339).
pub const EXPIRES_HEADER: &str = "x-kube2hadoop-expires";
/// Largest credentials body accepted (real files are a few kilobytes).
pub const MAX_BODY: usize = 1024 * 1024;
/// Largest error body read for its message.
const MAX_ERROR_BODY: usize = 16 * 1024;
/// Largest service-account token file read.
const MAX_SA_TOKEN: u64 = 64 * 1024;

/// Setting up the client failed: a configuration problem (exit code 1).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--url {0:?} is not an https:// URL; give the token service's address, e.g. https://token-service.kube2hadoop.svc:8443"
    )]
    Url(String),
    #[error("cannot read CA file {}: {reason}; mount the token service's CA and point --ca-file at it", path.display())]
    Ca { path: PathBuf, reason: String },
    #[error(
        "cannot read the CA given in --ca-pem (K2H_FETCH_CA_PEM): {0}; give the token service's CA certificate as PEM text"
    )]
    CaPem(String),
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
}

/// A credentials file the service returned, checked to decode.
pub struct Fetched {
    pub bytes: Zeroizing<Vec<u8>>,
    pub tokens: usize,
    pub expires: Option<OffsetDateTime>,
}

/// Why one attempt did not produce a credentials file.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// Worth retrying: the service is not reachable yet, overloaded, or failing for now.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The service refused this pod (401/403/404): retrying will not change its mind.
    #[error("token service refused with HTTP {status}: {message}")]
    Refused { status: u16, message: String },
    /// The service knows no pod at the caller's address (`unknown_address`). A kubelet starts
    /// init containers before the API server has the pod's IP, so a new pod may ask before
    /// the service can know it: worth retrying for a while, a refusal after that.
    #[error("token service does not know this pod's address yet: {message}")]
    AddressNotKnown { message: String },
    /// The service answered something that is not a usable credentials file.
    #[error("token service sent an unusable answer: {0}")]
    BadResponse(String),
    /// The projected service-account token could not be read.
    #[error("cannot read the service-account token {}: {source}; check the projected volume", path.display())]
    SaToken {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The token service as this pod sees it.
pub struct Client {
    http: reqwest::Client,
    url: reqwest::Url,
    sa_token_file: Option<PathBuf>,
    attempt_timeout: Duration,
}

impl Client {
    pub fn new(
        base: &str,
        ca: &CaSource,
        sa_token_file: Option<PathBuf>,
        connect_timeout: Duration,
        attempt_timeout: Duration,
        source_address: Option<IpAddr>,
    ) -> Result<Client, SetupError> {
        let url = parse_url(base)?;
        // Only the given CA: a scratch image has no system store, and the token service is
        // an internal endpoint.
        let mut roots = rustls::RootCertStore::empty();
        let certs = match ca {
            CaSource::File(path) => ca_file(path)?,
            CaSource::Pem(pem) => ca_pem(pem)?,
        };
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| SetupError::Client(format!("the CA is not usable: {e}")))?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(connect_timeout)
            // Binding the socket first: a token service that identifies pods by source IP
            // must see this address, not whichever one the route would pick.
            .local_address(source_address)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "kube2hadoop-init-fetcher/",
                env!("CARGO_PKG_VERSION")
            ))
            .build()
            .map_err(|e| SetupError::Client(e.without_url().to_string()))?;
        Ok(Client {
            http,
            url,
            sa_token_file,
            attempt_timeout,
        })
    }

    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// One attempt, bounded by the attempt timeout and by `limit`.
    pub async fn attempt(&self, limit: Duration) -> Result<Fetched, AttemptError> {
        let timeout = self.attempt_timeout.min(limit);
        match tokio::time::timeout(timeout, self.request()).await {
            Ok(result) => result,
            Err(_) => Err(transient(format!(
                "no complete answer within {} ms",
                timeout.as_millis()
            ))),
        }
    }

    async fn request(&self) -> Result<Fetched, AttemptError> {
        let mut req = self.http.post(self.url.clone());
        // Re-read on every attempt: the kubelet rotates projected tokens.
        if let Some(path) = &self.sa_token_file {
            let token = read_sa_token(path)?;
            req = req.bearer_auth(token.as_str());
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| transient(format!("cannot reach the token service: {}", chain(&e))))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, OffsetDateTime::now_utc()));
        if status.is_success() {
            let expires = resp.headers().get(EXPIRES_HEADER).and_then(|v| {
                let parsed = v.to_str().ok().and_then(|s| {
                    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
                });
                // The file is still good; refreshing falls back to --max-interval.
                if parsed.is_none() {
                    tracing::warn!("{EXPIRES_HEADER} is not an RFC 3339 date; expiry unknown");
                }
                parsed
            });
            let bytes = Zeroizing::new(read_capped(&mut resp, MAX_BODY).await?);
            let credentials = Credentials::decode(&bytes).map_err(|e| {
                AttemptError::BadResponse(format!(
                    "the body ({} bytes) is not a Hadoop credentials file: {e}",
                    bytes.len()
                ))
            })?;
            if credentials.tokens.is_empty() {
                return Err(AttemptError::BadResponse(
                    "the credentials file holds no token".to_owned(),
                ));
            }
            return Ok(Fetched {
                tokens: credentials.tokens.len(),
                bytes,
                expires,
            });
        }
        let body = read_capped(&mut resp, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let message = error_message(&body);
        let code = status.as_u16();
        match code {
            401 if error_code(&body).as_deref() == Some(UNKNOWN_ADDRESS) => {
                Err(AttemptError::AddressNotKnown { message })
            }
            401 | 403 | 404 => Err(AttemptError::Refused {
                status: code,
                message,
            }),
            408 | 429 | 500..=599 => Err(AttemptError::Transient {
                reason: format!("token service answered HTTP {code}: {message}"),
                retry_after,
            }),
            _ => Err(AttemptError::BadResponse(format!("HTTP {code}: {message}"))),
        }
    }
}

fn parse_url(base: &str) -> Result<reqwest::Url, SetupError> {
    let bad = || SetupError::Url(base.to_owned());
    let mut url = reqwest::Url::parse(base).map_err(|_| bad())?;
    if url.scheme() != "https" || url.host_str().is_none() {
        return Err(bad());
    }
    // Accept the base with or without a trailing slash, or the full endpoint.
    if !url.path().trim_end_matches('/').ends_with(PATH) {
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        url = url.join(PATH).map_err(|_| bad())?;
    }
    Ok(url)
}

fn ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let bad = |reason: String| SetupError::Ca {
        path: path.to_owned(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}

fn ca_pem(pem: &str) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SetupError::CaPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(SetupError::CaPem("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}

fn read_sa_token(path: &Path) -> Result<Zeroizing<String>, AttemptError> {
    use std::io::Read as _;
    let err = |source| AttemptError::SaToken {
        path: path.to_owned(),
        source,
    };
    let mut text = Zeroizing::new(String::new());
    std::fs::File::open(path)
        .map_err(err)?
        .take(MAX_SA_TOKEN)
        .read_to_string(&mut text)
        .map_err(err)?;
    let trimmed = Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(err(std::io::Error::other("the file is empty")));
    }
    Ok(trimmed)
}

async fn read_capped(resp: &mut reqwest::Response, limit: usize) -> Result<Vec<u8>, AttemptError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transient(format!("answer cut short: {}", chain(&e))))?
    {
        if out.len() + chunk.len() > limit {
            return Err(AttemptError::BadResponse(format!(
                "the body is larger than {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The service's `{"error", "message"}`, or a printable prefix of whatever it sent.
/// token-service's code for "no pod holds the caller's address".
const UNKNOWN_ADDRESS: &str = "unknown_address";

/// The machine-readable `error` of a refusal.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<String>,
    }
    serde_json::from_slice::<Body>(body).ok()?.error
}

fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Option<String>,
        message: Option<String>,
    }
    let text = match serde_json::from_slice::<Body>(body) {
        Ok(Body {
            error: Some(code),
            message: Some(m),
        }) => format!("{m} ({code})"),
        Ok(Body {
            message: Some(m), ..
        }) => m,
        Ok(Body { error: Some(c), .. }) => c,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text: String = text.chars().filter(|c| !c.is_control()).take(500).collect();
    if text.is_empty() {
        "(no message)".to_owned()
    } else {
        text
    }
}

fn transient(reason: String) -> AttemptError {
    AttemptError::Transient {
        reason,
        retry_after: None,
    }
}

/// The error and its causes on one line, without the URL repeated.
fn chain(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        for base in [
            "https://ts:8443",
            "https://ts:8443/",
            "https://ts:8443/v1/credentials",
        ] {
            assert_eq!(
                parse_url(base).unwrap().as_str(),
                "https://ts:8443/v1/credentials"
            );
        }
        assert_eq!(
            parse_url("https://gw/k2h").unwrap().as_str(),
            "https://gw/k2h/v1/credentials"
        );
        assert!(parse_url("http://ts:8443").is_err());
        assert!(parse_url("ts:8443").is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"error":"forbidden","message":"pod has no user"}"#),
            "pod has no user (forbidden)"
        );
        assert_eq!(error_message(b"plain\ntext"), "plaintext");
        assert_eq!(error_message(b""), "(no message)");
        assert_eq!(error_message(&[b'x'; 2000]).len(), 500);
    }

    #[test]
    fn sa_token_is_trimmed_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc.def\n").unwrap();
        assert_eq!(read_sa_token(&path).unwrap().as_str(), "abc.def");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_sa_token(&path).is_err());
        let e = read_sa_token(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("projected volume"), "{e}");
    }
}
