//! Hadoop delegation tokens and credentials files.
#![forbid(unsafe_code)]

pub mod token;

pub use token::Token;
