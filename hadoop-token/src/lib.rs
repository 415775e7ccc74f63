//! Hadoop delegation tokens and credentials files: decode, encode, inspect.
//!
//! Decoding never panics and never allocates more than the input holds: every decoder reads
//! through [`codec::Reader`] and returns a [`DecodeError`] naming the byte offset. Encoding cannot
//! fail. Passwords and secret keys live in [`Secret`], which never prints its bytes.
#![forbid(unsafe_code)]

pub mod codec;
pub mod credentials;
#[cfg(feature = "fuzz-replay")]
pub mod fuzz_replay;
pub mod identifier;
mod proto;
pub mod secret;
pub mod token;
pub mod writable;

pub use codec::{DecodeError, Problem};
pub use credentials::{Credentials, FileError, Format};
pub use identifier::{DelegationIdentifier, IdentifierFormat};
pub use secret::Secret;
pub use token::{Token, UrlStringError};

/// Entry points for fuzz targets: decode, re-encode, decode again and compare. They panic on a
/// mismatch, which is the point: a fuzzer reports it.
pub mod fuzz {
    use super::*;

    pub fn credentials(data: &[u8]) {
        if let Ok((creds, format)) = Credentials::decode_with_format(data) {
            let again = Credentials::decode_with_format(&creds.encode(format));
            assert_eq!(again.ok(), Some((creds.clone(), format)));
            for (_, token) in &creds.tokens {
                let _ = token.decode_identifier();
            }
        }
    }

    /// The same bytes as a Writable token and, when UTF-8, as `encodeToUrlString()` text.
    pub fn token(data: &[u8]) {
        if let Ok(token) = Token::from_writable(data) {
            assert_eq!(
                Token::from_writable(&token.to_writable()).ok(),
                Some(token.clone())
            );
            assert_eq!(
                Token::from_url_string(&token.to_url_string()).ok(),
                Some(token)
            );
        }
        if let Ok(text) = std::str::from_utf8(data)
            && let Ok(token) = Token::from_url_string(text)
        {
            assert_eq!(
                Token::from_url_string(&token.to_url_string()).ok(),
                Some(token)
            );
        }
    }

    pub fn identifier(data: &[u8]) {
        for format in [IdentifierFormat::Writable, IdentifierFormat::YarnProto] {
            if let Ok(id) = DelegationIdentifier::decode(format, data) {
                assert_eq!(
                    DelegationIdentifier::decode(format, &id.encode(format)).ok(),
                    Some(id)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_points_accept_valid_and_garbage_input() {
        let id = DelegationIdentifier {
            owner: "alice".into(),
            ..DelegationIdentifier::default()
        };
        let mut creds = Credentials::default();
        creds.add_token(
            "a",
            Token {
                identifier: id.encode(IdentifierFormat::Writable),
                password: Secret::from(b"pw".as_slice()),
                kind: identifier::HDFS_DELEGATION_TOKEN.into(),
                service: "s".into(),
            },
        );
        for format in [Format::Writable, Format::Protobuf] {
            fuzz::credentials(&creds.encode(format));
        }
        fuzz::token(&creds.tokens[0].1.to_writable());
        fuzz::identifier(&id.encode(IdentifierFormat::Writable));
        for garbage in [&b""[..], b"HDTS\x00\xff", b"HDTS\x01\x05\x0a\x03", b"\x8f"] {
            fuzz::credentials(garbage);
            fuzz::token(garbage);
            fuzz::identifier(garbage);
        }
    }
}
