#!/usr/bin/env bash
# Materialisation speed and memory of the healthcheck sandbox (issue 6), against `umoci raw unpack` of the
# same OCI layout, in the same run, alternating, medians. Both write to disk under $TMPDIR (the sandbox's
# workspace lives there since issue 10, never in host RAM).
#
#   bench/healthcheck.sh [RUNS]        (default 5; needs the corpus image and umoci)
#   X1_BASELINE_BIN=/path/to/old/x1-validate bench/healthcheck.sh   also times `check --exec always` of the
#                                      old binary against this one, alternating (the sandbox's cost)
#   X1_BENCH_SKIP_UNPACK=1             only the whole-check comparison (no release test build, no umoci)
#
# Prints per-run times, the medians, the ratio (target ≤ 0.8) and peak RSS: of the materialisation step
# alone, and of a whole `x1-validate check --exec always` run (target ≤ 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
CORPUS=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
OCI=$CORPUS/oci
[ -d "$OCI" ] || { echo "SKIP: no corpus image at $OCI" >&2; exit 0; }
command -v umoci >/dev/null || { echo "SKIP: umoci is not installed" >&2; exit 0; }
TAG=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"])' "$OCI/index.json" 2>/dev/null || echo latest)

cargo build --release --quiet
WORK=$(mktemp -d "${TMPDIR:-/tmp}/x1-bench-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
if [ -z "${X1_BENCH_SKIP_UNPACK:-}" ]; then
cargo test --release --quiet --test it --no-run 2>/dev/null
IT=$(find target/release/deps -maxdepth 1 -name 'it-*' ! -name '*.d' -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)

ours=(); theirs=(); rss=()
for i in $(seq "$RUNS"); do
  out=$("$IT" --ignored --exact sandbox::outside::bench_materialise_corpus --nocapture 2>/dev/null)
  t=$(sed -n 's/^materialise_seconds=//p' <<<"$out"); r=$(sed -n 's/^materialise_peak_rss_kib=//p' <<<"$out")
  ours+=("$t"); rss+=("$r")
  rm -rf "$WORK/rootfs"
  s=$(date +%s.%N)
  umoci raw unpack --rootless --image "$OCI:$TAG" "$WORK/rootfs" >/dev/null 2>&1
  e=$(date +%s.%N)
  rm -rf "$WORK/rootfs"
  u=$(echo "$e - $s" | bc -l)
  theirs+=("$u")
  printf 'run %d: x1-validate materialise %.3f s (peak RSS %s KiB)   umoci raw unpack %.3f s\n' "$i" "$t" "$r" "$u"
done
mo=$(printf '%s\n' "${ours[@]}" | median)
mu=$(printf '%s\n' "${theirs[@]}" | median)
mr=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo "$out" | grep '^materialise_stats=' || true
printf 'median: materialise %s s, umoci %s s, ratio %.2f (target <= 0.80); materialise peak RSS max %s KiB\n' \
  "$mo" "$mu" "$(echo "$mo / $mu" | bc -l)" "$mr"

# The whole gate with the healthcheck, as CI runs it.
/usr/bin/time -v target/release/x1-validate check --exec always --format json "$OCI" \
  >"$WORK/check.json" 2>"$WORK/time.txt" || echo "check exited $? (see report)"
echo "check --exec always: $(grep -E 'Maximum resident' "$WORK/time.txt" | sed 's/^[[:space:]]*//'), $(grep -E 'Elapsed' "$WORK/time.txt" | sed 's/^[[:space:]]*//')"
python3 - "$WORK/check.json" <<'PY' || true
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except Exception as e:
    print("no JSON report:", e); sys.exit(0)
for img in doc.get("images", []):
    for r in img.get("rules", []):
        if r.get("rule_id") == "healthcheck":
            print("healthcheck:", r.get("status"), "-", r.get("detail"))
PY
fi

# Before/after: the whole check, alternating in one run, medians. Variants of this build:
#   never   `--exec never` (no sandbox at all: the floor)
#   store   `--exec always`, layer store warm (what a host gating the same layers again pays)
#   nostore `--exec always`, X1_VALIDATE_LAYER_STORE=off (every file written, as on a fresh runner)
# and, with X1_BASELINE_BIN, `base` = that binary's `--exec always` with its defaults.
# The sandbox's cost is each variant minus `never`; the healthcheck's own run time (the entrypoint:
# node + opencode) is printed apart, since it is the image's, not the sandbox's.
variants=(never store nostore)
[ -n "${X1_BASELINE_BIN:-}" ] && variants+=(base)
declare -A times
# One warm-up so the store holds the layers (and the page cache the blobs) before the timed runs.
target/release/x1-validate check --exec always --format json "$OCI" >/dev/null 2>&1 || true
for i in $(seq "$RUNS"); do
  line="run $i:"
  for v in "${variants[@]}"; do
    bin=target/release/x1-validate; exec_mode=always; env_store=()
    case $v in
      never) exec_mode=never ;;
      nostore) env_store=(X1_VALIDATE_LAYER_STORE=off) ;;
      base) bin=$X1_BASELINE_BIN ;;
    esac
    s=$(date +%s.%N)
    env "${env_store[@]}" "$bin" check --exec "$exec_mode" --format json "$OCI" >"$WORK/$v.json" 2>/dev/null || true
    e=$(date +%s.%N)
    t=$(echo "$e - $s" | bc -l)
    times[$v]+="$t "
    line+=$(printf ' %s %.2f s' "$v" "$t")
  done
  echo "$line"
done
declare -A med
for v in "${variants[@]}"; do
  med[$v]=$(printf '%s\n' ${times[$v]} | median)
  printf 'median %-8s %s s' "$v" "${med[$v]}"
  [ "$v" != never ] && printf '   (sandbox + healthcheck cost over never: %+.2f s)' "$(echo "${med[$v]} - ${med[never]}" | bc -l)"
  echo
done
for v in "${variants[@]}"; do
  [ "$v" = never ] && continue
  python3 - "$WORK/$v.json" "$v" <<'PY' || true
import json, sys
doc = json.load(open(sys.argv[1]))
for img in doc.get("images", []):
    for r in img.get("rules", []):
        if r.get("rule_id") == "healthcheck":
            print(f"{sys.argv[2]:8} healthcheck:", r.get("status"), "-", r.get("detail"))
PY
done
