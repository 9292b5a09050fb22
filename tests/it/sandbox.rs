//! The healthcheck sandbox (issue 6): real runs of real entrypoints in namespaces, built from images made
//! in code around a static busybox (`busybox-static`), plus the corpus image's own entrypoint.
//! Tests that need namespaces or busybox print why and skip when the machine lacks them.

// Skip reasons go to stderr; the benchmark helper prints its figures.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use x1_validate::image::layer::NoScan;
use x1_validate::image::{CapturePolicy, MergedTree, open, read_layers};
use x1_validate::sandbox::{self, Exit, Options, Outcome, RunReport};

use crate::common::{ImageBuilder, Layer, corpus_dir};

mod hostile;
mod outside;
mod store;

const BUSYBOX: &str = "/bin/busybox";
const APPLETS: &[&str] = &[
    "sh", "sleep", "echo", "id", "pwd", "cat", "nc", "wget", "ls", "test", "setsid", "true", "cut",
    "stat", "dirname", "mkdir",
];

/// Whether busybox and namespaces are usable; prints the reason when not.
fn ready() -> bool {
    if !Path::new(BUSYBOX).is_file() {
        crate::common::skip(&format!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        ));
        return false;
    }
    if let Err(why) = sandbox::available() {
        crate::common::skip(&format!("the bwrap sandbox is not available here: {why}"));
        return false;
    }
    true
}

/// A tiny runnable Debian-like root: static busybox, passwd/group with `agent` (1000), and
/// `/x1/bin/entrypoint` = `script` (POSIX sh).
fn busybox_image(script: &str) -> ImageBuilder {
    let bb = std::fs::read(BUSYBOX).expect("read busybox");
    let mut base = Layer::new()
        .dir("bin")
        .dir("etc")
        .dir_mode("tmp", 0o1777)
        .dir("home")
        .file_full("bin/busybox", &bb, 0o755, 0, 0)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n",
        )
        .file("etc/group", b"root:x:0:\nagent:x:1000:\n");
    for a in APPLETS {
        base = base.symlink(&format!("bin/{a}"), "busybox");
    }
    let home = Layer::new()
        .dir("home/agent")
        .dir("x1")
        .dir("x1/bin")
        .file_full(
            "x1/bin/entrypoint",
            format!("#!/bin/sh\n{script}\n").as_bytes(),
            0o755,
            0,
            0,
        );
    ImageBuilder::new()
        .layer(base)
        .layer(home)
        .user("agent")
        .env("PATH=/bin")
        .entrypoint(&["/x1/bin/entrypoint"])
}

fn with_timeout(secs: f64) -> Options {
    Options {
        timeout: Duration::from_secs_f64(secs),
        ..Options::default()
    }
}

/// Write `img` as an OCI layout, read it the way `check` does, and run the healthcheck.
fn run(img: &ImageBuilder, opts: &Options) -> RunReport {
    let dir = tempfile::tempdir().unwrap();
    let path = img.write_oci_dir(dir.path());
    run_path(&path, opts)
}

fn run_path(path: &Path, opts: &Options) -> RunReport {
    let opened = open(path.to_str().unwrap(), None).unwrap();
    let image = &opened.images[0];
    let layers = read_layers(&opened.source, image, &CapturePolicy::none(), |_| NoScan).unwrap();
    let listings: Vec<_> = layers.into_iter().map(|o| o.listing).collect();
    let tree = MergedTree::merge(&listings);
    let report = sandbox::healthcheck(&opened.source, image, &listings, &tree, opts);
    if let Some(ws) = &report.workspace {
        assert!(
            !ws.exists(),
            "the temporary directory {} is left behind",
            ws.display()
        );
    }
    report
}

/// Pids of live processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| p.to_string() != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// What a run left in its temporary directory: everything but the layer store, which stays by design
/// (it is checked to be the caller's own and private).
fn workspaces(dir: &Path) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let mut left = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("x1-validate-layers-") {
            let m = e.path().symlink_metadata().unwrap();
            assert!(
                m.is_dir() && m.permissions().mode() & 0o7777 == 0o700,
                "{name}"
            );
            assert_eq!(name, format!("x1-validate-layers-{}", m.uid()));
        } else {
            left.push(e.path());
        }
    }
    left
}

/// A per-run unique number to find the test's own processes by.
fn token() -> u32 {
    use rand::Rng as _;
    rand::rng().random_range(100_000..900_000)
}

