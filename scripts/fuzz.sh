#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ one after another, FUZZ_SECONDS each (default 60),
# and prints the executions and the outcome of each from libFuzzer's final stats.
#
#   scripts/fuzz.sh                 # every target
#   scripts/fuzz.sh jwt_verify ...  # only these
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_SANITIZER  cargo-fuzz --sanitizer (default: none, the fastest; `address` finds memory errors
#                   in dependencies' unsafe code at ~2x the cost; Gatehouse forbids unsafe code)
#   FUZZ_ARGS       extra libFuzzer flags (e.g. "-max_len=8192")
#
# cargo-fuzz runs on the stable toolchain with RUSTC_BOOTSTRAP=1; it is installed
# (cargo install cargo-fuzz --locked) when missing. New corpus entries go to
# fuzz/corpus-run/<target>/ (git-ignored); the committed seeds in fuzz/corpus/<target>/
# are read, never written. Crashes land in fuzz/artifacts/<target>/; full logs in
# fuzz/logs/<target>.log. Exits non-zero when any target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_SANITIZER=${FUZZ_SANITIZER:-none}
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo-fuzz" ]; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p fuzz/logs
# Build every target first so a build error stops the run before any fuzzing.
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$FUZZ_SANITIZER" "$t"
done

failed=0
summary=()
total=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t"
    log="fuzz/logs/$t.log"
    echo "fuzzing $t for ${FUZZ_SECONDS}s (log: $log)" >&2
    status=ok
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    if ! cargo fuzz run --sanitizer "$FUZZ_SANITIZER" "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$FUZZ_SECONDS" -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1; then
        status=CRASH
        failed=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    execs=${execs:-0}
    total=$((total + execs))
    summary+=("$(printf '%-16s %12s %s' "$t" "$execs" "$status")")
    if [ "$status" = CRASH ]; then
        grep -E 'panicked at|ERROR: libFuzzer|SUMMARY|Test unit written to' "$log" | head -5 >&2 || true
    fi
done

printf '%-16s %12s %s\n' target executions result
printf '%s\n' "${summary[@]}"
printf '%-16s %12s\n' total "$total"
exit "$failed"
