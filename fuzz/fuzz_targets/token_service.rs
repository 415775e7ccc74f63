#![no_main]
// A credentials request (headers, TokenReview, Pod, owners) through the token service's pure
// request-path functions; see token_service::fuzz.
libfuzzer_sys::fuzz_target!(|data: &[u8]| token_service::fuzz::request(data));
