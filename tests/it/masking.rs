//! The masking chokepoint, end to end through the binary: one image plants a generated key (real
//! prefix, random body, made now) in every place an output quotes image text, plus hostile control and
//! bidi characters in names and labels; every command in every format must print neither a key nor
//! its body nor a raw control/ESC/bidi character, and nothing can forge a workflow command line.
//! Then: on exit 2 and 3 every format says NOT CHECKED and why (also with `-o FILE`), never PASS.

use std::path::{Path, PathBuf};

use rand::Rng as _;
use serde_json::{Value, json};

use crate::checks::{OPENCODE_JSON, base_layer, config, overlay_layer};
use crate::common::{Corruption, ImageBuilder, Layer, run_bin, sha256};

fn key() -> String {
    let mut rng = rand::rng();
    x1_validate::scan::template::expand("sk-ant-api03-{b64u:93}AA", &mut |a: &[u8]| {
        a[rng.random_range(0..a.len())]
    })
    .expect("known template classes")
}

/// A name with a terminal title change, a bell, CR/LF that would start a forged workflow command, and
/// a right-to-left override.
const HOSTILE: &str = "ev\u{1b}]0;pwned\u{7}il\r\n::error::forged\u{202e}gpj.txt";

const BUSYBOX: &str = "/bin/busybox";

/// Everything the test planted, by place.
struct Planted {
    keys: Vec<(&'static str, String)>,
}

fn hostile_image(dir: &Path) -> (PathBuf, Planted) {
    let mut keys = Vec::new();
    let mut plant = |place: &'static str| {
        let k = key();
        keys.push((place, k.clone()));
        k
    };
    let k_history = plant("history created_by");
    let k_label = plant("label");
    let k_env = plant("config Env value");
    let k_name = plant("file name");
    let k_content = plant("file content");
    let k_opencode = plant("opencode.json value");
    let k_license_field = plant("package.json license field");
    let k_license_text = plant("license text");
    let k_health = plant("healthcheck output");
    let k_link = plant("symlink target");
    let k_manifest = plant("manifest annotation");
    let k_index = plant("index descriptor annotation");
    let k_index_top = plant("index annotation");

