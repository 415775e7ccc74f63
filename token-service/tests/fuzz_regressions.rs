//! Replays the kept fuzz corpus and every minimized crash input (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz entry points, on stable, in `make test`.
//! `make fuzz` grows the corpus; see docs/reliability.md.
use hadoop_token::fuzz_replay::replay;

#[test]
fn token_service_corpus_and_crashes() {
    replay("token-service", token_service::fuzz::request);
}

/// A pod whose API object lists its IPv4 address in IPv6-mapped form (`::ffff:a.b.c.d`) was
/// indexed under the mapped address while lookups ask for the canonical IPv4 one, so it could
/// never be identified by its address (the fuzzer's index property: a live pod is found at
/// every address it holds). `PodFacts::from_pod` now stores canonical addresses.
#[test]
fn ipv4_mapped_pod_address_is_found_by_its_ipv4_address() {
    token_service::fuzz::request(&hadoop_token::fuzz_replay::regression(
        "token-service",
        "ipv4-mapped-pod-ip",
    ));
}
