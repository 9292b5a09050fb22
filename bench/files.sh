#!/usr/bin/env bash
# Benchmark: `x1-validate files` on the corpus OCI layout against `pigz -dc` of its layer blobs to
# /dev/null, alternately (A B A B …, 5 pairs), in the same run. Prints each run, the median wall times,
# their ratio (target ≤ 0.6) and x1-validate's peak RSS (target ≤ 64 MiB).
#
# Usage: bench/files.sh [CORPUS_DIR]   (default: $X1_CORPUS_DIR or $HOME/x1-corpus/runtime-opencode)
# Needs: pigz, /usr/bin/time, python3 (for the manifest), a release build (done here).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}}"
oci="$corpus/oci"
[ -d "$oci" ] || { echo "corpus layout $oci is absent (build it with scripts/corpus.sh)" >&2; exit 2; }
command -v pigz >/dev/null || { echo "pigz is not installed (apt-get install pigz)" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is not installed (apt-get install time)" >&2; exit 2; }

cargo build --release --quiet
bin=target/release/x1-validate

# the layer blobs of the (single) image, from index.json → manifest
mapfile -t layers < <(python3 - "$oci" <<'PY'
import json, sys, os
root = sys.argv[1]
def blob(d):
    alg, hexd = d.split(":")
    return os.path.join(root, "blobs", alg, hexd)
idx = json.load(open(os.path.join(root, "index.json")))
m = json.load(open(blob(idx["manifests"][0]["digest"])))
for l in m["layers"]:
    print(blob(l["digest"]))
PY
)
echo "corpus: $oci (${#layers[@]} layers, $(cat "${layers[@]}" | wc -c) compressed bytes)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
a_times=(); b_times=(); rss=(); a_cpu=(); b_cpu=()
for i in 1 2 3 4 5; do
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/a" "$bin" files "$oci" >/dev/null
    read -r ta ma ua sa <"$tmp/a"
    /usr/bin/time -f '%e %M %U %S' -o "$tmp/b" sh -c 'pigz -dc "$@" >/dev/null' sh "${layers[@]}"
    read -r tb mb ub sb <"$tmp/b"
    ca=$(awk -v u="$ua" -v s="$sa" 'BEGIN { print u + s }'); cb=$(awk -v u="$ub" -v s="$sb" 'BEGIN { print u + s }')
    printf 'pair %d: x1-validate files %6.2fs (cpu %5.2fs) %7d KiB | pigz -dc %6.2fs (cpu %5.2fs) %7d KiB\n' \
        "$i" "$ta" "$ca" "$ma" "$tb" "$cb" "$mb"
    a_times+=("$ta"); b_times+=("$tb"); rss+=("$ma"); a_cpu+=("$ca"); b_cpu+=("$cb")
done
median() { printf '%s\n' "$@" | sort -g | sed -n 3p; }
ma=$(median "${a_times[@]}"); mb=$(median "${b_times[@]}")
peak=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
ratio=$(awk -v a="$ma" -v b="$mb" 'BEGIN { printf "%.3f", a / b }')
echo "median: x1-validate files ${ma}s, pigz -dc ${mb}s, ratio ${ratio} (target <= 0.6)"
echo "median cpu (user+sys): x1-validate $(median "${a_cpu[@]}")s, pigz $(median "${b_cpu[@]}")s (wall ratios are noisy on a loaded machine)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "peak RSS x1-validate: $((peak / 1024)) MiB (${peak} KiB; target <= 64 MiB)"
