#!/usr/bin/env bash
# setup.sh — install everything x1-validate's build, tests and benchmarks need on a Debian 12 machine,
# idempotently, and build the release binary. Heavy downloads are cached OUTSIDE the repo:
#   X1_TOOLS_CACHE   (default ~/.cache/x1-tools)      npm/PyPI tools, opencode, node 22
#   X1_CORPUS_CACHE  (default ~/.cache/x1-corpus)     the corpus build's Debian/npm downloads
#   X1_CORPUS_DIR    (default ~/x1-corpus/runtime-opencode)  the corpus image (3 forms, scripts/corpus.sh)
# Set X1_SKIP_CORPUS=1 to skip building the corpus image (tests that need it then skip, saying so).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

APT_PACKAGES=(umoci skopeo buildah podman docker.io containerd crun uidmap debootstrap pigz jq busybox-static util-linux bubblewrap gcc libc6-dev iproute2 curl ca-certificates git python3-venv docker-registry apache2-utils)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null && command -v npm >/dev/null || {
  log "apt-get install nodejs npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
}
command -v cargo >/dev/null || { log "error: the Rust toolchain (cargo) is required"; exit 1; }
# cargo-fuzz for scripts/fuzz.sh (libFuzzer targets in fuzz/; nightly when rustup has it, else stable
# with RUSTC_BOOTSTRAP=1).
if ! command -v cargo-fuzz >/dev/null; then
  log "cargo install cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz@0.13.2
fi

TOOLS=${X1_TOOLS_CACHE:-$HOME/.cache/x1-tools}
mkdir -p "$TOOLS"
# shellcheck source=scripts/tools.sh
. scripts/tools.sh
install_tools "$TOOLS"

log "cargo build --release"
cargo build --release --quiet

# The corpus image is built by this repository's own recipe (render → buildah bud Dockerfile.opencode),
# with x1-validate from the build above.
if [ "${X1_SKIP_CORPUS:-0}" != 1 ]; then
  CORPUS=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
  log "corpus image → $CORPUS (scripts/corpus.sh; cached; a no-op when up to date)"
  X1_VALIDATE="$(pwd)/target/release/x1-validate" bash scripts/corpus.sh "$CORPUS" >/dev/null
fi
log "ready: target/release/x1-validate"
