//! The token model: a workload's credentials as served ([`Issued`]) and the public description
//! of each token ([`TokenInfo`]). The issuer builds one from a set it just obtained, the ledger
//! from its record; both sit above this module, so neither needs the other's types.

use hadoop_token::{Credentials, Format};
use zeroize::Zeroizing;

use crate::hadoop::{Renewal, TokenSet};
use crate::services::Selection;

/// The public description of one token: everything but its password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenInfo {
    pub kind: String,
    pub service: String,
    pub source: String,
    pub sequence_number: Option<i32>,
    pub master_key_id: Option<i32>,
    pub max_date_ms: Option<i64>,
    /// When this token expires unless renewed (ms since the epoch), as its server said.
    pub expires_at_ms: Option<u64>,
}

impl TokenInfo {
    /// The max date as a time, when the identifier told it: no renewal reaches past it.
    pub fn max_date(&self) -> Option<u64> {
        self.max_date_ms.and_then(|m| u64::try_from(m).ok())
    }
}

/// A workload's credentials as served.
pub struct Issued {
    pub hadoop_user: String,
    /// The pods' `kube2hadoop.io/user` the set was first issued for (verbatim); `None` for a
    /// ledger record written before it was kept. Only pods of that user keep the set alive.
    pub submitter: Option<String>,
    pub tokens: Vec<TokenInfo>,
    /// The earliest expiry of the set (ms since the epoch).
    pub expires_at_ms: u64,
    /// The HDTS format-0 credentials file. Secret.
    pub file: Zeroizing<Vec<u8>>,
    /// Kept for the ledger: renew and cancel need the tokens as issued.
    pub set: TokenSet,
    /// The services the set was obtained from, as its pods chose them.
    pub selection: Selection,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("hadoop_user", &self.hadoop_user)
            .field("submitter", &self.submitter)
            .field("selection", &self.selection)
            .field("tokens", &self.tokens)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("file", &"<redacted>")
            .finish()
    }
}

/// How the expiry of a set just obtained is known. Hadoop does not say when a new token
/// expires; a renewal does (YARN renews right after obtaining for the same reason).
pub enum Expiry<'a> {
    /// What a renewal right after obtaining answered.
    Renewed(&'a Renewal),
    /// No renewal: each token lives one renew interval from now, capped by its max date.
    Assumed { now_ms: u64, interval_ms: u64 },
}

/// A token a Hadoop service returned that cannot be written as a credentials file.
#[derive(Debug, thiserror::Error)]
#[error("a Hadoop service returned a token that cannot be encoded: {0}")]
pub struct Unencodable(String);

impl Issued {
    /// A set just obtained for `hadoop_user` by a pod of `submitter`: described, encoded and
    /// dated as `expiry` says. The caller keeps `set` when this fails, to give it back.
    pub fn obtained(
        hadoop_user: &str,
        submitter: Option<String>,
        selection: Selection,
        set: &TokenSet,
        expiry: Expiry<'_>,
    ) -> Result<Issued, Unencodable> {
        let file = encode(set)?;
        let mut tokens = describe(set);
        let expires_at_ms = match expiry {
            Expiry::Renewed(renewal) => {
                apply_renewal(&mut tokens, renewal);
                renewal.expires_at_ms
            }
            Expiry::Assumed {
                now_ms,
                interval_ms,
            } => {
                for t in &mut tokens {
                    t.expires_at_ms = Some(fresh_expiry(now_ms, interval_ms, t.max_date()));
                }
                tokens
                    .iter()
                    .filter_map(|t| t.expires_at_ms)
                    .min()
                    .unwrap_or(now_ms.saturating_add(interval_ms))
            }
        };
        Ok(Issued {
            hadoop_user: hadoop_user.to_owned(),
            submitter,
            tokens,
            expires_at_ms,
            file,
            set: set.clone(),
            selection,
        })
    }
}

/// Each token's new expiry, as the renewal answered it for the token's source.
pub fn apply_renewal(tokens: &mut [TokenInfo], renewal: &Renewal) {
    for t in tokens {
        if let Some((_, e)) = renewal.per_token.iter().find(|(s, _)| *s == t.source) {
            t.expires_at_ms = Some(*e);
        }
    }
}

/// The expiry of a freshly obtained token, without renewing it: one renew interval, capped by
/// the token's max date.
pub fn fresh_expiry(now_ms: u64, renew_interval_ms: u64, max_date_ms: Option<u64>) -> u64 {
    let by_interval = now_ms.saturating_add(renew_interval_ms);
    max_date_ms.map_or(by_interval, |m| m.min(by_interval))
}

