//! SARIF: structure checked field by field, and the official validator (`sarif-multitool validate`
//! from npm `@microsoft/sarif-multitool`) with zero errors — skipped with a reason when not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use x1_validate::report::Format;

use super::fixture::{digest, fixture, rendered};

#[test]
fn sarif_has_rules_results_locations_and_fingerprints() {
    let fx = fixture();
    let v: Value = serde_json::from_str(&rendered(&fx, Format::Sarif, &fx.opts)).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "one run for the whole report");
    let run = &runs[0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "x1-validate");
    assert_eq!(driver["version"], "0.1.0");
    let rules = driver["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 10);
    let lh = rules.iter().find(|r| r["id"] == "layer-hygiene").unwrap();
    assert_eq!(lh["defaultConfiguration"]["level"], "warning");
    assert!(
        lh["help"]["markdown"]
            .as_str()
            .unwrap()
            .contains("**How to fix**")
    );
    assert!(!lh["help"]["text"].as_str().unwrap().contains("**"));
    assert!(
        lh["fullDescription"]["text"].as_str().unwrap().len()
            > lh["shortDescription"]["text"].as_str().unwrap().len()
    );
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 9, "8 findings on amd64 + 1 on arm64");
    for r in results {
        let idx = usize::try_from(r["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(
            rules[idx]["id"], r["ruleId"],
            "ruleIndex points at the rule"
        );
        assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
        assert!(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string());
    }
    let fqns: Vec<&str> = results
        .iter()
        .map(|r| {
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]
                .as_str()
                .unwrap()
        })
        .collect();
    let l3 = digest("layer3");
    assert!(
        fqns.contains(&format!("layer/{l3}/home/agent/.env").as_str()),
        "{fqns:?}"
    );
    assert!(fqns.contains(&"config/config/Env/3"), "{fqns:?}");
    assert!(fqns.contains(&"fs/x1/bin/entrypoint"), "{fqns:?}");
    assert!(fqns.contains(&"image"), "{fqns:?}");
    let secrets: Vec<&Value> = results
        .iter()
        .filter(|r| r["ruleId"] == "secret-in-layer")
        .collect();
    assert_eq!(secrets.len(), 2);
    let hex = fx.secret.evidence.fingerprint.trim_start_matches("sha256:");
    for s in &secrets {
        assert_eq!(s["partialFingerprints"]["secretSha256/v1"], hex);
        assert_eq!(s["relatedLocations"].as_array().unwrap().len(), 1);
        assert_eq!(s["properties"]["platform"], "linux/amd64");
    }
    let nested = &secrets[1]["locations"][0]["physicalLocation"];
    assert_eq!(
        nested["artifactLocation"]["uri"],
        "usr/lib/node_modules/x.tgz%21package/.env"
    );
    assert_eq!(nested["artifactLocation"]["uriBaseId"], "IMAGEROOT");
    assert_eq!(nested["region"]["startLine"], 3);
    assert!(nested["region"]["byteOffset"].is_null());
    let first = &secrets[0]["locations"][0]["physicalLocation"]["region"];
    assert_eq!(
        (first["startLine"].as_u64(), first["byteOffset"].as_u64()),
        (Some(1), Some(4))
    );
    let notes = run["invocations"][0]["toolExecutionNotifications"]
        .as_array()
        .unwrap();
    assert_eq!(notes.len(), 2, "healthcheck not run on amd64 and arm64");
    assert!(
        notes
            .iter()
            .all(|n| n["associatedRule"]["id"] == "healthcheck")
    );
    let imgs = run["properties"]["images"].as_array().unwrap();
    assert_eq!(imgs[1]["verdict"], "incomplete");
    assert_eq!(imgs[0]["suppressed"]["docs-examples"], 1);
}

/// Where the official validator lives: `$X1_SARIF_MULTITOOL`, else the npm dir of the tools cache
/// (`$X1_TOOLS_CACHE`, default `~/.cache/x1-tools`) that `scripts/tools.sh` installs into.
fn sarif_multitool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("X1_SARIF_MULTITOOL") {
        return Some(PathBuf::from(p));
    }
    let cache = match std::env::var_os("X1_TOOLS_CACHE") {
        Some(c) => PathBuf::from(c),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/x1-tools"),
    };
    let p = cache.join("npm/node_modules/.bin/sarif-multitool");
    p.exists().then_some(p)
}

