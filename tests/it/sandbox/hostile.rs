//! Hostile entrypoints against the bubblewrap sandbox (issue 10): escape attempts from namespace root and
//! through a setuid-root binary, the image's `Env` aimed at host loaders, a fork storm, a 1 GiB write,
//! SIGKILL of the gate mid-run, and images whose own tree cannot be materialised. The attacker is a small
//! static C program (`hostile.c`) compiled with `gcc -static` at test time. Each test asserts the outcome
//! (or the gate's exit code and report), that a host canary directory is untouched and that no process
//! of the sandbox is left.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use x1_validate::sandbox::{self, Outcome};

use super::{busybox_image, processes_with, ready, run, token, with_timeout, workspaces};
use crate::common::{ImageBuilder, Layer};

/// The compiled attacker (once per test process), or `None` (skip) without gcc/static libc.
fn hostile() -> Option<&'static [u8]> {
    static BIN: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = tempfile::tempdir().ok()?;
        let out = dir.path().join("hostile");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/sandbox/hostile.c");
        let st = Command::new("gcc")
            .args(["-static", "-O1", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .ok()?;
        st.success().then(|| std::fs::read(&out).ok()).flatten()
    })
    .as_deref()
}

fn prerequisites() -> Option<&'static [u8]> {
    if !ready() {
        return None;
    }
    let bin = hostile();
    if bin.is_none() {
        crate::common::skip("`gcc -static` could not build tests/it/sandbox/hostile.c");
    }
    bin
}

/// busybox image + `/x1/bin/hostile` (mode, owner) and an entrypoint running `line`.
fn hostile_image(bin: &[u8], line: &str, mode: u32) -> ImageBuilder {
    busybox_image(line).layer(Layer::new().file_full("x1/bin/hostile", bin, mode, 0, 0))
}

/// A world-writable host directory with one world-writable file: any write that reaches it succeeds.
struct Canary {
    dir: PathBuf,
}

impl Canary {
    fn new(tag: &str) -> Canary {
        let dir = std::env::temp_dir().join(format!("x1-canary-{tag}-{}", token()));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("file"), b"original").unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::set_permissions(dir.join("file"), std::fs::Permissions::from_mode(0o666)).unwrap();
        Canary { dir }
    }

    /// The directory holds exactly the original file, unchanged.
    fn assert_untouched(&self, context: &str) {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["file".to_string()], "canary touched: {context}");
        assert_eq!(
            std::fs::read(self.dir.join("file")).unwrap(),
            b"original",
            "{context}"
        );
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn output_of(o: &Outcome) -> &str {
    match o {
        Outcome::Passed { output }
        | Outcome::Failed { output, .. }
        | Outcome::TimedOut { output } => output,
        Outcome::Unrunnable { reason } | Outcome::NotRun { reason } => reason,
    }
}

fn assert_no_escape(o: &Outcome, canary: &Canary, who: &str) {
    let out = output_of(o);
    eprintln!("--- {who}:\n{out}");
    assert!(
        matches!(o, Outcome::Passed { .. }),
        "{who}: something escaped or the run failed: {o:?}"
    );
    assert!(!out.contains("ESCAPED"), "{who}: {out}");
    for attack in [
        "chroot",
        "/proc/1/root",
        "mount tmpfs",
        "ptrace of a host pid",
        "new user namespace",
        "read-only root",
    ] {
        assert!(
            out.contains(&format!("blocked: {attack}"))
                || out.contains(&format!("blocked: write through {attack}"))
                || out.contains(&format!("blocked: write to the {attack}")),
            "{who}: attack `{attack}` was not attempted: {out}"
        );
    }
    canary.assert_untouched(&format!("{who}: {out}"));
}

#[test]
fn escapes_from_namespace_root_fail() {
    let Some(bin) = prerequisites() else {
        return;
    };
    let canary = Canary::new("nsroot");
    let line = format!(
        "exec /x1/bin/hostile escape {} {}",
        canary.dir.display(),
        std::process::id()
    );
    for user in ["root", "", "0"] {
        let img = hostile_image(bin, &line, 0o755).user(user);
        let report = run(&img, &with_timeout(20.0));
        assert_no_escape(&report.outcome, &canary, &format!("User {user:?}"));
        assert!(
            output_of(&report.outcome).contains("uid=0 euid=0"),
            "{:?}",
            report.outcome
        );
    }
}

