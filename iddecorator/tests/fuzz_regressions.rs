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
fn admission_corpus_and_crashes() {
    replay("admission", iddecorator::fuzz::admission);
}

#[test]
fn policy_corpus_and_crashes() {
    replay("policy", iddecorator::fuzz::policy);
}
