#!/usr/bin/env bash
# `make fuzz`: every cargo-fuzz target for FUZZ_SECONDS each (default 600), one at a time, one
# process, under nice. New corpus entries go to fuzz/.work/<target>/ so the kept, minimized
# corpus in fuzz/corpus/ stays as committed; a crash stops the run with what to do next.
# Needs the nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz itself.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-600}
targets=${FUZZ_TARGETS:-credentials token identifier admission policy token-service}
# No sanitizer: our code forbids unsafe, and ASan would halve the executions; debug assertions
# (overflow checks) stay on.
flags=(--sanitizer none --debug-assertions)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing; run: rustup toolchain install nightly" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

# Build once and run the binaries: every target fuzzes the same build, and edits made to the
# crates meanwhile do not rebuild before each target (`cargo fuzz run` would).
cargo +nightly fuzz build "${flags[@]}"
bin=target/$(rustc +nightly -vV | sed -n 's/^host: //p')/release
for t in $targets; do
  mkdir -p ".work/$t" "corpus/$t" "artifacts/$t"
  dict=()
  [ -f "$t.dict" ] && dict=("-dict=$t.dict")
  echo "fuzz: $t for ${seconds}s"
  if ! nice "$bin/$t" ".work/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}"; then
    cat >&2 <<EOF
fuzz: $t failed; the input is in fuzz/artifacts/$t/. Next:
  cd fuzz && cargo +nightly fuzz tmin ${flags[*]} $t artifacts/$t/<file>
  copy the minimized file to fuzz/regressions/$t/, fix the code, and run
  cargo test -p hadoop-token -p iddecorator -p token-service --test fuzz_regressions
EOF
    exit 1
  fi
done
echo "fuzz: all targets ran ${seconds}s without a failure."
cat <<EOF
To keep new coverage (keeps fuzz/corpus small; see docs/reliability.md):
  cd fuzz && cp -n .work/<target>/* corpus/<target>/ &&
  cargo +nightly fuzz cmin ${flags[*]} <target> corpus/<target> -- -use_counters=0
  then restore the named seed-* files (fuzz/seed_admission.py for admission,
  fuzz/seed_token_service.py for token-service)
EOF
