// translate.mjs — turns opencode `/event` events into platform events (see docs/adapter-events.md).
//
// One Translator per adapter; it owns the adapter's opencode session (plus any child sessions that
// opencode's `task` tool spawns) and at most one active turn. It never does I/O itself: platform
// events go to `publish(type, sessionId, turnId, payload)`, answers to opencode through `request(...)`.
import { randomBytes } from "node:crypto";
import { decide } from "./policy.mjs";

const MAX_OUTPUT = 64 * 1024;

/** Map an opencode error ({name, data}) or a retry message onto a platform error code. */
export function classify(error) {
  const c = classifyError(error);
  // opencode only retries what it considers transient: an unrecognised retry reason is the provider.
  return error?.name === "RetryStatus" && c.code === "internal" ? { ...c, code: "provider_unavailable", retryable: true } : c;
}

function classifyError(error) {
  const name = error?.name ?? "UnknownError";
  const data = error?.data ?? {};
  const status = Number(data.statusCode) || null;
  const message = String(data.message ?? error?.message ?? name);
  const base = { message: message.slice(0, 2000), ...(status ? { status } : {}), upstream: name };
  if (name === "MessageAbortedError") return { code: "aborted", retryable: false, ...base };
  if (name === "ProviderAuthError" || status === 401 || status === 403) return { code: "auth", retryable: false, ...base };
  if (status === 429 || /rate.?limit|too many requests/i.test(message)) return { code: "rate_limited", retryable: true, ...base };
  if (status === 404 || /model.{0,40}(not (found|exist|available|supported)|unknown|unavailable)/i.test(message)) {
    return { code: "model_unavailable", retryable: false, ...base };
  }
  if ((status && status >= 500) || status === 408 || (name === "APIError" && !status && data.isRetryable) ||
      /overloaded|unavailable|ECONNREFUSED|ECONNRESET|fetch failed|timed? ?out/i.test(message)) {
    return { code: "provider_unavailable", retryable: true, ...base };
  }
  return { code: "internal", retryable: Boolean(data.isRetryable), ...base };
}

function clip(s) {
  if (typeof s !== "string") return s;
  return s.length > MAX_OUTPUT ? s.slice(0, MAX_OUTPUT) + `\n[… ${s.length - MAX_OUTPUT} more bytes]` : s;
}

export class Translator {
  /**
   * @param {{publish: Function, request?: Function, permissions?: any, askFallback?: string, questionTimeoutMs?: number, log?: Function}} o
   */
  constructor({ publish, request = async () => {}, permissions = null, askFallback = "reject", questionTimeoutMs = 0, log = () => {} }) {
    this.publish = publish;
    this.request = request;
    this.questionTimeoutMs = questionTimeoutMs;
    /** @type {Map<string, {request_id: string, session: string, v2: boolean, call_id: string|null, questions: object[], timer: any}>} */
    this.questions = new Map();
    this.permissions = permissions;
    this.askFallback = askFallback;
    this.log = log;
    this.sessionId = null;
    this.children = new Set();
    this.turn = null;
    this.turnCount = 0;
  }

  setSession(id) {
    this.sessionId = id;
  }

  ours(sessionId) {
    return sessionId && (sessionId === this.sessionId || this.children.has(sessionId));
  }

  /** Open a turn for an injected prompt (or join the active one); returns {turnId, joined}. */
  startTurn({ text, agent, model }) {
    if (this.turn) return { turnId: this.turn.id, joined: true };
    this.turnCount += 1;
    const id = `turn_${this.turnCount}_${randomBytes(4).toString("hex")}`;
    this.turn = {
      id, started: Date.now(), sawBusy: false, used: new Map(), done: new Set(), texts: new Set(), textParts: new Set(), steps: new Set(),
      roles: new Map(), errors: new Set(), reason: "completed", lastError: null,
      tokens: { total: 0, input: 0, output: 0, reasoning: 0, cache_read: 0, cache_write: 0 }, cost: 0,
    };
    this.emit("turn.start", { text, agent: agent ?? null, model: model ?? null });
    return { turnId: id, joined: false };
  }

  emit(type, payload) {
    return this.publish(type, this.sessionId, this.turn?.id ?? null, payload);
  }

  /** Report a final error once per code, and every retry attempt once, within the turn. */
  error(info, extra = {}) {
    const key = extra.attempt === undefined ? `${info.code}:final` : `retry:${extra.attempt}`;
    if (this.turn) {
      if (this.turn.errors.has(key)) return;
      this.turn.errors.add(key);
      if (info.code === "aborted") this.turn.reason = "aborted";
      else if (extra.attempt === undefined && this.turn.reason !== "aborted") {
        this.turn.reason = "error";
        this.turn.lastError = info.code;
      }
    }
    this.emit("error", { ...info, ...extra });
  }

