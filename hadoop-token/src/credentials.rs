//! Hadoop credentials files (`Credentials.writeTokenStorageFile`), the format
//! `HADOOP_TOKEN_FILE_LOCATION` points at: magic `HDTS`, a format byte, then
//! - format 0 (Writable): VInt token count, each alias `Text` + `Token` Writable; VInt secret-key
//!   count, each alias `Text` + VInt length + bytes;
//! - format 1 (protobuf): one `CredentialsProto`, prefixed by its protobuf varint length
//!   (`writeDelimitedTo`).
//!
//! Aliases and their order are kept as read. Hadoop itself holds them in a map, so a repeated
//! alias means "the last one wins" there; [`Credentials::add_token`] follows that rule.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use prost::Message as _;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Problem, Reader};
use crate::proto::{CredentialsKvProto, CredentialsProto, TokenProto};
use crate::secret::Secret;
use crate::token::Token;
use crate::writable::{read_bytes, read_text, read_vint, write_bytes, write_text, write_vint};

pub const MAGIC: [u8; 4] = *b"HDTS";
/// Largest credentials file read; real ones are a few kilobytes.
pub const MAX_FILE_LEN: usize = 16 * 1024 * 1024;
/// Most tokens or secret keys accepted in one file.
pub const MAX_ENTRIES: usize = 10_000;

/// `Credentials.SerializedFormat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Writable = 0,
    Protobuf = 1,
}

/// The tokens and secret keys of one credentials file, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub tokens: Vec<(String, Token)>,
    pub secret_keys: Vec<(String, Secret)>,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read credentials file {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {} is larger than {limit} bytes", path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("credentials file {} is not a valid Hadoop credentials file", path.display())]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
}

impl Credentials {
    pub fn token(&self, alias: &str) -> Option<&Token> {
        self.tokens.iter().find(|(a, _)| a == alias).map(|(_, t)| t)
    }

    /// Adds or replaces (in place) the token under `alias`, like Hadoop's `addToken`.
    pub fn add_token(&mut self, alias: impl Into<String>, token: Token) {
        let alias = alias.into();
        match self.tokens.iter_mut().find(|(a, _)| *a == alias) {
            Some((_, slot)) => *slot = token,
            None => self.tokens.push((alias, token)),
        }
    }

    /// Adds or replaces (in place) the secret key under `alias`.
    pub fn add_secret_key(&mut self, alias: impl Into<String>, key: Secret) {
        let alias = alias.into();
        match self.secret_keys.iter_mut().find(|(a, _)| *a == alias) {
            Some((_, slot)) => *slot = key,
            None => self.secret_keys.push((alias, key)),
        }
    }

    /// Decodes a whole credentials file; fuzz-ready entry point.
    pub fn decode(bytes: &[u8]) -> Result<Credentials, DecodeError> {
        Self::decode_with_format(bytes).map(|(credentials, _)| credentials)
    }

    /// Decodes a whole credentials file and tells which format it was in.
    pub fn decode_with_format(bytes: &[u8]) -> Result<(Credentials, Format), DecodeError> {
        let mut r = Reader::new(bytes);
        let magic = r.take_array::<4>("magic \"HDTS\"")?;
        if magic != MAGIC {
            return Err(DecodeError {
                offset: 0,
                problem: Problem::BadMagic { found: magic },
            });
        }
        let version_at = r.offset();
        let (credentials, format) = match r.take_u8("format version")? {
            0 => (read_writable(&mut r)?, Format::Writable),
            1 => (read_protobuf(&mut r)?, Format::Protobuf),
            other => {
                return Err(DecodeError {
                    offset: version_at,
                    problem: Problem::UnknownFormat(other),
                });
            }
        };
        r.all("credentials")?;
        Ok((credentials, format))
    }

