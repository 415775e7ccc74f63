//! Entry points for fuzz targets: decode, re-encode, decode again and compare. They panic on a
//! mismatch, which is the point: a fuzzer reports it.
use crate::{Credentials, DelegationIdentifier, IdentifierFormat, Token};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Format, fixtures};

    #[test]
    fn fuzz_entry_points_accept_valid_and_garbage_input() {
        let creds = fixtures::credentials();
        for format in [Format::Writable, Format::Protobuf] {
            credentials(&creds.encode(format));
        }
        token(&fixtures::token().to_writable());
        identifier(&fixtures::identifier().encode(IdentifierFormat::Writable));
        for garbage in [&b""[..], b"HDTS\x00\xff", b"HDTS\x01\x05\x0a\x03", b"\x8f"] {
            credentials(garbage);
            token(garbage);
            identifier(garbage);
        }
    }
}
