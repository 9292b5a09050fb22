#!/usr/bin/env bash
# bench/licenses.sh — what the license inventory (runtime-license, denied-license, license-label) adds
# to `x1-validate check` on the corpus image. Runs `check --exec never` N times with the license checks
# on, and N times with X1_VALIDATE_BENCH_SKIP_LICENSES=1 (they capture nothing and report skipped),
# interleaved, and prints the median wall time, user+sys CPU and max RSS of each, and the overhead.
#
#   usage: bench/licenses.sh [IMAGE] [N]     IMAGE default: $X1_CORPUS_DIR/oci (corpus), N default 5
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
IMAGE=${1:-$CORPUS/oci}
N=${2:-5}
[ -e "$IMAGE" ] || { echo "no image at $IMAGE (build the corpus: scripts/corpus.sh)" >&2; exit 2; }
cargo build --release --quiet
BIN=target/release/x1-validate
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

run() { # run LABEL ENVVALUE → appends "wall cpu rss" to $TMP/LABEL
  local label=$1 skip=$2
  X1_VALIDATE_BENCH_SKIP_LICENSES=$skip /usr/bin/time -f '%e %U %S %M' -o "$TMP/t" \
    "$BIN" check "$IMAGE" --exec never --format json >"$TMP/out.json" || true
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$TMP/t" >>"$TMP/$label"
  if [ "$skip" = 0 ]; then
    jq -e '.images[0].rules[] | select(.rule_id == "denied-license") | .status != "skipped"' "$TMP/out.json" >/dev/null
  fi
}
"$BIN" check "$IMAGE" --exec never --format json >/dev/null || true   # warm the page cache
for _ in $(seq "$N"); do run on 0; run off 1; done

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
for label in on off; do
  wall=$(cut -d' ' -f1 "$TMP/$label" | median); cpu=$(cut -d' ' -f2 "$TMP/$label" | median)
  rss=$(cut -d' ' -f3 "$TMP/$label" | median)
  printf '%-4s wall %6.2fs  cpu %6.2fs  maxrss %7d KB  (median of %d)\n' "$label" "$wall" "$cpu" "$rss" "$N"
  if [ "$label" = on ]; then on_wall=$wall on_cpu=$cpu; else off_wall=$wall off_cpu=$cpu; fi
done
awk -v a="$on_wall" -v b="$off_wall" -v c="$on_cpu" -v d="$off_cpu" \
  'BEGIN { printf "license checks add: wall %+.1f%%, cpu %+.1f%% (budget: 10%%)\n", (a - b) * 100 / b, (c - d) * 100 / d }'