  /** End the active turn: close tools left open, then `turn.end`. */
  endTurn(reason) {
    const turn = this.turn;
    if (!turn) return;
    for (const [callId, tool] of turn.used) {
      if (!turn.done.has(callId)) this.emit("tool.result", { call_id: callId, tool, status: "aborted", output: null });
    }
    this.emit("turn.end", {
      reason: reason ?? turn.reason,
      ...(turn.lastError ? { error_code: turn.lastError } : {}),
      tokens: turn.tokens,
      cost: turn.cost,
    });
    this.turn = null;
  }

  /** Handle one opencode event object `{id, type, properties}`. */
  async handle(ev) {
    const p = ev?.properties ?? {};
    if (ev?.type === "session.created" && p.info?.parentID && this.ours(p.info.parentID)) {
      this.children.add(p.info.id ?? p.sessionID);
      return;
    }
    const sid = p.sessionID ?? p.part?.sessionID ?? p.info?.sessionID;
    // An error opencode could not tie to a session (e.g. a provider failing before the session loop)
    // belongs to the running turn, if any: the platform must not wait for a turn that already failed.
    if (ev?.type === "session.error" && !sid && this.turn) return this.error(classify(p.error));
    if (!this.ours(sid)) return;
    const root = sid === this.sessionId;
    if (ev.type === "permission.asked") return this.onPermission(p);
    if (ev.type === "question.asked" || ev.type === "question.v2.asked") return this.onQuestion(p, ev.type !== "question.asked");
    const closed = /^question\.(?:v2\.)?(replied|rejected)$/.exec(ev.type);
    if (closed) return this.onQuestionClosed(p, closed[1] === "replied" ? "answered" : "rejected");
    const turn = this.turn;
    if (!turn) return;
    switch (ev.type) {
      case "session.status":
        if (!root) return;
        if (p.status?.type === "busy") turn.sawBusy = true;
        if (p.status?.type === "retry") {
          turn.sawBusy = true;
          this.error(classify({ name: "RetryStatus", data: { message: p.status.message, isRetryable: true } }), {
            retryable: true,
            attempt: p.status.attempt,
            next_retry_at: p.status.next ? new Date(p.status.next).toISOString() : null,
            retry_in_ms: p.status.next ? Math.max(0, p.status.next - Date.now()) : null,
          });
        }
        return;
      case "session.error":
        if (root) this.error(classify(p.error));
        return;
      case "session.idle":
        if (root && turn.sawBusy) this.endTurn();
        return;
      case "message.updated":
        if (p.info?.id) turn.roles.set(p.info.id, p.info.role);
        // opencode re-publishes older messages (summaries): an error of a message from before this turn
        // (an earlier abort) is not this turn's.
        if (root && p.info?.role === "assistant" && p.info.error && !(p.info.time?.created < turn.started)) this.error(classify(p.info.error));
        return;
      case "message.part.updated":
        return this.onPart(p.part ?? {});
      case "message.part.delta":
        if (p.field === "text" && turn.textParts.has(p.partID) && typeof p.delta === "string") {
          this.emit("assistant.delta", { message_id: p.messageID, part_id: p.partID, delta: p.delta });
        }
        return;
      default:
        return;
    }
  }

  onPart(part) {
    const turn = this.turn;
    if (part.type === "tool") {
      const st = part.state ?? {};
      const callId = part.callID ?? part.id;
      if ((st.status === "running" || st.status === "completed" || st.status === "error") && !turn.used.has(callId)) {
        turn.used.set(callId, part.tool);
        this.emit("tool.use", { call_id: callId, tool: part.tool, input: st.input ?? {}, title: st.title ?? null });
      }
      if ((st.status === "completed" || st.status === "error") && !turn.done.has(callId)) {
        turn.done.add(callId);
        this.emit("tool.result", {
          call_id: callId,
          tool: part.tool,
          status: st.status,
          output: clip(st.output ?? null),
          error: st.error ?? null,
          title: st.title ?? null,
          exit: st.metadata?.exit ?? null,
        });
      }
      return;
    }
    if (part.type === "step-finish" && !turn.steps.has(part.id)) {
      turn.steps.add(part.id);
      const t = part.tokens ?? {};
      const total = t.total ?? (t.input ?? 0) + (t.output ?? 0) + (t.reasoning ?? 0);
      const add = { total, input: t.input, output: t.output, reasoning: t.reasoning, cache_read: t.cache?.read, cache_write: t.cache?.write };
      for (const [k, v] of Object.entries(add)) if (Number.isFinite(v)) turn.tokens[k] += v;
      if (Number.isFinite(part.cost)) turn.cost += part.cost;
      return;
    }
    if (part.type !== "text" || part.synthetic || part.ignored || turn.roles.get(part.messageID) !== "assistant") return;
    turn.textParts.add(part.id);
    if (part.time?.end) {
      if (turn.texts.has(part.id)) return;
      turn.texts.add(part.id);
      this.emit("assistant.message", { message_id: part.messageID, part_id: part.id, text: part.text ?? "" });
    }
  }

