// main.mjs — the x1 adapter for opencode (Node 22, no dependencies).
//
//   :3100  GET /events     platform SSE (docs/adapter-events.md); resumes from Last-Event-ID
//   :8788  POST /inject    {text, agent?, model?} → {turn_id, session_id, joined}
//          POST /abort     rejects pending questions, aborts the active turn → {aborted, turn_id}
//          GET  /questions pending questions; POST /question/{id}/reply {answers} | /question/{id}/reject
//   both   GET /health     {ok, opencode_connected} (+ session_id, turn_id with the token)
//
// Every other request needs `Authorization: Bearer <per-pod token>`, POST bodies must be
// `application/json`, and a request carrying an `Origin` not in X1_ADAPTER_ALLOWED_ORIGINS is refused.
// Env: see docs/adapter-events.md ("Adapter environment").
import http from "node:http";
import { readFileSync } from "node:fs";
import { createHash, timingSafeEqual } from "node:crypto";
import { pathToFileURL } from "node:url";
import { Hub } from "./hub.mjs";
import { OpencodeClient } from "./opencode.mjs";
import { Translator } from "./translate.mjs";

const MAX_BODY = 1024 * 1024;

function log(msg) {
  process.stderr.write(`x1 adapter: ${msg}\n`);
}

const fail = (status, message) => Object.assign(new Error(message), { status });

function loadConfig(path) {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    log(`cannot read the platform config ${path} (${e.message}); every permission request will be rejected`);
    return { permission: "deny" };
  }
}

/** The per-pod bearer token (X1_ADAPTER_TOKEN, else the file X1_ADAPTER_TOKEN_FILE), or null in a dev run. */
export function loadToken(env) {
  const file = env.X1_ADAPTER_TOKEN_FILE ?? "/run/secrets/x1/adapter-token";
  let token = env.X1_ADAPTER_TOKEN ?? "";
  if (!token) {
    try {
      token = readFileSync(file, "utf8").trim();
    } catch {}
  }
  if (token.length >= 16 && !/\s/.test(token)) return token;
  if (env.X1_ADAPTER_DEV === "1") return null;
  throw new Error(`no usable bearer token (≥ 16 characters, no spaces) in X1_ADAPTER_TOKEN or ${file}; ` +
    "set X1_ADAPTER_DEV=1 only for a dev run without authentication");
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
    if (size > MAX_BODY) throw fail(413, "request body over 1 MiB");
    chunks.push(c);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
  } catch {
    throw fail(400, "request body is not JSON");
  }
}

/** Parse `provider/model` into opencode's `{providerID, modelID}`. */
function parseModel(model) {
  if (model === undefined || model === null) return undefined;
  const i = typeof model === "string" ? model.indexOf("/") : -1;
  if (i <= 0 || i === model.length - 1) {
    throw fail(400, "model must be \"provider/model\"");
  }
  return { providerID: model.slice(0, i), modelID: model.slice(i + 1) };
}