/// Run `sarif-multitool validate -o OUT FILE`; return the validator's own SARIF log and its console.
fn validate(tool: &Path, doc: &str, dir: &Path, name: &str) -> (Value, String) {
    let input = dir.join(format!("{name}.sarif"));
    let output = dir.join(format!("{name}.validation.sarif"));
    std::fs::write(&input, doc).expect("write the SARIF file");
    // The tool is a self-contained .NET binary: invariant globalisation spares it a libicu dependency.
    let out = Command::new(tool)
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .arg("validate")
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .output()
        .expect("run sarif-multitool");
    let console = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "validator failed to run: {console}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(&output).expect("validator wrote its log");
    (
        serde_json::from_str(&log).expect("validator log is JSON"),
        console.into_owned(),
    )
}

/// The validator's error-level results. A result without `level` takes its rule's default level
/// (SARIF §3.27.10), and `warning` when the rule has none.
fn errors_in(log: &Value) -> Vec<String> {
    let run = &log["runs"][0];
    assert_eq!(
        run["invocations"][0]["executionSuccessful"], true,
        "validator run failed: {run}"
    );
    let rules = &run["tool"]["driver"]["rules"];
    run["results"]
        .as_array()
        .expect("validator results")
        .iter()
        .filter(|r| {
            let level = r["level"].as_str().or_else(|| {
                let i = usize::try_from(r["ruleIndex"].as_u64()?).ok()?;
                rules[i]["defaultConfiguration"]["level"].as_str()
            });
            level.unwrap_or("warning") == "error"
        })
        .map(|r| format!("{}: {}", r["ruleId"], r["message"]))
        .collect()
}

#[test]
fn sarif_passes_official_validator() {
    let Some(tool) = sarif_multitool() else {
        crate::common::skip(
            "sarif_passes_official_validator: sarif-multitool not installed (scripts/tools.sh: npm install --prefix \"${X1_TOOLS_CACHE:-$HOME/.cache/x1-tools}/npm\" @microsoft/sarif-multitool@5.7.0, or set X1_SARIF_MULTITOOL)",
        );
        return;
    };
    let fx = fixture();
    let doc = rendered(&fx, Format::Sarif, &fx.opts);
    let dir = tempfile::tempdir().unwrap();
    let (log, console) = validate(&tool, &doc, dir.path(), "report");
    eprintln!("{console}");
    let errors = errors_in(&log);
    assert!(errors.is_empty(), "SARIF validator errors: {errors:#?}");
    // The NOT CHECKED report of exit 3 (with the images finished before the error) is valid too.
    let failed = x1_validate::report::Report::failed(
        fx.report.tool_version.clone(),
        fx.report.images.clone(),
        &x1_validate::Error::corrupt("manifest sha256:0\u{1b}", "not JSON"),
    );
    let doc_failed = rendered_report(&failed, &fx);
    let v: Value = serde_json::from_str(&doc_failed).unwrap();
    assert_eq!(
        v["runs"][0]["invocations"][0]["executionSuccessful"],
        Value::Bool(false)
    );
    let (log, _) = validate(&tool, &doc_failed, dir.path(), "failed");
    let errors = errors_in(&log);
    assert!(
        errors.is_empty(),
        "SARIF validator errors (exit 3 report): {errors:#?}"
    );
    // Canary: the same document with a property the schema forbids must be rejected, proving the
    // validator really checked this file rather than silently accepting it.
    let mut broken: Value = serde_json::from_str(&doc).unwrap();
    broken["runs"][0]["results"][0]["notASarifProperty"] = Value::Bool(true);
    let (log, _) = validate(&tool, &broken.to_string(), dir.path(), "broken");
    assert!(
        !errors_in(&log).is_empty(),
        "validator accepted a schema violation: it did not run properly"
    );
}

fn rendered_report(report: &x1_validate::report::Report, fx: &super::fixture::Fixture) -> String {
    let mut out = Vec::new();
    x1_validate::report::write(report, Format::Sarif, &fx.opts, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// One secret value copied into 30 files: related locations are capped, the full count is kept.
#[test]
fn sarif_caps_related_locations() {
    let mut fx = fixture();
    let template = fx.report.images[0].findings[2].clone();
    for i in 0..30 {
        let mut f = template.clone();
        f.location = x1_validate::report::Location::Path {
            path: format!("/srv/copy{i}/.env"),
        };
        fx.report.images[2].findings.push(f);
    }
    let v: Value = serde_json::from_str(&rendered(&fx, Format::Sarif, &fx.opts)).unwrap();
    let riscv: Vec<&Value> = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["properties"]["platform"] == "linux/riscv64")
        .collect();
    assert_eq!(riscv.len(), 30);
    for r in riscv {
        assert_eq!(r["relatedLocations"].as_array().unwrap().len(), 10);
        assert_eq!(r["properties"]["secretLocations"], 30);
    }
}
