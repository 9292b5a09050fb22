//! Report renderers: one shared in-code [`Report`] fixture (three platforms, every `Location` kind, one
//! secret found in two layers, a not-run rule, suppressions, notes, hostile characters) rendered in
//! every format, each parsed back and checked; plus the official SARIF validator
//! (`sarif-multitool validate` from npm `@microsoft/sarif-multitool`), skipped with a reason when absent.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use rand::Rng;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x1_validate::report::{
    Evidence, Finding, Format, ImageReport, LayerRef, Location, RenderOptions, Report, RuleMeta,
    RuleResult, RuleStatus, SCHEMA_VERSION, Severity, render,
};

/// A provider-style key built at test time (real prefix, random body): never a literal in the repo.
struct TestSecret {
    value: String,
    evidence: Evidence,
}

fn test_secret() -> TestSecret {
    let prefix = ["sk", "ant", "api03"].join("-");
    let mut rng = rand::rng();
    let body: String = (0..93)
        .map(|_| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [rng.random_range(0..62)],
            )
        })
        .collect();
    let value = format!("{prefix}-{body}AA");
    let fingerprint = format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())));
    let evidence = Evidence {
        prefix: value.chars().take(8).collect(),
        length: value.len(),
        fingerprint,
        pattern: "anthropic-api-key".into(),
    };
    TestSecret { value, evidence }
}

fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

fn layer(index: usize, created_by: Option<&str>) -> LayerRef {
    LayerRef {
        index,
        digest: digest(&format!("layer{index}")),
        diff_id: digest(&format!("diff{index}")),
        created_by: created_by.map(str::to_string),
    }
}

fn finding(rule: &str, sev: Severity, msg: &str, location: Location) -> Finding {
    Finding {
        rule_id: rule.into(),
        severity: sev,
        message: msg.into(),
        help: Some(format!("Fix {rule}: see `x1-validate explain {rule}`.")),
        location,
        evidence: None,
    }
}

fn rule(id: &str, sev: Severity, status: RuleStatus, detail: Option<&str>) -> RuleResult {
    RuleResult {
        rule_id: id.into(),
        severity: sev,
        status,
        detail: detail.map(str::to_string),
    }
}

/// Message with every character the formats must escape: markup, quotes, CR/LF, ESC, NUL, `%`, `:`, `,`.
const HOSTILE: &str =
    "setuid file <a&b> \"q\" 'a' 100%\r\n::error title=x::forged\u{1b}[31m\u{0},:";

/// One finding per `Location` kind (the secret twice), already in `sort_findings` order.
fn amd64_findings(secret_a: Finding, secret_b: Finding) -> Vec<Finding> {
    use Severity::{Error, Note, Warning};
    vec![
        finding(
            "entrypoint",
            Error,
            "/x1/bin/entrypoint is absent",
            Location::Path {
                path: "/x1/bin/entrypoint".into(),
            },
        ),
        finding(
            "provider-env",
            Error,
            "ANTHROPIC_API_KEY is set to a literal",
            Location::Config {
                pointer: "/config/Env/3".into(),
            },
        ),
        secret_a,
        secret_b,
        finding(
            "secret-in-metadata",
            Error,
            "in-toto attestation carries a provider assignment",
            Location::Blob {
                digest: digest("att"),
                media_type: "application/vnd.in-toto+json".into(),
            },
        ),
        finding(
            "tag-policy",
            Error,
            "annotation version disagrees with --ref",
            Location::Manifest {
                digest: digest("manifest-amd64"),
                pointer: "/annotations/org.opencontainers.image.version".into(),
            },
        ),
        finding(
            "license-label",
            Warning,
            "org.opencontainers.image.licenses is missing",
            Location::Image,
        ),
        finding(
            "layer-hygiene",
            Note,
            "duplicate path in layer 2",
            Location::Entry {
                layer: layer(2, None),
                path: "/etc/hosts".into(),
                fate: "overwritten by layer 4".into(),
                offset: None,
                line: None,
            },
        ),
    ]
}

