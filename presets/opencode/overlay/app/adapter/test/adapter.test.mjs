// adapter.test.mjs — the adapter against the REAL opencode binary (`opencode serve`) and a scripted
// OpenAI-compatible sidecar on loopback. Skips (with the reason) when opencode is not installed.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { startAdapter } from "../main.mjs";
import { startMockSidecar } from "./mock-sidecar.mjs";
import { freePort, post, readEvents, scratch, skipReason, startOpencode, testConfig } from "./helpers.mjs";

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
    X1_PERMISSION_ASK: "once",
    ...extra,
  });

  before(async () => {
    sidecar = await startMockSidecar();
    // bash asks, so every tool call goes through the adapter's permission policy.
    dirs = scratch(testConfig(sidecar.url, { bash: { "*": "ask" }, edit: "allow", webfetch: "deny" }));
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
    assert.equal(evs.find((e) => e.type === "assistant.message").text, "Tool ran; done.");
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
      assert.deepEqual(a, { status: 200, body: { aborted: true, turn_id: r.body.turn_id } });
      const err = await reader.next((e) => e.type === "error" && e.turn_id === r.body.turn_id, 15000);
      assert.deepEqual([err.code, err.retryable], ["aborted", false]);
      const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 15000);
      assert.equal(end.reason, "aborted");
      assert.ok(Date.now() - t0 < 15000, "the 30 s tool did not run to the end");
      assert.ok(turnEvents(r.body.turn_id).some((e) => e.type === "tool.result"), "the open tool is closed");
      const again = await post(`${base.inject}/abort`);
      assert.deepEqual(again.body, { aborted: false, turn_id: null });
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
    const r = await fetch(`${base.inject}/inject`, { method: "POST", body: "{not json" });
    assert.equal(r.status, 400);
    assert.equal((await fetch(`${base.inject}/nope`)).status, 404);
  });
});

describe("adapter follows opencode's event stream across restarts", { skip: skip ?? false }, () => {
  it("waits for opencode, reconnects after it restarts, and serves a turn afterwards", async () => {
    const sidecar = await startMockSidecar();
    const dirs = scratch(testConfig(sidecar.url));
    const port = await freePort();
    const adapter = await startAdapter({
      X1_OPENCODE_URL: `http://127.0.0.1:${port}`,
      X1_ADAPTER_HOST: "127.0.0.1",
      X1_ADAPTER_EVENTS_PORT: "0",
      X1_ADAPTER_INJECT_PORT: "0",
      OPENCODE_CONFIG: dirs.configPath,
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
      oc = await startOpencode(dirs, port);
      assert.ok(await until(200, 20000), "connected once opencode is up");
      await oc.stop();
      assert.ok(await until(503, 10000), "noticed the loss");
      oc = await startOpencode(dirs, port);
      assert.ok(await until(200, 20000), "reconnected after the restart");
      const reader = await readEvents(`http://127.0.0.1:${adapter.ports.events}/events`);
      try {
        const r = await post(`http://127.0.0.1:${adapter.ports.inject}/inject`, { text: "after restart" });
        assert.equal(r.status, 202);
        const end = await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 60000);
        assert.equal(end.reason, "completed");
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
