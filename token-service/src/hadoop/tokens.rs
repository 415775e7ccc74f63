//! What a token source hands out: one token per Hadoop service, bundled per workload.

use zeroize::Zeroizing;

use super::error::HadoopError;

/// A delegation token as a server issued it, plus the kind/service a stock Hadoop client
/// looks it up by.
#[derive(Clone)]
pub struct IssuedToken {
    /// Which configured endpoint issued it (`hdfs:<nameservice>`, `kms:<name>`): renew and
    /// cancel go back there.
    pub source: String,
    /// Kind written to the credentials file (e.g. `HDFS_DELEGATION_TOKEN`, `kms-dt`).
    pub kind: String,
    /// Service written to the credentials file (e.g. `127.0.0.1:8020`, `ha-hdfs:ns1`).
    pub service: String,
    /// Further services a copy of the token is written under, for clients that look it up by
    /// another name (a KMS token by each KMS's `ip:port` as well as by its provider URI).
    pub aliases: Vec<String>,
    /// The server's `Token.encodeToUrlString()`, kept verbatim for renew and cancel. Secret.
    url_string: Zeroizing<String>,
}

impl IssuedToken {
    pub fn new(source: String, kind: String, service: String, url_string: String) -> Self {
        IssuedToken {
            source,
            kind,
            service,
            aliases: Vec::new(),
            url_string: Zeroizing::new(url_string),
        }
    }

    pub fn with_aliases(mut self, aliases: Vec<String>) -> Self {
        self.aliases = aliases;
        self
    }

    /// The token as the server encoded it. Secret: never log it.
    pub fn url_string(&self) -> &str {
        &self.url_string
    }

    /// The token with the kind and service a Hadoop RPC client selects it by, ready for a
    /// credentials file.
    pub fn to_token(&self) -> Result<hadoop_token::Token, hadoop_token::UrlStringError> {
        let mut token = hadoop_token::Token::from_url_string(&self.url_string)?;
        token.kind = self.kind.clone();
        token.service = self.service.clone();
        Ok(token)
    }
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("source", &self.source)
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("aliases", &self.aliases)
            .field("url_string", &"<redacted>")
            .finish()
    }
}

/// All tokens of one workload: one per namespace and per KMS.
#[derive(Debug, Clone, Default)]
pub struct TokenSet {
    pub tokens: Vec<IssuedToken>,
}

/// The outcome of renewing a whole set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    /// The earliest new expiry (ms since the epoch): the set is only as alive as this.
    pub expires_at_ms: u64,
    /// Each token's new expiry, by `source`.
    pub per_token: Vec<(String, u64)>,
}

/// Failures of an operation over a set; every token was attempted.
#[derive(Debug, thiserror::Error)]
#[error("{} of the token set failed: {}", .failures.len(), describe(.failures))]
pub struct SetError {
    pub failures: Vec<(String, HadoopError)>,
}

impl SetError {
    /// Every failure is a server or the KDC being down or not ready: retry later (503).
    /// One permanent failure makes the whole set's failure permanent (502).
    pub fn is_transient(&self) -> bool {
        !self.failures.is_empty() && self.failures.iter().all(|(_, e)| e.is_transient())
    }
}

fn describe(failures: &[(String, HadoopError)]) -> String {
    failures
        .iter()
        .map(|(source, e)| format!("{source}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let t = IssuedToken::new(
            "hdfs:ns1".into(),
            "HDFS_DELEGATION_TOKEN".into(),
            "ha-hdfs:ns1".into(),
            "SECRETSECRET".into(),
        );
        let shown = format!("{:?}", TokenSet { tokens: vec![t] });
        assert!(!shown.contains("SECRETSECRET"), "{shown}");
        assert!(shown.contains("ha-hdfs:ns1"), "{shown}");
    }
}