    /// Encodes in format 0, the default: every Hadoop 2 and 3 client reads it, while format 1
    /// needs Hadoop 3.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        self.encode(Format::default())
    }

    /// Encodes a whole credentials file (it holds passwords, hence wiped on drop).
    pub fn encode(&self, format: Format) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.size_hint()));
        out.extend_from_slice(&MAGIC);
        out.push(format as u8);
        match format {
            Format::Writable => self.write_writable(&mut out),
            Format::Protobuf => {
                // `encode_length_delimited` only fails for lack of capacity, which a Vec grows.
                let _ = self.to_proto().encode_length_delimited(&mut *out);
            }
        }
        out
    }

    /// Reads and decodes a credentials file, refusing files above [`MAX_FILE_LEN`].
    pub fn read_file(path: &Path) -> Result<(Credentials, Format), FileError> {
        let io = |source| FileError::Io {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() > MAX_FILE_LEN {
            return Err(FileError::TooLarge {
                path: path.to_owned(),
                limit: MAX_FILE_LEN,
            });
        }
        Self::decode_with_format(&bytes).map_err(|source| FileError::Decode {
            path: path.to_owned(),
            source,
        })
    }

    /// Enough capacity for the encoding, so secret bytes are not left behind by reallocation.
    fn size_hint(&self) -> usize {
        let token_len = |t: &Token| {
            t.identifier.len() + t.password.len() + t.kind.len() + t.service.len() + 4 * 5
        };
        let tokens: usize = self
            .tokens
            .iter()
            .map(|(a, t)| a.len() + token_len(t) + 16)
            .sum();
        let keys: usize = self
            .secret_keys
            .iter()
            .map(|(a, k)| a.len() + k.len() + 16)
            .sum();
        16 + tokens + keys
    }

    fn write_writable(&self, out: &mut Vec<u8>) {
        write_vint(out, count_i32(self.tokens.len()));
        for (alias, token) in &self.tokens {
            write_text(out, alias);
            token.write(out);
        }
        write_vint(out, count_i32(self.secret_keys.len()));
        for (alias, key) in &self.secret_keys {
            write_text(out, alias);
            write_bytes(out, key.expose());
        }
    }

    fn to_proto(&self) -> CredentialsProto {
        CredentialsProto {
            tokens: self
                .tokens
                .iter()
                .map(|(alias, t)| CredentialsKvProto {
                    alias: alias.clone().into_bytes(),
                    token: Some(TokenProto {
                        identifier: t.identifier.clone(),
                        password: t.password.expose().to_vec(),
                        kind: t.kind.clone().into_bytes(),
                        service: t.service.clone().into_bytes(),
                    }),
                    secret: None,
                })
                .collect(),
            secrets: self
                .secret_keys
                .iter()
                .map(|(alias, key)| CredentialsKvProto {
                    alias: alias.clone().into_bytes(),
                    token: None,
                    secret: Some(key.expose().to_vec()),
                })
                .collect(),
        }
    }
}

fn read_count(r: &mut Reader<'_>, what: &'static str) -> Result<usize, DecodeError> {
    let start = r.offset();
    let count = read_vint(r, what)?;
    let at = |problem| DecodeError {
        offset: start,
        problem,
    };
    let count = usize::try_from(count).map_err(|_| {
        at(Problem::NegativeLength {
            what,
            len: i64::from(count),
        })
    })?;
    if count > MAX_ENTRIES {
        return Err(at(Problem::TooMany {
            what,
            count: count as u64,
            limit: MAX_ENTRIES,
        }));
    }
    Ok(count)
}

fn read_writable(r: &mut Reader<'_>) -> Result<Credentials, DecodeError> {
    let mut credentials = Credentials::default();
    // No `with_capacity(count)`: entries are only allocated as they are actually read.
    for _ in 0..read_count(r, "token count")? {
        let alias = read_text(r, "token alias")?;
        let token = Token::read(r)?;
        credentials.tokens.push((alias, token));
    }
    for _ in 0..read_count(r, "secret key count")? {
        let alias = read_text(r, "secret key alias")?;
        let key = Secret::from(read_bytes(r, "secret key")?);
        credentials.secret_keys.push((alias, key));
    }
    Ok(credentials)
}

