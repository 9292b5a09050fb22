// adapter.test.mjs — the adapter against the REAL opencode binary (`opencode serve`) and a scripted
// OpenAI-compatible sidecar on loopback. Skips (with the reason) when opencode is not installed.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAdapter } from "../main.mjs";
import { startMockSidecar } from "./mock-sidecar.mjs";
import { fileURLToPath } from "node:url";
import { AUTH, TOKEN, freePort, get, post, readEvents, scratch, skipReason, startOpencode, testConfig } from "./helpers.mjs";

const MCP_SERVER = fileURLToPath(new URL("./mcp-server.mjs", import.meta.url));
const QUESTION = {
  questions: [{ question: "Deploy to staging?", header: "Deploy", options: [{ label: "Yes", description: "deploy now" }, { label: "No", description: "skip it" }] }],
};

const skip = skipReason();
if (skip) console.log(`# SKIP adapter.test.mjs: ${skip}`);

const PLATFORM = ["turn.start", "tool.use", "tool.result", "assistant.message", "turn.end"];

describe("adapter with real opencode", { skip: skip ?? false }, () => {
  let sidecar, dirs, oc, adapter, base, reader;
  const adapterEnv = (extra = {}) => ({
    X1_OPENCODE_URL: oc.url,
    X1_ADAPTER_HOST: "127.0.0.1",
    X1_ADAPTER_EVENTS_PORT: "0",
    X1_ADAPTER_INJECT_PORT: "0",
    OPENCODE_CONFIG: dirs.configPath,
    OPENCODE_SERVER_PASSWORD: oc.password,
    X1_PERMISSION_ASK: "once",
    X1_ADAPTER_TOKEN: TOKEN,
    X1_ADAPTER_ALLOWED_ORIGINS: "https://platform.example.test",
    ...extra,
  });

  before(async () => {
    sidecar = await startMockSidecar();
    // bash asks, so every tool call goes through the adapter's permission policy; the question tool is
    // offered (render option `permission.question = "allow"`); one stdio MCP server.
    dirs = scratch(testConfig(sidecar.url, { bash: { "*": "ask" }, edit: "allow", webfetch: "deny", question: "allow" }, {
      mcp: { probe: { type: "local", command: [process.execPath, MCP_SERVER], enabled: true } },
    }));
    oc = await startOpencode(dirs);
    adapter = await startAdapter(adapterEnv());
    base = { events: `http://127.0.0.1:${adapter.ports.events}/events`, inject: `http://127.0.0.1:${adapter.ports.inject}` };
    reader = await readEvents(base.events);
  });

  after(async () => {
    reader?.close();
    await adapter?.close();
    await oc?.stop();
    await sidecar?.close();
    dirs?.cleanup();
  });

  const turnEvents = (turnId) => reader.events.filter((e) => e.turn_id === turnId);

  it("one injected prompt yields turn.start → tool.use → tool.result → assistant.message → turn.end", async () => {
    const r = await post(`${base.inject}/inject`, { text: "run the greeting tool" });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.match(r.body.turn_id, /^turn_1_[0-9a-f]{8}$/);
    assert.match(r.body.session_id, /^ses_/);
    assert.equal(r.body.joined, false);
    const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
    assert.equal(end.reason, "completed");
    const evs = turnEvents(r.body.turn_id);
    assert.deepEqual(evs.map((e) => e.type).filter((t) => PLATFORM.includes(t)), PLATFORM);
    assert.ok(!evs.some((e) => e.type === "error"), "no error event in a clean turn");
    const result = evs.find((e) => e.type === "tool.result");
    assert.equal(result.tool, "bash");
    assert.equal(result.status, "completed");
    assert.match(result.output, /hello-from-tool/);
    assert.equal(evs.find((e) => e.type === "tool.use").input.command, "echo hello-from-tool");
    const message = evs.find((e) => e.type === "assistant.message");
    assert.equal(message.text, "Tool ran; done.");
    // Streaming: the text arrives as assistant.delta events first, and they add up to the message.
    const deltas = evs.filter((e) => e.type === "assistant.delta" && e.part_id === message.part_id);
    assert.ok(deltas.length >= 2, `several deltas: ${deltas.length}`);
    assert.equal(deltas.map((d) => d.delta).join(""), message.text);
    assert.ok(deltas.every((d) => d.id < message.id && d.message_id === message.message_id));
    // Usage: two model steps of 10 prompt + 5 completion tokens each (the sidecar's `usage`), priced
    // by the model's configured cost ($3 / $15 per million).
    assert.equal(end.tokens.input, 20);
    assert.equal(end.tokens.output, 10);
    assert.equal(end.tokens.total, 30);
    assert.ok(Math.abs(end.cost - (20 * 3 + 10 * 15) / 1e6) < 1e-9, `cost ${end.cost}`);
    const perm = evs.find((e) => e.type === "permission");
    assert.deepEqual([perm.permission, perm.decision, perm.reply], ["bash", "ask", "once"]);
    for (const [i, e] of evs.entries()) {
      assert.equal(e.session_id, r.body.session_id);
      assert.ok(Number.isSafeInteger(e.id) && String(e.id) === e._sse_id && e.type === e._sse_type);
      assert.ok(!Number.isNaN(Date.parse(e.time)) && e.time.endsWith("Z"));
      if (i) assert.ok(e.id > evs[i - 1].id, "ids are monotonic");
    }
  });

  it("resumes from Last-Event-ID with exactly the events after it", async () => {
    const start = reader.events.find((e) => e.type === "turn.start");
    assert.ok(start, "a previous turn exists");
    const resumed = await readEvents(base.events, { lastEventId: start.id });
    try {
      const want = reader.events.filter((e) => e.id > start.id).map((e) => e.id);
      await resumed.next((e) => e.id === want[want.length - 1], 5000);
      assert.deepEqual(resumed.events.map((e) => e.id).slice(0, want.length), want);
      assert.ok(!resumed.frames.some((f) => f.includes("event: stream.gap")));
    } finally {
      resumed.close();
    }
    const fresh = await readEvents(base.events);
    try {
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(fresh.events.length, 0, "no replay without Last-Event-ID");
    } finally {
      fresh.close();
    }
  });

  it("a 429 from the sidecar becomes error{code: rate_limited, retryable: true}", async () => {
    await post(`${sidecar.url}/__control`, { status: 429 });
    try {
      const r = await post(`${base.inject}/inject`, { text: "hello" });
      assert.equal(r.status, 202);
      const err = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id, 30000);
      assert.equal(err.code, "rate_limited");
      assert.equal(err.retryable, true);
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
      assert.equal(end.reason, "error");
      assert.equal(end.error_code, "rate_limited");
      const final = turnEvents(r.body.turn_id).filter((e) => e.type === "error" && e.attempt === undefined);
      assert.equal(final.length, 1, "exactly one final error");
      assert.equal(final[0].status, 429);
    } finally {
      await post(`${sidecar.url}/__control`, { status: null });
    }
  });

  it("a 401 from the sidecar becomes error{code: auth, retryable: false}", async () => {
    await post(`${sidecar.url}/__control`, { status: 401 });
    try {
      const r = await post(`${base.inject}/inject`, { text: "hello" });
      const err = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id, 30000);
      assert.deepEqual([err.code, err.retryable, err.status], ["auth", false, 401]);
      await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 30000);
    } finally {
      await post(`${sidecar.url}/__control`, { status: null });
    }
  });

  it("POST /abort stops a running tool: error{aborted} then turn.end{aborted}", async () => {
    await post(`${sidecar.url}/__control`, { command: "sleep 30" });
    try {
      const r = await post(`${base.inject}/inject`, { text: "take your time" });
      await reader.next((e) => e.type === "tool.use" && e.turn_id === r.body.turn_id, 30000);
      const t0 = Date.now();
      const a = await post(`${base.inject}/abort`);
      assert.deepEqual(a, { status: 200, body: { aborted: true, turn_id: r.body.turn_id, rejected_questions: [] } });
      const err = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id, 15000);
      assert.deepEqual([err.code, err.retryable], ["aborted", false]);
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 15000);
      assert.equal(end.reason, "aborted");
      assert.ok(Date.now() - t0 < 15000, "the 30 s tool did not run to the end");
      assert.ok(turnEvents(r.body.turn_id).some((e) => e.type === "tool.result"), "the open tool is closed");
      const again = await post(`${base.inject}/abort`);
      assert.deepEqual(again.body, { aborted: false, turn_id: null, rejected_questions: [] });
    } finally {
      await post(`${sidecar.url}/__control`, { command: "echo hello-from-tool" });
    }
  });

  it("a permission the policy does not allow is rejected and shown", async () => {
    const strict = await startAdapter(adapterEnv({ X1_PERMISSION_ASK: "reject" }));
    const r2 = await readEvents(`http://127.0.0.1:${strict.ports.events}/events`);
    try {
      const r = await post(`http://127.0.0.1:${strict.ports.inject}/inject`, { text: "run it" });
      const end = await r2.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
      assert.ok(end);
      const perm = r2.events.find((e) => e.type === "permission");
      assert.deepEqual([perm.decision, perm.reply], ["ask", "reject"]);
      const result = r2.events.find((e) => e.type === "tool.result");
      assert.equal(result.status, "error");
      assert.notEqual(r.body.session_id, adapter.translator.sessionId, "each adapter owns its session");
      assert.ok(!reader.events.some((e) => e.turn_id === r.body.turn_id), "other sessions are filtered out");
    } finally {
      r2.close();
      await strict.close();
    }
  });

  it("rejects bad injections with 400", async () => {
    assert.equal((await post(`${base.inject}/inject`, { text: "" })).status, 400);
    assert.equal((await post(`${base.inject}/inject`, { text: "x", model: "no-slash" })).status, 400);
    const r = await fetch(`${base.inject}/inject`, { method: "POST", headers: { ...AUTH, "content-type": "application/json" }, body: "{not json" });
    assert.equal(r.status, 400);
    assert.equal((await fetch(`${base.inject}/nope`, { headers: AUTH })).status, 404);
    assert.equal((await post(`${base.inject}/question/%E0%A4%A/reply`, { answers: [] })).status, 400, "a malformed id is a 400, not a 500");
  });

  it("refuses requests without the bearer token, from a browser Origin, or with a non-JSON body", async () => {
    const none = {};
    assert.equal((await post(`${base.inject}/inject`, { text: "x" }, none)).status, 401);
    assert.equal((await post(`${base.inject}/inject`, { text: "x" }, { authorization: "Bearer wrong-token-of-some-length" })).status, 401);
    assert.equal((await fetch(base.events)).status, 401, "the event stream needs the token too");
    assert.equal((await post(`${base.inject}/abort`, {}, none)).status, 401);
    assert.equal((await get(`${base.inject}/questions`, none)).status, 401);
    // The CSRF shape of issue 12: a cross-origin text/plain POST.
    const csrf = await fetch(`${base.inject}/inject`, { method: "POST", headers: { origin: "https://evil.example", "content-type": "text/plain" }, body: '{"text":"rm -rf ~"}' });
    assert.equal(csrf.status, 403);
    const evilWithToken = await post(`${base.inject}/inject`, { text: "x" }, { ...AUTH, origin: "https://evil.example" });
    assert.equal(evilWithToken.status, 403, "a browser origin is refused even with the token");
    const plain = await fetch(`${base.inject}/inject`, { method: "POST", headers: { ...AUTH, "content-type": "text/plain" }, body: '{"text":"x"}' });
    assert.equal(plain.status, 415);
    const allowed = await get(`${base.inject}/questions`, { ...AUTH, origin: "https://platform.example.test" });
    assert.deepEqual(allowed, { status: 200, body: { questions: [] } });
    // /health is open for probes but says nothing about the session without the token.
    const open = await get(`${base.inject}/health`, none);
    assert.deepEqual(open, { status: 200, body: { ok: true, opencode_connected: true } });
    assert.ok("session_id" in (await get(`${base.inject}/health`)).body);
    // opencode's own server refuses anyone without its per-start password.
    assert.equal((await fetch(`${oc.url}/session`)).status, 401);
    assert.ok(reader.events.every((e) => e.text !== "rm -rf ~"), "no refused prompt reached opencode");
  });

  it("refuses to start without a token unless told it is a dev run", async () => {
    const env = { ...adapterEnv(), X1_ADAPTER_TOKEN: "", X1_ADAPTER_TOKEN_FILE: `${dirs.dir}/no-such-token` };
    await assert.rejects(startAdapter(env), /no usable bearer token/);
    await assert.rejects(startAdapter({ ...env, X1_ADAPTER_TOKEN: "short" }), /no usable bearer token/);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(`${dirs.dir}/token`, `${TOKEN}\n`, { mode: 0o600 });
    const fromFile = await startAdapter({ ...env, X1_ADAPTER_TOKEN_FILE: `${dirs.dir}/token` });
    const dev = await startAdapter({ ...env, X1_ADAPTER_DEV: "1" });
    try {
      assert.equal((await get(`http://127.0.0.1:${fromFile.ports.inject}/questions`)).status, 200);
      assert.equal((await get(`http://127.0.0.1:${fromFile.ports.inject}/questions`, {})).status, 401);
      assert.equal((await get(`http://127.0.0.1:${dev.ports.inject}/questions`, {})).status, 200);
    } finally {
      await fromFile.close();
      await dev.close();
    }
  });

  /** Inject a prompt whose model calls `question`; resolves with the turn and the platform question event. */
  async function askQuestion() {
    await post(`${sidecar.url}/__control`, { tool: "question", args: QUESTION });
    const r = await post(`${base.inject}/inject`, { text: "ask me first" });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const q = await reader.next((e) => e.type === "question" && e.turn_id === r.body.turn_id, 60000);
    return { turn: r.body, q };
  }
  const resetTool = () => post(`${sidecar.url}/__control`, { tool: "bash", args: null });

  it("a question is shown with its options and answered through :8788; the turn ends", async () => {
    try {
      const { turn, q } = await askQuestion();
      assert.match(q.request_id, /^que_/);
      assert.deepEqual(q.questions, [{ question: "Deploy to staging?", header: "Deploy", multiple: false, custom: true,
        options: [{ label: "Yes", description: "deploy now" }, { label: "No", description: "skip it" }] }]);
      assert.deepEqual((await get(`${base.inject}/questions`)).body.questions.map((x) => x.request_id), [q.request_id]);
      const busy = await post(`${base.inject}/inject`, { text: "are you there?" });
      assert.equal(busy.status, 409, "a prompt does not join a turn that waits for an answer");
      assert.equal((await post(`${base.inject}/question/que_nope/reply`, { answers: [["Yes"]] })).status, 404);
      assert.equal((await post(`${base.inject}/question/${q.request_id}/reply`, { answers: "Yes" })).status, 400);
      const a = await post(`${base.inject}/question/${q.request_id}/reply`, { answers: [["Yes"]] });
      assert.deepEqual(a, { status: 200, body: { request_id: q.request_id, outcome: "answered" } });
      const closed = await reader.next((e) => e.type === "question.closed" && e.request_id === q.request_id, 30000);
      assert.deepEqual([closed.outcome, closed.answers], ["answered", [["Yes"]]]);
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === turn.turn_id, 60000);
      assert.equal(end.reason, "completed");
      const result = turnEvents(turn.turn_id).find((e) => e.type === "tool.result" && e.tool === "question");
      assert.equal(result.status, "completed");
      assert.match(result.output, /"Deploy to staging\?"="Yes"/);
      assert.equal(sidecar.state.requests.at(-1).lastRole, "tool", "the model got the answer");
      assert.deepEqual((await get(`${base.inject}/questions`)).body.questions, []);
    } finally {
      await resetTool();
    }
  });

  it("a rejected question ends the turn", async () => {
    try {
      const { turn, q } = await askQuestion();
      const a = await post(`${base.inject}/question/${q.request_id}/reject`, {});
      assert.deepEqual(a.body, { request_id: q.request_id, outcome: "rejected" });
      const closed = await reader.next((e) => e.type === "question.closed" && e.request_id === q.request_id, 30000);
      assert.equal(closed.outcome, "rejected");
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === turn.turn_id, 60000);
      assert.ok(["completed", "error"].includes(end.reason), end.reason);
      assert.equal(turnEvents(turn.turn_id).find((e) => e.type === "tool.result" && e.tool === "question")?.status, "error");
    } finally {
      await resetTool();
    }
  });

  it("POST /abort rejects a pending question and ends the turn", async () => {
    try {
      const { turn, q } = await askQuestion();
      const a = await post(`${base.inject}/abort`);
      assert.deepEqual(a.body, { aborted: true, turn_id: turn.turn_id, rejected_questions: [q.request_id] });
      await reader.next((e) => e.type === "question.closed" && e.request_id === q.request_id, 30000);
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === turn.turn_id, 30000);
      assert.ok(["aborted", "completed", "error"].includes(end.reason), end.reason);
      // and the session is usable again
      await resetTool();
      const next = await post(`${base.inject}/inject`, { text: "carry on" });
      assert.equal(next.status, 202);
      assert.equal(next.body.joined, false);
      assert.equal((await reader.next((e) => e.type === "turn.end" && e.turn_id === next.body.turn_id, 60000)).reason, "completed");
    } finally {
      await resetTool();
    }
  });

  it("an unanswered question is rejected after X1_QUESTION_TIMEOUT", async () => {
    const quick = await startAdapter(adapterEnv({ X1_QUESTION_TIMEOUT: "2" }));
    const r2 = await readEvents(`http://127.0.0.1:${quick.ports.events}/events`);
    try {
      await post(`${sidecar.url}/__control`, { tool: "question", args: QUESTION });
      const r = await post(`http://127.0.0.1:${quick.ports.inject}/inject`, { text: "ask and wait" });
      const q = await r2.next((e) => e.type === "question", 60000);
      const closed = await r2.next((e) => e.type === "question.closed" && e.request_id === q.request_id, 30000);
      assert.equal(closed.outcome, "rejected");
      await r2.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
    } finally {
      await resetTool();
      r2.close();
      await quick.close();
    }
  });

  for (const [what, status] of [["a 500", 500], ["a dropped connection", "drop"]]) {
    it(`${what} from the sidecar is provider_unavailable within 5 s, and every retry is reported`, async () => {
      await post(`${sidecar.url}/__control`, { status });
      try {
        const t0 = Date.now();
        const r = await post(`${base.inject}/inject`, { text: "hello" });
        const first = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id, 30000);
        const took = Date.now() - t0;
        assert.deepEqual([first.code, first.retryable, first.attempt], ["provider_unavailable", true, 1]);
        assert.ok(took < 5000, `first error after ${took} ms`);
        const second = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id && e.attempt === 2, 30000);
        assert.equal(second.code, "provider_unavailable");
        assert.ok(Number.isFinite(second.retry_in_ms) && !Number.isNaN(Date.parse(second.next_retry_at)));
        await post(`${base.inject}/abort`);
        const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 30000);
        assert.ok(["aborted", "error"].includes(end.reason));
      } finally {
        await post(`${sidecar.url}/__control`, { status: null });
      }
    });
  }

  it("a failed model choice is not sticky: the next plain inject uses the default model", async () => {
    const bad = await post(`${base.inject}/inject`, { text: "hello", model: "sidecar/no-such-model" });
    assert.equal(bad.status, 202, JSON.stringify(bad.body));
    const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === bad.body.turn_id, 60000);
    assert.equal(end.reason, "error");
    const err = turnEvents(bad.body.turn_id).find((e) => e.type === "error");
    assert.equal(err.code, "model_unavailable", JSON.stringify(err));
    const before = sidecar.state.requests.length;
    const good = await post(`${base.inject}/inject`, { text: "hello again" });
    const end2 = await reader.next((e) => e.type === "turn.end" && e.turn_id === good.body.turn_id, 60000);
    assert.equal(end2.reason, "completed");
    const models = sidecar.state.requests.slice(before).filter((q) => q.model).map((q) => q.model);
    assert.ok(models.length && models.every((m) => m === "mock-model"), JSON.stringify(models));
  });

  it("discovers and calls a stdio MCP server's tool (opencode's MCP client, for real)", async () => {
    await post(`${sidecar.url}/__control`, { tool: "probe_echo", args: { text: "ping-mcp" } });
    try {
      const r = await post(`${base.inject}/inject`, { text: "use the probe" });
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
      assert.equal(end.reason, "completed");
      const result = turnEvents(r.body.turn_id).find((e) => e.type === "tool.result");
      assert.deepEqual([result?.tool, result?.status], ["probe_echo", "completed"], JSON.stringify(result));
      assert.match(result.output, /echo: ping-mcp/);
      const offered = sidecar.state.requests.filter((q) => q.tools?.length).at(-1).tools;
      assert.ok(offered.includes("probe_echo"), JSON.stringify(offered));
    } finally {
      await resetTool();
    }
  });
});

