//! The binary end to end: exit codes 0–4, every report format (exit code, stdout, stderr), `-o FILE`,
//! overrides, rule-file errors rendered at the right line, `rules` and `explain`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::checks::{OPENCODE_JSON, base_layer, config, good, overlay_layer};
use crate::common::{Corruption, ImageBuilder, Layer, Target, random_alnum, run_bin};

fn write(img: &ImageBuilder) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = img.write_oci_dir(dir.path());
    (dir, p)
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = run_bin(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// An image failing `credential-file` (error) and `layer-hygiene` (warning).
fn bad() -> ImageBuilder {
    let extra = Layer::new()
        .file(
            "root/.git-credentials",
            format!("https://u:{}@github.com\n", random_alnum(30)).as_bytes(),
        )
        .setuid("bin/su", b"x");
    config(vec![base_layer(), overlay_layer(OPENCODE_JSON), extra])
}

#[test]
fn human_format_pass_and_fail() {
    let (_d, img) = write(&good());
    let (code, out, err) = run(&[s(&img), "--exec", "never"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains("linux/amd64") && out.contains("PASS"), "{out}");
    assert!(!out.contains('\u{1b}'), "NO_COLOR: no ANSI escapes");
    let (_d, img) = write(&bad());
    let (code, out, err) = run(&["check", s(&img), "--exec", "never", "--format", "human"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.is_empty(), "{err}");
    assert!(
        out.contains("credential-file") && out.contains("/root/.git-credentials"),
        "{out}"
    );
    assert!(
        out.trim_end().lines().last().unwrap().contains("FAIL"),
        "verdict line last: {out}"
    );
}

#[test]
fn json_format() {
    let (_d, img) = write(&bad());
    let (code, out, err) = run(&[s(&img), "--exec", "never", "--format", "json"]);
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 1);
    let image = &v["images"][0];
    assert_eq!(image["rules"].as_array().unwrap().len(), 17);
    let ids: Vec<&str> = image["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["credential-file", "layer-hygiene"],
        "sorted by severity, then rule id"
    );
    assert_eq!(image["findings"][0]["location"]["layer"]["index"], 2);
}

#[test]
fn sarif_format() {
    let (_d, img) = write(&bad());
    let (code, out, err) = run(&[s(&img), "--exec", "never", "--format", "sarif"]);
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 17);
    assert!(rules.iter().all(|r| {
        r["help"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("How to fix"))
    }));
    let results = run["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "credential-file" && r["level"] == "error")
    );
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "layer-hygiene" && r["level"] == "warning")
    );
}

#[test]
fn junit_format() {
    let (_d, img) = write(&bad());
    let (code, out, err) = run(&[s(&img), "--exec", "never", "--format", "junit"]);
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    assert!(out.starts_with("<?xml"), "{out}");
    assert_eq!(out.matches("<testsuite ").count(), 1, "{out}");
    assert_eq!(
        out.matches("<testcase ").count(),
        17,
        "one testcase per rule: {out}"
    );
    assert!(out.matches("<failure").count() >= 2, "{out}");
}

#[test]
fn github_format() {
    let (_d, img) = write(&bad());
    let (code, out, err) = run(&[s(&img), "--exec", "never", "--format", "github"]);
    assert_eq!(code, 1);
    assert!(err.is_empty(), "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("::error") && l.contains("credential-file")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("::warning") && l.contains("layer-hygiene")),
        "{out}"
    );
}

#[test]
fn output_file_and_overrides() {
    let (d, img) = write(&bad());
    let report = d.path().join("x1.json");
    let (code, out, err) = run(&[
        s(&img),
        "--exec",
        "never",
        "--format",
        "json",
        "-o",
        s(&report),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "the report goes to the file only: {out}");
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["images"][0]["findings"].as_array().unwrap().len(), 2);
    // --allow turns the error into a note: exit 0; --fail-on warning fails on the setuid warning
    let (code, ..) = run(&[s(&img), "--exec", "never", "--allow", "credential-file"]);
    assert_eq!(code, 0);
    let (code, ..) = run(&[
        s(&img),
        "--exec",
        "never",
        "--allow",
        "credential-file",
        "--fail-on",
        "warning",
    ]);
    assert_eq!(code, 1);
    let (code, ..) = run(&[
        s(&img),
        "--exec",
        "never",
        "--allow",
        "credential-file",
        "--deny",
        "layer-hygiene",
    ]);
    assert_eq!(code, 1);
    let (code, ..) = run(&[
        s(&img),
        "--exec",
        "never",
        "--allow",
        "credential-file",
        "--warn",
        "layer-hygiene",
    ]);
    assert_eq!(code, 0);
}

#[test]
fn usage_errors_exit_2() {
    let (_d, img) = write(&good());
    for args in [
        vec![s(&img), "--format", "xml"],
        vec![s(&img), "--preset", "hermes"],
        vec![s(&img), "--deny", "no-such-rule"],
        vec![s(&img), "--deny", "base-os", "--allow", "base-os"],
        vec![s(&img), "--healthcheck-timeout", "soon"],
        vec![s(&img), "--platform", "linux"],
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(!err.is_empty(), "{args:?}: says why on stderr");
    }
}