#[test]
fn corpus_entrypoint_passes() {
    let Some(corpus) = corpus_dir() else {
        crate::common::skip("corpus image absent (set X1_CORPUS_DIR or build it)");
        return;
    };
    if let Err(why) = sandbox::available() {
        crate::common::skip(&format!("no namespaces: {why}"));
        return;
    }
    let report = run_path(&corpus.join("oci"), &Options::default());
    match &report.outcome {
        Outcome::Passed { .. } => {}
        other => panic!("the corpus healthcheck did not pass: {other:?}"),
    }
    assert_eq!(report.backend, "bwrap");
    let stats = report.stats.expect("materialised");
    assert!(
        stats.files > 5000,
        "only {} files materialised",
        stats.files
    );
    assert!(stats.symlinks > 500 && stats.hardlinks > 0, "{stats:?}");
}

#[test]
fn user_env_and_workdir_are_the_images() {
    if !ready() {
        return;
    }
    let script = r#"
[ "$(id -u):$(id -g)" = "1000:1000" ] || { echo "uid $(id -u):$(id -g)"; exit 2; }
[ "$(pwd)" = /home/agent ] || { echo "pwd $(pwd)"; exit 3; }
[ "$GREETING" = "hi there" ] || { echo "env GREETING=$GREETING"; exit 4; }
[ "$HOME" = /home/agent ] || { echo "HOME=$HOME"; exit 5; }
[ -z "$CARGO_MANIFEST_DIR$RUST_TEST_THREADS" ] || { echo "host env leaked"; exit 6; }
echo ok > /dev/null || exit 7
[ -d /proc/self ] || exit 8
echo healthy"#;
    let img = busybox_image(script)
        .env("GREETING=hi there")
        .workdir("/home/agent");
    let report = run(&img, &with_timeout(10.0));
    assert_eq!(
        report.outcome,
        Outcome::Passed {
            output: "healthy".into()
        }
    );
}

#[test]
fn exit_1_fails_with_output() {
    if !ready() {
        return;
    }
    let img = busybox_image("echo 'adapter missing: /x1/app/adapter' >&2\necho partial\nexit 1");
    let report = run(&img, &with_timeout(10.0));
    let Outcome::Failed { exit, output } = report.outcome else {
        panic!("expected failed, got {:?}", report.outcome);
    };
    assert_eq!(exit, Some(Exit::Code(1)));
    assert!(
        output.contains("adapter missing: /x1/app/adapter"),
        "{output}"
    );
    assert!(output.contains("partial"), "{output}");
    assert!(
        !output.contains("x1-validate-sandbox"),
        "setup marker leaked: {output}"
    );
}

#[test]
fn sleeping_forever_times_out_and_leaves_nothing() {
    if !ready() {
        return;
    }
    let t = token();
    let img = busybox_image(&format!("echo started\nsleep {t}"));
    let start = Instant::now();
    let report = run(&img, &with_timeout(1.5));
    let took = start.elapsed();
    let Outcome::TimedOut { output } = &report.outcome else {
        panic!("expected timed-out, got {:?}", report.outcome);
    };
    assert!(output.contains("started"), "{output}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert_eq!(processes_with(&format!("sleep {t}")), Vec::<i32>::new());
}

#[test]
fn forked_children_are_all_killed() {
    if !ready() {
        return;
    }
    let t = token();
    // Background children, a grandchild in a new session (leaves the process group), and a daemon
    // that outlives a *passing* entrypoint.
    let script =
        format!("sleep {t} &\n(sleep {t} &)\nsetsid sleep {t} &\nsh -c 'sleep {t}' &\nsleep {t}");
    let report = run(&busybox_image(&script), &with_timeout(1.0));
    assert!(
        matches!(report.outcome, Outcome::TimedOut { .. }),
        "{:?}",
        report.outcome
    );
    assert_eq!(processes_with(&format!("sleep {t}")), Vec::<i32>::new());

    let t2 = token();
    let script = format!("setsid sleep {t2} &\n(sleep {t2} &)\necho done");
    let report = run(&busybox_image(&script), &with_timeout(10.0));
    assert!(
        matches!(report.outcome, Outcome::Passed { .. }),
        "{:?}",
        report.outcome
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&format!("sleep {t2}")), Vec::<i32>::new());
}

