//! Hadoop delegation tokens and credentials files: decode, encode, inspect.
//!
//! Decoding never panics and never allocates more than the input holds: every decoder reads
//! through [`codec::Reader`] and returns a [`DecodeError`] naming the byte offset. Encoding cannot
//! fail. Passwords and secret keys live in [`Secret`], which never prints its bytes.
#![forbid(unsafe_code)]

pub mod codec;
pub mod credentials;
#[cfg(test)]
mod fixtures;
// Test code, never in release binaries: the fuzz targets and each crate's
// tests/fuzz_regressions.rs enable `fuzzing`; unit tests see `fuzz` without it.
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzz;
#[cfg(feature = "fuzzing")]
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
