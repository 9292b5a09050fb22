#!/usr/bin/env bash
# corpus.sh — the project's own realistic runtime test image (the "corpus"): x1agent/runtime-opencode:edge
# as this repository builds it, from its own recipe:
#   1. a stand-in for node:22-slim (scripts/standin.sh): Debian bookworm minbase + Node 22 + npm, uid 1000
#   2. x1-validate render --preset opencode (this repo's presets: /x1 overlay + opencode.json)
#   3. buildah bud --layers -f Dockerfile.opencode: git/curl/gh/ripgrep, opencode-ai, user `agent`
#      (uid 1000), the managed config /etc/opencode/opencode.json → /x1/app/config/opencode.json,
#      OPENCODE_DISABLE_PROJECT_CONFIG=1, labels incl. org.opencontainers.image.version = VERSION
#   4. written as OUT/oci/ (OCI layout, tag edge), OUT/image.oci.tar, OUT/image.docker.tar
#      (x1agent/runtime-opencode:edge), OUT/stats.txt — then gated (`check --exec never` must exit 0).
#
#   usage (root): scripts/corpus.sh [OUT]     OUT defaults to $X1_CORPUS_DIR, else ~/x1-corpus/runtime-opencode
#
# Everything downloaded or built is cached OUTSIDE the repo: $X1_CORPUS_CACHE (default ~/.cache/x1-corpus:
# Debian minbase tar, npm tarballs, buildah vfs storage), $X1_TOOLS_CACHE. Network on the first run only
# (Debian archive, npm registry; a TLS-intercepting proxy's CA is mounted for the build only, as in
# scripts/e2e-runtime-image.sh). A rerun with the same recipe and intact outputs is a no-op;
# X1_CORPUS_FORCE=1 rebuilds. X1_VALIDATE names the x1-validate binary (default target/release/x1-validate).
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/e2e-tools.sh
. scripts/e2e-tools.sh
# shellcheck source=scripts/standin.sh
. scripts/standin.sh
die() { e2e_log "corpus: FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot and buildah's vfs storage need it)"
for t in buildah jq tar chroot sha256sum; do command -v "$t" >/dev/null || die "missing $t"; done
e2e_tools_env

OUT=${1:-${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}}
mkdir -p "$OUT" "$X1_CORPUS_CACHE/buildah"
OUT=$(cd "$OUT" && pwd)
case "$OUT" in *:*) die "output dir must not contain ':'";; esac
X1=${X1_VALIDATE:-$REPO/target/release/x1-validate}
[ -x "$X1" ] || die "x1-validate not found at $X1 (cargo build --release, or set X1_VALIDATE)"
B=(buildah --storage-driver vfs --root "$X1_CORPUS_CACHE/buildah/storage" --runroot "$X1_CORPUS_CACHE/buildah/runroot")
STANDIN=localhost/x1-corpus/node:22-slim-standin
IMAGE=localhost/x1agent/runtime-opencode:edge

WORK=$(mktemp -d "$X1_CORPUS_CACHE/work.XXXXXX")
trap 'rm -rf --one-file-system "$WORK"' EXIT

# The rendered overlay is part of the recipe: a changed preset, overlay or render rebuilds the image.
"$X1" render --preset opencode --out "$WORK/x1" >/dev/null
OC_VERSION=$(cat "$WORK/x1/app/config/opencode-version")
IMAGE_VERSION=$(tr -d '[:space:]' <VERSION)
RECIPE=$( { cat scripts/corpus.sh scripts/standin.sh Dockerfile.opencode VERSION
            (cd "$WORK/x1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
            echo "$X1_NODE_VERSION $X1_NPM_VERSION $OC_VERSION"; } | sha256sum | cut -c1-64)
if [ "${X1_CORPUS_FORCE:-0}" != 1 ] && [ "$(cat "$OUT/.recipe" 2>/dev/null)" = "$RECIPE" ] &&
   [ -f "$OUT/oci/index.json" ] && [ -s "$OUT/image.oci.tar" ] && [ -s "$OUT/image.docker.tar" ]; then
  e2e_log "corpus up to date in $OUT (recipe ${RECIPE:0:12}); X1_CORPUS_FORCE=1 rebuilds"
  exit 0
fi

standin_image "$STANDIN" "$X1_CORPUS_CACHE/buildah/standin.recipe" "$WORK" "${B[@]}"

BUILD_CA=${X1_CORPUS_BUILD_CA-${NODE_EXTRA_CA_CERTS:-}}
CA_MOUNT=()
[ -n "$BUILD_CA" ] && [ -s "$BUILD_CA" ] && CA_MOUNT=(-v "$BUILD_CA:/run/x1-build-ca.crt:ro")
e2e_log "corpus: buildah bud --layers -f Dockerfile.opencode (version $IMAGE_VERSION, opencode $OC_VERSION)"
# --layers: one layer per RUN/COPY (5 in all), like a registry image; slower on vfs, but cached.
"${B[@]}" bud --layers --isolation chroot --pull=never -f Dockerfile.opencode "${CA_MOUNT[@]}" \
  --build-arg BASE_IMAGE="$STANDIN" --build-arg OPENCODE_VERSION="$OC_VERSION" \
  --build-arg IMAGE_VERSION="$IMAGE_VERSION" \
  --build-arg VCS_REF="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$IMAGE" "$WORK/x1" >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; die "buildah bud failed"; }

NEW="$OUT.new"
rm -rf "$NEW" && mkdir -p "$NEW"
"${B[@]}" push --quiet "$IMAGE" "oci:$NEW/oci:edge"
"${B[@]}" push --quiet "$IMAGE" "oci-archive:$NEW/image.oci.tar:edge"
"${B[@]}" push --quiet "$IMAGE" "docker-archive:$NEW/image.docker.tar:x1agent/runtime-opencode:edge"

e2e_log "corpus: gate (check --exec never must pass)"
NO_COLOR=1 "$X1" check "$NEW/oci" --preset opencode --ref x1agent/runtime-opencode:edge --exec never >"$NEW/gate.txt" 2>&1 ||
  { cat "$NEW/gate.txt" >&2; die "the gate refused the corpus image (report above)"; }
"$X1" inspect "$NEW/oci" >"$NEW/stats.txt"
echo "$RECIPE" >"$NEW/.recipe"
rm -rf "$OUT.old"
mv "$OUT" "$OUT.old" && mv "$NEW" "$OUT" && rm -rf "$OUT.old"
# keep the build cache to this image only
"${B[@]}" rm --all >/dev/null 2>&1 || true
"${B[@]}" rmi --prune >/dev/null 2>&1 || true
e2e_log "corpus: $IMAGE → $OUT ($(du -sh "$OUT/image.oci.tar" | cut -f1) oci-archive)"