fn read_protobuf(r: &mut Reader<'_>) -> Result<Credentials, DecodeError> {
    let prefix_at = r.offset();
    let mut rest = r.peek_rest();
    let before = rest.len();
    let len = prost::decode_length_delimiter(&mut rest).map_err(|e| DecodeError {
        offset: prefix_at,
        problem: Problem::Protobuf {
            what: "CredentialsProto length prefix",
            reason: e.to_string(),
        },
    })?;
    r.take(
        (before - rest.len()) as u64,
        "CredentialsProto length prefix",
    )?;
    if len > MAX_FILE_LEN {
        return Err(DecodeError {
            offset: prefix_at,
            problem: Problem::TooLong {
                what: "CredentialsProto",
                len: len as u64,
                limit: MAX_FILE_LEN,
            },
        });
    }
    let mut body = r.sub(len as u64, "CredentialsProto")?;
    let body_at = body.offset();
    let at = |problem| DecodeError {
        offset: body_at,
        problem,
    };
    let proto = CredentialsProto::decode(body.rest()).map_err(|e| {
        at(Problem::Protobuf {
            what: "CredentialsProto",
            reason: e.to_string(),
        })
    })?;
    for (what, n) in [
        ("tokens", proto.tokens.len()),
        ("secrets", proto.secrets.len()),
    ] {
        if n > MAX_ENTRIES {
            return Err(at(Problem::TooMany {
                what,
                count: n as u64,
                limit: MAX_ENTRIES,
            }));
        }
    }
    let utf8 = |bytes: Vec<u8>, what| {
        String::from_utf8(bytes).map_err(|_| at(Problem::InvalidUtf8 { what }))
    };
    let mut credentials = Credentials::default();
    let CredentialsProto {
        mut tokens,
        mut secrets,
    } = proto;
    for kv in &mut tokens {
        let alias = utf8(std::mem::take(&mut kv.alias), "token alias")?;
        let Some(token) = kv.token.as_mut() else {
            return Err(at(Problem::MissingField {
                what: "CredentialsKVProto",
                field: "token",
            }));
        };
        let token = Token {
            identifier: std::mem::take(&mut token.identifier),
            password: Secret::new(std::mem::take(&mut token.password)),
            kind: utf8(std::mem::take(&mut token.kind), "token kind")?,
            service: utf8(std::mem::take(&mut token.service), "token service")?,
        };
        credentials.tokens.push((alias, token));
    }
    for kv in &mut secrets {
        let alias = utf8(std::mem::take(&mut kv.alias), "secret key alias")?;
        let Some(secret) = kv.secret.take() else {
            return Err(at(Problem::MissingField {
                what: "CredentialsKVProto",
                field: "secret",
            }));
        };
        credentials.secret_keys.push((alias, Secret::new(secret)));
    }
    Ok(credentials)
}

