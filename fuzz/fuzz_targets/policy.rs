//! `iddecorator::fuzz::policy`; the properties are documented there.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| iddecorator::fuzz::policy(data));
