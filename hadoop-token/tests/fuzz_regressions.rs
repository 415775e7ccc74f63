//! Replays the kept fuzz corpus and every minimized crash input (`fuzz/corpus/<target>/`,
//! `fuzz/regressions/<target>/`) through the fuzz entry points, on stable, in `make test`.
//! `make fuzz` grows the corpus; see docs/reliability.md.
use std::path::{Path, PathBuf};

/// Every file of `fuzz/<kind>/<target>/`; the corpus must exist (a missing one means the
/// checkout is incomplete, not that there is nothing to test).
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{} is missing ({e}); restore it from git", dir.display()));
        for entry in entries {
            let path = entry.expect("readable fuzz directory").path();
            if path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep") {
                let bytes = std::fs::read(&path).expect("readable fuzz input");
                found.push((path, bytes));
            }
        }
    }
    assert!(
        !found.is_empty(),
        "no inputs for fuzz target {target}: fuzz/corpus/{target}/ must hold the seed corpus"
    );
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("fuzz input {} breaks {target}", path.display());
        }
    }
}

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
