#!/usr/bin/env bash
# make-sample.sh — rebuild testdata/sample-leaky.oci.tar, a small runtime image made with umoci (no
# container engine) from text files only, with the mistakes the gate exists to stop. No binaries, no
# key-shaped literals: every "secret" below is an obvious placeholder word, caught by NAME, not by value.
#   layer 1  a Debian-looking base: os-release, passwd/group (no `agent` user), the /x1 overlay, an
#            opencode config that talks to a provider directly, opencode-ai declaring BUSL-1.1
#   layer 2  root's ~/.git-credentials and ~/.netrc
#   layer 3  deletes ~/.git-credentials again (a whiteout) — it still ships in layer 2's blob
# Config: ENV ANTHROPIC_API_KEY=changeme, User root, label org.x1agent.runtime=opencode.
set -euo pipefail
cd "$(dirname "$0")"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
umoci init --layout "$W/img"
umoci new --image "$W/img:edge"
R=$W/r1
mkdir -p "$R/etc" "$R/x1/bin" "$R/x1/app/config" "$R/x1/app/adapter" "$R/x1/runtime/bin" "$R/x1/etc" \
  "$R/usr/local/lib/node_modules/opencode-ai" "$R/home"
cat > "$R/etc/os-release" <<'OS'
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
OS
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$R/etc/passwd"
printf 'root:x:0:\n' > "$R/etc/group"
printf '#!/bin/sh\n[ "$1" = --healthcheck ] && { echo ok; exit 0; }\nexec /x1/app/run.sh\n' > "$R/x1/bin/entrypoint"
printf '#!/bin/sh\nexec opencode serve\n' > "$R/x1/app/run.sh"
chmod 755 "$R/x1/bin/entrypoint" "$R/x1/app/run.sh"
cat > "$R/x1/app/config/opencode.json" <<'JSON'
{
  // talks to the provider directly instead of the sidecar
  "provider": { "anthropic": { "options": { "baseURL": "https://api.anthropic.com/v1" } } },
  "autoupdate": true,
}
JSON
printf '{"name":"opencode-ai","version":"1.18.33","license":"BUSL-1.1"}\n' \
  > "$R/usr/local/lib/node_modules/opencode-ai/package.json"
umoci insert --image "$W/img:edge" --history.created_by 'COPY base /' "$R" /
R=$W/r2
mkdir -p "$R"
printf 'https://x1-bot:changeme@git.example.invalid\n' > "$R/.git-credentials"
printf 'machine git.example.invalid login x1-bot password changeme\n' > "$R/.netrc"
umoci insert --image "$W/img:edge" --history.created_by 'COPY credentials /root/' "$R" /root
umoci insert --image "$W/img:edge" --history.created_by 'RUN rm /root/.git-credentials' \
  --whiteout /root/.git-credentials
umoci config --image "$W/img:edge" --config.user root --config.entrypoint /x1/bin/entrypoint \
  --config.env ANTHROPIC_API_KEY=changeme --config.label org.x1agent.runtime=opencode \
  --config.label org.opencontainers.image.licenses=MIT
umoci gc --layout "$W/img"
tar -C "$W/img" --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -cf sample-leaky.oci.tar .
echo "wrote $(pwd)/sample-leaky.oci.tar"