export async function startAdapter(env = process.env) {
  const token = loadToken(env);
  if (!token) log("DEV RUN (X1_ADAPTER_DEV=1): no bearer token, the ports are NOT authenticated");
  const origins = (env.X1_ADAPTER_ALLOWED_ORIGINS ?? "").split(",").map((o) => o.trim()).filter(Boolean);
  const host = env.X1_ADAPTER_HOST ?? "0.0.0.0";
  const eventsPort = Number(env.X1_ADAPTER_EVENTS_PORT ?? 3100);
  const injectPort = Number(env.X1_ADAPTER_INJECT_PORT ?? 8788);
  const client = new OpencodeClient({
    url: env.X1_OPENCODE_URL ?? "http://127.0.0.1:4096",
    password: env.OPENCODE_SERVER_PASSWORD,
    username: env.OPENCODE_SERVER_USERNAME,
    log,
  });
  const config = loadConfig(env.X1_PLATFORM_CONFIG ?? env.OPENCODE_CONFIG ?? "/x1/app/config/opencode.json");
  const hub = new Hub({ replay: Number(env.X1_ADAPTER_REPLAY ?? 1024) });
  const translator = new Translator({
    publish: (type, sid, tid, payload) => hub.publish(type, sid, tid, payload),
    request: (method, path, body) => client.request(method, path, body),
    permissions: config.permission ?? null,
    askFallback: env.X1_PERMISSION_ASK ?? "reject",
    questionTimeoutMs: Number(env.X1_QUESTION_TIMEOUT ?? 900) * 1000,
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
        if (translator.questions.size) translator.syncQuestions(await client.request("GET", "/question"));
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
    if (typeof body.text !== "string" || !body.text.trim()) throw fail(400, "`text` must be a non-empty string");
    if (body.agent !== undefined && typeof body.agent !== "string") throw fail(400, "`agent` must be a string");
    if (translator.questions.size) {
      throw fail(409, `a question is pending (${[...translator.questions.keys()].join(", ")}): answer or reject it first`);
    }
    // opencode keeps the last prompt's model for the session: name the default every time, so a failed
    // model choice is not sticky.
    const model = parseModel(body.model ?? (body.agent ? config.agent?.[body.agent]?.model : undefined) ?? config.model);
    if (!(await whenConnected(10000))) throw fail(503, "not connected to opencode's event stream yet");
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
      throw fail(502, e.message);
    }
    return { turn_id: turnId, session_id: sessionId, joined };
  }

  async function abort() {
    const turnId = translator.turn?.id ?? null;
    const rejected = [];
    for (const id of [...translator.questions.keys()]) {
      await translator.answerQuestion(id, null).then(() => rejected.push(id), (e) => log(`reject ${id}: ${e.message}`));
    }
    if (!translator.sessionId || !turnId) return { aborted: false, turn_id: null, rejected_questions: rejected };
    if (translator.turn) translator.turn.reason = "aborted"; // also when opencode reports no MessageAbortedError (abort during a retry wait)
    await client.request("POST", `/session/${translator.sessionId}/abort`);
    return { aborted: true, turn_id: turnId, rejected_questions: rejected };
  }

  async function answer(id, action, body) {
    if (!translator.questions.has(id)) throw fail(404, `no pending question ${id}`);
    const answers = action === "reply" ? body.answers : null;
    if (action === "reply" && !(Array.isArray(answers) && answers.every((a) => Array.isArray(a) && a.every((l) => typeof l === "string")))) {
      throw fail(400, "`answers` must be an array (one per question) of arrays of labels");
    }
    await translator.answerQuestion(id, answers);
    return { request_id: id, outcome: answers ? "answered" : "rejected" };
  }

  const digest = (s) => createHash("sha256").update(s).digest();
  const authorized = (req) => {
    const m = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? "");
    return !token || Boolean(m && timingSafeEqual(digest(m[1]), digest(token)));
  };
  /** Refuse a browser origin, a missing token (except on /health) and a non-JSON POST body. */
  const guard = (req, path) => {
    const origin = req.headers.origin;
    if (origin !== undefined && !origins.includes(origin)) return [403, `origin ${origin} is not allowed`];
    if (path !== "/health" && !authorized(req)) return [401, "missing or wrong bearer token"];
    if (req.method === "POST" && !/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
      return [415, "Content-Type must be application/json"];
    }
    return null;
  };
  const health = (req) => ({
    ok: connected,
    opencode_connected: connected,
    ...(authorized(req) ? { session_id: translator.sessionId, turn_id: translator.turn?.id ?? null } : {}),
  });
  const routes = async (req, res, path) => {
    const q = /^\/question\/([^/]+)\/(reply|reject)$/.exec(path);
    if (req.method === "POST" && path === "/inject") return send(res, 202, await inject(await readJson(req)));
    if (req.method === "POST" && path === "/abort") return send(res, 200, await abort());
    if (req.method === "POST" && q) return send(res, 200, await answer(decodeURIComponent(q[1]), q[2], await readJson(req)));
    if (req.method === "GET" && path === "/questions") return send(res, 200, { questions: translator.pendingQuestions() });
    send(res, 404, { error: `no route ${req.method} ${path}` });
  };
  const server = (handler) => http.createServer(async (req, res) => {
    try {
      const url = new URL(req.url, "http://x");
      const refused = guard(req, url.pathname);
      if (refused) return send(res, refused[0], { error: refused[1] });
      if (req.method === "GET" && url.pathname === "/health") return send(res, connected ? 200 : 503, health(req));
      await handler(req, res, url);
    } catch (e) {
      if (!res.headersSent) send(res, e.status ?? (e instanceof URIError ? 400 : 500), { error: e.message });
    }
  });
  const injectServer = server((req, res, url) => routes(req, res, url.pathname));
  const eventsServer = server((req, res, url) => {
    if (req.method === "GET" && (url.pathname === "/events" || url.pathname === "/")) {
      return hub.attach(res, req.headers["last-event-id"] ?? url.searchParams.get("last_event_id"));
    }
    send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
  });
  const listen = (srv, port) => new Promise((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(port, host, () => resolve(srv.address().port));
  });
  const ports = { events: await listen(eventsServer, eventsPort), inject: await listen(injectServer, injectPort) };
  const pinger = setInterval(() => hub.ping(), 15000);
  log(`events on ${host}:${ports.events}, inject on ${host}:${ports.inject}, opencode at ${client.url}`);

  async function close() {
    clearInterval(pinger);
    stop.abort();
    translator.dispose();
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
