//! Replays what `make fuzz` keeps (`fuzz/corpus/<target>/`, the minimized corpus, and
//! `fuzz/regressions/<target>/`, minimized crash inputs) through a fuzz entry point, on
//! stable, for every crate's `tests/fuzz_regressions.rs`. Behind the `fuzzing` feature, so
//! release builds leave it out. See docs/reliability.md.

use std::path::{Path, PathBuf};

/// The `fuzz/` directory of this checkout.
fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`. Both directories
/// must exist and the corpus must not be empty: a missing one means the checkout is incomplete,
/// not that there is nothing to test.
pub fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = fuzz_dir();
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = fuzz.join(kind).join(target);
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{} is missing ({e}); restore it from git", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
                .path();
            if path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep") {
                let bytes = std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                found.push((path, bytes));
            }
        }
    }
    assert!(
        found
            .iter()
            .any(|(p, _)| p.starts_with(fuzz.join("corpus"))),
        "no inputs for fuzz target {target}: fuzz/corpus/{target}/ must hold the seed corpus"
    );
    found
}

/// Runs `run` on every kept input of `target`, naming the file that breaks it.
pub fn replay(target: &str, run: fn(&[u8])) {
    for (path, bytes) in inputs(target) {
        if std::panic::catch_unwind(|| run(&bytes)).is_err() {
            panic!("fuzz input {} breaks {target}", path.display());
        }
    }
}

/// One named input of `fuzz/regressions/<target>/`, for a regression test that says what it
/// was.
pub fn regression(target: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("regressions").join(target).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{} is missing ({e})", path.display()))
}