  async onQuestion(p, v2) {
    if (this.questions.has(p.id)) return;
    const questions = (p.questions ?? []).map((q) => ({
      question: q.question,
      header: q.header ?? null,
      options: (q.options ?? []).map((o) => ({ label: o.label, description: o.description ?? null })),
      multiple: Boolean(q.multiple),
      custom: q.custom !== false,
    }));
    const timer = this.questionTimeoutMs > 0
      ? setTimeout(() => this.answerQuestion(p.id, null).catch((e) => this.log(`question ${p.id} timeout: ${e.message}`)), this.questionTimeoutMs)
      : null;
    timer?.unref?.();
    this.questions.set(p.id, { request_id: p.id, session: p.sessionID, v2, call_id: p.tool?.callID ?? null, questions, timer });
    this.publish("question", this.sessionId, this.turn?.id ?? null, { request_id: p.id, call_id: p.tool?.callID ?? null, questions });
  }

  onQuestionClosed(p, outcome) {
    const q = this.questions.get(p.requestID);
    if (!q) return;
    clearTimeout(q.timer);
    this.questions.delete(p.requestID);
    this.publish("question.closed", this.sessionId, this.turn?.id ?? null, { request_id: q.request_id, outcome, answers: p.answers ?? null });
  }

  /** Answer (answers = [[label…]…]) or reject (answers = null) a pending question through opencode. */
  async answerQuestion(id, answers) {
    const q = this.questions.get(id);
    if (!q) return;
    const base = q.v2 ? `/api/session/${encodeURIComponent(q.session)}/question/${encodeURIComponent(id)}` : `/question/${encodeURIComponent(id)}`;
    try {
      await this.request("POST", `${base}/${answers ? "reply" : "reject"}`, answers ? { answers } : undefined);
    } catch (e) {
      if (e.status !== 404) throw e; // opencode no longer has it: it cannot block anything
    }
    // Closed as soon as opencode accepted it, so a missed `question.replied` cannot leave it pending.
    this.onQuestionClosed({ requestID: id, answers }, answers ? "answered" : "rejected");
  }

  /** After a reconnect: forget questions opencode no longer has pending (`GET /question`). */
  syncQuestions(pending) {
    const open = new Set((Array.isArray(pending) ? pending : []).map((q) => q.id));
    for (const id of [...this.questions.keys()]) if (!open.has(id)) this.onQuestionClosed({ requestID: id }, "rejected");
  }

  pendingQuestions() {
    return [...this.questions.values()].map(({ request_id, call_id, questions }) => ({ request_id, call_id, questions }));
  }

  dispose() {
    for (const q of this.questions.values()) clearTimeout(q.timer);
  }

  async onPermission(p) {
    const { decision, reply } = decide(this.permissions, p, this.askFallback);
    this.emit("permission", {
      request_id: p.id,
      permission: p.permission,
      patterns: p.patterns ?? [],
      call_id: p.tool?.callID ?? null,
      decision,
      reply,
    });
    try {
      await this.request("POST", `/permission/${encodeURIComponent(p.id)}/reply`, { reply });
    } catch (e) {
      this.log(`permission reply for ${p.id} failed: ${e.message}`);
      this.error({ code: "internal", retryable: false, message: `could not answer permission ${p.id}: ${e.message}` });
    }
  }

  /** After the opencode stream reconnects: end a turn whose idle we may have missed. */
  reconcile(statusMap) {
    if (!this.turn || !this.sessionId) return;
    const status = statusMap?.[this.sessionId];
    if (status) this.turn.sawBusy = true; // busy or retrying: its idle will come
    else if (this.turn.sawBusy) this.endTurn("completed");
  }
}
