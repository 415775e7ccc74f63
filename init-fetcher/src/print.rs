//! `init-fetcher print`: what a credentials file holds, like `hadoop dtutil print`, as text for
//! people or JSON for machines. Passwords and secret-key bytes are never part of the report.

use std::fmt::Write as _;
use std::path::Path;

use hadoop_token::{Credentials, DelegationIdentifier, Format, IdentifierFormat, Token};
use serde::Serialize;

/// Everything `print` shows about one file.
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub format: u8,
    pub format_name: &'static str,
    pub tokens: Vec<TokenReport>,
    /// Aliases only: the key bytes are secret.
    pub secret_keys: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenReport {
    pub alias: String,
    pub kind: String,
    pub service: String,
    pub identifier_length: usize,
    pub identifier: IdentifierReport,
}

#[derive(Debug, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum IdentifierReport {
    /// `AbstractDelegationTokenIdentifier` Writable (HDFS, WebHDFS, KMS).
    Writable(Fields),
    /// `YARNDelegationTokenIdentifierProto` (ResourceManager).
    YarnProtobuf(Fields),
    /// A kind this tool does not know; Hadoop clients still use the token as is.
    Opaque,
    /// A known kind whose identifier does not decode.
    Invalid { error: String },
}

#[derive(Debug, Serialize)]
pub struct Fields {
    pub owner: String,
    pub renewer: String,
    pub real_user: String,
    pub issue_date: String,
    pub issue_date_ms: i64,
    pub max_date: String,
    pub max_date_ms: i64,
    pub sequence_number: i32,
    pub master_key_id: i32,
}

impl Report {
    pub fn new(path: &Path, credentials: &Credentials, format: Format) -> Report {
        Report {
            file: path.display().to_string(),
            format: format as u8,
            format_name: match format {
                Format::Writable => "Writable",
                Format::Protobuf => "protobuf",
            },
            tokens: credentials
                .tokens
                .iter()
                .map(|(alias, token)| TokenReport::new(alias, token))
                .collect(),
            secret_keys: credentials
                .secret_keys
                .iter()
                .map(|(alias, _)| alias.clone())
                .collect(),
        }
    }

    /// Tokens whose identifier is of a known kind but does not decode.
    pub fn invalid_tokens(&self) -> impl Iterator<Item = &TokenReport> {
        self.tokens
            .iter()
            .filter(|t| matches!(t.identifier, IdentifierReport::Invalid { .. }))
    }

    pub fn to_json(&self) -> String {
        // A tree of strings and integers always serializes.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(
            out,
            "File: {} (format {}, {})",
            clean(&self.file),
            self.format,
            self.format_name
        )?;
        writeln!(out, "Tokens: {}", self.tokens.len())?;
        for (n, t) in self.tokens.iter().enumerate() {
            writeln!(out, "\nToken {}", n + 1)?;
            line(out, "alias", &t.alias)?;
            line(out, "kind", &t.kind)?;
            line(out, "service", &t.service)?;
            match &t.identifier {
                IdentifierReport::Writable(f) | IdentifierReport::YarnProtobuf(f) => {
                    line(out, "owner", &f.owner)?;
                    line(out, "renewer", &f.renewer)?;
                    line(out, "real user", &f.real_user)?;
                    line(out, "issue date", &f.issue_date)?;
                    line(out, "max date", &f.max_date)?;
                    line(out, "sequence number", &f.sequence_number.to_string())?;
                    line(out, "master key id", &f.master_key_id.to_string())?;
                }
                IdentifierReport::Opaque => {
                    let what = format!("opaque (unknown kind), {} bytes", t.identifier_length);
                    line(out, "identifier", &what)?;
                }
                IdentifierReport::Invalid { error } => {
                    let what = format!("cannot be decoded, {} bytes: {error}", t.identifier_length);
                    line(out, "identifier", &what)?;
                }
            }
        }
        writeln!(out, "\nSecret keys: {}", self.secret_keys.len())?;
        for alias in &self.secret_keys {
            writeln!(out, "  {}", clean(alias))?;
        }
        Ok(())
    }
}

impl TokenReport {
    fn new(alias: &str, token: &Token) -> TokenReport {
        let identifier = match token.decode_identifier() {
            Ok(Some(id)) => match IdentifierFormat::for_kind(&token.kind) {
                Some(IdentifierFormat::YarnProto) => IdentifierReport::YarnProtobuf(fields(&id)),
                _ => IdentifierReport::Writable(fields(&id)),
            },
            Ok(None) => IdentifierReport::Opaque,
            Err(e) => IdentifierReport::Invalid {
                error: e.to_string(),
            },
        };
        TokenReport {
            alias: alias.to_owned(),
            kind: token.kind.clone(),
            service: token.service.clone(),
            identifier_length: token.identifier.len(),
            identifier,
        }
    }
}

fn fields(id: &DelegationIdentifier) -> Fields {
    Fields {
        owner: id.owner.clone(),
        renewer: id.renewer.clone(),
        real_user: id.real_user.clone(),
        issue_date: iso_date(id.issue_date),
        issue_date_ms: id.issue_date,
        max_date: iso_date(id.max_date),
        max_date_ms: id.max_date,
        sequence_number: id.sequence_number,
        master_key_id: id.master_key_id,
    }
}

