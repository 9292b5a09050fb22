// main.mjs — the x1 adapter for opencode (Node 22, no dependencies).
//
//   :3100  GET /events     platform SSE (docs/adapter-events.md); resumes from Last-Event-ID
//   :8788  POST /inject    {text, agent?, model?} → {turn_id, session_id, joined}
//          POST /abort     aborts the active turn → {aborted, turn_id}
//   both   GET /health     {ok, opencode_connected, session_id, turn_id}
//
// Env: X1_OPENCODE_URL (http://127.0.0.1:4096), X1_ADAPTER_HOST (0.0.0.0), X1_ADAPTER_EVENTS_PORT
// (3100), X1_ADAPTER_INJECT_PORT (8788), X1_ADAPTER_REPLAY (1024 events), OPENCODE_CONFIG (the
// config whose `permission` table answers permission requests), X1_PERMISSION_ASK (reject|once),
// OPENCODE_SERVER_PASSWORD / OPENCODE_SERVER_USERNAME (when opencode's server needs basic auth).
import http from "node:http";
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Hub } from "./hub.mjs";
import { OpencodeClient } from "./opencode.mjs";
import { Translator } from "./translate.mjs";

const MAX_BODY = 1024 * 1024;

function log(msg) {
  process.stderr.write(`x1 adapter: ${msg}\n`);
}

function loadPermissions(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8")).permission ?? null;
  } catch (e) {
    log(`cannot read the permission policy from ${path} (${e.message}); every request will be rejected`);
    return "deny";
  }
}