#[test]
fn corrupt_image_exits_3_and_still_writes_the_report() {
    let (d, img) = write(&good().corrupt(Corruption::WrongDigest(Target::Layer(1))));
    let report = d.path().join("r.json");
    let (code, out, err) = run(&[
        s(&img),
        "--exec",
        "never",
        "--format",
        "json",
        "-o",
        s(&report),
    ]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("corrupt"), "{err}");
    let v: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 0);
    let (code, _, err) = run(&["/nonexistent/image.tar"]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn healthcheck_not_run_with_exec_always_exits_4() {
    // The sandbox runs Linux images only, so a windows image's healthcheck cannot run anywhere.
    let (_d, img) = write(&good().platform("windows", "amd64", None));
    let (code, out, err) = run(&[s(&img), "--exec", "always", "--format", "json"]);
    assert_eq!(code, 4, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let hc = v["images"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "healthcheck")
        .unwrap()
        .clone();
    assert_eq!(hc["status"], "not-run");
    // --exec auto: a warning, never a pass, and no exit 4
    let (code, out, _) = run(&[s(&img), "--exec", "auto", "--format", "json"]);
    assert_ne!(code, 4);
    let v: Value = serde_json::from_str(&out).unwrap();
    let f = v["images"][0]["findings"].as_array().unwrap();
    assert!(
        f.iter()
            .any(|f| f["rule_id"] == "healthcheck" && f["severity"] == "warning"),
        "{f:?}"
    );
}

#[test]
fn rule_file_errors_point_at_the_line() {
    let d = tempfile::tempdir().unwrap();
    let mut text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/rules.toml"))
            .unwrap();
    text = text.replacen(
        "severity = \"warning\"",
        "severity = \"warning\"\nfrobnicate = true",
        1,
    );
    let line = text
        .lines()
        .position(|l| l.starts_with("frobnicate"))
        .unwrap()
        + 1;
    std::fs::write(d.path().join("rules.toml"), &text).unwrap();
    let (code, _, err) = run(&["rules", "--rules", s(d.path())]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rules.toml") && err.contains("frobnicate"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{line} │ frobnicate = true")),
        "line {line} labelled: {err}"
    );

    // a preset with an unknown key
    let p = tempfile::tempdir().unwrap();
    std::fs::create_dir(p.path().join("opencode")).unwrap();
    let preset = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("presets/opencode/preset.toml"),
    )
    .unwrap()
    .replacen("[user]\n", "[user]\nshell = \"/bin/bash\"\n", 1);
    std::fs::write(p.path().join("opencode/preset.toml"), &preset).unwrap();
    let (code, _, err) = run(&["rules", "--presets", s(p.path())]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown field `shell`") && err.contains("shell = \"/bin/bash\""),
        "{err}"
    );
}

#[test]
fn rules_and_explain() {
    let (code, out, err) = run(&["rules"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 17);
    assert!(
        out.lines()
            .any(|l| l.starts_with("layer-hygiene") && l.contains("warning"))
    );
    let (code, out, _) = run(&["rules", "--preset", "opencode"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("~/.local/share/opencode/opencode.db") && out.contains("/x1/bin/entrypoint"),
        "{out}"
    );
    let (code, out, _) = run(&["explain", "sidecar-config"]);
    assert_eq!(code, 0);
    for part in [
        "What it checks",
        "Why it matters",
        "How to fix",
        "http://localhost:11432",
    ] {
        assert!(out.contains(part), "{part}: {out}");
    }
    let (code, _, err) = run(&["explain", "nope"]);
    assert_eq!(code, 2);
    // clap refuses an unknown id (and suggests a close one)
    assert!(err.contains("invalid value 'nope'"), "{err}");
}

#[test]
fn multi_platform_index_gets_one_verdict_per_platform() {
    // the arm64 image carries the amd64 entrypoint binary and loader: entrypoint and base-os fail there
    let amd = good();
    let mut arm = good().platform("linux", "arm64", None);
    arm.layers.push(Layer::new().file_mode(
        "x1/bin/entrypoint",
        &x1_validate::elf::synth_elf64(62, None),
        0o755,
    ));
    let d = tempfile::tempdir().unwrap();
    let layout = d.path().join("multi");
    crate::common::Layout::new()
        .multi_platform(Some("edge"), vec![amd, arm], true)
        .write_dir(&layout);
    let (code, out, err) = run(&[s(&layout), "--exec", "never", "--format", "json"]);
    assert_eq!(code, 1, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let images = v["images"].as_array().unwrap();
    assert_eq!(
        images.len(),
        2,
        "the attestation manifest is not a platform"
    );
    let by = |p: &str| images.iter().find(|i| i["platform"] == p).unwrap().clone();
    assert_eq!(
        by("linux/amd64")["verdict"]["status"],
        "pass",
        "{}",
        by("linux/amd64")
    );
    let arm = by("linux/arm64");
    let failed: Vec<&str> = arm["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert!(
        failed.contains(&"entrypoint") && failed.contains(&"base-os"),
        "{failed:?}"
    );
    // --platform picks one
    let (code, out, _) = run(&[
        s(&layout),
        "--exec",
        "never",
        "--format",
        "json",
        "--platform",
        "linux/amd64",
    ]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_closed_stdout_is_quiet() {
    // enough findings that the human report exceeds a pipe buffer
    let mut extra = Layer::new().dir("opt");
    for i in 0..1500 {
        extra = extra.setuid(&format!("opt/tool-{i:04}"), b"x");
    }
    let (d, img) = write(&config(vec![
        base_layer(),
        overlay_layer(OPENCODE_JSON),
        extra,
    ]));
    let err = d.path().join("err");
    let code = d.path().join("code");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"{ "$0" "$1" --exec never 2>"$2"; echo $? >"$3"; } | head -c 100 >/dev/null"#)
        .arg(crate::common::bin())
        .arg(&img)
        .arg(&err)
        .arg(&code)
        .env("NO_COLOR", "1")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&err).unwrap(),
        "",
        "no error on a closed pipe"
    );
    assert_eq!(
        std::fs::read_to_string(&code).unwrap().trim(),
        "0",
        "the gate's own code stands"
    );
}
