// overlay.test.mjs — the overlay's shell pieces, run for real: git-credential-x1 against a scripted
// credential endpoint, `entrypoint --healthcheck` (pass and each failure), and run.sh supervising the
// real opencode plus the adapter (signal forwarding, exit when a child dies).
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { startMockSidecar } from "./mock-sidecar.mjs";
import { AUTH, TOKEN, freePort, opencodeBin, post, readEvents, skipReason, testConfig } from "./helpers.mjs";

const OVERLAY = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const CRED = join(OVERLAY, "bin", "git-credential-x1");
const skipOpencode = skipReason();

/** A relocated /x1 tree (X1_ROOT) with the real overlay files and node 22 as runtime/bin/node. */
function makeRoot(config) {
  const root = mkdtempSync(join(tmpdir(), "x1-root-"));
  cpSync(join(OVERLAY, "bin"), join(root, "bin"), { recursive: true });
  cpSync(join(OVERLAY, "etc"), join(root, "etc"), { recursive: true });
  cpSync(join(OVERLAY, "app", "run.sh"), join(root, "app", "run.sh"));
  cpSync(join(OVERLAY, "app", "adapter"), join(root, "app", "adapter"), { recursive: true, filter: (s) => !s.includes(`${"/"}test`) });
  mkdirSync(join(root, "app", "config"), { recursive: true });
  mkdirSync(join(root, "runtime", "bin"), { recursive: true });
  symlinkSync(process.execPath, join(root, "runtime", "bin", "node"));
  writeFileSync(join(root, "app", "config", "opencode.json"), JSON.stringify(config, null, 2));
  writeFileSync(join(root, "app", "config", "opencode-version"), "1.18.33\n");
  mkdirSync(join(root, "home"));
  return root;
}

/** Run a command asynchronously (the mock sidecar lives in this process, so never spawnSync). */
function run(cmd, args, { input = "", env = {}, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { PATH: process.env.PATH, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => { stdout += d; });
    child.stderr.on("data", (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill("SIGKILL"), 60000);
    child.on("error", reject);
    child.on("close", (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
    child.stdin.on("error", () => {}); // the helper may exit without reading (EPIPE)
    child.stdin.end(input);
  });
}

describe("git-credential-x1", () => {
  let sidecar, scratch;
  before(async () => {
    sidecar = await startMockSidecar();
    scratch = mkdtempSync(join(tmpdir(), "x1-cred-"));
  });
  after(async () => {
    await sidecar.close();
    rmSync(scratch, { recursive: true, force: true });
  });
  const env = () => ({ X1_SIDECAR_URL: sidecar.url, HOME: scratch, X1_GIT_CREDENTIAL_HOSTS: "github.com, git.example.test" });

  it("get forwards the request to the sidecar and prints its answer", async () => {
    const r = await run("sh", [CRED, "get"], { input: "protocol=https\nhost=git.example.test\n\n", env: env(), cwd: scratch });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^protocol=https\nhost=git.example.test\nusername=x-access-token\npassword=/);
    assert.ok(r.stdout.includes(`password=${sidecar.credential.password}\n`));
    const last = sidecar.state.requests.at(-1);
    assert.deepEqual([last.method, last.path], ["POST", "/git/credential"]);
  });

  it("works as git's credential helper (git credential fill)", async () => {
    const r = await run("git", ["-c", "credential.helper=", "-c", `credential.helper=${CRED}`, "credential", "fill"], {
      input: "protocol=https\nhost=git.example.test\npath=org/repo.git\n\n",
      env: { ...env(), GIT_TERMINAL_PROMPT: "0", GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
      cwd: scratch,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /username=x-access-token/);
    assert.ok(r.stdout.includes(`password=${sidecar.credential.password}`));
  });

  it("refuses http, hosts off the allowlist and look-alikes without asking the sidecar", async () => {
    const asked = sidecar.state.requests.length;
    const cases = [
      ["protocol=http\nhost=git.example.test\n", env()],
      ["host=git.example.test\n", env()],
      ["protocol=https\nhost=github.com.evil.example\n", {}],
      ["protocol=https\nhost=evil-github.com\n", {}],
      ["protocol=https\nhost=github.com:8443\n", {}],
      ["protocol=https\nhost=git.example.test\n", {}],
      ["protocol=https\nhost=git.example.test.evil.example\n", env()],
      ["protocol=https\nhost=example.test\n", env()],
      ["protocol=https\nhost=github.com\nprotocol=http\n", {}],
      ["protocol=https\n", {}],
    ];
    for (const [input, extra] of cases) {
      const r = await run("sh", [CRED, "get"], { input: input + "\n", env: { X1_SIDECAR_URL: sidecar.url, HOME: scratch, ...extra }, cwd: scratch });
      assert.equal(r.code, 1, input);
      assert.equal(r.stdout, "", `nothing printed for ${JSON.stringify(input)}`);
      assert.match(r.stderr, /^git-credential-x1: no credential for this request: /);
    }
    assert.equal(sidecar.state.requests.length, asked, "the sidecar was never asked");
    // The default allowlist is exactly github.com (any case): that request is forwarded.
    const gh = await run("sh", [CRED, "get"], { input: "protocol=https\nhost=GitHub.com\n\n", env: { X1_SIDECAR_URL: sidecar.url, HOME: scratch }, cwd: scratch });
    assert.equal(sidecar.state.requests.length, asked + 1, gh.stderr);
    assert.equal(gh.stdout, "", "the mock has no grant for github.com");
  });

  it("git itself gets nothing for an http remote", async () => {
    const r = await run("git", ["-c", "credential.helper=", "-c", `credential.helper=${CRED}`, "credential", "fill"], {
      input: "protocol=http\nhost=git.example.test\npath=org/repo.git\n\n",
      env: { ...env(), GIT_TERMINAL_PROMPT: "0", GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" },
      cwd: scratch,
    });
    assert.notEqual(r.code, 0);
    assert.ok(!r.stdout.includes("password="), r.stdout);
  });

  it("the shipped gitconfig trusts no directory wildcard", () => {
    const cfg = readFileSync(join(OVERLAY, "etc", "gitconfig"), "utf8");
    assert.ok(!/^\s*directory\s*=\s*\*\s*$/m.test(cfg), "no safe.directory = *");
    assert.match(cfg, /^\s*directory = \/home\/agent\/workspace$/m);
  });

  it("fails closed when the sidecar refuses", async () => {
    const r = await run("sh", [CRED, "get"], { input: "protocol=https\nhost=github.com\n\n", env: env(), cwd: scratch });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /git-credential-x1: the sidecar at .* did not provide a credential/);
  });

  it("fails closed when the sidecar is unreachable", async () => {
    const port = await freePort();
    const r = await run("sh", [CRED, "get"], { input: "protocol=https\nhost=git.example.test\n\n", env: { ...env(), X1_SIDECAR_URL: `http://127.0.0.1:${port}` }, cwd: scratch });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /did not provide a credential/);
  });

  it("store and erase do nothing and write no file", async () => {
    const before = sidecar.state.requests.length;
    for (const op of ["store", "erase"]) {
      const r = await run("sh", [CRED, op], { input: "host=git.example.test\nusername=u\npassword=p\n\n", env: env(), cwd: scratch });
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""]);
    }
    assert.equal(sidecar.state.requests.length, before, "nothing was sent");
    assert.deepEqual(readdirSync(scratch), [], "no file written in HOME or cwd");
    assert.equal((await run("sh", [CRED, "bogus"])).code, 2);
  });
});

