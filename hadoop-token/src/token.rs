//! A Hadoop `Token` (identifier, password, kind, service). Placeholder API, being written.

/// A delegation token as Hadoop's `Token<T>` Writable carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub identifier: Vec<u8>,
    pub password: Vec<u8>,
    pub kind: String,
    pub service: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("service", &self.service)
            .field("password", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not implemented yet")]
    Todo,
}

impl Token {
    /// Decode Hadoop's `Token.encodeToUrlString()` form (URL-safe base64 of the Writable).
    pub fn from_url_string(_s: &str) -> Result<Token, DecodeError> {
        Err(DecodeError::Todo)
    }

    /// Hadoop's `Token.encodeToUrlString()`.
    pub fn to_url_string(&self) -> String {
        String::new()
    }
}