/// Each token's public facts, read from its identifier where it can be decoded.
pub fn describe(set: &TokenSet) -> Vec<TokenInfo> {
    set.tokens
        .iter()
        .map(|t| {
            let id = t
                .to_token()
                .ok()
                .and_then(|tok| tok.decode_identifier().ok().flatten());
            TokenInfo {
                kind: t.kind.clone(),
                service: t.service.clone(),
                source: t.source.clone(),
                sequence_number: id.as_ref().map(|i| i.sequence_number),
                master_key_id: id.as_ref().map(|i| i.master_key_id),
                max_date_ms: id.as_ref().map(|i| i.max_date),
                expires_at_ms: None,
            }
        })
        .collect()
}

/// The set as an HDTS version-0 file, each token under its service as alias (as Hadoop does),
/// and a copy under each of its aliases with that service.
fn encode(set: &TokenSet) -> Result<Zeroizing<Vec<u8>>, Unencodable> {
    let mut creds = Credentials::default();
    for t in &set.tokens {
        let token = t
            .to_token()
            .map_err(|e| Unencodable(format!("{}: {e}", t.source)))?;
        for alias in &t.aliases {
            let mut copy = token.clone();
            copy.service = alias.clone();
            creds.add_token(alias.clone(), copy);
        }
        creds.add_token(t.service.clone(), token);
    }
    Ok(creds.encode(Format::Writable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::token_set;

    #[test]
    fn a_renewal_dates_each_token_and_the_set() {
        let set = token_set("alice", 7);
        let renewal = Renewal {
            expires_at_ms: 5_000,
            per_token: vec![("hdfs:ns1".into(), 5_000)],
        };
        let issued = Issued::obtained(
            "alice",
            None,
            Selection::All,
            &set,
            Expiry::Renewed(&renewal),
        )
        .expect("encodes");
        assert_eq!(issued.expires_at_ms, 5_000);
        assert_eq!(issued.tokens[0].expires_at_ms, Some(5_000));
        assert_eq!(issued.tokens[0].sequence_number, Some(7));
    }

    #[test]
    fn a_token_is_written_under_its_service_and_each_alias() {
        let mut set = token_set("alice", 7);
        set.tokens[0].aliases = vec!["127.0.0.1:9600".into()];
        let issued = Issued::obtained(
            "alice",
            None,
            Selection::All,
            &set,
            Expiry::Assumed {
                now_ms: 0,
                interval_ms: 1,
            },
        )
        .expect("encodes");
        let creds = Credentials::decode(&issued.file).expect("decodes");
        let named: Vec<(&str, &str)> = creds
            .tokens
            .iter()
            .map(|(alias, t)| (alias.as_str(), t.service.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("127.0.0.1:9600", "127.0.0.1:9600"),
                ("ha-hdfs:ns1", "ha-hdfs:ns1")
            ]
        );
        assert_eq!(creds.tokens[0].1.password, creds.tokens[1].1.password);
    }

    #[test]
    fn an_assumed_expiry_is_one_interval_capped_by_the_max_date() {
        // The fixture's max date is 9 000 000 ms.
        let set = token_set("alice", 7);
        let at = |now_ms, interval_ms| {
            Issued::obtained(
                "alice",
                None,
                Selection::All,
                &set,
                Expiry::Assumed {
                    now_ms,
                    interval_ms,
                },
            )
            .expect("encodes")
        };
        assert_eq!(at(1_000, 2_000).expires_at_ms, 3_000);
        assert_eq!(at(1_000, 2_000).tokens[0].expires_at_ms, Some(3_000));
        assert_eq!(at(8_000_000, 5_000_000).expires_at_ms, 9_000_000);
        let empty = TokenSet { tokens: vec![] };
        let none = Issued::obtained(
            "alice",
            None,
            Selection::All,
            &empty,
            Expiry::Assumed {
                now_ms: 1,
                interval_ms: 2,
            },
        )
        .expect("encodes");
        assert_eq!(none.expires_at_ms, 3);
    }

    #[test]
    fn a_fresh_set_expires_one_interval_on_but_not_past_its_max_date() {
        assert_eq!(fresh_expiry(100, 20_000, Some(60_100)), 20_100);
        assert_eq!(fresh_expiry(100, 20_000, Some(10_000)), 10_000);
        assert_eq!(fresh_expiry(100, 20_000, None), 20_100);
    }

    #[test]
    fn debug_hides_the_file() {
        let issued = Issued {
            hadoop_user: "alice".into(),
            submitter: Some("alice".into()),
            tokens: vec![],
            expires_at_ms: 1,
            file: Zeroizing::new(b"HDTS-secret".to_vec()),
            set: TokenSet::default(),
            selection: Selection::All,
        };
        assert!(!format!("{issued:?}").contains("HDTS-secret"));
    }
}