/// Counts are bounded by memory long before 2^31; saturating keeps encoding infallible.
fn count_i32(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, arb_token};
    use proptest::prelude::*;

    #[test]
    fn minimal_files() {
        let empty0 = b"HDTS\x00\x00\x00";
        assert_eq!(
            Credentials::decode_with_format(empty0).unwrap(),
            (Credentials::default(), Format::Writable)
        );
        assert_eq!(Credentials::default().to_bytes().as_slice(), empty0);
        let empty1 = b"HDTS\x01\x00";
        assert_eq!(
            Credentials::decode_with_format(empty1).unwrap(),
            (Credentials::default(), Format::Protobuf)
        );
        assert_eq!(
            Credentials::default().encode(Format::Protobuf).as_slice(),
            empty1
        );
    }

    #[test]
    fn header_errors() {
        let err = Credentials::decode(b"HD").unwrap_err();
        assert_eq!(err.offset, 0);
        assert!(matches!(err.problem, Problem::Truncated { .. }));
        let err = Credentials::decode(b"HDTX\x00\x00\x00").unwrap_err();
        assert_eq!(err.problem, Problem::BadMagic { found: *b"HDTX" });
        let err = Credentials::decode(b"HDTS").unwrap_err();
        assert_eq!(err.offset, 4);
        let err = Credentials::decode(b"HDTS\x02").unwrap_err();
        assert_eq!(
            err,
            DecodeError {
                offset: 4,
                problem: Problem::UnknownFormat(2)
            }
        );
    }

    #[test]
    fn truncated_and_trailing_in_both_formats() {
        for format in [Format::Writable, Format::Protobuf] {
            let bytes = fixtures::credentials().encode(format);
            for cut in 0..bytes.len() {
                let err = Credentials::decode(&bytes[..cut]).unwrap_err();
                assert!(err.offset <= cut, "{format:?} cut at {cut}: {err}");
            }
            let mut long = bytes.to_vec();
            long.push(0);
            let err = Credentials::decode(&long).unwrap_err();
            assert_eq!(err.offset, bytes.len(), "{format:?}");
            assert!(matches!(
                err.problem,
                Problem::TrailingBytes { count: 1, .. }
            ));
        }
    }

    #[test]
    fn huge_counts_and_lengths_fail_without_allocating() {
        // Writable token count of i32::MAX.
        let err = Credentials::decode(b"HDTS\x00\x8c\x7f\xff\xff\xff").unwrap_err();
        assert_eq!(err.offset, 5);
        assert!(matches!(err.problem, Problem::TooMany { .. }));
        // Negative count.
        let err = Credentials::decode(b"HDTS\x00\xff").unwrap_err();
        assert!(matches!(
            err.problem,
            Problem::NegativeLength { len: -1, .. }
        ));
        // One token whose alias claims 1000 bytes.
        let err = Credentials::decode(b"HDTS\x00\x01\x8e\x03\xe8ab").unwrap_err();
        assert_eq!(err.offset, 9);
        assert!(matches!(
            err.problem,
            Problem::Truncated { needed: 1000, .. }
        ));
        // Protobuf body claiming 2^40 bytes.
        let err = Credentials::decode(b"HDTS\x01\x80\x80\x80\x80\x80\x20").unwrap_err();
        assert_eq!(err.offset, 5);
        assert!(matches!(err.problem, Problem::TooLong { .. }));
        // Protobuf body claiming 100 bytes of 2.
        let err = Credentials::decode(b"HDTS\x01\x64\x0a\x00").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(matches!(
            err.problem,
            Problem::Truncated { needed: 100, .. }
        ));
    }

    #[test]
    fn protobuf_entry_errors() {
        // tokens[0] with alias "a" and no token.
        let err = Credentials::decode(b"HDTS\x01\x05\x0a\x03\x0a\x01a").unwrap_err();
        assert_eq!(err.offset, 6);
        assert!(matches!(
            err.problem,
            Problem::MissingField { field: "token", .. }
        ));
        // Alias that is not UTF-8.
        let err = Credentials::decode(b"HDTS\x01\x05\x12\x03\x0a\x01\xff").unwrap_err();
        assert!(matches!(err.problem, Problem::InvalidUtf8 { .. }));
        // Garbage body.
        let err = Credentials::decode(b"HDTS\x01\x02\xff\xff").unwrap_err();
        assert!(matches!(err.problem, Problem::Protobuf { .. }));
    }

    #[test]
    fn add_token_replaces_in_place() {
        let mut c = fixtures::credentials();
        c.add_token("ha-hdfs:ns1", Token::default());
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[0].0, "ha-hdfs:ns1");
        assert_eq!(c.token("ha-hdfs:ns1"), Some(&Token::default()));
    }

    #[test]
    fn debug_hides_secrets() {
        let shown = format!("{:?}", fixtures::credentials());
        assert!(!shown.contains("secret-pw") && !shown.contains("k3y"));
        assert!(shown.contains("spark.key"));
    }

    #[test]
    fn read_file_names_path_and_offset() {
        let dir = std::env::temp_dir().join(format!("hadoop-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad");
        std::fs::write(&path, b"HDTS\x00\x05").unwrap();
        let err = Credentials::read_file(&path).unwrap_err();
        assert!(err.to_string().contains(&*path.to_string_lossy()));
        let FileError::Decode { source, .. } = err else {
            panic!("expected a decode error, got {err:?}");
        };
        assert_eq!(source.offset, 6);
        let missing = Credentials::read_file(&dir.join("missing")).unwrap_err();
        assert!(matches!(missing, FileError::Io { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn arb_credentials() -> impl Strategy<Value = Credentials> {
        (
            proptest::collection::vec((".{0,16}", arb_token()), 0..4),
            proptest::collection::vec(
                (".{0,16}", proptest::collection::vec(any::<u8>(), 0..24)),
                0..3,
            ),
        )
            .prop_map(|(tokens, keys)| Credentials {
                tokens,
                secret_keys: keys.into_iter().map(|(a, k)| (a, Secret::new(k))).collect(),
            })
    }

    proptest! {
        #[test]
        fn round_trips_in_both_formats(c in arb_credentials()) {
            for format in [Format::Writable, Format::Protobuf] {
                let bytes = c.encode(format);
                let (back, read_format) = Credentials::decode_with_format(&bytes).unwrap();
                prop_assert_eq!(read_format, format);
                prop_assert_eq!(&back, &c);
            }
        }

        #[test]
        fn decoder_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..64), v in 0u8..2) {
            let mut bytes = b"HDTS".to_vec();
            bytes.push(v);
            bytes.extend(tail);
            let _ = Credentials::decode(&bytes);
        }
    }
}