    let opencode = OPENCODE_JSON.replace("sidecar-placeholder", &k_opencode);
    let evil = Layer::new()
        .dir("tmp")
        .file(
            &format!("tmp/{k_name}.txt"),
            format!("k={k_content}\n").as_bytes(),
        )
        .file(&format!("tmp/{HOSTILE}"), b"hostile name\n")
        .symlink("tmp/link", &format!("/opt/{k_link}/x\u{1b}[2J"))
        .dir("usr/local/lib/node_modules/evil")
        .file(
            "usr/local/lib/node_modules/evil/package.json",
            json!({"name": "evil", "version": "1.0.0", "license": k_license_field})
                .to_string()
                .as_bytes(),
        )
        .file(
            "usr/local/lib/node_modules/evil/LICENSE",
            format!("Copyright evil\nlicense key: {k_license_text}\n").as_bytes(),
        );
    let mut layers = vec![base_layer(), overlay_layer(&opencode), evil];
    // The healthcheck runs the entrypoint, which prints a key (busybox sh, when the machine has it).
    if let Ok(bb) = std::fs::read(BUSYBOX) {
        layers.push(
            Layer::new()
                .file_full("bin/busybox", &bb, 0o755, 0, 0)
                .symlink("bin/sh", "busybox")
                .symlink("bin/echo", "busybox")
                .file_full(
                    "x1/bin/entrypoint",
                    format!(
                        "#!/bin/sh\necho \"health {k_health}\"\necho '\u{1b}]0;t\u{7}'\nexit 1\n"
                    )
                    .as_bytes(),
                    0o755,
                    0,
                    0,
                ),
        );
    }
    let n = layers.len();
    let mut img: ImageBuilder = config(layers)
        .label(
            "org.example.note",
            &format!("{k_label} \u{1b}[31mred\u{202e}txt"),
        )
        .label("org.example.hostile\u{202e}", "x\r\n::error::forged")
        .env(&format!("SOME_SETTING={k_env}"))
        .env("BIDI=a\u{2066}b\u{202e}c");
    for i in 0..n {
        img = img.history(&format!("/bin/sh -c #(nop) ADD layer{i}"), false);
    }
    img = img.history(&format!("RUN echo {k_history} > /dev/null"), true);
    let oci = img.write_oci_dir(dir);
    // Annotations on the manifest itself, on its index descriptor, and on the index.
    let index_path = oci.join("index.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let old = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = |d: &str| {
        oci.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mut manifest: Value = serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    manifest["annotations"] = json!({"org.example.m": k_manifest});
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let digest = sha256(&bytes);
    std::fs::write(blob(&digest), &bytes).unwrap();
    index["manifests"][0]["digest"] = json!(digest);
    index["manifests"][0]["size"] = json!(bytes.len());
    index["manifests"][0]["annotations"]["org.example.d"] = json!(k_index);
    index["annotations"] = json!({"org.example.top": k_index_top});
    std::fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    (oci, Planted { keys })
}

/// Characters that must never reach an output raw.
fn hostile_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn assert_clean(what: &str, text: &str, planted: &Planted) {
    for (place, k) in &planted.keys {
        assert!(
            !text.contains(k.as_str()),
            "{what}: the key planted in the {place} is printed in full"
        );
        // nor its body: no 16-char window of what follows the 8-char prefix evidence may show
        let body = &k[8..];
        for start in (0..body.len().saturating_sub(16)).step_by(4) {
            assert!(
                !text.contains(&body[start..start + 16]),
                "{what}: part of the key planted in the {place} is printed"
            );
        }
    }
    if let Some(c) = text.chars().find(|c| hostile_char(*c)) {
        let at = text.find(c).unwrap();
        panic!(
            "{what}: raw U+{:04X} in the output near {:?}",
            u32::from(c),
            &text[at.saturating_sub(40)..(at + 40).min(text.len())]
        );
    }
    for line in text.lines() {
        assert!(
            !line.trim_start().starts_with("::error::forged"),
            "{what}: a forged workflow command line: {line}"
        );
    }
}

#[test]
fn no_key_and_no_raw_control_character_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let (oci, planted) = hostile_image(dir.path());
    let img = oci.to_str().unwrap();
    let mut runs: Vec<Vec<&str>> = Vec::new();
    for f in ["human", "json", "sarif", "junit", "github"] {
        runs.push(vec![
            "check",
            img,
            "--format",
            f,
            "--healthcheck-timeout",
            "5s",
        ]);
    }
    for f in ["human", "json"] {
        runs.push(vec!["inspect", img, "--format", f]);
        runs.push(vec!["files", img, "--format", f]);
        runs.push(vec!["files", img, "--all-layers", "--format", f]);
    }
    for f in ["human", "json", "cyclonedx"] {
        runs.push(vec!["licenses", img, "--format", f]);
    }
    let mut health_ran = false;
    let mut masked_seen = false;
    for args in &runs {
        let out = run_bin(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let what = args.join(" ");
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{what}: exit {:?}\n{stderr}",
            out.status.code()
        );
        assert_clean(&format!("{what} (stdout)"), &stdout, &planted);
        assert_clean(&format!("{what} (stderr)"), &stderr, &planted);
        masked_seen |= stdout.contains("sk-ant-a… (108 chars, sha256:");
        if args[0] == "files" && args[3] == "human" {
            assert!(
                stdout.contains(
                    "ev\\u{1b}]0;pwned\\u{7}il\\u{d}\\u{a}::error::forged\\u{202e}gpj.txt"
                ),
                "the hostile name is shown with visible escapes:\n{stdout}"
            );
        }
        if args[0] == "check" && args[3] == "json" {
            let doc: Value = serde_json::from_str(&stdout).unwrap();
            let msgs = doc["images"][0]["findings"].to_string();
            health_ran = msgs.contains("health [sk-ant-a… (108 chars");
            // the JSON still carries what happened: findings for the planted keys, masked
            assert!(msgs.contains("secret-in-metadata"), "{msgs}");
            assert_ne!(doc["verdict"], "pass");
        }
        if args[0] == "check" && args[3] == "junit" {
            // no raw newline inside an attribute value: every `message="` closes on its line
            for line in stdout.lines().filter(|l| l.contains("message=\"")) {
                let tail = &line[line.find("message=\"").unwrap() + 9..];
                assert!(tail.contains('"'), "attribute spans lines: {line}");
            }
        }
    }
    assert!(masked_seen, "no redacted evidence shown at all");
    if !health_ran {
        crate::common::skip(
            "the healthcheck did not run here: its output excerpt was not exercised",
        );
    }
}

