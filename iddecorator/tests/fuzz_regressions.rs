//! Replays the kept fuzz corpus and every minimized crash input (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz entry points, on stable, in `make test`.
//! `make fuzz` grows the corpus; see docs/reliability.md.
use hadoop_token::fuzz_replay::replay;

#[test]
fn admission_corpus_and_crashes() {
    replay("admission", iddecorator::fuzz::admission);
}

#[test]
fn policy_corpus_and_crashes() {
    replay("policy", iddecorator::fuzz::policy);
}
