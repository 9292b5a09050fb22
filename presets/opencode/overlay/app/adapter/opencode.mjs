// opencode.mjs — a small client for `opencode serve`: JSON requests and a follower of GET /event
// (Server-Sent Events) that reconnects with exponential backoff. Node 22 built-ins only.

export class OpencodeClient {
  /** @param {{url: string, password?: string, username?: string, log?: (m: string) => void}} o */
  constructor({ url, password, username = "opencode", log = () => {} }) {
    this.url = url.replace(/\/+$/, "");
    this.log = log;
    this.headers = {};
    if (password) {
      this.headers.authorization = "Basic " + Buffer.from(`${username}:${password}`).toString("base64");
    }
  }

  /** POST/GET JSON; returns the parsed body (or null for 204). Throws with the status on failure. */
  async request(method, path, body, { timeoutMs = 30000 } = {}) {
    const res = await fetch(this.url + path, {
      method,
      headers: { ...this.headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (!res.ok) {
      const err = new Error(`opencode ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`);
      err.status = res.status;
      throw err;
    }
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /**
   * Follow GET /event until `signal` aborts. `onEvent(obj)` gets each parsed event, `onState(up)`
   * is called with true on (re)connect and false on loss. Backoff: 250 ms doubling to 5 s, reset
   * after a connection that delivered data.
   */
  async follow({ onEvent, onState = () => {}, signal }) {
    let delay = 250;
    while (!signal.aborted) {
      let delivered = false;
      // One controller per attempt: the caller's signal stops everything, and an attempt whose
      // headers do not arrive within 10 s (a server that accepted the connection while still
      // starting) is abandoned instead of hanging until undici's 5-minute headers timeout.
      const attempt = new AbortController();
      const stopAttempt = () => attempt.abort();
      signal.addEventListener("abort", stopAttempt, { once: true });
      const headersTimer = setTimeout(stopAttempt, 10000);
      try {
        const res = await fetch(this.url + "/event", {
          headers: { ...this.headers, accept: "text/event-stream" },
          signal: attempt.signal,
        });
        clearTimeout(headersTimer);
        if (!res.ok || !res.body) throw new Error(`GET /event answered ${res.status}`);
        onState(true);
        for await (const data of sseData(res.body)) {
          delivered = true;
          let obj;
          try {
            obj = JSON.parse(data);
          } catch {
            this.log(`ignoring a non-JSON event: ${data.slice(0, 120)}`);
            continue;
          }
          try {
            await onEvent(obj);
          } catch (e) {
            this.log(`event handler failed: ${e.stack ?? e}`);
          }
        }
        this.log("opencode closed the event stream");
      } catch (e) {
        if (signal.aborted) break;
        this.log(`event stream error: ${e.message ?? e}`);
      } finally {
        clearTimeout(headersTimer);
        signal.removeEventListener("abort", stopAttempt);
      }
      onState(false);
      if (signal.aborted) break;
      if (delivered) delay = 250;
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** Yield the `data` of each SSE event in a byte stream (multi-line data joined with "\n"). */
export async function* sseData(body) {
  const decoder = new TextDecoder();
  let buf = "";
  let data = [];
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
      if (buf[nl] === "\r" && nl === buf.length - 1) break; // maybe half of a CRLF: wait for more
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + (buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1));
      if (line === "") {
        if (data.length) yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line[5] === " " ? 6 : 5));
      }
      // `event:`, `id:`, `retry:` and comments carry nothing the adapter needs.
    }
  }
  if (data.length) yield data.join("\n");
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}