fn image_amd64(secret: &Evidence) -> ImageReport {
    use Severity::{Error, Note, Warning};
    let mut secret_a = finding(
        "secret-in-layer",
        Error,
        "Anthropic API key in file content",
        Location::Entry {
            layer: layer(
                3,
                Some("/bin/sh -c echo \"KEY=…\" > /home/agent/.env # <&>"),
            ),
            path: "/home/agent/.env".into(),
            fate: "visible".into(),
            offset: Some(4),
            line: Some(1),
        },
    );
    secret_a.evidence = Some(secret.clone());
    let mut secret_b = secret_a.clone();
    secret_b.location = Location::Entry {
        layer: layer(5, None),
        path: "/usr/lib/node_modules/x.tgz!package/.env".into(),
        fate: "deleted by layer 7 — still shipped in layer 5's blob".into(),
        offset: None,
        line: Some(3),
    };
    let findings = amd64_findings(secret_a, secret_b);
    let mut suppressed = BTreeMap::new();
    suppressed.insert("test-fixtures".to_string(), 2);
    suppressed.insert("docs-examples".to_string(), 1);
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/amd64".into(),
        manifest_digest: digest("manifest-amd64"),
        config_digest: digest("config-amd64"),
        preset: Some("opencode".into()),
        rules: vec![
            rule("runtime-label", Error, RuleStatus::Passed, None),
            rule("entrypoint", Error, RuleStatus::Failed, None),
            rule(
                "healthcheck",
                Error,
                RuleStatus::NotRun,
                Some("no sandbox: user namespaces are disabled"),
            ),
            rule("provider-env", Error, RuleStatus::Failed, None),
            rule("secret-in-layer", Error, RuleStatus::Failed, None),
            rule("secret-in-metadata", Error, RuleStatus::Failed, None),
            rule("tag-policy", Error, RuleStatus::Failed, None),
            rule("license-label", Warning, RuleStatus::Failed, None),
            rule("layer-hygiene", Note, RuleStatus::Failed, None),
            rule(
                "denied-license",
                Error,
                RuleStatus::Skipped,
                Some("--allow denied-license"),
            ),
        ],
        findings,
        suppressed,
        notes: vec!["nested archive depth limit (3) reached in /usr/lib/a.zip".into()],
    }
}

/// Only a warning (with hostile text) and a not-run healthcheck: INCOMPLETE, never PASS.
fn image_arm64() -> ImageReport {
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/arm64".into(),
        manifest_digest: digest("manifest-arm64"),
        config_digest: digest("config-arm64"),
        preset: Some("opencode".into()),
        rules: vec![
            rule("runtime-label", Severity::Error, RuleStatus::Passed, None),
            rule(
                "healthcheck",
                Severity::Error,
                RuleStatus::NotRun,
                Some("--exec never"),
            ),
            rule("layer-hygiene", Severity::Warning, RuleStatus::Failed, None),
        ],
        findings: vec![finding(
            "layer-hygiene",
            Severity::Warning,
            HOSTILE,
            Location::Entry {
                layer: layer(1, None),
                path: "/usr/bin/evil\u{1b}]0;x\u{7}".into(),
                fate: "visible".into(),
                offset: None,
                line: None,
            },
        )],
        suppressed: BTreeMap::new(),
        notes: vec![],
    }
}

fn image_riscv() -> ImageReport {
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/riscv64".into(),
        manifest_digest: digest("manifest-riscv64"),
        config_digest: digest("config-riscv64"),
        preset: None,
        rules: vec![
            rule("runtime-label", Severity::Error, RuleStatus::Passed, None),
            rule(
                "healthcheck",
                Severity::Error,
                RuleStatus::Passed,
                Some("exit 0 in 0.4 s"),
            ),
        ],
        findings: vec![],
        suppressed: BTreeMap::new(),
        notes: vec![],
    }
}

