// mock-sidecar.mjs — a scripted stand-in for the platform sidecar on loopback, for tests only.
//
//   POST /v1/chat/completions   OpenAI-compatible streaming: a request that offers the scripted tool
//                               (`bash` unless set) and has no tool result yet gets ONE call of it;
//                               after a tool result (or without that tool) it streams text.
//                               Behaviour switches (POST /__control): {"status": 429|401|500|"drop"|null,
//                               "command": "echo …", "text": "…", "tool": "question", "args": {…}}
//   POST /git/credential        git credential protocol: answers host=CRED_HOST with a test token
//   GET  /__requests            what was asked so far (method, path, status, headers subset)
//
// Run standalone: `node mock-sidecar.mjs [port]` (prints "listening PORT").
import http from "node:http";
import { randomBytes } from "node:crypto";
import { pathToFileURL } from "node:url";

export function startMockSidecar({ port = 0, host = "127.0.0.1", credHost = "git.example.test" } = {}) {
  const state = { status: null, command: "echo hello-from-tool", text: "Tool ran; done.", tool: "bash", args: null, requests: [] };
  const credential = { username: "x-access-token", password: "x1test-" + randomBytes(12).toString("hex") };

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString("utf8");
    const record = { method: req.method, path: req.url, status: 200, authorization: req.headers.authorization ?? null };
    state.requests.push(record);
    const reply = (code, body, type = "application/json") => {
      record.status = code;
      res.writeHead(code, { "content-type": type, ...(code === 429 ? { "retry-after": "1" } : {}) });
      res.end(typeof body === "string" ? body : JSON.stringify(body));
    };
    if (req.method === "POST" && req.url === "/__control") {
      Object.assign(state, JSON.parse(raw || "{}"));
      return reply(200, { ok: true });
    }
    if (req.method === "GET" && req.url === "/__requests") return reply(200, state.requests);
    if (req.method === "POST" && req.url === "/git/credential") {
      const fields = Object.fromEntries(raw.split("\n").filter(Boolean).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
      if (fields.host !== credHost) return reply(403, "no grant for this host\n", "text/plain");
      return reply(200, `protocol=${fields.protocol ?? "https"}\nhost=${fields.host}\nusername=${credential.username}\npassword=${credential.password}\n`, "text/plain");
    }
    if (req.method === "POST" && /\/chat\/completions$/.test(req.url)) {
      if (state.status === "drop") {
        record.status = "dropped";
        return req.socket.destroy();
      }
      if (state.status) {
        const messages = { 429: "Rate limit reached for requests", 401: "Invalid authentication", 500: "upstream exploded" };
        return reply(state.status, { error: { message: messages[state.status] ?? "mock error", type: "mock_error", code: String(state.status) } });
      }
      let body;
      try {
        body = JSON.parse(raw);
      } catch {
        return reply(400, { error: { message: "bad json" } });
      }
      const msgs = body.messages ?? [];
      const last = msgs[msgs.length - 1];
      record.model = body.model;
      record.tools = (body.tools ?? []).map((t) => t.function?.name);
      record.lastRole = last?.role ?? null;
      record.lastContent = typeof last?.content === "string" ? last.content : JSON.stringify(last?.content ?? null);
      const wantsTool = record.tools.includes(state.tool) && last?.role !== "tool";
      const args = state.args ?? { command: state.command, description: "Run a command" };
      return streamCompletion(res, record, body.model, wantsTool ? { tool: state.tool, args } : { text: state.text });
    }
    reply(404, { error: { message: `mock sidecar: no route ${req.method} ${req.url}` } });
  });

  return new Promise((resolve) => {
    server.listen(port, host, () => {
      const addr = server.address();
      resolve({
        server,
        state,
        credential,
        port: addr.port,
        url: `http://${host}:${addr.port}`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

function streamCompletion(res, record, model, { tool, args: input, text }) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const id = "chatcmpl-mock" + Date.now();
  const created = Math.floor(Date.now() / 1000);
  const send = (delta, finish = null, extra = {}) =>
    res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }], ...extra })}\n\n`);
  if (tool !== undefined) {
    const args = JSON.stringify(input);
    send({ role: "assistant", tool_calls: [{ index: 0, id: "call_mock" + Date.now(), type: "function", function: { name: tool, arguments: "" } }] });
    send({ tool_calls: [{ index: 0, function: { arguments: args.slice(0, 10) } }] });
    send({ tool_calls: [{ index: 0, function: { arguments: args.slice(10) } }] });
    send({}, "tool_calls");
  } else {
    send({ role: "assistant", content: "" });
    for (const word of text.split(/(?<= )/)) send({ content: word });
    send({}, "stop");
  }
  res.write(`data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [], usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 } })}\n\n`);
  res.end("data: [DONE]\n\n");
  record.streamed = tool !== undefined ? "tool_call" : "text";
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? 11432);
  const credHost = process.env.MOCK_CRED_HOST ?? "git.example.test";
  startMockSidecar({ port, credHost }).then((m) => console.log(`listening ${m.port}`));
}
