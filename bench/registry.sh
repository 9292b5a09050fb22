#!/usr/bin/env bash
# Benchmark of `check --exec never` reading the corpus image from a registry against the same image's
# OCI layout dir (issue 13 target: registry ≤ 1.3 × layout; peak RSS ≤ 64 MiB).
#   A: x1-validate check --exec never --insecure docker://127.0.0.1:PORT/x1agent/runtime-opencode@DIGEST
#   B: x1-validate check --exec never $CORPUS/oci
# The registry is Debian's docker-registry (CNCF Distribution) on a free loopback port with a temp
# config and storage, the corpus pushed to it with skopeo; it is stopped and removed at exit.
# Runs alternate A B A B … (RUNS each, default 5); medians, ratio and peak RSS from /usr/bin/time.
#
# usage: bench/registry.sh      env: X1_CORPUS_DIR RUNS X1_BIN
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
CORPUS=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
BIN=${X1_BIN:-target/release/x1-validate}
[[ -d $CORPUS/oci ]] || { echo "SKIP: corpus not found at $CORPUS"; exit 0; }
for t in docker-registry skopeo python3; do
  command -v "$t" >/dev/null || { echo "$t missing (scripts/setup.sh installs it)" >&2; exit 2; }
done
[[ -n ${X1_BIN:-} ]] || cargo build --release --quiet

WORK=$(mktemp -d "${TMPDIR:-/tmp}/x1-bench-registry.XXXXXX")
REG_PID=""
cleanup() {
  [[ -n $REG_PID ]] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$WORK/config.yml" <<YAML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/data
http:
  addr: 127.0.0.1:$PORT
YAML
docker-registry serve "$WORK/config.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
echo "pushing $CORPUS/oci to 127.0.0.1:$PORT" >&2
skopeo copy --quiet --dest-tls-verify=false --digestfile "$WORK/digest" \
  "oci:$CORPUS/oci" "docker://127.0.0.1:$PORT/x1agent/runtime-opencode:edge"
REF="docker://127.0.0.1:$PORT/x1agent/runtime-opencode@$(cat "$WORK/digest")"

# timed NAME CMD… — runs CMD, appends "seconds kib" to $WORK/NAME, fails on exit codes other than 0/1.
timed() {
  local name=$1; shift
  local rc=0
  /usr/bin/time -f "%e %M" -o "$WORK/$name.last" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
  if (( rc > 1 )); then
    echo "$name failed (exit $rc):" >&2; tail -5 "$WORK/$name.err" >&2; exit 1
  fi
  tail -1 "$WORK/$name.last" >>"$WORK/$name"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
col() { awk -v c="$2" '{print $c}' "$WORK/$1"; }

for _ in $(seq "$RUNS"); do
  timed registry "$BIN" check --exec never --insecure --format json -o "$WORK/r.json" "$REF"
  timed layout "$BIN" check --exec never --format json -o "$WORK/l.json" "$CORPUS/oci"
done
a=$(col registry 1 | median); b=$(col layout 1 | median)
pa=$(col registry 2 | sort -n | tail -1); pb=$(col layout 2 | sort -n | tail -1)
awk -v a="$a" -v b="$b" -v pa="$pa" -v pb="$pb" -v n="$RUNS" 'BEGIN {
  r = a / b
  printf "check --exec never, %d runs each, A B alternated\n", n
  printf "  registry (docker://, loopback)  %7.2fs  peak RSS %.1f MiB %s\n", a, pa / 1024, (pa <= 65536 ? "MET" : "MISSED")
  printf "  OCI layout dir                  %7.2fs  peak RSS %.1f MiB\n", b, pb / 1024
  printf "  ratio %.3f (target <= 1.3) %s\n", r, (r <= 1.3 ? "MET" : "MISSED") }'
# the same verdict from both inputs
python3 - "$WORK/r.json" "$WORK/l.json" <<'PY'
import json, sys
f = lambda p: sorted((x["rule_id"], x["message"]) for i in json.load(open(p))["images"] for x in i["findings"])
a, b = f(sys.argv[1]), f(sys.argv[2])
print("  findings identical" if a == b else "  FINDINGS DIFFER", f"({len(a)} findings)")
sys.exit(0 if a == b else 1)
PY