#[test]
fn a_setuid_root_binary_gains_nothing() {
    let Some(bin) = prerequisites() else {
        return;
    };
    let canary = Canary::new("setuid");
    let line = format!(
        "exec /x1/bin/hostile escape {} {}",
        canary.dir.display(),
        std::process::id()
    );
    let img = hostile_image(bin, &line, 0o4755);
    let report = run(&img, &with_timeout(20.0));
    assert_no_escape(&report.outcome, &canary, "setuid");
    let out = output_of(&report.outcome);
    assert!(out.contains("uid=1000 euid=1000"), "{out}");
    assert!(
        out.contains("blocked: setuid binary raised the effective uid"),
        "{out}"
    );
}

/// A shared object whose constructor writes into `canary` when any host program loads it.
fn evil_preload(dir: &Path, canary: &Path) -> Option<PathBuf> {
    let src = dir.join("evil.c");
    let so = dir.join("evil.so");
    std::fs::write(
        &src,
        format!(
            "#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) {{\n\
             FILE *f = fopen(\"{}/preloaded\", \"a\"); if (f) {{ fputs(\"pwned\\n\", f); fclose(f); }}\n}}\n",
            canary.display()
        ),
    )
    .ok()?;
    let ok = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .ok()?
        .success();
    ok.then_some(so)
}

#[test]
fn image_env_never_reaches_a_host_loader() {
    if !ready() {
        return;
    }
    let canary = Canary::new("preload");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(so) = evil_preload(tmp.path(), &canary.dir) else {
        crate::common::skip("gcc could not build a shared object");
        return;
    };
    // Sanity: the object does write the canary when a host program loads it.
    let probe = tempfile::tempdir().unwrap();
    let probe_canary = probe.path().join("c");
    std::fs::create_dir(&probe_canary).unwrap();
    let probe_so = evil_preload(probe.path(), &probe_canary).unwrap();
    Command::new("/bin/true")
        .env("LD_PRELOAD", &probe_so)
        .status()
        .unwrap();
    assert!(
        probe_canary.join("preloaded").exists(),
        "the probe .so does not work"
    );

    let preload = format!("LD_PRELOAD={}", so.display());
    let debug_out = format!("LD_DEBUG_OUTPUT={}/lddebug", canary.dir.display());
    let img = busybox_image(
        "[ -n \"$LD_PRELOAD\" ] && [ \"$LD_DEBUG\" = all ] && echo \"inside: $LD_PRELOAD\"; exit 0",
    )
    .env(&preload)
    .env("LD_DEBUG=all")
    .env(&debug_out)
    .env("LD_LIBRARY_PATH=/nonexistent")
    .env("BASH_ENV=/nonexistent");
    // Through the real binary, as CI runs it.
    let dir = tempfile::tempdir().unwrap();
    let path = img.write_oci_dir(dir.path());
    let (code, v) = check_json(&path, &[], None);
    assert_ne!(code, 4);
    let (status, message) = healthcheck_rule(&v);
    assert_eq!(status, "passed", "{message}");
    canary.assert_untouched("image Env acted on a host program");
    // And inside, the variables are the image's, exactly.
    let report = run(&img, &with_timeout(10.0));
    let out = output_of(&report.outcome);
    assert!(
        out.contains(&format!("inside: {}", so.display())),
        "{:?}",
        report.outcome
    );
    canary.assert_untouched("image Env acted on a host program");
}

#[test]
fn a_fork_storm_is_bounded() {
    let Some(bin) = prerequisites() else {
        return;
    };
    let t = token();
    let img = hostile_image(bin, &format!("exec /x1/bin/hostile fork 1500 {t}"), 0o755);
    let start = Instant::now();
    let report = run(&img, &with_timeout(20.0));
    let out = output_of(&report.outcome).to_string();
    eprintln!("--- fork storm: {out}");
    assert!(
        matches!(report.outcome, Outcome::Passed { .. }),
        "the storm was not stopped: {out}"
    );
    let forked: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("forked "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        forked < sandbox::Limits::default().processes,
        "forked {forked}"
    );
    assert!(start.elapsed() < Duration::from_secs(15));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_with(&format!("fork 1500 {t}")), Vec::<i32>::new());
}

#[test]
fn a_fork_storm_is_bounded_for_an_unprivileged_caller() {
    let Some(bin) = prerequisites() else {
        return;
    };
    if !sandbox::bwrap::running_as_root() {
        eprintln!("SKIP: needs root to become nobody (the caller already is unprivileged)");
        return;
    }
    let t = token();
    let img = hostile_image(bin, &format!("exec /x1/bin/hostile fork 1500 {t}"), 0o755);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = img.write_oci_dir(dir.path());
    chmod_r(dir.path());
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, v) = check_json(&path, &[], Some((65534, tmp.path())));
    assert_ne!(code, 4, "{v}");
    let (status, message) = healthcheck_rule(&v);
    eprintln!("--- as nobody: exit {code}, {status}: {message}");
    assert_eq!(status, "passed", "as nobody: {message}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_with(&format!("fork 1500 {t}")), Vec::<i32>::new());
    assert_eq!(workspaces(tmp.path()), Vec::<PathBuf>::new());
}

