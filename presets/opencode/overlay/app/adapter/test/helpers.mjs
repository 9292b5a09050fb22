// helpers.mjs — test fixtures: the real opencode binary, a scratch HOME, a platform-SSE reader.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { randomBytes } from "node:crypto";

/** The per-pod bearer token of the tests' adapters (random per run; e2e-drive gets the image's) and its header. */
export const TOKEN = process.env.X1_ADAPTER_TOKEN || randomBytes(24).toString("base64url");
export const AUTH = { authorization: `Bearer ${TOKEN}` };

/** The opencode binary: $X1_OPENCODE_BIN, else the tools cache ($X1_TOOLS_CACHE/opencode/bin/opencode). */
export function opencodeBin() {
  if (process.env.X1_OPENCODE_BIN) return process.env.X1_OPENCODE_BIN;
  const cache = process.env.X1_TOOLS_CACHE ?? join(homedir(), ".cache", "x1-tools");
  return join(cache, "opencode", "bin", "opencode");
}

/** A reason to skip the real-opencode tests, or null. */
export function skipReason() {
  const bin = opencodeBin();
  if (!existsSync(bin)) return `opencode not found at ${bin} (run scripts/e2e-tools.sh or set X1_OPENCODE_BIN)`;
  const major = Number(process.versions.node.split(".")[0]);
  if (major < 22) return `the adapter targets Node 22; this is node ${process.version}`;
  return null;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An opencode config in the shape `render` writes (same default permissions), pointed at the mock sidecar. */
export function testConfig(sidecarUrl, permission = { bash: "allow", edit: "allow", webfetch: "deny", question: "deny" }, extra = {}) {
  return {
    $schema: "https://opencode.ai/config.json",
    autoupdate: false,
    share: "disabled",
    enabled_providers: ["sidecar"],
    model: "sidecar/mock-model",
    small_model: "sidecar/mock-model",
    provider: {
      sidecar: {
        npm: "@ai-sdk/openai-compatible",
        name: "Platform sidecar",
        options: { baseURL: `${sidecarUrl}/v1` },
        models: { "mock-model": { name: "Mock model", tool_call: true, cost: { input: 3, output: 15 } } },
      },
    },
    permission,
    lsp: false,
    formatter: false,
    ...extra,
  };
}

/** A scratch dir with home/, work/ and config.json; `cleanup()` removes it. */
export function scratch(config) {
  const dir = mkdtempSync(join(tmpdir(), "x1-adapter-test-"));
  for (const d of ["home", "work"]) mkdirSync(join(dir, d));
  const configPath = join(dir, "config.json");
  if (config) writeFileSync(configPath, JSON.stringify(config, null, 2));
  return { dir, home: join(dir, "home"), work: join(dir, "work"), configPath, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Start `opencode serve` for real, password-protected; resolves once GET /global/health says healthy. */
export async function startOpencode({ configPath, home, work }, port, password = randomBytes(16).toString("hex"), extraEnv = {}) {
  port ??= await freePort();
  const child = spawn(opencodeBin(), ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: work,
    env: {
      PATH: process.env.PATH,
      HOME: home,
      OPENCODE_CONFIG: configPath,
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_SERVER_PASSWORD: password,
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => { stderr = (stderr + d).slice(-4000); });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120000;
  const basic = { authorization: "Basic " + Buffer.from(`opencode:${password}`).toString("base64") };
  for (;;) {
    if (child.exitCode !== null) throw new Error(`opencode exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`opencode did not become healthy within 120 s: ${stderr}`);
    }
    try {
      const r = await fetch(`${url}/global/health`, { headers: basic, signal: AbortSignal.timeout(5000) });
      if (r.ok && (await r.json()).healthy) break;
    } catch {}
    await new Promise((r) => setTimeout(r, 150));
  }
  return {
    url,
    password,
    basic,
    child,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }),
  };
}

/** Read the platform SSE stream; `next(pred, ms)` resolves with the first matching event. */
export async function readEvents(url, { lastEventId, headers = AUTH } = {}) {
  const controller = new AbortController();
  const res = await fetch(url, { headers: { ...headers, ...(lastEventId ? { "last-event-id": String(lastEventId) } : {}) }, signal: controller.signal });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  const events = [];
  const waiters = [];
  let frames = [];
  (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    try {
      for await (const chunk of res.body) {
        buf += decoder.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          frames.push(frame);
          const type = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (!type || !data) continue;
          const ev = { ...JSON.parse(data), _sse_type: type, _sse_id: /^id: (.*)$/m.exec(frame)?.[1] ?? null };
          events.push(ev);
          for (const w of waiters.splice(0)) w();
        }
      }
    } catch {}
  })();
  async function next(pred, ms = 20000) {
    const end = Date.now() + ms;
    for (;;) {
      const hit = events.find(pred);
      if (hit) return hit;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${ms} ms; got: ${events.map((e) => e.type).join(", ")}`);
      await new Promise((resolve) => {
        const t = setTimeout(resolve, left);
        waiters.push(() => { clearTimeout(t); resolve(); });
      });
    }
  }
  return { events, frames, next, close: () => controller.abort() };
}

export async function post(url, body, headers = AUTH) {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body ?? {}) });
  return { status: r.status, body: await r.json() };
}

export async function get(url, headers = AUTH) {
  const r = await fetch(url, { headers });
  return { status: r.status, body: await r.json() };
}
