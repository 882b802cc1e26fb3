#!/usr/bin/env bash
# Short, bounded fuzz runs of the protocol parsers, for CI (see README.md,
# "Short bounded runs without cargo-fuzz"). Each target runs for
# FUZZ_SECONDS (default 20) from its corpus directory and the script fails on
# the first crash (libFuzzer exits non-zero and leaves the input in
# artifacts/<target>/). Skips with a note when no nightly toolchain is
# installed (the sanitizer-coverage flags need it).
#
#   fuzz/ci.sh                     # http_request resp_command websocket, 20 s each
#   FUZZ_SECONDS=60 fuzz/ci.sh frame line
set -euo pipefail
cd "$(dirname "$0")"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(http_request resp_command websocket)
seconds=${FUZZ_SECONDS:-20}
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "note: no nightly toolchain; the fuzz runs are skipped"
    exit 0
fi
triple=x86_64-unknown-linux-gnu
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# The explicit --target keeps the coverage flags off build scripts.
cargo +nightly build --quiet --release --target "$triple" "${bins[@]}"
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "fuzz $t for ${seconds} s"
    "./target/$triple/release/$t" -max_total_time="$seconds" -print_final_stats=0 \
        -artifact_prefix="artifacts/$t/" "corpus/$t" 2>"artifacts/$t.log" || {
        tail -40 "artifacts/$t.log"
        echo "fuzz target $t failed; the input is in fuzz/artifacts/$t/"
        exit 1
    }
    tail -1 "artifacts/$t.log"
done