fn catalog() -> Vec<RuleMeta> {
    [
        ("runtime-label", Severity::Error),
        ("entrypoint", Severity::Error),
        ("healthcheck", Severity::Error),
        ("provider-env", Severity::Error),
        ("secret-in-layer", Severity::Error),
        ("secret-in-metadata", Severity::Error),
        ("tag-policy", Severity::Error),
        ("license-label", Severity::Warning),
        ("layer-hygiene", Severity::Warning),
        ("denied-license", Severity::Error),
    ]
    .into_iter()
    .map(|(id, sev)| RuleMeta {
        id: id.into(),
        default_severity: sev,
        summary: format!("The {id} rule of the preset contract."),
        help: format!(
            "**What it checks**: `{id}`.\n\n**How to fix**: follow `x1-validate explain {id}`."
        ),
    })
    .collect()
}

struct Fixture {
    report: Report,
    opts: RenderOptions,
    secret: TestSecret,
}

fn fixture() -> Fixture {
    let secret = test_secret();
    let report = Report::new(
        "0.1.0",
        vec![image_amd64(&secret.evidence), image_arm64(), image_riscv()],
    );
    let opts = RenderOptions {
        color: false,
        width: 100,
        catalog: catalog(),
        fail_on: None,
    };
    Fixture {
        report,
        opts,
        secret,
    }
}

fn rendered(fx: &Fixture, format: Format, opts: &RenderOptions) -> String {
    let mut out = Vec::new();
    render(&fx.report, format, opts, &mut out).expect("render");
    String::from_utf8(out).expect("utf-8 output")
}

const ALL: [Format; 5] = [
    Format::Human,
    Format::Json,
    Format::Sarif,
    Format::Junit,
    Format::Github,
];

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
    assert_eq!(back.images[0].findings, fx.report.images[0].findings);
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

/// Where the official validator lives: `$X1_SARIF_MULTITOOL`, else the npm cache dir CI installs into.
fn sarif_multitool() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("X1_SARIF_MULTITOOL") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".cache/x1-tools/npm/node_modules/.bin/sarif-multitool");
    p.exists().then_some(p)
}

/// Run `sarif-multitool validate -o OUT FILE`; return the validator's own SARIF log and its console.
fn validate(
    tool: &std::path::Path,
    doc: &str,
    dir: &std::path::Path,
    name: &str,
) -> (Value, String) {
    let input = dir.join(format!("{name}.sarif"));
    let output = dir.join(format!("{name}.validation.sarif"));
    std::fs::write(&input, doc).expect("write the SARIF file");
    let out = Command::new(tool)
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
        eprintln!(
            "SKIP sarif_passes_official_validator: sarif-multitool not installed (npm install --prefix \"$HOME/.cache/x1-tools/npm\" @microsoft/sarif-multitool@5.7.0, or set X1_SARIF_MULTITOOL)"
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
    let expected = HOSTILE
        .replace('\u{1b}', "\\u{1b}")
        .replace('\u{0}', "\\u{0}");
    assert_eq!(
        f.attribute("message"),
        Some(expected.as_str()),
        "attribute survives escaping exactly, CR/LF included"
    );
    assert!(
        f.text()
            .unwrap()
            .contains("<a&b> \"q\" 'a' 100%\r\n::error")
    );
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
        hostile.contains("100%25%0D%0A::error title=x::forged"),
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
    // property escaping, through a rule id carrying `:` and `,`
    let mut fx2 = fixture();
    fx2.report.images[2].findings.push(finding(
        "odd:rule,id",
        Severity::Note,
        "n",
        Location::Image,
    ));
    let out2 = rendered(&fx2, Format::Github, &fx2.opts);
    assert!(
        out2.lines()
            .any(|l| l.starts_with("::notice title=odd%3Arule%2Cid::")),
        "{out2}"
    );
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
        hc.iter()
            .any(|l| l.contains("NOT RUN") && l.contains("no sandbox")),
        "{hc:?}"
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
        &RenderOptions {
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
    let opts = RenderOptions {
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
        render(&fx.report, format, &fx.opts, &mut t).unwrap();
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
        let err = render(&fx.report, format, &fx.opts, &mut Broken).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe, "{format:?}");
    }
}

#[test]
fn empty_report_renders_in_every_format() {
    let report = Report::new("0.1.0", vec![]);
    for format in ALL {
        let mut out = Vec::new();
        render(&report, format, &RenderOptions::default(), &mut out).unwrap();
        assert!(!out.is_empty(), "{format:?}");
    }
}
