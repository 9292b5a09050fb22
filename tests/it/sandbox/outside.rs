//! Sandbox tests from outside the library: Ctrl-C on the real binary, and the materialisation
//! measurement that `bench/healthcheck.sh` runs.

#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::time::{Duration, Instant};

use x1_validate::image::layer::NoScan;
use x1_validate::image::{CapturePolicy, MergedTree, open, read_layers};
use x1_validate::sandbox;

use super::{busybox_image, processes_with, ready, token, workspaces};
use crate::common::corpus_dir;

#[test]
fn ctrl_c_removes_the_temp_dir_and_kills_the_sandbox() {
    use std::os::unix::fs::PermissionsExt as _;
    if !ready() {
        return;
    }
    let t = token();
    let img = busybox_image(&format!("sleep {t}"));
    let dir = tempfile::tempdir().unwrap();
    let path = img.write_oci_dir(dir.path());
    // The sandbox's mapped ids must be able to traverse the parent of the workspace.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    for p in [dir.path(), tmp.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    let mut child = std::process::Command::new(crate::common::bin())
        .args(["check", "--exec", "always", "--healthcheck-timeout", "120s"])
        .arg(&path)
        .env("X1_VALIDATE_TMPDIR", &tmp)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let needle = format!("sleep {t}");
    let start = Instant::now();
    while processes_with(&needle).is_empty() {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("x1-validate ended ({st}) before the healthcheck started");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the healthcheck never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(workspaces(&tmp).len(), 1, "one workspace while running");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = Instant::now();
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "SIGINT did not stop x1-validate"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!st.success(), "{st}");
    assert_eq!(workspaces(&tmp), Vec::<std::path::PathBuf>::new());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&needle), Vec::<i32>::new());
}

/// Not a test: the materialisation measurement `bench/healthcheck.sh` runs (release build, `--ignored`).
/// Prints `materialise_seconds=…` and `materialise_peak_rss_kib=…` (peak RSS reset right before the
/// step through `/proc/self/clear_refs`, so it is the step's own peak).
#[test]
#[ignore = "benchmark helper, run by bench/healthcheck.sh"]
fn bench_materialise_corpus() {
    let Some(corpus) = corpus_dir() else {
        crate::common::skip("corpus image absent");
        return;
    };
    let path = std::env::var("X1_BENCH_IMAGE")
        .unwrap_or_else(|_| corpus.join("oci").display().to_string());
    let opened = open(&path, None).unwrap();
    let image = &opened.images[0];
    let layers = read_layers(&opened.source, image, &CapturePolicy::none(), |_| NoScan).unwrap();
    let listings: Vec<_> = layers.into_iter().map(|o| o.listing).collect();
    let tree = MergedTree::merge(&listings);
    let own = sandbox::ownership();
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let ws = sandbox::Workspace::new().unwrap();
    let start = Instant::now();
    let stats = sandbox::materialise::materialise(
        &opened.source,
        image,
        &listings,
        &tree,
        &ws.root(),
        own,
        sandbox::DEFAULT_MAX_ROOTFS,
        None,
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let proc_status = std::fs::read_to_string("/proc/self/status").unwrap();
    let hwm = proc_status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .map(|v| v.trim().trim_end_matches(" kB").to_string())
        .unwrap_or_default();
    drop(ws);
    println!("materialise_seconds={secs:.3}");
    println!("materialise_peak_rss_kib={hwm}");
    println!(
        "materialise_stats=files:{} dirs:{} symlinks:{} hardlinks:{} bytes:{}",
        stats.files, stats.dirs, stats.symlinks, stats.hardlinks, stats.bytes
    );
}