fn chmod_r(dir: &Path) {
    for e in walk(dir) {
        let mode = if e.is_dir() { 0o755 } else { 0o644 };
        let _ = std::fs::set_permissions(&e, std::fs::Permissions::from_mode(mode));
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            let more: Vec<PathBuf> = std::fs::read_dir(&out[i])
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            out.extend(more);
        }
        i += 1;
    }
    out
}

#[test]
fn a_1gib_write_is_bounded_by_the_tmpfs_caps() {
    let Some(bin) = prerequisites() else {
        return;
    };
    let shm_before = shm_free();
    let img = hostile_image(bin, "exec /x1/bin/hostile write 1073741824", 0o755);
    let start = Instant::now();
    let report = run(&img, &with_timeout(30.0));
    let out = output_of(&report.outcome).to_string();
    eprintln!("--- big write:\n{out}");
    assert!(matches!(report.outcome, Outcome::Passed { .. }), "{out}");
    let cap = i64::try_from(sandbox::Limits::default().tmpfs_bytes).unwrap();
    let wrote = |p: &str| -> i64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("wrote {p} ")))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{p}: {out}"))
    };
    for p in ["/tmp/big", "/dev/shm/big", "/home/agent/big"] {
        let n = wrote(p);
        assert!(n > 0 && n <= cap, "{p}: {n} bytes: {out}");
    }
    assert_eq!(wrote("/big"), -1, "the root is writable: {out}");
    assert_eq!(wrote("/dev/big"), -1, "/dev is writable: {out}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );
    // Host RAM (/dev/shm) did not take the write (others may use it: allow 256 MiB of noise).
    if let (Some(before), Some(after)) = (shm_before, shm_free()) {
        assert!(
            after + (256 << 20) >= before,
            "/dev/shm lost {} MiB",
            (before - after) >> 20
        );
    }
}

fn shm_free() -> Option<u64> {
    let st = rustix::fs::statvfs("/dev/shm").ok()?;
    Some(st.f_bavail * st.f_frsize)
}

/// Run the real binary: `check --exec always --format json PATH`, optionally as `uid` with a temp dir.
fn check_json(path: &Path, env: &[(&str, &str)], as_user: Option<(u32, &Path)>) -> (i32, Value) {
    let mut cmd = match as_user {
        Some((uid, _)) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .args(["--clear-groups", "--"])
                .arg(crate::common::bin());
            c
        }
        None => Command::new(crate::common::bin()),
    };
    cmd.args(["check", "--exec", "always", "--format", "json"])
        .arg(path)
        .env("NO_COLOR", "1");
    if let Some((_, tmp)) = as_user {
        cmd.env("X1_VALIDATE_TMPDIR", tmp);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), v)
}