function send(res, code, body) {
  res.writeHead(code, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  let size = 0;
  const chunks = [];
  for await (const c of req) {
    size += c.length;
    if (size > MAX_BODY) throw Object.assign(new Error("request body over 1 MiB"), { status: 413 });
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch {
    throw Object.assign(new Error("request body is not JSON"), { status: 400 });
  }
}

/** Parse `provider/model` into opencode's `{providerID, modelID}`. */
function parseModel(model) {
  if (model === undefined || model === null) return undefined;
  const i = typeof model === "string" ? model.indexOf("/") : -1;
  if (i <= 0 || i === model.length - 1) {
    throw Object.assign(new Error("model must be \"provider/model\""), { status: 400 });
  }
  return { providerID: model.slice(0, i), modelID: model.slice(i + 1) };
}

export async function startAdapter(env = process.env) {
  const host = env.X1_ADAPTER_HOST ?? "0.0.0.0";
  const eventsPort = Number(env.X1_ADAPTER_EVENTS_PORT ?? 3100);
  const injectPort = Number(env.X1_ADAPTER_INJECT_PORT ?? 8788);
  const client = new OpencodeClient({
    url: env.X1_OPENCODE_URL ?? "http://127.0.0.1:4096",
    password: env.OPENCODE_SERVER_PASSWORD,
    username: env.OPENCODE_SERVER_USERNAME,
    log,
  });
  const hub = new Hub({ replay: Number(env.X1_ADAPTER_REPLAY ?? 1024) });
  const translator = new Translator({
    publish: (type, sid, tid, payload) => hub.publish(type, sid, tid, payload),
    reply: (id, reply) => client.request("POST", `/permission/${encodeURIComponent(id)}/reply`, { reply }),
    permissions: loadPermissions(env.OPENCODE_CONFIG ?? "/x1/app/config/opencode.json"),
    askFallback: env.X1_PERMISSION_ASK ?? "reject",
    log,
  });

  let connected = false;
  let onConnected = [];
  const whenConnected = (ms) =>
    connected ? Promise.resolve(true) : new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      onConnected.push(() => { clearTimeout(t); resolve(true); });
    });
  const stop = new AbortController();
  const following = client.follow({
    signal: stop.signal,
    onEvent: (ev) => translator.handle(ev),
    onState: async (up) => {
      connected = up;
      if (!up) return;
      onConnected.splice(0).forEach((f) => f());
      try {
        translator.reconcile(await client.request("GET", "/session/status"));
      } catch (e) {
        log(`status check after connect failed: ${e.message}`);
      }
    },
  });

  let creating = null;
  async function ensureSession() {
    if (translator.sessionId) return translator.sessionId;
    creating ??= client.request("POST", "/session", { title: "x1" }).then((s) => {
      translator.setSession(s.id);
      return s.id;
    }).finally(() => { creating = null; });
    return creating;
  }

  async function inject(body) {
    if (typeof body.text !== "string" || !body.text.trim()) {
      throw Object.assign(new Error("`text` must be a non-empty string"), { status: 400 });
    }
    if (body.agent !== undefined && typeof body.agent !== "string") {
      throw Object.assign(new Error("`agent` must be a string"), { status: 400 });
    }
    const model = parseModel(body.model);
    if (!(await whenConnected(10000))) {
      throw Object.assign(new Error("not connected to opencode's event stream yet"), { status: 503 });
    }
    const sessionId = await ensureSession();
    const { turnId, joined } = translator.startTurn({ text: body.text, agent: body.agent, model: body.model });
    try {
      await client.request("POST", `/session/${sessionId}/prompt_async`, {
        parts: [{ type: "text", text: body.text }],
        ...(body.agent ? { agent: body.agent } : {}),
        ...(model ? { model } : {}),
      });
    } catch (e) {
      if (!joined && translator.turn?.id === turnId) {
        translator.error({ code: "internal", retryable: true, message: e.message });
        translator.endTurn("error");
      }
      throw Object.assign(new Error(e.message), { status: 502 });
    }
    return { turn_id: turnId, session_id: sessionId, joined };
  }

  async function abort() {
    const turnId = translator.turn?.id ?? null;
    if (!translator.sessionId || !turnId) return { aborted: false, turn_id: null };
    await client.request("POST", `/session/${translator.sessionId}/abort`);
    return { aborted: true, turn_id: turnId };
  }

  const health = () => ({ ok: connected, opencode_connected: connected, session_id: translator.sessionId, turn_id: translator.turn?.id ?? null });

  const injectServer = http.createServer(async (req, res) => {
    try {
      const path = new URL(req.url, "http://x").pathname;
      if (req.method === "GET" && path === "/health") return send(res, connected ? 200 : 503, health());
      if (req.method === "POST" && path === "/inject") return send(res, 202, await inject(await readJson(req)));
      if (req.method === "POST" && path === "/abort") return send(res, 200, await abort());
      send(res, 404, { error: `no route ${req.method} ${path}` });
    } catch (e) {
      send(res, e.status ?? 500, { error: e.message });
    }
  });
  const eventsServer = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (req.method === "GET" && url.pathname === "/health") return send(res, connected ? 200 : 503, health());
    if (req.method === "GET" && (url.pathname === "/events" || url.pathname === "/")) {
      return hub.attach(res, req.headers["last-event-id"] ?? url.searchParams.get("last_event_id"));
    }
    send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  });
  const listen = (server, port) => new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server.address().port));
  });
  const ports = { events: await listen(eventsServer, eventsPort), inject: await listen(injectServer, injectPort) };
  const pinger = setInterval(() => hub.ping(), 15000);
  log(`events on ${host}:${ports.events}, inject on ${host}:${ports.inject}, opencode at ${client.url}`);

  async function close() {
    clearInterval(pinger);
    stop.abort();
    hub.closeAll();
    eventsServer.closeAllConnections?.();
    injectServer.closeAllConnections?.();
    await Promise.all([new Promise((r) => eventsServer.close(r)), new Promise((r) => injectServer.close(r)), following]);
  }
  return { ports, hub, translator, close };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  startAdapter().then((adapter) => {
    const shutdown = (sig) => {
      log(`${sig}: shutting down`);
      adapter.close().then(() => process.exit(0));
      setTimeout(() => process.exit(0), 3000).unref();
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  }, (e) => {
    log(`failed to start: ${e.message}`);
    process.exit(1);
  });
}
