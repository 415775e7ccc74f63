//! One authenticated, time-bounded HTTP call to a Hadoop REST endpoint (WebHDFS, KMS, the
//! ResourceManager).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, Url};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use super::auth::{AuthError, Authenticator};
use super::error::{self, HadoopError};

/// A token or RemoteException answer is a few hundred bytes; anything this big is not one.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Bounds each whole call: SPNEGO, connect, request and reading the answer.
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// PEM bundle trusted besides the system roots, for `https://` NameNodes and KMS.
    pub extra_ca: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            extra_ca: None,
        }
    }
}

/// reqwest is built without a TLS provider: give it rustls with ring and our roots.
pub fn build_client(cfg: &HttpConfig) -> Result<reqwest::Client, HadoopError> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are not fatal: the extra CA may be all that is needed.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &cfg.extra_ca {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                HadoopError::Config(format!("cannot read CA bundle {}: {e}", path.display()))
            })?;
        if certs.is_empty() {
            return Err(HadoopError::Config(format!(
                "CA bundle {} holds no certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                HadoopError::Config(format!("bad certificate in {}: {e}", path.display()))
            })?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| HadoopError::Config(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(cfg.timeout)
        .connect_timeout(cfg.connect_timeout)
        // Hadoop redirects only for data operations; a token call that redirects is suspect.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| HadoopError::Config(format!("HTTP client setup: {}", e.without_url())))
}

/// A configured server base URL, checked once at startup.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Url,
    host: String,
    /// `scheme://host:port`, the only form of the URL that errors and logs show.
    label: String,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, HadoopError> {
        let url = Url::parse(s).map_err(|e| HadoopError::Config(format!("bad URL {s:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(HadoopError::Config(format!(
                "bad URL {s:?}: expected http(s)://host:port[/path] without a query"
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| HadoopError::Config(format!("bad URL {s:?}: no host")))?
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(0);
        let label = format!("{}://{}:{}", url.scheme(), host, port);
        Ok(Endpoint { url, host, label })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    fn join(&self, path: &str) -> Url {
        let mut url = self.url.clone();
        let base = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{base}{path}"));
        url
    }
}

/// What a call sends besides its query string.
#[derive(Default, Clone)]
pub struct Extras<'a> {
    /// One request header, e.g. the ResourceManager's `Hadoop-YARN-RM-Delegation-Token`.
    /// Marked sensitive: it may hold a token.
    pub header: Option<(&'static str, &'a str)>,
    pub json: Option<serde_json::Value>,
}

/// Sends calls with an authenticator; shared by the WebHDFS, KMS and ResourceManager clients.
#[derive(Clone)]
pub struct Caller {
    client: reqwest::Client,
    auth: Arc<dyn Authenticator>,
    timeout: Duration,
    /// Kerberos short name of the service, for the proxy-user hint in errors.
    superuser: String,
}

impl Caller {
    /// How long one call may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn new(
        client: reqwest::Client,
        auth: Arc<dyn Authenticator>,
        timeout: Duration,
        superuser: impl Into<String>,
    ) -> Caller {
        Caller {
            client,
            auth,
            timeout,
            superuser: superuser.into(),
        }
    }

    /// Calls `endpoint`+`path` and returns the body of a 2xx answer; anything else becomes a
    /// typed error. `op` names the operation in errors, never the query (it may hold a token).
    pub async fn call(
        &self,
        method: Method,
        endpoint: &Endpoint,
        path: &str,
        op: &str,
        query: &[(&str, &str)],
    ) -> Result<Vec<u8>, HadoopError> {
        self.call_with(method, endpoint, path, op, query, Extras::default())
            .await
    }

    /// [`Caller::call`] with a header and a JSON body, as the ResourceManager's REST API wants.
    pub async fn call_with(
        &self,
        method: Method,
        endpoint: &Endpoint,
        path: &str,
        op: &str,
        query: &[(&str, &str)],
        extras: Extras<'_>,
    ) -> Result<Vec<u8>, HadoopError> {
        let what = format!("{} {op}", endpoint.label());
        match tokio::time::timeout(
            self.timeout,
            self.exchange(method, endpoint, path, &what, query, extras),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(HadoopError::Timeout {
                endpoint: what,
                timeout: self.timeout,
            }),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        endpoint: &Endpoint,
        path: &str,
        what: &str,
        query: &[(&str, &str)],
        extras: Extras<'_>,
    ) -> Result<Vec<u8>, HadoopError> {
        let auth_err = |source| HadoopError::Auth {
            endpoint: what.to_owned(),
            source,
        };
        let exchange = self.auth.start(&endpoint.host).await.map_err(auth_err)?;
        let mut request = self
            .client
            .request(method, endpoint.join(path))
            .query(query)
            .timeout(self.timeout);
        if let Some((name, value)) = extras.header {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                HadoopError::Config(format!("{what}: the value for header {name} is not valid"))
            })?;
            // It carries a token: keep it out of any header dump.
            value.set_sensitive(true);
            request = request.header(name, value);
        }
        if let Some(json) = extras.json {
            request = request.json(&json);
        }
        let mut mutual = None;
        if let Some(ex) = exchange {
            request = request.header(reqwest::header::AUTHORIZATION, ex.authorization);
            mutual = ex.mutual;
        }
        let mut response = request.send().await.map_err(|e| self.send_error(what, e))?;
        let status = response.status();
        let reason = response
            .extensions()
            .get::<hyper::ext::ReasonPhrase>()
            .map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let reply_token = negotiate_token(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.send_error(what, e))?
        {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HadoopError::TooLarge {
                    endpoint: what.to_owned(),
                    limit: MAX_BODY,
                });
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(error::from_response(
                what,
                status.as_u16(),
                reason.as_deref(),
                &body,
                &self.superuser,
            ));
        }
        // Checked where the server sends its token (Hadoop does on success); a reply without one
        // is accepted, as by Hadoop's own client, since some proxies strip the header.
        if let (Some(check), Some(token)) = (mutual, reply_token) {
            let token = token.map_err(auth_err)?;
            tokio::task::spawn_blocking(move || check.verify(&token))
                .await
                .map_err(|e| auth_err(AuthError::Worker(e.to_string())))?
                .map_err(auth_err)?;
        }
        Ok(body)
    }

    fn send_error(&self, what: &str, e: reqwest::Error) -> HadoopError {
        let endpoint = what.to_owned();
        // Renew and cancel URLs carry the token: never let reqwest print them.
        let e = e.without_url();
        if e.is_timeout() {
            HadoopError::Timeout {
                endpoint,
                timeout: self.timeout,
            }
        } else if e.is_connect() {
            HadoopError::Connect {
                endpoint,
                source: e,
            }
        } else {
            HadoopError::Http {
                endpoint,
                source: e,
            }
        }
    }
}

