// hub.mjs — the platform event stream: monotonic ids, a bounded replay buffer, SSE fan-out and
// Last-Event-ID resume. Pure bookkeeping; the HTTP server in main.mjs hands it responses.

export class Hub {
  /** @param {{replay?: number, now?: () => Date}} opts */
  constructor({ replay = 1024, now = () => new Date() } = {}) {
    this.replay = Math.max(1, replay);
    this.now = now;
    this.nextId = 1;
    /** @type {object[]} */
    this.buffer = [];
    /** @type {Set<import("node:http").ServerResponse>} */
    this.clients = new Set();
  }

  /** Append one event (type + session/turn + payload) and send it to every client. */
  publish(type, sessionId, turnId, payload = {}) {
    const event = {
      id: this.nextId++,
      type,
      session_id: sessionId ?? null,
      turn_id: turnId ?? null,
      time: this.now().toISOString(),
      ...payload,
    };
    this.buffer.push(event);
    if (this.buffer.length > this.replay) this.buffer.splice(0, this.buffer.length - this.replay);
    const frame = Hub.frame(event);
    for (const res of this.clients) {
      // A client that stopped reading is dropped rather than buffered without bound; it can
      // reconnect with Last-Event-ID and resume from the replay buffer.
      if (res.writableLength > 8 * 1024 * 1024) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(frame);
    }
    return event;
  }

  /** The SSE frame of one event: `id`, `event` and one `data` line of JSON. */
  static frame(event) {
    return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
  }

  /**
   * Events a client that last saw `lastId` must get. `gap` is true when some of them already fell
   * out of the buffer (or the id is not one this process issued), so the client knows it lost data.
   */
  since(lastId) {
    if (lastId === null || lastId === undefined || lastId === "") return { events: [], gap: false };
    const n = Number(lastId);
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.nextId) {
      return { events: this.buffer.slice(), gap: true };
    }
    const oldest = this.buffer.length ? this.buffer[0].id : this.nextId;
    return { events: this.buffer.filter((e) => e.id > n), gap: n + 1 < oldest };
  }

  /** Attach an HTTP response as an SSE client, replaying from `lastId` first. */
  attach(res, lastId) {
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(": x1 adapter event stream\nretry: 1000\n\n");
    const { events, gap } = this.since(lastId);
    if (gap) {
      const oldest = this.buffer.length ? this.buffer[0].id : this.nextId;
      res.write(`event: stream.gap\ndata: ${JSON.stringify({ last_event_id: String(lastId), oldest_id: oldest })}\n\n`);
    }
    for (const e of events) res.write(Hub.frame(e));
    this.clients.add(res);
    res.on("close", () => this.clients.delete(res));
  }

  /** A comment line to every client (keeps proxies from closing idle streams). */
  ping() {
    for (const res of this.clients) res.write(": ping\n\n");
  }

  closeAll() {
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}
