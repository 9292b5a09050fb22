//! JSON, `JUnit`, GitHub and human renderers, and the guarantees every format shares: written in full
//! on any writer, flushed, errors returned, secrets never in full.

use std::io::Write;

use serde_json::Value;
use x1_validate::report::{
    Format, Location, Report, RuleStatus, SCHEMA_VERSION, Severity, WriteOptions, write,
};

use super::fixture::{ALL, HOSTILE, fixture, rendered};

#[test]
fn json_has_schema_version_verdicts_and_round_trips() {
    let fx = fixture();
    let text = rendered(&fx, Format::Json, &fx.opts);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema_version"], SCHEMA_VERSION);
    assert_eq!(v["verdict"], "fail");
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert_eq!(images[0]["verdict"]["status"], "fail");
    assert_eq!(images[0]["verdict"]["errors"], 6);
    assert_eq!(images[0]["verdict"]["not_run"][0], "healthcheck");
    assert_eq!(images[1]["verdict"]["status"], "incomplete");
    assert_eq!(images[2]["verdict"]["status"], "pass");
    let kinds: std::collections::BTreeSet<&str> = images[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["location"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["blob", "config", "entry", "image", "manifest", "path"]
    );
    let ev = &images[0]["findings"][2]["evidence"];
    assert_eq!(ev["fingerprint"], fx.secret.evidence.fingerprint.as_str());
    assert_eq!(ev["length"], fx.secret.value.len());
    assert_eq!(images[0]["suppressed"]["test-fixtures"], 2);
    let back: Report = serde_json::from_value(v.clone()).unwrap();
    // what was written is the masked report (hostile control characters made visible)
    let masked = x1_validate::report::MaskedReport::new(&fx.report);
    assert_eq!(back.images[0].findings, masked.images[0].findings);
    assert_eq!(back.images[1].rules[1].status, RuleStatus::NotRun);
}

/// Every key the JSON document can carry is named (as `` `key` ``) in docs/report-schema.md.
#[test]
fn json_schema_doc_names_every_field() {
    let fx = fixture();
    let v: Value = serde_json::from_str(&rendered(&fx, Format::Json, &fx.opts)).unwrap();
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/report-schema.md"
    ))
    .unwrap();
    let mut keys = std::collections::BTreeSet::new();
    collect_keys(&v, &mut keys);
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented JSON fields: {missing:?}");
    assert!(keys.len() > 30, "walked only {} keys", keys.len());
}

fn collect_keys(v: &Value, keys: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                // suppression maps are keyed by allowlist entry id, not by schema field
                if k != "test-fixtures" && k != "docs-examples" {
                    keys.insert(k.clone());
                }
                collect_keys(v, keys);
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

#[test]
fn junit_is_well_formed_with_suites_cases_failures_skips() {
    let fx = fixture();
    let xml = rendered(&fx, Format::Junit, &fx.opts);
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    let suites: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    assert_eq!(suites.len(), 3);
    assert_eq!(
        suites[0].attribute("name"),
        Some("build/runtime-opencode.oci.tar [linux/amd64]")
    );
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    assert_eq!(
        count("testcase"),
        10 + 3 + 2,
        "one testcase per rule result"
    );
    assert_eq!(count("failure"), 9, "one failure per finding");
    assert_eq!(
        count("skipped"),
        3,
        "denied-license skipped + healthcheck not run twice"
    );
    assert_eq!(suites[0].attribute("failures"), Some("7"));
    assert_eq!(suites[0].attribute("skipped"), Some("2"));
    let hc = suites[1]
        .descendants()
        .find(|n| n.attribute("name") == Some("healthcheck"))
        .unwrap();
    let skip = hc.children().find(|n| n.has_tag_name("skipped")).unwrap();
    assert_eq!(skip.attribute("message"), Some("not run: --exec never"));
    let secret_case = suites[0]
        .descendants()
        .find(|n| n.attribute("name") == Some("secret-in-layer"))
        .unwrap();
    let bodies: Vec<&str> = secret_case
        .children()
        .filter(|n| n.has_tag_name("failure"))
        .map(|n| n.text().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].contains("layer 3") && bodies[0].contains("/home/agent/.env"),
        "{}",
        bodies[0]
    );
    assert!(bodies[0].contains("created by: /bin/sh -c echo \"KEY=…\" > /home/agent/.env # <&>"));
    let sysout = suites[0]
        .children()
        .find(|n| n.has_tag_name("system-out"))
        .unwrap()
        .text()
        .unwrap();
    assert!(sysout.contains("suppressed by allowlist test-fixtures: 2"));
}

