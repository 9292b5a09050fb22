// e2e-drive.mjs — drives ONE prompt through a running runtime image (used by
// scripts/e2e-runtime-image.sh): starts the scripted sidecar on 127.0.0.1:$X1_E2E_SIDECAR_PORT
// (11432, where the image's opencode.json points), waits for the adapter, injects a prompt and
// checks that the platform stream is turn.start → tool.use → tool.result → assistant.message →
// turn.end. Exit 0 on success, 1 with the reason otherwise. Prints the platform events it saw.
import { startMockSidecar } from "./mock-sidecar.mjs";
import { post, readEvents } from "./helpers.mjs";

const env = process.env;
const sidecarPort = Number(env.X1_E2E_SIDECAR_PORT ?? 11432);
const events = `http://127.0.0.1:${env.X1_ADAPTER_EVENTS_PORT ?? 3100}/events`;
const inject = `http://127.0.0.1:${env.X1_ADAPTER_INJECT_PORT ?? 8788}`;
const waitSecs = Number(env.X1_E2E_WAIT ?? 120);
const WANT = ["turn.start", "tool.use", "tool.result", "assistant.message", "turn.end"];

function fail(msg) {
  console.error(`e2e-drive: FAIL: ${msg}`);
  process.exit(1);
}

const sidecar = await startMockSidecar({ port: sidecarPort }).catch((e) => fail(`cannot listen on ${sidecarPort}: ${e.message}`));
const end = Date.now() + waitSecs * 1000;
for (;;) {
  try {
    const r = await fetch(`${inject}/health`, { signal: AbortSignal.timeout(2000) });
    if (r.ok) break;
  } catch {}
  if (Date.now() > end) fail(`the adapter at ${inject} was not healthy within ${waitSecs}s`);
  await new Promise((r) => setTimeout(r, 500));
}
const reader = await readEvents(events);
const r = await post(`${inject}/inject`, { text: "e2e: run the greeting tool, then answer" });
if (r.status !== 202) fail(`inject answered ${r.status}: ${JSON.stringify(r.body)}`);
console.log(`injected: turn ${r.body.turn_id} in session ${r.body.session_id}`);
try {
  await reader.next((e) => e.type === "turn.end" && e.turn_id === r.body.turn_id, 90000);
} catch (e) {
  fail(e.message);
}
const turn = reader.events.filter((e) => e.turn_id === r.body.turn_id);
for (const e of turn) console.log(`  ${e.id} ${e.type} ${JSON.stringify(e).slice(0, e.type === "error" ? 1200 : 160)}`);
const seq = turn.map((e) => e.type).filter((t) => WANT.includes(t));
if (JSON.stringify(seq) !== JSON.stringify(WANT)) fail(`sequence ${seq.join(" → ")}`);
if (turn.some((e) => e.type === "error")) fail("an error event was emitted");
const result = turn.find((e) => e.type === "tool.result");
if (!/hello-from-tool/.test(result.output ?? "")) fail(`tool output was ${JSON.stringify(result.output)}`);
const calls = sidecar.state.requests.filter((q) => q.path.endsWith("/chat/completions"));
console.log(`sidecar saw ${calls.length} chat completion request(s); authorization headers: ${JSON.stringify([...new Set(calls.map((c) => c.authorization))])}`);
console.log(`e2e-drive: OK: ${WANT.join(" → ")}`);
reader.close();
await sidecar.close();
process.exit(0);