/// The server's mutual-authentication token from `WWW-Authenticate: Negotiate <token>`.
fn negotiate_token(headers: &reqwest::header::HeaderMap) -> Option<Result<Vec<u8>, AuthError>> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let rest = v.strip_prefix("Negotiate ")?.trim();
            (!rest.is_empty()).then(|| STANDARD.decode(rest).map_err(|_| AuthError::BadReplyToken))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::hadoop::auth::{Exchange, MutualCheck};
    use crate::hadoop::fake::{self, FakeServer, Reply};

    #[test]
    fn endpoint_label_hides_path_and_keeps_port() {
        let e = Endpoint::parse("http://nn1.example:9870/").expect("valid");
        assert_eq!(e.label(), "http://nn1.example:9870");
        assert_eq!(
            e.join("/webhdfs/v1/").as_str(),
            "http://nn1.example:9870/webhdfs/v1/"
        );
        let k = Endpoint::parse("https://kms:9600/kms").expect("valid");
        assert_eq!(k.join("/v1/").as_str(), "https://kms:9600/kms/v1/");
    }

    #[test]
    fn endpoint_rejects_queries_and_other_schemes() {
        assert!(Endpoint::parse("http://nn:9870/?token=x").is_err());
        assert!(Endpoint::parse("hdfs://nn:8020").is_err());
        assert!(Endpoint::parse("not a url").is_err());
    }

    #[test]
    fn negotiate_reply_token_is_decoded() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::WWW_AUTHENTICATE,
            "Negotiate AQID".parse().expect("header"),
        );
        let t = negotiate_token(&h).expect("present").expect("decodes");
        assert_eq!(t, vec![1, 2, 3]);
        h.insert(
            reqwest::header::WWW_AUTHENTICATE,
            "Negotiate".parse().expect("header"),
        );
        assert!(negotiate_token(&h).is_none());
    }

    struct FakeNegotiate;
    struct ExpectOk;

    impl MutualCheck for ExpectOk {
        fn verify(self: Box<Self>, server_token: &[u8]) -> Result<(), AuthError> {
            if server_token == b"ok" {
                Ok(())
            } else {
                Err(AuthError::Mutual {
                    host: "fake".into(),
                    detail: "wrong reply".into(),
                })
            }
        }
    }

    impl Authenticator for FakeNegotiate {
        fn start<'a>(
            &'a self,
            _host: &'a str,
        ) -> futures::future::BoxFuture<'a, Result<Option<Exchange>, AuthError>> {
            Box::pin(async {
                Ok(Some(Exchange {
                    authorization: "Negotiate ZmFrZQ==".into(),
                    mutual: Some(Box::new(ExpectOk)),
                }))
            })
        }
    }

    #[tokio::test]
    async fn negotiate_header_is_sent_and_the_reply_token_checked() {
        let good = FakeServer::start(|_| Reply::WithNegotiate("b2s=".into(), json!({}))).await;
        let bad = FakeServer::start(|_| Reply::WithNegotiate("YmFk".into(), json!({}))).await;
        let caller = fake::caller_with(Arc::new(FakeNegotiate), Duration::from_secs(5));
        let ep = Endpoint::parse(&good.url()).expect("url");
        caller
            .call(Method::GET, &ep, "/", "OP", &[])
            .await
            .expect("mutual auth passes");
        assert_eq!(
            good.seen()[0].authorization.as_deref(),
            Some("Negotiate ZmFrZQ==")
        );
        let ep = Endpoint::parse(&bad.url()).expect("url");
        let err = caller
            .call(Method::GET, &ep, "/", "OP", &[])
            .await
            .expect_err("server failed mutual auth");
        assert!(
            matches!(
                err,
                HadoopError::Auth {
                    source: AuthError::Mutual { .. },
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn oversized_answers_are_refused() {
        let big = "x".repeat(MAX_BODY + 1);
        let server = FakeServer::start(move |_| Reply::Json(200, json!({ "x": big }))).await;
        let ep = Endpoint::parse(&server.url()).expect("url");
        let err = fake::caller(Duration::from_secs(5))
            .call(Method::GET, &ep, "/", "OP", &[])
            .await
            .expect_err("too large");
        assert!(matches!(err, HadoopError::TooLarge { .. }), "{err:?}");
    }

    #[test]
    fn client_builds_with_system_roots() {
        build_client(&HttpConfig::default()).expect("client");
    }

    #[test]
    fn a_missing_ca_bundle_is_a_configuration_error() {
        let cfg = HttpConfig {
            extra_ca: Some("/nonexistent/ca.pem".into()),
            ..HttpConfig::default()
        };
        let err = build_client(&cfg).expect_err("missing CA");
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