#[test]
fn junit_escapes_markup_quotes_and_control_chars() {
    let fx = fixture();
    let xml = rendered(&fx, Format::Junit, &fx.opts);
    assert!(
        !xml.contains('\u{1b}') && !xml.contains('\u{0}'),
        "raw control characters in XML"
    );
    let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
    let f = doc
        .descendants()
        .find(|n| {
            n.has_tag_name("failure")
                && n.attribute("message")
                    .is_some_and(|m| m.starts_with("setuid"))
        })
        .unwrap();
    // masked first (CR/LF/ESC/NUL made visible), then XML-escaped: the attribute reads back exactly
    let expected = x1_validate::report::mask(HOSTILE);
    assert_eq!(
        f.attribute("message"),
        Some(&*expected),
        "attribute survives escaping exactly"
    );
    assert!(
        f.text()
            .unwrap()
            .contains("<a&b> \"q\" 'a' 100%\\u{d}\\u{a}::error")
    );
    assert!(!xml.contains('\r'), "no raw CR anywhere");
}

#[test]
fn github_commands_are_escaped_one_per_line() {
    let fx = fixture();
    let out = rendered(&fx, Format::Github, &fx.opts);
    let lines: Vec<&str> = out.lines().collect();
    let hostile = lines.iter().find(|l| l.contains("setuid file")).unwrap();
    assert!(
        hostile.starts_with("::warning title=layer-hygiene::"),
        "{hostile}"
    );
    assert!(
        hostile.contains("100%25\\u{d}\\u{a}::error title=x::forged"),
        "{hostile}"
    );
    assert!(!out.contains('\r'), "raw CR would end a command");
    assert!(
        !out.contains('\u{1b}') && !out.contains('\u{0}'),
        "raw control characters in the log"
    );
    assert!(hostile.contains("forged\\u{1b}[31m\\u{0},:"), "{hostile}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("::error title=x::"))
            .count(),
        0,
        "no forged command"
    );
    let secret = lines
        .iter()
        .find(|l| l.starts_with("::error title=secret-in-layer::"))
        .unwrap();
    assert!(
        secret.contains("found in 2 places:%0A- layer 3"),
        "{secret}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("::error title=secret-in-layer::"))
            .count(),
        1,
        "one annotation per secret value"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::warning title=healthcheck::")
                && l.contains("not run: --exec never"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::notice title=x1-validate verdict::")
                && l.contains("linux/riscv64")
                && l.ends_with("PASS"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("::error title=x1-validate verdict::")
                && l.contains("linux/amd64 sha256:")
                && l.contains("FAIL: 6 errors, 1 warning, 1 note, not run: healthcheck"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("suppressed by allowlist: 3 (docs-examples=1, test-fixtures=2)"))
    );
    assert_eq!(
        *lines.last().unwrap(),
        "x1-validate 0.1.0: FAIL — 3 images, 6 errors, 2 warnings, 1 note"
    );
    // Property escaping (`:` `,` in a title) is `github::escape_property`'s unit test: a title is a
    // `RuleId` now, which cannot carry either.
}

#[test]
fn human_groups_secrets_shows_not_run_and_ends_with_verdicts() {
    let fx = fixture();
    let out = rendered(&fx, Format::Human, &fx.opts);
    assert!(
        out.contains("× secret-in-layer: Anthropic API key in file content"),
        "{out}"
    );
    assert_eq!(
        out.matches("× secret-in-layer").count(),
        1,
        "one block for one secret value"
    );
    assert!(out.contains("found in 2 places:"));
    assert!(
        out.contains("layer 5 (") && out.contains("x.tgz!package/.env, line 3 [deleted by layer 7")
    );
    assert!(out.contains("created by: /bin/sh -c echo"));
    assert!(out.contains(&format!(
        "secret: {}… ({} chars",
        fx.secret.evidence.prefix,
        fx.secret.value.len()
    )));
    let hc: Vec<&str> = out.lines().filter(|l| l.contains("healthcheck")).collect();
    assert!(
        hc.iter().any(|l| l.contains("? NOT RUN  healthcheck")
            && l.ends_with("(not counted as passed) — no sandbox: user namespaces are disabled")),
        "{hc:?}"
    );
    // on a narrow terminal the reason wraps under the rule, indented
    let narrow = rendered(
        &fx,
        Format::Human,
        &WriteOptions {
            width: 60,
            ..fx.opts.clone()
        },
    );
    let lines: Vec<&str> = narrow.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("NOT RUN  healthcheck"))
        .unwrap();
    assert!(
        lines[at + 1].starts_with("                 no sandbox: user namespaces are disabled"),
        "{:?}",
        &lines[at..at + 2]
    );
    let passed = hc.iter().filter(|l| l.contains("✓ passed")).count();
    assert_eq!(passed, 1, "only riscv64 ran its healthcheck: {hc:?}");
    assert!(out.contains("Suppressed 3 findings by allowlist: docs-examples ×1, test-fixtures ×2"));
    assert!(out.contains("Note: nested archive depth limit"));
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    assert!(
        tail[2].trim().starts_with("linux/amd64 sha256:")
            && tail[2].contains("FAIL: 6 errors, 1 warning, 1 note"),
        "{tail:?}"
    );
    assert!(
        tail[1].contains("linux/arm64")
            && tail[1].contains("INCOMPLETE: 1 warning, not run: healthcheck"),
        "{tail:?}"
    );
    assert!(
        tail[0].contains("linux/riscv64") && tail[0].ends_with("PASS"),
        "{tail:?}"
    );
}

#[test]
fn human_without_colour_has_no_escape_bytes_even_from_hostile_paths() {
    let fx = fixture();
    let plain = rendered(&fx, Format::Human, &fx.opts);
    assert!(
        !plain.contains('\u{1b}'),
        "ANSI/escape byte with colour off"
    );
    assert!(
        plain.contains("/usr/bin/evil\\u{1b}]0;x\\u{7}"),
        "hostile path shown neutralised"
    );
    let coloured = rendered(
        &fx,
        Format::Human,
        &WriteOptions {
            color: true,
            ..fx.opts.clone()
        },
    );
    assert!(coloured.contains("\u{1b}[1;31m"), "colour on uses ANSI");
    assert!(
        !coloured.contains("\u{1b}]0;"),
        "image text never reaches the terminal raw"
    );
}

#[test]
fn fail_on_warning_turns_warnings_into_failures() {
    let fx = fixture();
    let opts = WriteOptions {
        fail_on: Some(Severity::Warning),
        ..fx.opts.clone()
    };
    let v: Value = serde_json::from_str(&rendered(&fx, Format::Json, &opts)).unwrap();
    assert_eq!(v["images"][1]["verdict"]["status"], "fail");
    assert_eq!(v["images"][1]["verdict"]["fail_on"], "warning");
}

/// A writer that takes at most 7 bytes a call and records flushes: output must equal the buffered
/// rendering (written in full, whatever the writer accepts per call) and be flushed.
struct Trickle {
    buf: Vec<u8>,
    flushed: bool,
}

impl Write for Trickle {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(7);
        self.buf.extend_from_slice(&b[..n]);
        self.flushed = false;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flushed = true;
        Ok(())
    }
}

