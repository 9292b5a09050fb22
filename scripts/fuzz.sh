#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time; fail on the first crash (or on a build failure).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 20 s each, all targets)
#
# Needs `cargo install cargo-fuzz` and a nightly toolchain (`rustup toolchain install nightly`); without
# nightly, stable is used with RUSTC_BOOTSTRAP=1 (libfuzzer-sys builds there). Seeds are the small
# committed corpora in fuzz/corpus/<target>; new inputs found during the run go to a scratch copy, so the
# committed corpus only changes by hand. A crash leaves its input in fuzz/artifacts/<target>/ and the
# script exits non-zero: turn that input into a regression test.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(tar_entries layer_merge image_json image_archive jsonc nested_archive)
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2; exit 2; }

toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/x1-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

cargo "${toolchain[@]}" fuzz build
status=0
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    cp -r "fuzz/corpus/$t/." "$scratch/$t/" 2>/dev/null || true
    echo "== fuzz $t for ${secs}s"
    log="$scratch/$t.log"
    # -rss_limit_mb: a hostile input must not take more than 2 GiB; -timeout: no input may hang.
    if cargo "${toolchain[@]}" fuzz run "$t" "$scratch/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=30 -max_len=1048576 \
        -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done ' "$log" | tr '\n' ' '
        echo
    else
        tail -40 "$log"
        echo "fuzz.sh: target $t FAILED (crash input in fuzz/artifacts/$t/)" >&2
        status=1
    fi
done
exit "$status"
