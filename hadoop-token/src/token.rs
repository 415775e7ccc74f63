//! Hadoop's `Token` Writable (identifier, password, kind, service) and its URL string form, the
//! one WebHDFS returns (`Token.encodeToUrlString()`: URL-safe base64 without padding).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader};
use crate::identifier::{self, DelegationIdentifier};
use crate::secret::Secret;
use crate::writable::{
    MAX_BYTES_LEN, MAX_TEXT_LEN, read_bytes, read_text, write_bytes, write_text,
};

/// Longest URL string accepted: base64 of the largest token `from_writable` accepts (each of
/// the four fields at its limit, with a 5-byte VInt length), so every decoded token's
/// `to_url_string` decodes again (found by the `token` fuzz property).
pub const MAX_URL_STRING_LEN: usize =
    (2 * (MAX_BYTES_LEN + 5) + 2 * (MAX_TEXT_LEN + 5)) * 4 / 3 + 4;

/// A delegation token as Hadoop's `Token<T>` Writable carries it.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Token {
    /// Serialized token identifier, kept as Hadoop's bytes (see [`Token::decode_identifier`]).
    pub identifier: Vec<u8>,
    pub password: Secret,
    pub kind: String,
    pub service: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("identifier_len", &self.identifier.len())
            .field("password", &self.password)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UrlStringError {
    #[error("token URL string is {len} characters long, above the limit of {limit}")]
    TooLong { len: usize, limit: usize },
    #[error("token URL string is not base64 (URL-safe or standard alphabet)")]
    Base64,
    #[error("token URL string does not hold a Hadoop token")]
    Decode(#[source] DecodeError),
}

impl Token {
    /// Reads one `Token` Writable: VInt-prefixed identifier and password, then kind and service
    /// as `Text`.
    pub fn read(r: &mut Reader<'_>) -> Result<Token, DecodeError> {
        let identifier = read_bytes(r, "token identifier")?.to_vec();
        let password = Secret::from(read_bytes(r, "token password")?);
        let kind = read_text(r, "token kind")?;
        let service = read_text(r, "token service")?;
        Ok(Token {
            identifier,
            password,
            kind,
            service,
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        write_bytes(out, &self.identifier);
        write_bytes(out, self.password.expose());
        write_text(out, &self.kind);
        write_text(out, &self.service);
    }

    /// Decodes exactly one `Token` Writable; a fuzz-ready entry point.
    pub fn from_writable(bytes: &[u8]) -> Result<Token, DecodeError> {
        let mut r = Reader::new(bytes);
        let token = Token::read(&mut r)?;
        r.all("token")?;
        Ok(token)
    }

    /// The Writable bytes (they contain the password, hence wiped on drop).
    pub fn to_writable(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        self.write(&mut out);
        out
    }

    /// Decodes `Token.encodeToUrlString()`; padded and standard-alphabet base64 are accepted too.
    pub fn from_url_string(s: &str) -> Result<Token, UrlStringError> {
        let s = s.trim();
        if s.len() > MAX_URL_STRING_LEN {
            return Err(UrlStringError::TooLong {
                len: s.len(),
                limit: MAX_URL_STRING_LEN,
            });
        }
        let normalized: Zeroizing<String> = Zeroizing::new(
            s.trim_end_matches('=')
                .chars()
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect(),
        );
        let bytes = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(normalized.as_bytes())
                .map_err(|_| UrlStringError::Base64)?,
        );
        Token::from_writable(&bytes).map_err(UrlStringError::Decode)
    }

    /// Hadoop's `Token.encodeToUrlString()`.
    pub fn to_url_string(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.to_writable().as_slice())
    }

    /// The identifier's public fields, decoded according to `kind`; `Ok(None)` for kinds this
    /// crate does not know, whose identifier stays opaque bytes.
    pub fn decode_identifier(&self) -> Result<Option<DelegationIdentifier>, DecodeError> {
        identifier::decode(&self.kind, &self.identifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Problem;
    use crate::fixtures::{self, arb_token};
    use proptest::prelude::*;

    #[test]
    fn writable_layout() {
        let bytes = fixtures::token().to_writable();
        let mut expected = vec![7, 0, 5, b'a', b'l', b'i', b'c', b'e', 2, b'p', b'w', 21];
        expected.extend_from_slice(b"HDFS_DELEGATION_TOKEN");
        expected.push(11);
        expected.extend_from_slice(b"ha-hdfs:ns1");
        assert_eq!(bytes.as_slice(), expected);
    }

    #[test]
    fn minimal_truncated_overlong_trailing() {
        let empty = Token::from_writable(&[0, 0, 0, 0]).unwrap();
        assert_eq!(empty, Token::default());

        let bytes = fixtures::token().to_writable();
        let err = Token::from_writable(&bytes[..bytes.len() - 1]).unwrap_err();
        assert_eq!(err.offset, 34);
        assert!(matches!(err.problem, Problem::Truncated { needed: 11, .. }));

        // Identifier claims 100 bytes but 3 follow.
        let err = Token::from_writable(&[100, 1, 2, 3]).unwrap_err();
        assert_eq!(err.offset, 1);
        assert!(matches!(
            err.problem,
            Problem::Truncated { needed: 100, .. }
        ));

        let mut long = bytes.to_vec();
        long.push(0);
        let err = Token::from_writable(&long).unwrap_err();
        assert_eq!(err.offset, bytes.len());
        assert!(matches!(
            err.problem,
            Problem::TrailingBytes { count: 1, .. }
        ));
    }

    #[test]
    fn url_string_accepts_all_base64_variants() {
        let token = fixtures::token();
        let url = token.to_url_string();
        assert!(!url.contains('=') && !url.contains('+') && !url.contains('/'));
        assert_eq!(Token::from_url_string(&url).unwrap(), token);

        let standard = base64::engine::general_purpose::STANDARD.encode(token.to_writable());
        assert_eq!(Token::from_url_string(&standard).unwrap(), token);
        assert_eq!(Token::from_url_string(&format!("{url}\n")).unwrap(), token);

        assert!(matches!(
            Token::from_url_string("not base64!"),
            Err(UrlStringError::Base64)
        ));
        assert!(matches!(
            Token::from_url_string("AA"),
            Err(UrlStringError::Decode(_))
        ));
        let huge = "A".repeat(MAX_URL_STRING_LEN + 1);
        assert!(matches!(
            Token::from_url_string(&huge),
            Err(UrlStringError::TooLong { .. })
        ));
    }

    #[test]
    fn debug_hides_password() {
        let shown = format!("{:?}", fixtures::token());
        assert!(shown.contains("HDFS_DELEGATION_TOKEN"));
        assert!(!shown.contains("pw\"") && !shown.contains("[112, 119]"));
    }

    proptest! {
        #[test]
        fn writable_round_trips(token in arb_token()) {
            prop_assert_eq!(Token::from_writable(&token.to_writable()).unwrap(), token);
        }

        #[test]
        fn url_string_round_trips(token in arb_token()) {
            prop_assert_eq!(Token::from_url_string(&token.to_url_string()).unwrap(), token);
        }

        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(token) = Token::from_writable(&bytes) {
                prop_assert_eq!(Token::from_writable(&token.to_writable()).unwrap(), token);
            }
        }
    }
}