#[test]
fn every_format_is_written_completely_and_never_holds_the_secret() {
    let fx = fixture();
    let body = &fx.secret.value[8..];
    for format in ALL {
        let full = rendered(&fx, format, &fx.opts);
        let mut t = Trickle {
            buf: Vec::new(),
            flushed: false,
        };
        write(&fx.report, format, &fx.opts, &mut t).unwrap();
        assert_eq!(
            String::from_utf8(t.buf).unwrap(),
            full,
            "{format:?} differs on a short-write writer"
        );
        assert!(t.flushed, "{format:?} not flushed");
        assert!(full.ends_with('\n'), "{format:?} not newline-terminated");
        assert!(
            !full.contains(body) && !full.contains(&fx.secret.value),
            "{format:?} leaks the secret"
        );
    }
}

/// A writer that fails: the error reaches the caller (so main can report it), nothing panics.
#[test]
fn write_errors_are_returned() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "closed",
            ))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let fx = fixture();
    for format in ALL {
        let err = write(&fx.report, format, &fx.opts, &mut Broken).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{format:?}");
    }
}

#[test]
fn empty_report_renders_in_every_format() {
    let report = Report::new("0.1.0", vec![]);
    for format in ALL {
        let mut out = Vec::new();
        write(&report, format, &WriteOptions::default(), &mut out).unwrap();
        assert!(!out.is_empty(), "{format:?}");
    }
}

/// One secret value copied into 30 files: one GitHub annotation listing 20 places and the rest counted.
#[test]
fn github_caps_the_places_listed_for_one_secret() {
    let mut fx = fixture();
    let template = fx.report.images[0].findings[2].clone();
    let img = &mut fx.report.images[2];
    for i in 0..30 {
        let mut f = template.clone();
        f.location = Location::Path {
            path: format!("/srv/copy{i}/.env"),
        };
        img.findings.push(f);
    }
    let out = rendered(&fx, Format::Github, &fx.opts);
    let line = out
        .lines()
        .find(|l| l.contains("linux/riscv64] Anthropic"))
        .unwrap();
    assert!(line.contains("found in 30 places:"), "{line}");
    assert_eq!(line.matches("%0A- /srv/copy").count(), 20, "{line}");
    assert!(line.contains("… and 10 more"), "{line}");
}