describe("entrypoint --healthcheck", { skip: skipOpencode ?? false }, () => {
  let root;
  before(() => { root = makeRoot(testConfig("http://localhost:11432")); });
  after(() => rmSync(root, { recursive: true, force: true }));
  const hc = (env = {}) => run("sh", [join(root, "bin", "entrypoint"), "--healthcheck"], {
    env: { X1_ROOT: root, X1_OPENCODE_BIN: opencodeBin(), HOME: join(root, "home"), ...env },
  });
  const oneLine = (r) => assert.equal(r.stdout.split("\n").filter(Boolean).length, 1, `one status line: ${r.stdout}`);

  it("passes on a complete tree and prints one line", async () => {
    const r = await hc();
    assert.equal(r.code, 0, r.stdout + r.stderr);
    oneLine(r);
    assert.match(r.stdout, /^healthy: opencode 1\.18\.33, node v22\./);
    assert.deepEqual(readdirSync(join(root, "home")), [], "opencode --version left nothing in HOME");
  });

  it("fails when opencode does not run", async () => {
    const r = await hc({ X1_OPENCODE_BIN: join(root, "nope") });
    assert.equal(r.code, 1);
    oneLine(r);
    assert.match(r.stdout, /^unhealthy: .*--version' failed/);
  });

  it("fails when the pinned version differs", async () => {
    writeFileSync(join(root, "app", "config", "opencode-version"), "9.9.9\n");
    try {
      const r = await hc();
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^unhealthy: opencode is 1\.18\.33, the image pins 9\.9\.9/);
    } finally {
      writeFileSync(join(root, "app", "config", "opencode-version"), "1.18.33\n");
    }
  });

  it("fails when the config does not parse", async () => {
    const cfg = join(root, "app", "config", "opencode.json");
    writeFileSync(cfg, '{"autoupdate": false,');
    try {
      const r = await hc();
      assert.equal(r.code, 1);
      oneLine(r);
      assert.match(r.stdout, /^unhealthy: .*opencode\.json does not parse/);
    } finally {
      writeFileSync(cfg, JSON.stringify(testConfig("http://localhost:11432")));
    }
  });

  it("fails when the adapter is missing or node is missing", async () => {
    const main = join(root, "app", "adapter", "main.mjs");
    cpSync(main, main + ".bak");
    unlinkSync(main);
    try {
      const r = await hc();
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^unhealthy: adapter .* is missing/);
    } finally {
      cpSync(main + ".bak", main);
      unlinkSync(main + ".bak");
    }
    unlinkSync(join(root, "runtime", "bin", "node"));
    try {
      const r = await hc();
      assert.equal(r.code, 1);
      assert.match(r.stdout, /^unhealthy: .*runtime\/bin\/node is missing/);
    } finally {
      symlinkSync(process.execPath, join(root, "runtime", "bin", "node"));
    }
  });
});

