// units.test.mjs — pure pieces of the adapter: the replay buffer, error classification, the
// permission policy, the SSE parser and the translator on captured opencode event shapes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Hub } from "../hub.mjs";
import { classify, Translator } from "../translate.mjs";
import { actionFor, decide, globMatch } from "../policy.mjs";
import { sseData } from "../opencode.mjs";

describe("Hub", () => {
  it("numbers events monotonically and keeps a bounded buffer", () => {
    const hub = new Hub({ replay: 3 });
    for (let i = 0; i < 5; i++) hub.publish("tool.use", "ses_1", "turn_1", { n: i });
    assert.deepEqual(hub.buffer.map((e) => e.id), [3, 4, 5]);
    assert.deepEqual(hub.since(3), { events: hub.buffer.slice(1), gap: false });
    assert.equal(hub.since(1).gap, true, "events 2 fell out of the buffer");
    assert.equal(hub.since(99).gap, true, "an id from another process");
    assert.deepEqual(hub.since(null), { events: [], gap: false });
    assert.match(Hub.frame(hub.buffer[0]), /^id: 3\nevent: tool.use\ndata: \{.*"session_id":"ses_1","turn_id":"turn_1".*\}\n\n$/);
  });
});

describe("classify", () => {
  const c = (name, data) => { const r = classify({ name, data }); return [r.code, r.retryable]; };
  it("maps opencode errors onto platform codes", () => {
    assert.deepEqual(c("APIError", { statusCode: 429, isRetryable: true, message: "x" }), ["rate_limited", true]);
    assert.deepEqual(c("APIError", { statusCode: 401, message: "x" }), ["auth", false]);
    assert.deepEqual(c("ProviderAuthError", { message: "key missing" }), ["auth", false]);
    assert.deepEqual(c("APIError", { statusCode: 503, message: "x" }), ["provider_unavailable", true]);
    assert.deepEqual(c("APIError", { statusCode: 529, message: "Overloaded" }), ["provider_unavailable", true]);
    assert.deepEqual(c("APIError", { statusCode: 404, message: "model not found" }), ["model_unavailable", false]);
    assert.deepEqual(c("MessageAbortedError", { message: "Aborted" }), ["aborted", false]);
    assert.deepEqual(c("APIError", { statusCode: 400, message: "bad request", isRetryable: false }), ["internal", false]);
    assert.deepEqual(c("RetryStatus", { message: "Rate limit reached for requests" }), ["rate_limited", true]);
  });
});

describe("policy", () => {
  it("uses the last matching rule, like opencode", () => {
    const table = { bash: { "*": "ask", "git *": "allow", "git push*": "deny" }, edit: "allow" };
    assert.equal(actionFor(table, "bash", "git status"), "allow");
    assert.equal(actionFor(table, "bash", "git push origin"), "deny");
    assert.equal(actionFor(table, "bash", "rm -rf /"), "ask");
    assert.equal(actionFor(table, "edit", "a.txt"), "allow");
    assert.equal(actionFor(table, "webfetch", "x"), null);
    assert.ok(globMatch("echo *", "echo hi") && !globMatch("echo *", "rm echo hi"));
  });
  it("turns actions into replies, rejecting what is not allowed", () => {
    const table = { bash: { "*": "ask", "echo *": "allow", "rm *": "deny" } };
    assert.deepEqual(decide(table, { permission: "bash", patterns: ["echo a"] }), { decision: "allow", reply: "once" });
    assert.deepEqual(decide(table, { permission: "bash", patterns: ["echo a", "rm b"] }), { decision: "deny", reply: "reject" });
    assert.deepEqual(decide(table, { permission: "bash", patterns: ["ls"] }), { decision: "ask", reply: "reject" });
    assert.deepEqual(decide(table, { permission: "bash", patterns: ["ls"] }, "once"), { decision: "ask", reply: "once" });
  });
});

describe("sseData", () => {
  it("parses data lines across chunk boundaries and CRLF", async () => {
    const enc = new TextEncoder();
    async function* body() {
      yield enc.encode('data: {"a":1}\r');
      yield enc.encode("\n\r\n: comment\n\nevent: x\ndata: line1\ndata: line2\n\n");
    }
    const got = [];
    for await (const d of sseData(body())) got.push(d);
    assert.deepEqual(got, ['{"a":1}', "line1\nline2"]);
  });
});

describe("Translator", () => {
  it("ends a turn once, after busy, even when opencode sends idle twice", async () => {
    const out = [];
    const t = new Translator({ publish: (type, s, turn, p) => out.push({ type, turn, ...p }) });
    t.setSession("ses_A");
    const ev = (type, properties) => t.handle({ type, properties });
    await ev("session.idle", { sessionID: "ses_A" });
    const { turnId } = t.startTurn({ text: "x" });
    await ev("session.idle", { sessionID: "ses_A" }); // stale idle from before the prompt
    await ev("session.status", { sessionID: "ses_A", status: { type: "busy" } });
    await ev("message.updated", { sessionID: "ses_A", info: { id: "msg_u", role: "user" } });
    await ev("message.part.updated", { sessionID: "ses_A", part: { id: "p0", type: "text", messageID: "msg_u", text: "x", time: { start: 1, end: 2 } } });
    await ev("message.updated", { sessionID: "ses_B", info: { id: "msg_b", role: "assistant" } });
    await ev("session.error", { sessionID: "ses_A", error: { name: "MessageAbortedError", data: { message: "Aborted" } } });
    await ev("session.idle", { sessionID: "ses_A" });
    await ev("session.idle", { sessionID: "ses_A" });
    assert.deepEqual(out.map((e) => e.type), ["turn.start", "error", "turn.end"]);
    assert.equal(out[2].reason, "aborted");
    assert.ok(out.every((e) => e.turn === turnId));
    assert.equal(t.turn, null);
  });
});
