//! `hadoop_token::fuzz::token`: decode, re-encode, decode again and compare.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| hadoop_token::fuzz::token(data));