describe("run.sh supervises opencode and the adapter", { skip: skipOpencode ?? false }, () => {
  let sidecar, root;
  before(async () => {
    sidecar = await startMockSidecar();
    root = makeRoot(testConfig(sidecar.url));
  });
  after(async () => {
    await sidecar.close();
    rmSync(root, { recursive: true, force: true });
  });

  async function start(extraEnv = {}, { expectUp = true } = {}) {
    const ports = { oc: await freePort(), ev: await freePort(), inj: await freePort() };
    const child = spawn("sh", [join(root, "bin", "entrypoint")], {
      env: {
        PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
        HOME: join(root, "home"),
        X1_ROOT: root,
        X1_OPENCODE_BIN: opencodeBin(),
        X1_OPENCODE_PORT: String(ports.oc),
        X1_ADAPTER_HOST: "127.0.0.1",
        X1_ADAPTER_EVENTS_PORT: String(ports.ev),
        X1_ADAPTER_INJECT_PORT: String(ports.inj),
        X1_ADAPTER_TOKEN: TOKEN,
        X1_HEALTH_TIMEOUT: "120",
        ...extraEnv,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    child.stderr.on("data", (d) => { log += d; });
    const exited = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    if (!expectUp) return { child, ports, exited, log: () => log };
    const end = Date.now() + 150000;
    for (;;) {
      try {
        if ((await fetch(`http://127.0.0.1:${ports.inj}/health`, { signal: AbortSignal.timeout(1000) })).ok) break;
      } catch {}
      if (Date.now() > end || child.exitCode !== null) throw new Error(`run.sh did not come up: ${log}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const adapterPid = Number(/adapter pid (\d+)/.exec(log)?.[1]);
    const opencodePid = Number(/opencode \(pid (\d+)\)/.exec(log)?.[1]);
    return { child, ports, exited, adapterPid, opencodePid, log: () => log };
  }
  const down = async (port) => {
    try {
      await fetch(`http://127.0.0.1:${port}/global/health`, { signal: AbortSignal.timeout(1000) });
      return false;
    } catch {
      return true;
    }
  };

  it("serves one turn, then stops both children on SIGTERM", async () => {
    const rs = await start();
    const reader = await readEvents(`http://127.0.0.1:${rs.ports.ev}/events`);
    const r = await post(`http://127.0.0.1:${rs.ports.inj}/inject`, { text: "hi" });
    assert.equal(r.status, 202);
    const end = await reader.next((e) => e.type === "turn.end", 60000);
    assert.equal(end.reason, "completed");
    reader.close();
    // opencode's server: loopback, and 401 without the per-start password, which only the adapter got.
    const oc = await fetch(`http://127.0.0.1:${rs.ports.oc}/global/health`);
    assert.equal(oc.status, 401);
    const ocEnv = readFileSync(`/proc/${rs.opencodePid}/environ`, "utf8").split("\0");
    const pw = ocEnv.find((v) => v.startsWith("OPENCODE_SERVER_PASSWORD="))?.split("=")[1] ?? "";
    assert.match(pw, /^[0-9a-f]{64}$/);
    assert.ok(!ocEnv.some((v) => v.startsWith("X1_ADAPTER_TOKEN")), "opencode (and its tools) never see the adapter token");
    assert.ok(!rs.log().includes(pw) && !rs.log().includes(TOKEN), "neither secret is logged");
    rs.child.kill("SIGTERM");
    const { code } = await rs.exited;
    assert.notEqual(code, 0, "a stop on request is reported as 143");
    assert.ok(await down(rs.ports.oc), "opencode is down");
    assert.match(rs.log(), /received TERM/);
  });

  it("does not serve without a bearer token", async () => {
    const rs = await start({ X1_ADAPTER_TOKEN: "", X1_ADAPTER_TOKEN_FILE: join(root, "no-token") }, { expectUp: false });
    const { code } = await rs.exited;
    assert.ok(code !== 0 && code !== null, `exit ${code}`);
    assert.match(rs.log(), /no usable bearer token/);
    assert.ok(await down(rs.ports.oc), "opencode was stopped too");
  });

  it("exits non-zero and stops opencode when the adapter dies", async () => {
    const rs = await start();
    assert.ok(rs.adapterPid > 0, rs.log());
    process.kill(rs.adapterPid, "SIGKILL");
    const { code } = await rs.exited;
    assert.ok(code !== 0 && code !== null, `exit ${code}`);
    assert.match(rs.log(), /adapter exited/);
    assert.ok(await down(rs.ports.oc), "opencode is down");
  });
});
