//! `--format sarif`: SARIF 2.1.0 through hand-written serde structs.
//!
//! One run for the whole report (GitHub code scanning rejects a file with several runs of the same
//! tool and category); each result names its image and platform in `properties`, and
//! `run.properties.images` carries every image's rule statuses, suppressions and notes. Rules that
//! could not run are `toolExecutionNotifications`, never results and never passes. Locations: a
//! `physicalLocation` on every result (GitHub refuses logical-only locations) — the file inside the
//! image (`uriBaseId` `IMAGEROOT`) for layer entries and final-filesystem paths, the image input
//! itself (`%SRCROOT%`) otherwise — plus a `logicalLocation` whose `fullyQualifiedName` is
//! `layer/<digest>/<path>`, `config/<pointer>`, `manifest/<digest>/<pointer>`, `fs/<path>`,
//! `blob/<digest>` or `image`. Secrets carry `partialFingerprints` (the value's SHA-256) and
//! `relatedLocations` for the other places the same value was found. See `docs/report-schema.md`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::text::group_findings;
use super::{
    Finding, ImageReport, Location, MaskedReport, Report, RuleMeta, RuleStatus, Severity,
    WriteOptions,
};

const SCHEMA_URI: &str = "https://json.schemastore.org/sarif-2.1.0.json";
/// The `uriBaseId` of paths inside the image filesystem.
pub const IMAGE_ROOT: &str = "IMAGEROOT";
/// The `uriBaseId` of the image input when it was given as a relative path.
pub const SRC_ROOT: &str = "%SRCROOT%";
/// The `partialFingerprints` key of a secret's value fingerprint.
pub const SECRET_FINGERPRINT_KEY: &str = "secretSha256/v1";
/// At most this many `relatedLocations` per result (one value copied into thousands of files must not
/// make the log quadratic); `properties.secretLocations` has the full count.
const MAX_RELATED: usize = 10;

#[derive(Serialize)]
struct Log {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: Vec<Run>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    tool: Tool,
    invocations: Vec<Invocation>,
    original_uri_base_ids: BTreeMap<&'static str, BaseId>,
    results: Vec<SarifResult>,
    column_kind: &'static str,
    properties: Value,
}

