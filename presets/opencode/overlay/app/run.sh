#!/bin/sh
# /x1/app/run.sh — start opencode headless plus the platform adapter, offline, and supervise both.
#
# 1. offline switches and platform config (opencode.md §3, §6.3);
# 2. `opencode serve --hostname 127.0.0.1 --port 4096` in the workspace;
# 3. wait for GET /global/health (deadline X1_HEALTH_TIMEOUT seconds, default 60);
# 4. start the adapter (platform SSE on :3100, injection on :8788);
# 5. forward SIGTERM/SIGINT to both; when either exits, stop the other and exit non-zero.
#
# Test knobs (env): X1_ROOT, X1_OPENCODE_BIN, X1_OPENCODE_PORT, X1_WORKSPACE, X1_ADAPTER_* (adapter).
set -u
X1_ROOT=${X1_ROOT:-/x1}
node=$X1_ROOT/runtime/bin/node
opencode=${X1_OPENCODE_BIN:-opencode}
port=${X1_OPENCODE_PORT:-4096}
deadline=${X1_HEALTH_TIMEOUT:-60}
workspace=${X1_WORKSPACE:-${HOME:-/home/agent}/workspace}

# The platform config is opencode's managed config (/etc/opencode/opencode.json → the rendered
# $X1_ROOT/app/config/opencode.json, highest precedence); project config is off, and nothing from the
# environment adds config (OPENCODE_CONFIG would even sit below project config). A relocated tree
# (tests: X1_ROOT other than /x1) has no /etc/opencode: opencode's own hook for the managed config dir
# points at its config dir instead, so the platform file still has the highest precedence.
export OPENCODE_DISABLE_PROJECT_CONFIG=1
unset OPENCODE_CONFIG OPENCODE_CONFIG_DIR OPENCODE_CONFIG_CONTENT OPENCODE_TEST_MANAGED_CONFIG_DIR
if [ "$X1_ROOT" != /x1 ]; then
  export OPENCODE_TEST_MANAGED_CONFIG_DIR="$X1_ROOT/app/config"
  export OPENCODE_CONFIG="$X1_ROOT/app/config/opencode.json" # the adapter reads its permission policy here
fi
export OPENCODE_DISABLE_MODELS_FETCH=1
export OPENCODE_DISABLE_AUTOUPDATE=1
export OPENCODE_DISABLE_SHARE=1
export OPENCODE_DISABLE_LSP_DOWNLOAD=1
export GIT_CONFIG_GLOBAL="$X1_ROOT/etc/gitconfig"
export GH_NO_UPDATE_NOTIFIER=1
home=${HOME:-/home/agent}
export XDG_CONFIG_HOME="${XDG_CONFIG_HOME:-$home/.config}"
export XDG_DATA_HOME="${XDG_DATA_HOME:-$home/.local/share}"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$home/.cache}"
export XDG_STATE_HOME="${XDG_STATE_HOME:-$home/.local/state}"
export X1_OPENCODE_URL="http://127.0.0.1:$port"
export PATH="$X1_ROOT/bin:$PATH"

log() { printf 'x1 run.sh: %s\n' "$*" >&2; }

mkdir -p "$workspace" || { log "cannot create workspace $workspace"; exit 1; }
cd "$workspace" || exit 1

oc_pid=""
ad_pid=""
stopping=0
stop_all() {
  for p in $ad_pid $oc_pid; do kill -TERM "$p" 2>/dev/null; done
}
on_signal() {
  stopping=1
  log "received $1; stopping opencode and the adapter"
  stop_all
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT

# opencode's own server: loopback only, HTTP basic auth with a password made for this start; only the
# adapter is told it. The adapter's bearer token is not passed to opencode (nor to its tools).
OPENCODE_SERVER_PASSWORD=$("$node" -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))') &&
  [ -n "$OPENCODE_SERVER_PASSWORD" ] || { log "cannot generate the opencode server password"; exit 1; }
export OPENCODE_SERVER_PASSWORD OPENCODE_SERVER_USERNAME=opencode
env -u X1_ADAPTER_TOKEN -u X1_ADAPTER_TOKEN_FILE "$opencode" serve --hostname 127.0.0.1 --port "$port" &
oc_pid=$!

# Wait for health with a deadline, using node's fetch (curl is not required by the runtime).
if ! "$node" -e '
  const [url, secs, pid] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
  const end = Date.now() + secs * 1000;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  const headers = { authorization: "Basic " + Buffer.from("opencode:" + process.env.OPENCODE_SERVER_PASSWORD).toString("base64") };
  (async () => {
    while (Date.now() < end) {
      if (!alive()) { console.error("opencode exited before it became healthy"); process.exit(1); }
      try {
        const r = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
        if (r.ok && (await r.json()).healthy === true) process.exit(0);
      } catch {}
      await new Promise((r) => setTimeout(r, 200));
    }
    console.error(`no healthy answer from ${url} within ${secs}s`); process.exit(1);
  })();
' "$X1_OPENCODE_URL/global/health" "$deadline" "$oc_pid"; then
  log "opencode did not become healthy"
  stop_all
  wait "$oc_pid" 2>/dev/null
  exit 1
fi
[ "$stopping" = 1 ] && { wait; exit 143; }

"$node" "$X1_ROOT/app/adapter/main.mjs" &
ad_pid=$!
log "opencode (pid $oc_pid) healthy on 127.0.0.1:$port; adapter pid $ad_pid"

# POSIX sh has no `wait -n`: poll both children; `wait` returns early when a trapped signal arrives.
while :; do
  if ! kill -0 "$oc_pid" 2>/dev/null; then wait "$oc_pid"; rc=$?; who=opencode; break; fi
  if ! kill -0 "$ad_pid" 2>/dev/null; then wait "$ad_pid"; rc=$?; who=adapter; break; fi
  sleep 1 &
  wait $! 2>/dev/null
done
stop_all
wait 2>/dev/null
if [ "$stopping" = 1 ]; then
  log "stopped on request"
  exit 143
fi
log "$who exited (status $rc); stopped the other"
[ "$rc" -eq 0 ] && rc=1
exit "$rc"
