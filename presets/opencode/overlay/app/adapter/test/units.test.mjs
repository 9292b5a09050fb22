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

describe("Translator: questions, retries, deltas, usage", () => {
  const setup = () => {
    const out = [];
    const calls = [];
    const t = new Translator({
      publish: (type, s, turn, p) => out.push({ type, turn, ...p }),
      request: async (method, path, body) => { calls.push([method, path, body ?? null]); },
    });
    t.setSession("ses_A");
    return { t, out, calls, ev: (type, properties) => t.handle({ type, properties }) };
  };

  it("reports every retry attempt, classifies an unknown retry reason as the provider, and takes session-less errors", async () => {
    const { t, out, ev } = setup();
    t.startTurn({ text: "x" });
    const next = Date.now() + 2000;
    await ev("session.status", { sessionID: "ses_A", status: { type: "retry", attempt: 1, message: "upstream exploded", next } });
    await ev("session.status", { sessionID: "ses_A", status: { type: "retry", attempt: 1, message: "upstream exploded", next } });
    await ev("session.status", { sessionID: "ses_A", status: { type: "retry", attempt: 2, message: "Rate limit reached", next } });
    await ev("session.error", { error: { name: "APIError", data: { message: "Cannot connect to API", isRetryable: true } } });
    await ev("session.error", { sessionID: "ses_other", error: { name: "APIError", data: { statusCode: 401, message: "x" } } });
    const errors = out.filter((e) => e.type === "error");
    assert.deepEqual(errors.map((e) => [e.code, e.attempt]), [["provider_unavailable", 1], ["rate_limited", 2], ["provider_unavailable", undefined]]);
    assert.ok(errors[0].retry_in_ms > 0 && errors[0].retry_in_ms <= 2000);
    t.endTurn();
    assert.deepEqual([out.at(-1).reason, out.at(-1).error_code], ["error", "provider_unavailable"]);
  });

  it("turns question events into platform events and answers through opencode (v1 and v2 routes)", async () => {
    const { t, out, calls, ev } = setup();
    const { turnId } = t.startTurn({ text: "x" });
    const questions = [{ question: "Go?", header: "Go", options: [{ label: "Yes", description: "y" }], multiple: true }];
    await ev("question.asked", { id: "que_1", sessionID: "ses_A", questions, tool: { messageID: "msg_1", callID: "call_1" } });
    await ev("question.v2.asked", { id: "que_2", sessionID: "ses_A", questions: [{ question: "Q2", header: "H", options: [] }] });
    await ev("question.asked", { id: "que_3", sessionID: "ses_other", questions });
    assert.deepEqual(out.filter((e) => e.type === "question").map((e) => e.request_id), ["que_1", "que_2"]);
    assert.deepEqual(out[1].questions, [{ question: "Go?", header: "Go", options: [{ label: "Yes", description: "y" }], multiple: true, custom: true }]);
    assert.equal(out[1].call_id, "call_1");
    assert.equal(out[1].turn, turnId);
    await t.answerQuestion("que_1", [["Yes"]]);
    await t.answerQuestion("que_2", null);
    await t.answerQuestion("que_unknown", null);
    assert.deepEqual(calls, [
      ["POST", "/question/que_1/reply", { answers: [["Yes"]] }],
      ["POST", "/api/session/ses_A/question/que_2/reject", null],
    ]);
    // opencode's confirmations come later and close nothing twice
    await ev("question.replied", { sessionID: "ses_A", requestID: "que_1", answers: [["Yes"]] });
    await ev("question.v2.rejected", { sessionID: "ses_A", requestID: "que_2" });
    assert.deepEqual(out.filter((e) => e.type === "question.closed").map((e) => [e.request_id, e.outcome, e.answers]), [["que_1", "answered", [["Yes"]]], ["que_2", "rejected", null]]);
    assert.equal(t.questions.size, 0);
    // a question opencode closed while the stream was down is forgotten on reconnect
    await ev("question.asked", { id: "que_4", sessionID: "ses_A", questions });
    await ev("question.asked", { id: "que_5", sessionID: "ses_A", questions });
    t.syncQuestions([{ id: "que_5" }]);
    assert.deepEqual([...t.questions.keys()], ["que_5"]);
    // one opencode no longer knows (404) is closed too; other failures are the caller's
    t.request = async () => { throw Object.assign(new Error("gone"), { status: 404 }); };
    await t.answerQuestion("que_5", null);
    assert.equal(t.questions.size, 0);
  });

  it("streams assistant text deltas only, and sums step-finish usage into turn.end", async () => {
    const { t, out, ev } = setup();
    t.startTurn({ text: "x" });
    await ev("session.status", { sessionID: "ses_A", status: { type: "busy" } });
    await ev("message.updated", { sessionID: "ses_A", info: { id: "msg_u", role: "user" } });
    await ev("message.updated", { sessionID: "ses_A", info: { id: "msg_a", role: "assistant" } });
    await ev("message.part.updated", { sessionID: "ses_A", part: { id: "prt_r", type: "reasoning", messageID: "msg_a" } });
    await ev("message.part.updated", { sessionID: "ses_A", part: { id: "prt_t", type: "text", messageID: "msg_a", text: "", time: { start: 1 } } });
    await ev("message.part.delta", { sessionID: "ses_A", messageID: "msg_a", partID: "prt_r", field: "text", delta: "thinking" });
    await ev("message.part.delta", { sessionID: "ses_A", messageID: "msg_u", partID: "prt_u", field: "text", delta: "user" });
    await ev("message.part.delta", { sessionID: "ses_A", messageID: "msg_a", partID: "prt_t", field: "text", delta: "Hel" });
    await ev("message.part.delta", { sessionID: "ses_A", messageID: "msg_a", partID: "prt_t", field: "text", delta: "lo" });
    const step = (id, input, output, cost) => ev("message.part.updated", { sessionID: "ses_A", part: { id, type: "step-finish", messageID: "msg_a", cost, tokens: { total: input + output, input, output, reasoning: 1, cache: { read: 2, write: 0 } } } });
    await step("prt_s1", 100, 10, 0.5);
    await step("prt_s1", 100, 10, 0.5); // the same part again: counted once
    await step("prt_s2", 50, 5, 0.25);
    await ev("session.idle", { sessionID: "ses_A" });
    assert.deepEqual(out.filter((e) => e.type === "assistant.delta").map((e) => e.delta), ["Hel", "lo"]);
    const end = out.at(-1);
    assert.equal(end.type, "turn.end");
    assert.deepEqual(end.tokens, { total: 165, input: 150, output: 15, reasoning: 2, cache_read: 4, cache_write: 0 });
    assert.equal(end.cost, 0.75);
  });
});
