//! The signed stamp that proves iddecorator, not someone writing while it was not looking,
//! put a `kube2hadoop.io/user` value on an object in a namespace.
//!
//! Value: `v1.` + base64url-no-pad(HMAC-SHA256(key, "kube2hadoop.io/stamp/v1\0" + namespace +
//! "\0" + user)). iddecorator signs with the first key of its key file; both binaries accept any
//! key of it, so a key can be rotated without refusing pods: add the new key second and roll
//! both, move it first and roll iddecorator, and drop the old one only once every workload
//! stamped with it was re-applied or is gone (stamps copied by controllers are never re-signed).
//! The message names no cluster: give every cluster a key of its own.
//!
//! Key file: one key per line, base64 (standard alphabet, padding optional), at least 32 bytes
//! each once decoded; blank lines and lines starting with `#` are ignored. `openssl rand
//! -base64 32` makes one. Keys are never printed: `Keys` has no Debug output of its bytes.
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ring::hmac;

const PREFIX: &str = "v1.";
const DOMAIN: &[u8] = b"kube2hadoop.io/stamp/v1\0";
/// Shortest key accepted, in bytes (HMAC-SHA256's output size).
pub const MIN_KEY_BYTES: usize = 32;

/// Why a key file cannot be used. Never includes key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the stamp key file holds no key; put one base64 key (openssl rand -base64 32) per line"
    )]
    Empty,
    #[error("line {line} of the stamp key file is not base64; put one base64 key per line")]
    NotBase64 { line: usize },
    #[error(
        "the key on line {line} of the stamp key file is {len} bytes; use at least {MIN_KEY_BYTES} (openssl rand -base64 32)"
    )]
    TooShort { line: usize, len: usize },
}

/// The stamp keys: the first signs, all verify.
#[derive(Clone)]
pub struct Keys {
    keys: Vec<hmac::Key>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} key(s), redacted)", self.keys.len())
    }
}

impl Keys {
    /// Parse a key file's text (see the module documentation).
    pub fn parse(text: &str) -> Result<Keys, KeyError> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bytes = STANDARD
                .decode(line)
                .or_else(|_| STANDARD_NO_PAD.decode(line))
                .map_err(|_| KeyError::NotBase64 { line: i + 1 })?;
            if bytes.len() < MIN_KEY_BYTES {
                return Err(KeyError::TooShort {
                    line: i + 1,
                    len: bytes.len(),
                });
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, &bytes));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Keys { keys })
    }

    /// The stamp for `user` in `namespace`, signed with the first key.
    pub fn sign(&self, namespace: &str, user: &str) -> String {
        // `parse` refuses an empty file, so there is always a first key.
        let tag = hmac::sign(&self.keys[0], &message(namespace, user));
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// Whether `stamp` was made by any of the keys for `user` in `namespace` (constant-time
    /// comparison of the tag).
    pub fn verify(&self, namespace: &str, user: &str, stamp: &str) -> bool {
        let Some(tag) = stamp
            .strip_prefix(PREFIX)
            .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        else {
            return false;
        };
        let msg = message(namespace, user);
        self.keys
            .iter()
            .any(|k| hmac::verify(k, &msg, &tag).is_ok())
    }
}

fn message(namespace: &str, user: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + namespace.len() + 1 + user.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(namespace.as_bytes());
    m.push(0);
    m.extend_from_slice(user.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const K2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

    #[test]
    fn signs_and_verifies_per_namespace_and_user() {
        let k = Keys::parse(K1).unwrap();
        let s = k.sign("team-a", "alice");
        assert!(s.starts_with("v1."), "{s}");
        assert!(k.verify("team-a", "alice", &s));
        assert!(!k.verify("team-b", "alice", &s));
        assert!(!k.verify("team-a", "bob", &s));
        // The separator keeps (ns, user) pairs apart.
        assert!(!k.verify("team-aalice", "", &s));
        assert!(!k.verify("team-a", "alice", &s[..s.len() - 1]));
        assert!(!k.verify("team-a", "alice", "v1."));
        assert!(!k.verify("team-a", "alice", "alice"));
        assert!(!k.verify("team-a", "alice", &s.replacen("v1.", "v2.", 1)));
    }

    #[test]
    fn the_first_key_signs_and_any_verifies() {
        let old = Keys::parse(K1).unwrap();
        let both = Keys::parse(&format!("# rotation\n{K2}\n\n{K1}\n")).unwrap();
        let by_old = old.sign("ns", "alice");
        assert!(both.verify("ns", "alice", &by_old));
        let by_new = both.sign("ns", "alice");
        assert_ne!(by_new, by_old);
        assert!(!old.verify("ns", "alice", &by_new));
        assert!(both.verify("ns", "alice", &by_new));
    }

    #[test]
    fn bad_key_files_are_refused_without_showing_keys() {
        assert_eq!(Keys::parse("\n# none\n").unwrap_err(), KeyError::Empty);
        assert_eq!(
            Keys::parse("c2hvcnQ=").unwrap_err(),
            KeyError::TooShort { line: 1, len: 5 }
        );
        assert_eq!(
            Keys::parse(&format!("{K1}\nnot base64!")).unwrap_err(),
            KeyError::NotBase64 { line: 2 }
        );
        assert!(Keys::parse(&K1.replace('=', "")).is_ok());
        let shown = format!("{:?}", Keys::parse(K1).unwrap());
        assert!(!shown.contains(K1) && shown.contains("redacted"), "{shown}");
    }
}