describe("adapter follows opencode's event stream across restarts", { skip: skip ?? false }, () => {
  it("waits for opencode, reconnects after it restarts, and serves a turn afterwards", async () => {
    const sidecar = await startMockSidecar();
    const dirs = scratch(testConfig(sidecar.url));
    const port = await freePort();
    const password = "restart-" + TOKEN;
    const adapter = await startAdapter({
      X1_OPENCODE_URL: `http://127.0.0.1:${port}`,
      X1_ADAPTER_HOST: "127.0.0.1",
      X1_ADAPTER_EVENTS_PORT: "0",
      X1_ADAPTER_INJECT_PORT: "0",
      OPENCODE_CONFIG: dirs.configPath,
      OPENCODE_SERVER_PASSWORD: password,
      X1_ADAPTER_TOKEN: TOKEN,
    });
    const health = async () => (await fetch(`http://127.0.0.1:${adapter.ports.inject}/health`)).status;
    const until = async (want, ms) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if ((await health()) === want) return true;
        await new Promise((r) => setTimeout(r, 200));
      }
      return false;
    };
    let oc;
    try {
      assert.equal(await health(), 503, "not connected while opencode is down");
      oc = await startOpencode(dirs, port, password);
      assert.ok(await until(200, 20000), "connected once opencode is up");
      await oc.stop();
      assert.ok(await until(503, 10000), "noticed the loss");
      oc = await startOpencode(dirs, port, password);
      assert.ok(await until(200, 20000), "reconnected after the restart");
      const reader = await readEvents(`http://127.0.0.1:${adapter.ports.events}/events`);
      try {
        const r = await post(`http://127.0.0.1:${adapter.ports.inject}/inject`, { text: "after restart" });
        assert.equal(r.status, 202);
        const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
        assert.equal(end.reason, "completed");
        // The render default `permission.question = "deny"`: opencode does not offer the tool at all.
        const offered = sidecar.state.requests.filter((q) => q.tools?.length).map((q) => q.tools);
        assert.ok(offered.length && offered.every((t) => t.includes("bash") && !t.includes("question")), JSON.stringify(offered));
      } finally {
        reader.close();
      }
    } finally {
      await adapter.close();
      await oc?.stop();
      await sidecar.close();
      dirs.cleanup();
    }
  });
});
