#!/usr/bin/env bash
# pipeline.sh — the runtime image's publish pipeline, the same steps in CI (.github/workflows/runtime-image.yml)
# and in the tests (tests/it/registry.rs, against Debian's docker-registry on loopback).
#
#   pipeline.sh edge              render → build → gate → push :edge → gate that pushed digest from the
#                                 registry with the report attached (OCI referrer) → prints the digest
#   pipeline.sh promote DIGEST N  x1-validate promote docker://REG/REPO@DIGEST --to vN, then check that
#                                 :edge (when it is DIGEST) and :vN both resolve to DIGEST
#
# Environment:
#   X1_REGISTRY        HOST[:PORT] of the registry (required)
#   X1_REPO            repository (default x1agent/runtime-opencode)
#   X1_VALIDATE        the x1-validate binary (default target/release/x1-validate)
#   X1_INSECURE=1      plain-http registry (loopback test registries)
#   X1_REGISTRY_USER / X1_REGISTRY_PASSWORD   basic-auth credentials (never printed)
#   X1_OUT             work/output directory (default ./pipeline-out): edge.digest, reports
#   edge only:
#   X1_IMAGE           an already built image (OCI layout dir or archive): skips render and build
#   X1_BASE            the base image for `x1-validate build` (OCI layout dir or archive)
#   X1_PRESET          preset (default opencode);  X1_VALUES  values file for render (optional)
#   X1_VERSION         org.opencontainers.image.version label of the build (default 1.0.0)
#   X1_EXEC            healthcheck mode for the gate: always|auto|never (default always)
#   promote only:
#   X1_REGATE=1        gate the digest in full again instead of requiring an attached passing report
#
# Exit status: 0 done; otherwise the failing step's status (the gate's and promote's exit codes are
# x1-validate's: 1 findings / refused, 2 usage, 3 unreadable image or registry error, 4 healthcheck not run).
set -euo pipefail

die() { printf 'pipeline: %s\n' "$*" >&2; exit 2; }
log() { printf 'pipeline: %s\n' "$*" >&2; }

REG=${X1_REGISTRY:?set X1_REGISTRY to HOST[:PORT]}
REPO=${X1_REPO:-x1agent/runtime-opencode}
X1=${X1_VALIDATE:-target/release/x1-validate}
OUT=${X1_OUT:-pipeline-out}
PRESET=${X1_PRESET:-opencode}
[ -x "$X1" ] || die "x1-validate not found at $X1 (set X1_VALIDATE)"
command -v skopeo >/dev/null || die "skopeo is needed to push"
mkdir -p "$OUT"

X1_FLAGS=()
TLS=(--dest-tls-verify=true)
SRC_TLS=(--tls-verify=true)
if [ "${X1_INSECURE:-0}" = 1 ]; then
  X1_FLAGS+=(--insecure)
  TLS=(--dest-tls-verify=false)
  SRC_TLS=(--tls-verify=false)
fi
CREDS=()
SRC_CREDS=()
if [ -n "${X1_REGISTRY_USER:-}" ]; then
  # x1-validate reads these two; skopeo gets them through a private auth file (not argv).
  export X1_REGISTRY_USERNAME=$X1_REGISTRY_USER
  export X1_REGISTRY_PASSWORD=${X1_REGISTRY_PASSWORD:-}
  AUTH=$(mktemp)
  trap 'rm -f "$AUTH"' EXIT
  chmod 600 "$AUTH"
  printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REG" \
    "$(printf '%s:%s' "$X1_REGISTRY_USERNAME" "$X1_REGISTRY_PASSWORD" | base64 -w0)" >"$AUTH"
  CREDS=(--dest-authfile "$AUTH")
  SRC_CREDS=(--authfile "$AUTH")
fi

# The digest a tag resolves to now (sha256 of the raw manifest bytes), or nothing.
resolve() {
  skopeo inspect "${SRC_TLS[@]}" "${SRC_CREDS[@]}" --raw "docker://$REG/$REPO:$1" 2>/dev/null |
    sha256sum | awk '{print "sha256:" $1}'
}

edge() {
  local image=${X1_IMAGE:-}
  local exec_mode=${X1_EXEC:-always}
  if [ -z "$image" ]; then
    local base=${X1_BASE:?set X1_BASE (base image) or X1_IMAGE (built image)}
    log "render --preset $PRESET"
    rm -rf "$OUT/x1" "$OUT/image"
    local values=()
    [ -n "${X1_VALUES:-}" ] && values=(--values "$X1_VALUES")
    "$X1" render --preset "$PRESET" --out "$OUT/x1" "${values[@]}" >&2
    log "build on $base"
    "$X1" build --base "$base" --preset "$PRESET" --overlay "$OUT/x1" --out "$OUT/image" \
      --tag "$REPO:edge" --label "org.opencontainers.image.version=${X1_VERSION:-1.0.0}" >&2
    image=$OUT/image
  fi
  log "gate $image"
  "$X1" check "$image" --ref "$REPO:edge" --exec "$exec_mode" --format sarif -o "$OUT/x1.sarif" >&2
  local transport=oci
  [ -f "$image" ] && transport=oci-archive
  log "push $REG/$REPO:edge"
  skopeo copy --quiet "${TLS[@]}" "${CREDS[@]}" --digestfile "$OUT/edge.digest" \
    "$transport:$image" "docker://$REG/$REPO:edge"
  local digest
  digest=$(cat "$OUT/edge.digest")
  log "gate $digest from the registry, report attached"
  "$X1" check "${X1_FLAGS[@]}" "docker://$REG/$REPO@$digest" --ref "$REPO:edge" \
    --exec "$exec_mode" --attach --format json -o "$OUT/edge-report.json" >&2
  "$X1" verify "${X1_FLAGS[@]}" "docker://$REG/$REPO@$digest" >&2
  printf '%s\n' "$digest"
}

promote() {
  local digest=${1:?promote DIGEST N} n=${2:?promote DIGEST N}
  local regate=()
  [ "${X1_REGATE:-0}" = 1 ] && regate=(--regate --exec "${X1_EXEC:-always}" -o "$OUT/promote-report.sarif" --format sarif)
  log "promote $digest to :v$n"
  "$X1" promote "${X1_FLAGS[@]}" "docker://$REG/$REPO@$digest" --to "v$n" "${regate[@]}"
  local got
  got=$(resolve "v$n")
  [ "$got" = "$digest" ] || { log ":v$n resolves to $got, not $digest"; exit 3; }
  got=$(resolve edge)
  if [ "$got" = "$digest" ]; then
    log ":edge and :v$n both resolve to $digest"
  else
    log ":v$n resolves to $digest (:edge has moved on to $got)"
  fi
}

case "${1:-}" in
  edge) edge ;;
  promote) shift; promote "$@" ;;
  *) die "usage: pipeline.sh edge | pipeline.sh promote DIGEST N" ;;
esac