#[derive(Serialize)]
struct Tool {
    driver: Driver,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    name: &'static str,
    version: String,
    semantic_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    information_uri: Option<&'static str>,
    rules: Vec<Rule>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    short_description: Text,
    full_description: Text,
    /// The rule's page, `docs/rules/<id>.md`, when the package names its repository.
    #[serde(skip_serializing_if = "Option::is_none")]
    help_uri: Option<String>,
    help: Help,
    default_configuration: RuleConfig,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Help {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct RuleConfig {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BaseId {
    description: Text,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    execution_successful: bool,
    tool_execution_notifications: Vec<Notification>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    level: &'static str,
    message: Text,
    #[serde(skip_serializing_if = "Option::is_none")]
    associated_rule: Option<RuleRef>,
}

#[derive(Serialize)]
struct RuleRef {
    id: String,
    index: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: String,
    rule_index: usize,
    level: &'static str,
    message: Text,
    locations: Vec<SarifLocation>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_locations: Vec<SarifLocation>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    partial_fingerprints: BTreeMap<&'static str, String>,
    properties: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<usize>,
    physical_location: Physical,
    logical_locations: Vec<Logical>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Text>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Physical {
    artifact_location: ArtifactLocation,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    #[serde(skip_serializing_if = "Option::is_none")]
    start_line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    byte_offset: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Logical {
    name: String,
    fully_qualified_name: String,
    kind: &'static str,
}

pub(super) fn write(
    report: &MaskedReport,
    opts: &WriteOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let log = build(report, opts);
    serde_json::to_writer_pretty(&mut *out, &log)?;
    out.write_all(b"\n")
}

fn build(report: &MaskedReport, opts: &WriteOptions) -> Log {
    let catalog = catalog(report, opts);
    let index: HashMap<&str, usize> = catalog
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let mut results = Vec::new();
    let mut notifications = Vec::new();
    for img in &report.images {
        results.extend(image_results(img, &index));
        for r in img.rules.iter().filter(|r| r.status == RuleStatus::NotRun) {
            let why = r.detail.as_deref().unwrap_or("no reason recorded");
            notifications.push(Notification {
                level: "warning",
                message: Text {
                    text: format!(
                        "Rule {} did not run on {} ({}): {why}. It is not counted as passed.",
                        r.rule_id, img.input, img.platform
                    ),
                },
                associated_rule: Some(RuleRef {
                    id: r.rule_id.to_string(),
                    index: index[r.rule_id.as_str()],
                }),
            });
        }
    }
    if let Some(e) = &report.error {
        notifications.insert(
            0,
            Notification {
                level: "error",
                message: Text {
                    text: format!(
                        "NOT CHECKED (exit {}, {}): {} The image was not checked; this is not a pass.",
                        e.exit_code, e.kind, e.message
                    ),
                },
                associated_rule: None,
            },
        );
    }
    let fail_on = opts.fail_on();
    let images: Vec<Value> = report
        .images
        .iter()
        .map(|img| image_properties(img, fail_on))
        .collect();
    let mut bases = BTreeMap::new();
    bases.insert(
        IMAGE_ROOT,
        BaseId {
            description: Text {
                text: "The root of the checked image's filesystem.".into(),
            },
        },
    );
    bases.insert(
        SRC_ROOT,
        BaseId {
            description: Text {
                text: "The directory x1-validate ran in.".into(),
            },
        },
    );
    Log {
        schema: SCHEMA_URI,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "x1-validate",
                    version: report.tool_version.clone(),
                    semantic_version: report.tool_version.clone(),
                    information_uri: REPOSITORY,
                    rules: catalog.iter().map(rule).collect(),
                },
            },
            invocations: vec![Invocation {
                execution_successful: report.error.is_none(),
                tool_execution_notifications: notifications,
            }],
            original_uri_base_ids: bases,
            results,
            column_kind: "unicodeCodePoints",
            properties: json!({
                "schemaVersion": report.schema_version,
                "verdict": report.verdict(fail_on),
                "failOn": fail_on,
                "images": images,
                "error": report.error,
            }),
        }],
    }
}

/// The rule catalogue, plus a minimal entry for any rule id the report names that it lacks, so every
/// `ruleIndex` is valid.
fn catalog(report: &Report, opts: &WriteOptions) -> Vec<RuleMeta> {
    let mut rules = opts.catalog.clone();
    for img in &report.images {
        let ids = img
            .rules
            .iter()
            .map(|r| (r.rule_id, r.severity))
            .chain(img.findings.iter().map(|f| (f.rule_id, f.severity)));
        for (id, sev) in ids {
            if !rules.iter().any(|r| r.id == id) {
                rules.push(RuleMeta {
                    id,
                    default_severity: sev,
                    summary: format!("Rule {id}."),
                    help: format!("See `x1-validate explain {id}`."),
                });
            }
        }
    }
    rules
}

fn rule(meta: &RuleMeta) -> Rule {
    let first_para = meta.help.split("\n\n").next().unwrap_or_default().trim();
    let full = if first_para.is_empty() {
        meta.summary.clone()
    } else {
        format!("{} {}", meta.summary, plain(first_para))
    };
    Rule {
        id: meta.id.to_string(),
        // SARIF1001: a name that only differs from the id in case must be omitted.
        name: Some(pascal(meta.id.as_str())).filter(|n| !n.eq_ignore_ascii_case(meta.id.as_str())),
        short_description: Text {
            text: meta.summary.clone(),
        },
        full_description: Text { text: full },
        help_uri: help_uri(REPOSITORY, meta.id),
        help: Help {
            text: plain(&meta.help),
            markdown: meta.help.clone(),
        },
        default_configuration: RuleConfig {
            level: level(meta.default_severity),
        },
    }
}

/// The repository the package names (`repository` in Cargo.toml), if any: SARIF's `informationUri`, and
/// the base of each rule's `helpUri`.
const REPOSITORY: Option<&str> = match option_env!("CARGO_PKG_REPOSITORY") {
    Some(r) if !r.is_empty() => Some(r),
    _ => None,
};

/// `<repository>/blob/main/docs/rules/<id>.md`: the rule's page (generated from the same text as
/// `x1-validate explain`, see `tests/it/rule_docs.rs`).
fn help_uri(repository: Option<&str>, id: crate::rules::RuleId) -> Option<String> {
    repository.map(|r| format!("{}/blob/main/docs/rules/{id}.md", r.trim_end_matches('/')))
}

fn image_results(img: &ImageReport, index: &HashMap<&str, usize>) -> Vec<SarifResult> {
    let groups = group_findings(&img.findings);
    let mut results = Vec::new();
    for g in &groups {
        for m in &g.members {
            let related = g
                .members
                .iter()
                .filter(|o| !std::ptr::eq(**o, *m))
                .take(MAX_RELATED)
                .enumerate()
                .map(|(i, o)| {
                    let mut loc = location(&o.location, &img.input);
                    loc.id = Some(i + 1);
                    loc.message = Some(Text {
                        text: "The same secret value is also here.".into(),
                    });
                    loc
                })
                .collect();
            let mut r = result(img, m, index[m.rule_id.as_str()], related);
            if m.evidence.is_some() {
                r.properties["secretLocations"] = json!(g.members.len());
            }
            results.push(r);
        }
    }
    results
}

fn result(
    img: &ImageReport,
    f: &Finding,
    rule_index: usize,
    related: Vec<SarifLocation>,
) -> SarifResult {
    let mut text = f.message.clone();
    let mut fingerprints = BTreeMap::new();
    let mut props = json!({
        "image": img.input,
        "platform": img.platform,
        "manifestDigest": img.manifest_digest,
        "configDigest": img.config_digest,
        "location": f.location.to_string(),
    });
    if let Some(ev) = &f.evidence {
        let _ = write!(text, " Secret: {ev}.");
        let hex = ev
            .fingerprint
            .strip_prefix("sha256:")
            .unwrap_or(&ev.fingerprint);
        fingerprints.insert(SECRET_FINGERPRINT_KEY, hex.to_string());
        props["evidence"] = json!(ev);
    }
    if let Location::Entry { layer, fate, .. } = &f.location {
        props["fate"] = json!(fate);
        if let Some(cb) = &layer.created_by {
            props["createdBy"] = json!(cb);
        }
    }
    if let Some(help) = &f.help {
        props["help"] = json!(help);
    }
    SarifResult {
        rule_id: f.rule_id.to_string(),
        rule_index,
        level: level(f.severity),
        message: Text { text },
        locations: vec![location(&f.location, &img.input)],
        related_locations: related,
        partial_fingerprints: fingerprints,
        properties: props,
    }
}

fn location(loc: &Location, input: &str) -> SarifLocation {
    let (physical, name, fqn, kind) = match loc {
        Location::Entry {
            layer,
            path,
            line,
            offset,
            ..
        } => (
            in_image(path, *line, *offset),
            last_segment(path),
            format!("layer/{}/{}", layer.digest, path.trim_start_matches('/')),
            "resource",
        ),
        Location::Path { path } => (
            in_image(path, None, None),
            last_segment(path),
            format!("fs/{}", path.trim_start_matches('/')),
            "resource",
        ),
        Location::Config { pointer } => (
            the_input(input),
            last_segment(pointer),
            format!("config/{}", pointer.trim_start_matches('/')),
            "property",
        ),
        Location::Manifest { digest, pointer } => (
            the_input(input),
            last_segment(pointer),
            format!("manifest/{digest}/{}", pointer.trim_start_matches('/')),
            "property",
        ),
        Location::Blob { digest, .. } => (
            the_input(input),
            digest.clone(),
            format!("blob/{digest}"),
            "resource",
        ),
        Location::Image => (the_input(input), "image".into(), "image".into(), "module"),
    };
    SarifLocation {
        id: None,
        physical_location: physical,
        logical_locations: vec![Logical {
            name,
            fully_qualified_name: fqn,
            kind,
        }],
        message: None,
    }
}

fn in_image(path: &str, line: Option<u64>, offset: Option<u64>) -> Physical {
    let start_line = line.filter(|l| *l > 0);
    Physical {
        artifact_location: ArtifactLocation {
            uri: encode_uri_path(path.trim_start_matches('/')),
            uri_base_id: Some(IMAGE_ROOT),
        },
        region: (start_line.is_some() || offset.is_some()).then_some(Region {
            start_line,
            byte_offset: offset,
        }),
    }
}

fn the_input(input: &str) -> Physical {
    let artifact_location = if input.starts_with('/') {
        ArtifactLocation {
            uri: format!("file://{}", encode_uri_path(input)),
            uri_base_id: None,
        }
    } else {
        ArtifactLocation {
            uri: encode_uri_path(input.trim_start_matches("./")),
            uri_base_id: Some(SRC_ROOT),
        }
    };
    Physical {
        artifact_location,
        region: None,
    }
}

fn image_properties(img: &ImageReport, fail_on: Severity) -> Value {
    let rules: Vec<Value> = img
        .rules
        .iter()
        .map(|r| json!({"ruleId": r.rule_id, "status": r.status, "detail": r.detail}))
        .collect();
    json!({
        "input": img.input,
        "platform": img.platform,
        "manifestDigest": img.manifest_digest,
        "configDigest": img.config_digest,
        "preset": img.preset,
        "verdict": img.verdict(fail_on),
        "verdictLine": img.verdict_line(fail_on),
        "rules": rules,
        "suppressed": img.suppressed,
        "notes": img.notes,
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn last_segment(s: &str) -> String {
    let seg = s.rsplit(['/', '!']).find(|p| !p.is_empty()).unwrap_or(s);
    if seg.is_empty() {
        "/".into()
    } else {
        seg.to_string()
    }
}

/// `secret-in-layer` → `SecretInLayer` (SARIF `reportingDescriptor.name`).
fn pascal(id: &str) -> String {
    id.split(['-', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

/// Markdown help as plain text: code spans and emphasis markers dropped.
fn plain(md: &str) -> String {
    md.replace("**", "").replace('`', "")
}

/// Percent-encode a path for a URI reference: everything but RFC 3986 unreserved characters and `/`.
pub(crate) fn encode_uri_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_uri_names_the_rule_page() {
        use crate::rules::RuleId;
        assert_eq!(help_uri(None, RuleId::BaseOs), None);
        assert_eq!(
            help_uri(Some("https://git.example/x1/x1-validate/"), RuleId::BaseOs).as_deref(),
            Some("https://git.example/x1/x1-validate/blob/main/docs/rules/base-os.md")
        );
        // every page it can name exists
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules");
        for id in RuleId::ALL {
            assert!(
                docs.join(format!("{id}.md")).is_file(),
                "docs/rules/{id}.md"
            );
        }
    }

    #[test]
    fn uri_paths_are_percent_encoded() {
        assert_eq!(
            encode_uri_path("x1/bin/entry point"),
            "x1/bin/entry%20point"
        );
        assert_eq!(encode_uri_path("a.tgz!p/ü#%"), "a.tgz%21p/%C3%BC%23%25");
        assert_eq!(encode_uri_path("oci:dir"), "oci%3Adir");
    }

    #[test]
    fn names_and_segments() {
        assert_eq!(pascal("secret-in-layer"), "SecretInLayer");
        assert_eq!(last_segment("/usr/lib/x.tgz!package/.env"), ".env");
        assert_eq!(last_segment("/config/Env/3"), "3");
        assert_eq!(last_segment(""), "/");
    }
}