/// Milliseconds since the epoch as ISO 8601 UTC with millisecond precision; dates outside the
/// years 0..=9999 are shown as the raw number.
pub fn iso_date(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .filter(|t| (0..=9999).contains(&t.year()))
        .and_then(|t| t.format(format).ok())
        .unwrap_or_else(|| format!("{ms} ms since the epoch (not a calendar date)"))
}

fn line(out: &mut String, label: &str, value: &str) -> std::fmt::Result {
    writeln!(out, "  {:<16} {}", format!("{label}:"), clean(value))
}

/// Values come from the file: control characters are escaped so they cannot drive the terminal.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hadoop_token::Secret;
    use hadoop_token::identifier::{HDFS_DELEGATION_TOKEN, RM_DELEGATION_TOKEN};

    fn id() -> DelegationIdentifier {
        DelegationIdentifier {
            owner: "alice".into(),
            renewer: "yarn".into(),
            real_user: "hdfs".into(),
            issue_date: 1_764_072_000_123,
            max_date: 1_764_676_800_000,
            sequence_number: 7,
            master_key_id: 2,
        }
    }

    fn credentials() -> Credentials {
        let mut c = Credentials::default();
        c.add_token(
            "ha-hdfs:ns1",
            Token {
                identifier: id().encode(IdentifierFormat::Writable),
                password: Secret::from(b"PASSWORD-BYTES".as_slice()),
                kind: HDFS_DELEGATION_TOKEN.into(),
                service: "ha-hdfs:ns1".into(),
            },
        );
        c.add_token(
            "rm",
            Token {
                identifier: id().encode(IdentifierFormat::YarnProto),
                password: Secret::from(b"PASSWORD-BYTES".as_slice()),
                kind: RM_DELEGATION_TOKEN.into(),
                service: "10.0.0.1:8032".into(),
            },
        );
        c.add_token(
            "other\n",
            Token {
                identifier: vec![1, 2, 3],
                kind: "MY_KIND".into(),
                ..Token::default()
            },
        );
        c.add_secret_key("spark.key", Secret::from(b"KEY-BYTES".as_slice()));
        c
    }

    #[test]
    fn iso_dates() {
        assert_eq!(iso_date(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_date(1_764_072_000_123), "2025-11-25T12:00:00.123Z");
        assert_eq!(iso_date(-1), "1969-12-31T23:59:59.999Z");
        assert!(iso_date(i64::MAX).contains("not a calendar date"));
        assert!(iso_date(i64::MIN).contains("not a calendar date"));
    }

    #[test]
    fn text_shows_fields_and_no_secrets() {
        let report = Report::new(Path::new("/t/f"), &credentials(), Format::Writable);
        let text = report.to_text();
        assert!(text.starts_with("File: /t/f (format 0, Writable)\nTokens: 3\n"));
        assert!(text.contains("  owner:           alice\n"));
        assert!(text.contains("  issue date:      2025-11-25T12:00:00.123Z\n"));
        assert!(text.contains("  master key id:   2\n"));
        assert!(text.contains("  service:         10.0.0.1:8032\n"));
        assert!(text.contains("  alias:           other\\n\n"));
        assert!(text.contains("  identifier:      opaque (unknown kind), 3 bytes\n"));
        assert!(text.ends_with("Secret keys: 1\n  spark.key\n"));
        assert!(!text.contains("PASSWORD") && !text.contains("KEY-BYTES"));
        assert_eq!(report.invalid_tokens().count(), 0);
    }

    #[test]
    fn json_shows_fields_and_no_secrets() {
        let report = Report::new(Path::new("/t/f"), &credentials(), Format::Protobuf);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["format"], 1);
        assert_eq!(json["tokens"][0]["identifier"]["format"], "writable");
        assert_eq!(json["tokens"][0]["identifier"]["owner"], "alice");
        assert_eq!(
            json["tokens"][1]["identifier"]["issue_date"],
            "2025-11-25T12:00:00.123Z"
        );
        assert_eq!(json["tokens"][1]["identifier"]["format"], "yarn_protobuf");
        assert_eq!(json["tokens"][2]["identifier"]["format"], "opaque");
        assert_eq!(json["tokens"][2]["identifier_length"], 3);
        assert_eq!(json["secret_keys"][0], "spark.key");
        let raw = report.to_json();
        assert!(!raw.contains("PASSWORD") && !raw.contains("KEY-BYTES"));
        assert!(!raw.contains("password"));
    }

    #[test]
    fn undecodable_identifier_is_reported() {
        let mut c = Credentials::default();
        c.add_token(
            "bad",
            Token {
                identifier: vec![9],
                kind: HDFS_DELEGATION_TOKEN.into(),
                ..Token::default()
            },
        );
        let report = Report::new(Path::new("f"), &c, Format::Writable);
        assert_eq!(report.invalid_tokens().count(), 1);
        assert!(
            report
                .to_text()
                .contains("cannot be decoded, 1 bytes: at byte offset 0")
        );
    }
}