#[test]
fn network_is_unreachable() {
    if !ready() {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "if echo probe | nc 127.0.0.1 {port}; then echo CONNECTED; exit 0; fi\n\
         if wget -q -T 2 -O - http://127.0.0.1:{port}/; then echo CONNECTED; exit 0; fi\n\
         echo unreachable; exit 3"
    );
    let report = run(&busybox_image(&script), &with_timeout(10.0));
    let Outcome::Failed { exit, output } = &report.outcome else {
        panic!(
            "the sandbox reached the host's loopback: {:?}",
            report.outcome
        );
    };
    assert_eq!(*exit, Some(Exit::Code(3)), "{output}");
    assert!(!output.contains("CONNECTED"));
    match listener.accept() {
        Ok((mut s, _)) => {
            let mut got = String::new();
            let _ = s.read_to_string(&mut got);
            panic!("the host listener got a connection: {got:?}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock),
    }
}

/// The host directories a sandbox run tries to write into are removed even when an assertion fails.
struct HostDirs(Vec<std::path::PathBuf>);

impl Drop for HostDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// Absolute host paths, `..` climbs and `/proc` tricks, from inside, aimed at two host directories:
/// one under `/tmp` (inside, `/tmp` is the sandbox's own tmpfs: the same path is writable there, and
/// the writes must land in it) and one under `$TMPDIR` (when that is not `/tmp`, e.g. `/var/tmp`, the
/// path does not exist in the read-only root and every write is refused). Neither host directory may
/// receive anything. A write to the sandbox's `/tmp` proves the script ran and could write.
#[test]
fn cannot_write_outside_its_root() {
    if !ready() {
        return;
    }
    let t = token();
    let mut dirs = vec![Path::new("/tmp").join(format!("x1-sandbox-escape-{t}"))];
    let in_tmpdir = std::env::temp_dir().join(format!("x1-sandbox-escape-{t}"));
    if !dirs.contains(&in_tmpdir) {
        dirs.push(in_tmpdir);
    }
    let hosts = HostDirs(dirs);
    let mut targets = Vec::new();
    for host in &hosts.0 {
        std::fs::create_dir_all(host).unwrap();
        let h = host.display();
        targets.extend([
            format!("{h}/a"),
            format!("/../../../../{h}/b"),
            format!("/proc/1/root{h}/c"),
            format!("/proc/self/cwd/../../../..{h}/d"),
        ]);
    }
    let script = format!(
        "echo ok > /tmp/control && echo wrote /tmp/control\n\
         for p in {}; do\n\
         mkdir -p \"$(dirname $p)\" 2>/dev/null; echo pwned > $p 2>/dev/null && echo wrote $p\n\
         done\nexit 0",
        targets.join(" ")
    );
    let report = run(&busybox_image(&script), &with_timeout(10.0));
    let Outcome::Passed { output } = &report.outcome else {
        panic!("{:?}", report.outcome)
    };
    assert!(output.contains("wrote /tmp/control"), "{output}");
    // Inside, the /tmp path is the sandbox's tmpfs: the plain absolute write lands there.
    assert!(
        output.contains(&format!("wrote {}/a", hosts.0[0].display())),
        "{output}"
    );
    for host in &hosts.0 {
        let left: Vec<_> = std::fs::read_dir(host)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert_eq!(left, Vec::<std::path::PathBuf>::new(), "{output}");
    }
}

#[test]
fn materialisation_never_follows_a_symlink_out() {
    if !ready() {
        return;
    }
    let t = token();
    let host = std::env::temp_dir().join(format!("x1-sandbox-symlink-{t}"));
    std::fs::create_dir_all(&host).unwrap();
    // An in-image symlink to the host directory (absolute, and by `..` climbing), then later layers
    // that write through them and replace files behind them.
    let climb = format!("../../../../../../../../..{}", host.display());
    let img = busybox_image("exit 0")
        .layer(
            Layer::new()
                .symlink("abs", &host.display().to_string())
                .symlink("rel", &climb)
                .symlink("x1/bin/victim", &format!("{}/victim", host.display())),
        )
        .layer(
            Layer::new()
                .file("abs/through-abs", b"pwned")
                .file("rel/through-rel", b"pwned")
                .hardlink("x1/bin/hl", "x1/bin/victim"),
        );
    let report = run(&img, &with_timeout(10.0));
    let left: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    std::fs::remove_dir_all(&host).unwrap();
    assert_eq!(
        left,
        Vec::<std::path::PathBuf>::new(),
        "{:?}",
        report.outcome
    );
}

/// A 64-byte ELF header for `AArch64` (`e_machine` 183), little-endian, `ET_EXEC`.
fn aarch64_elf() -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = 2; // 64-bit
    h[5] = 1; // little-endian
    h[6] = 1;
    h[16] = 2; // ET_EXEC
    h[18..20].copy_from_slice(&183u16.to_le_bytes());
    h
}

#[test]
fn foreign_architecture_is_not_run() {
    if !ready() {
        return;
    }
    let img = busybox_image("exit 0").layer(Layer::new().file_full(
        "x1/bin/entrypoint",
        &aarch64_elf(),
        0o755,
        0,
        0,
    ));
    let report = run(&img, &with_timeout(10.0));
    let Outcome::NotRun { reason } = &report.outcome else {
        panic!("expected not-run, got {:?}", report.outcome);
    };
    assert!(reason.contains("AArch64"), "{reason}");

    // The same through a `#!` interpreter that is foreign.
    let img = busybox_image("exit 0")
        .layer(Layer::new().file_full("opt/qemu-sh", &aarch64_elf(), 0o755, 0, 0))
        .layer(Layer::new().file_full(
            "x1/bin/entrypoint",
            b"#!/opt/qemu-sh\nexit 0\n",
            0o755,
            0,
            0,
        ));
    let report = run(&img, &with_timeout(10.0));
    assert!(
        matches!(&report.outcome, Outcome::NotRun { reason } if reason.contains("/opt/qemu-sh")),
        "{:?}",
        report.outcome
    );
}

#[test]
fn missing_entrypoint_is_not_run() {
    if !ready() {
        return;
    }
    let img = busybox_image("exit 0").layer(Layer::new().whiteout("x1/bin/entrypoint"));
    let report = run(&img, &with_timeout(10.0));
    assert!(
        matches!(&report.outcome, Outcome::NotRun { reason } if reason.contains("/x1/bin/entrypoint")),
        "{:?}",
        report.outcome
    );
    assert!(report.workspace.is_some_and(|w| !w.exists()));
}

#[test]
fn unknown_user_fails() {
    if !ready() {
        return;
    }
    let report = run(&busybox_image("exit 0").user("ghost"), &with_timeout(10.0));
    assert!(
        matches!(&report.outcome, Outcome::Failed { exit: None, output } if output.contains("ghost")),
        "{:?}",
        report.outcome
    );
}

#[test]
fn output_is_capped() {
    if !ready() {
        return;
    }
    let opts = Options {
        output_cap: 1000,
        ..with_timeout(10.0)
    };
    let report = run(
        &busybox_image("i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; exit 1"),
        &opts,
    );
    let Outcome::Failed { output, .. } = &report.outcome else {
        panic!("{:?}", report.outcome);
    };
    assert!(
        output.len() < 1100 && output.ends_with("[output truncated]"),
        "{} bytes",
        output.len()
    );
    assert!(output.starts_with("line-0\n"));
}

#[test]
fn materialised_tree_keeps_modes_links_and_whiteouts() {
    if !ready() {
        return;
    }
    // The entrypoint inspects its own root from inside.
    let script = r#"
[ "$(cat /data/visible)" = v2 ] || { echo "visible: $(cat /data/visible)"; exit 2; }
[ ! -e /data/deleted ] || { echo "deleted file present"; exit 3; }
[ ! -e /opq/old ] || { echo "opaque dir kept old"; exit 4; }
[ "$(cat /opq/new)" = new ] || exit 5
[ "$(cat /data/link)" = v2 ] || { echo "symlink"; exit 6; }
[ "$(cat /data/hard)" = orig ] || { echo "hardlink: $(cat /data/hard)"; exit 7; }
[ "$(ls -l /data/secret | cut -c1-10)" = "-rw-------" ] || { ls -l /data/secret; exit 8; }
ROOT_ONLY
[ "$(stat -c %u:%g /data/mine)" = 1000:1000 ] || { echo "owner $(stat -c %u:%g /data/mine)"; exit 10; }
[ ! -e /home/agent/hidden ] || { echo "home is not the fresh tmpfs"; exit 11; }
echo x > /home/agent/new && echo y > /tmp/new || { echo "home or /tmp not writable"; exit 12; }
(echo z > /data/new) 2>/dev/null && { echo "the root is writable"; exit 13; }
echo fine"#;
    // Only with real ownership (host root) can a 0600 root file be unreadable to the agent.
    let root_only = if sandbox::bwrap::running_as_root() {
        r#"cat /data/secret 2>/dev/null && { echo "agent read a 0600 root file"; exit 9; }"#
    } else {
        ""
    };
    let script = script.replace("ROOT_ONLY", root_only);
    let img = busybox_image(&script)
        .layer(
            Layer::new()
                .dir("data")
                .file("data/visible", b"v1")
                .file("data/deleted", b"x")
                .file("data/orig", b"orig")
                .hardlink("data/hard", "data/orig")
                .file_full("data/secret", b"s", 0o600, 0, 0)
                .dir("opq")
                .file("opq/old", b"old")
                .file_full("data/mine", b"m", 0o644, 1000, 1000)
                .file_full("home/agent/hidden", b"h", 0o644, 1000, 1000),
        )
        .layer(
            Layer::new()
                .file("data/visible", b"v2")
                .whiteout("data/deleted")
                .file("data/orig", b"replaced")
                .symlink("data/link", "visible")
                .opaque("opq")
                .file("opq/new", b"new"),
        );
    let report = run(&img, &with_timeout(10.0));
    assert_eq!(
        report.outcome,
        Outcome::Passed {
            output: "fine".into()
        }
    );
    let stats = report.stats.unwrap();
    assert!(stats.hardlinks + stats.files >= 8, "{stats:?}");
}
