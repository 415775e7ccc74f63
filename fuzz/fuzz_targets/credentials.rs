//! `hadoop_token::fuzz::credentials`: decode, re-encode, decode again and compare.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hadoop_token::fuzz::credentials(data));
