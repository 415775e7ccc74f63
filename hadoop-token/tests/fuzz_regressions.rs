//! Replays the kept fuzz corpus and every minimized crash input (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz entry points, on stable, in `make test`.
//! `make fuzz` grows the corpus; see docs/reliability.md.
use hadoop_token::fuzz_replay::replay;

#[test]
fn credentials_corpus_and_crashes() {
    replay("credentials", hadoop_token::fuzz::credentials);
}

#[test]
fn token_corpus_and_crashes() {
    replay("token", hadoop_token::fuzz::token);
}

#[test]
fn identifier_corpus_and_crashes() {
    replay("identifier", hadoop_token::fuzz::identifier);
}

/// Found by reading the `token` property, not by the fuzzer (its inputs stay below 4 KiB): a
/// token whose four fields are each at their decoding limit was accepted as Writable, but its
/// URL string was longer than `MAX_URL_STRING_LEN` (sized for identifier and password only), so
/// `from_url_string(to_url_string(t))` refused it.
#[test]
fn largest_writable_token_round_trips_as_url_string() {
    use hadoop_token::writable::{MAX_BYTES_LEN, MAX_TEXT_LEN};
    let token = hadoop_token::Token {
        identifier: vec![1; MAX_BYTES_LEN],
        password: hadoop_token::Secret::from(vec![2; MAX_BYTES_LEN]),
        kind: "k".repeat(MAX_TEXT_LEN),
        service: "s".repeat(MAX_TEXT_LEN),
    };
    hadoop_token::fuzz::token(&token.to_writable());
}