fn write_corrupt(dir: &Path) -> PathBuf {
    ImageBuilder::new()
        .layer(Layer::new().file("a", b"a"))
        .corrupt(Corruption::MalformedManifest)
        .write_oci_dir(dir)
}

/// Assert that `text` (the report in `format`) says NOT CHECKED with exit `code`, and is no pass.
fn assert_not_checked(format: &str, code: u8, text: &str) {
    match format {
        "json" => {
            let doc: Value = serde_json::from_str(text).unwrap();
            assert_eq!(doc["verdict"], "error", "{doc}");
            assert_eq!(doc["error"]["exit_code"], code, "{doc}");
            assert!(!doc["error"]["message"].as_str().unwrap().is_empty());
        }
        "sarif" => {
            let doc: Value = serde_json::from_str(text).unwrap();
            let inv = &doc["runs"][0]["invocations"][0];
            assert_eq!(inv["executionSuccessful"], false, "{inv}");
            let n = &inv["toolExecutionNotifications"][0];
            assert_eq!(n["level"], "error", "{inv}");
            assert!(
                n["message"]["text"]
                    .as_str()
                    .unwrap()
                    .contains("NOT CHECKED")
            );
            assert_eq!(doc["runs"][0]["properties"]["verdict"], "error");
        }
        "junit" => {
            assert!(text.contains("errors=\"1\""), "{text}");
            assert!(text.contains("<error message=\"NOT CHECKED"), "{text}");
        }
        "github" => {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("::error title=x1-validate NOT CHECKED::NOT CHECKED")),
                "{text}"
            );
            assert!(!text.contains("PASS"), "{text}");
        }
        _ => {
            assert!(text.contains("NOT CHECKED"), "{text}");
            assert!(!text.contains("PASS"), "{text}");
        }
    }
}

#[test]
fn exit_2_and_3_reports_say_not_checked_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = write_corrupt(&dir.path().join("corrupt"));
    let good = config(vec![base_layer(), overlay_layer(OPENCODE_JSON)])
        .write_oci_dir(&dir.path().join("good"));
    let bad_rules = dir.path().join("rules");
    std::fs::create_dir_all(&bad_rules).unwrap();
    std::fs::write(bad_rules.join("rules.toml"), "schema_version = [").unwrap();
    let good_s = good.to_str().unwrap();
    let rules_s = bad_rules.to_str().unwrap();
    let cases: Vec<(u8, Vec<&str>)> = vec![
        (2, vec!["check", good_s, "--preset", "no-such-preset"]),
        (2, vec!["check", good_s, "--rules", rules_s]),
        (3, vec!["check", corrupt.to_str().unwrap()]),
    ];
    for (code, args) in &cases {
        for format in ["human", "json", "sarif", "junit", "github"] {
            // to stdout
            let mut a = args.clone();
            a.extend(["--format", format]);
            let out = run_bin(&a);
            let what = a.join(" ");
            assert_eq!(out.status.code(), Some(i32::from(*code)), "{what}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_not_checked(format, *code, &stdout);
            // and to -o FILE
            let file = dir.path().join(format!("report-{code}-{format}"));
            let _ = std::fs::remove_file(&file);
            a.extend(["-o", file.to_str().unwrap()]);
            let out = run_bin(&a);
            assert_eq!(out.status.code(), Some(i32::from(*code)), "{what} -o");
            assert!(out.stdout.is_empty(), "{what}: -o writes nothing to stdout");
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{what}: no report file on exit {code}: {e}"));
            assert_not_checked(format, *code, &text);
        }
    }
}