/// (status, messages of its findings) of the healthcheck rule.
fn healthcheck_rule(v: &Value) -> (String, String) {
    let img = &v["images"][0];
    let rule = img["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "healthcheck")
        .unwrap();
    let messages: Vec<String> = img["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "healthcheck")
        .map(|f| f["message"].as_str().unwrap_or_default().to_string())
        .collect();
    (
        rule["status"].as_str().unwrap_or_default().to_string(),
        format!("{} | {}", rule["detail"], messages.join(" | ")),
    )
}

#[test]
fn sigkill_of_the_gate_kills_the_sandbox() {
    if !ready() {
        return;
    }
    let t = token();
    let script = format!("sleep {t} &\nsetsid sleep {t} &\n(sleep {t} &)\nsleep {t}");
    let img = busybox_image(&script);
    let dir = tempfile::tempdir().unwrap();
    let path = img.write_oci_dir(dir.path());
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut child = Command::new(crate::common::bin())
        .args(["check", "--exec", "always", "--healthcheck-timeout", "120s"])
        .arg(&path)
        .env("X1_VALIDATE_TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let needle = format!("sleep {t}");
    let start = Instant::now();
    while processes_with(&needle).len() < 4 {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("x1-validate ended ({st}) before the healthcheck started");
        }
        assert!(start.elapsed() < Duration::from_secs(60), "never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no handler runs
    let _ = child.wait();
    let gone = Instant::now();
    while !processes_with(&needle).is_empty() {
        assert!(
            gone.elapsed() < Duration::from_secs(5),
            "sandbox processes outlived the gate: {:?}",
            processes_with(&needle)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The workspace had to stay (nothing runs after SIGKILL): on disk, private, and the next run removes it.
    let left = workspaces(&tmp);
    assert_eq!(left.len(), 1, "{left:?}");
    let mode = std::fs::metadata(&left[0]).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o711);
    let quick = busybox_image("exit 0");
    let d2 = tempfile::tempdir().unwrap();
    let p2 = quick.write_oci_dir(d2.path());
    let st = Command::new(crate::common::bin())
        .args(["check", "--exec", "always"])
        .arg(&p2)
        .env("X1_VALIDATE_TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_ne!(st.code(), Some(4));
    assert_eq!(
        workspaces(&tmp),
        Vec::<PathBuf>::new(),
        "the stale workspace was not swept"
    );
}

/// What, the image, extra environment for the gate.
type Case = (
    &'static str,
    ImageBuilder,
    Vec<(&'static str, &'static str)>,
);

#[test]
fn a_tree_the_image_makes_impossible_is_a_finding_not_exit_4() {
    if !ready() {
        return;
    }
    let long = "n".repeat(5000);
    let cases: Vec<Case> = vec![
        (
            "5000-byte name",
            busybox_image("exit 0").layer(Layer::new().file(&format!("x1/{long}"), b"x")),
            vec![],
        ),
        (
            "directory under a dangling symlink",
            busybox_image("exit 0")
                .layer(Layer::new().symlink("x1/dangling", "/nowhere/at/all"))
                .layer(
                    Layer::new()
                        .dir("x1/dangling/sub")
                        .file("x1/dangling/sub/f", b"x"),
                ),
            vec![],
        ),
        (
            "over the size cap",
            busybox_image("exit 0").layer(Layer::new().file("x1/big", &vec![7u8; 300_000])),
            vec![(sandbox::MAX_ROOTFS_ENV, "256K")],
        ),
    ];
    for (what, img, env) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = img.write_oci_dir(dir.path());
        let (code, v) = check_json(&path, &env, None);
        let (status, message) = healthcheck_rule(&v);
        eprintln!("--- {what}: exit {code}, {status}: {message}");
        assert_ne!(code, 4, "{what}: exit 4 ({message})");
        assert_ne!(status, "not-run", "{what}: {message}");
        if status == "failed" {
            assert_eq!(code, 1, "{what}");
            assert!(message.contains("image's own content"), "{what}: {message}");
        }
        if what == "over the size cap" {
            assert_eq!(status, "failed", "{message}");
            assert!(message.contains("too large to materialise"), "{message}");
        }
        if what == "5000-byte name" {
            assert_eq!(status, "failed", "{message}");
        }
    }
}

#[test]
fn mounts_and_credentials_are_locked_down() {
    if !ready() {
        return;
    }
    let img = busybox_image("cat /proc/self/mountinfo; cat /proc/self/status; exit 0");
    let report = run(&img, &with_timeout(10.0));
    let Outcome::Passed { output } = &report.outcome else {
        panic!("{:?}", report.outcome);
    };
    // mountinfo: field 5 is the mount point, field 6 its options.
    let opts = |at: &str| -> String {
        output
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.len() > 6 && f[4] == at)
            .map(|f| f[5].to_string())
            .next_back()
            .unwrap_or_else(|| panic!("no mount at {at}: {output}"))
    };
    for (at, want) in [
        ("/", &["ro", "nosuid", "nodev"][..]),
        ("/dev", &["ro", "nosuid", "nodev"][..]),
        ("/tmp", &["rw", "nosuid", "nodev"][..]),
        ("/dev/shm", &["rw", "nosuid", "nodev"][..]),
        ("/home/agent", &["rw", "nosuid", "nodev"][..]),
        ("/proc", &["nosuid", "nodev"][..]),
    ] {
        let o = opts(at);
        for w in want {
            assert!(o.split(',').any(|x| x == *w), "{at}: {o} lacks {w}");
        }
    }
    let field = |k: &str| {
        output
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map_or_else(|| panic!("{k}: {output}"), str::trim)
            .to_string()
    };
    assert_eq!(field("NoNewPrivs:"), "1");
    for cap in ["CapEff:", "CapPrm:", "CapBnd:", "CapAmb:", "CapInh:"] {
        assert!(field(cap).chars().all(|c| c == '0'), "{cap} {}", field(cap));
    }
    // Alone in a new PID namespace whose own /proc shows its own numbers only (bwrap's init is 1, the
    // entrypoint 2, its second `cat` 4).
    let nspid = field("NSpid:");
    assert_eq!(nspid.split_whitespace().count(), 1, "{nspid}");
    let inner: u32 = nspid.trim().parse().unwrap();
    assert!(inner < 10, "{nspid}");
}
