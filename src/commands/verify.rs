//! `x1-validate verify docker://HOST/REPO@sha256:…`: list the gate reports (and promotion records)
//! attached to a digest as OCI referrers; exit 0 only when a passing report made by the current rules is
//! attached, 1 otherwise. Also the shared pieces: the rules hash and attaching a report (`check --attach`,
//! `promote`).
//!
//! What "the current rules" means: the sha256 of the rule files and presets in force (built in, or
//! `--rules`/`--presets`) together with the severity overrides and `--fail-on` of the run, so a report
//! made with `--allow` or a looser rule set never counts as a pass of the default gate.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::image::registry::{Client, Manifest, Reference, SCHEME};
use crate::report::Severity;
use crate::rules::RuleId;
use crate::rules::embedded::{FILES as BUILTIN_RULES, PRESETS as BUILTIN_PRESETS};

/// The artifact type of an attached gate report (its payload is the JSON report).
pub const REPORT_TYPE: &str = "application/vnd.x1agent.gate-report.v1+json";
/// The artifact type of a promotion record.
pub const PROMOTION_TYPE: &str = "application/vnd.x1agent.promotion.v1+json";
/// Annotation keys on the artifact manifests.
pub const ANN_VERSION: &str = "org.x1agent.gate.version";
pub const ANN_RULES: &str = "org.x1agent.gate.rules-sha256";
pub const ANN_VERDICT: &str = "org.x1agent.gate.verdict";
pub const ANN_REF: &str = "org.x1agent.gate.ref";
pub const ANN_CREATED: &str = "org.opencontainers.image.created";

/// `sha256:<hex>` of the policy in force: rule files, presets, overrides, fail-on.
pub fn rules_hash(
    rules_dir: Option<&Path>,
    presets_dir: Option<&Path>,
    overrides: &BTreeMap<RuleId, Severity>,
    fail_on: Severity,
) -> Result<String> {
    let mut h = Sha256::new();
    let mut feed = |name: &str, text: &[u8]| {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(text);
    };
    for (name, builtin) in BUILTIN_RULES {
        let text = match rules_dir.map(|d| d.join(name)) {
            Some(p) if p.is_file() => {
                std::fs::read(&p).map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?
            }
            _ => builtin.as_bytes().to_vec(),
        };
        feed(name, &text);
    }
    match presets_dir {
        None => {
            for (name, text) in BUILTIN_PRESETS {
                feed(&format!("preset/{name}"), text.as_bytes());
            }
        }
        Some(dir) => {
            let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(|e| Error::Usage(format!("{}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.join("preset.toml").is_file())
                .collect();
            names.sort();
            for p in names {
                let text = std::fs::read(p.join("preset.toml"))
                    .map_err(|e| Error::Usage(format!("{}: {e}", p.display())))?;
                let name = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned();
                feed(&format!("preset/{name}"), &text);
            }
        }
    }
    // In id-text order, as when the overrides were keyed by string: attached reports keep their hash.
    let mut overrides: Vec<_> = overrides.iter().collect();
    overrides.sort_by_key(|(id, _)| id.as_str());
    for (id, sev) in overrides {
        feed(&format!("override/{id}"), format!("{sev:?}").as_bytes());
    }
    feed("fail-on", format!("{fail_on:?}").as_bytes());
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

/// Now, as RFC 3339 UTC.
pub fn rfc3339_now() -> String {
    crate::build::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
}

/// The verdict word for a gate exit code.
pub fn verdict_word(exit: u8) -> &'static str {
    match exit {
        0 => "pass",
        1 => "fail",
        4 => "not-run",
        _ => "error",
    }
}

/// Attach a JSON gate report to `subject`; returns the artifact digest and whether the tag fallback ran.
pub fn attach_report(
    client: &Client,
    subject: &Manifest,
    report_json: &[u8],
    rules_sha: &str,
    exit: u8,
    reference: Option<&str>,
) -> Result<(crate::image::Digest, bool)> {
    let mut ann = BTreeMap::new();
    ann.insert(
        ANN_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    ann.insert(ANN_RULES.to_string(), rules_sha.to_string());
    ann.insert(ANN_VERDICT.to_string(), verdict_word(exit).to_string());
    ann.insert(ANN_CREATED.to_string(), rfc3339_now());
    if let Some(r) = reference {
        ann.insert(ANN_REF.to_string(), r.to_string());
    }
    let (d, fallback) = client.attach(subject, REPORT_TYPE, report_json, &ann)?;
    Ok((d.digest, fallback))
}

/// Turn a `docker://` spec into a reference, resolving a tag to the digest it names now.
pub fn resolve(spec: &str) -> Result<(Reference, Client, Manifest)> {
    let rest = spec.strip_prefix(SCHEME).ok_or_else(|| {
        Error::Usage(format!(
            "{spec}: expected a registry image, {SCHEME}HOST[:PORT]/REPO@sha256:…"
        ))
    })?;
    let mut r = Reference::parse(rest)?;
    let client = Client::for_reference(&r)?;
    let mref = r.manifest_ref();
    let m = client.manifest(&mref)?.ok_or_else(|| {
        Error::corrupt(
            spec,
            format!(
                "not found: registry {} has no manifest {mref}",
                client.name()
            ),
        )
    })?;
    r.digest = Some(m.digest.clone());
    Ok((r, client, m))
}

/// One attached report as read back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachedReport {
    pub artifact: String,
    pub verdict: String,
    pub rules_sha256: String,
    pub current_rules: bool,
    pub version: String,
    pub created: String,
    pub reference: String,
}

/// Read every gate report attached to `m` (verified: subject, digests, JSON payload).
pub fn attached_reports(
    client: &Client,
    m: &Manifest,
    current: &str,
) -> Result<Vec<AttachedReport>> {
    let mut out = Vec::new();
    for r in client.referrers(&m.digest)? {
        if r.artifact_type != REPORT_TYPE {
            continue;
        }
        let (doc, payload) = client.artifact_payload(&r, &m.digest)?;
        if doc.get("artifactType").and_then(|v| v.as_str()) != Some(REPORT_TYPE)
            || serde_json::from_slice::<serde_json::Value>(&payload).is_err()
        {
            continue;
        }
        let ann = |k: &str| {
            crate::image::registry::client::clean(
                doc.get("annotations")
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.as_str())
                    .unwrap_or_default(),
            )
        };
        let rules = ann(ANN_RULES);
        out.push(AttachedReport {
            artifact: r.descriptor.digest.to_string(),
            verdict: ann(ANN_VERDICT),
            current_rules: rules == current,
            rules_sha256: rules,
            version: ann(ANN_VERSION),
            created: ann(ANN_CREATED),
            reference: ann(ANN_REF),
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.artifact.cmp(&b.artifact)));
    Ok(out)
}

/// Arguments of `x1-validate verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// The registry image: `docker://HOST[:PORT]/REPO@sha256:…` (a tag is resolved to its digest first).
    pub image: String,
    /// Rule files in force (as for `check`): a report made by other rules does not count.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Presets in force (as for `check`).
    #[arg(long, value_name = "DIR")]
    pub presets: Option<PathBuf>,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &VerifyArgs, out: &mut dyn Write) -> Result<u8> {
    let current = rules_hash(
        args.rules.as_deref(),
        args.presets.as_deref(),
        &BTreeMap::new(),
        Severity::Error,
    )?;
    let (r, client, m) = resolve(&args.image)?;
    let reports = attached_reports(&client, &m, &current)?;
    let ok = reports
        .iter()
        .any(|a| a.current_rules && a.verdict == "pass");
    let w = |e| Error::output("<stdout>", e);
    if args.json {
        let doc = serde_json::json!({
            "image": format!("{}/{}@{}", r.host, r.repo, m.digest),
            "rules_sha256": current,
            "verified": ok,
            "reports": reports,
        });
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        )
        .map_err(w)?;
    } else {
        writeln!(out, "{}/{}@{}", r.host, r.repo, m.digest).map_err(w)?;
        if reports.is_empty() {
            writeln!(out, "  no gate report attached").map_err(w)?;
        }
        for a in &reports {
            writeln!(
                out,
                "  {} {} x1-validate {} rules {} ({}) {}",
                a.verdict,
                a.created,
                a.version,
                &a.rules_sha256.get(..19).unwrap_or(&a.rules_sha256),
                if a.current_rules {
                    "current rules"
                } else {
                    "other rules"
                },
                a.artifact
            )
            .map_err(w)?;
        }
        writeln!(
            out,
            "{}",
            if ok {
                "verified: a passing gate report by the current rules is attached"
            } else {
                "NOT verified: no passing gate report by the current rules is attached"
            }
        )
        .map_err(w)?;
    }
    Ok(u8::from(!ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_hash_depends_on_overrides_and_fail_on() {
        let none = BTreeMap::new();
        let a = rules_hash(None, None, &none, Severity::Error).expect("ok");
        assert_eq!(
            a,
            rules_hash(None, None, &none, Severity::Error).expect("ok")
        );
        assert!(a.starts_with("sha256:") && a.len() == 71);
        assert_ne!(
            a,
            rules_hash(None, None, &none, Severity::Warning).expect("ok")
        );
        let mut allow = BTreeMap::new();
        allow.insert(RuleId::SecretInLayer, Severity::Note);
        assert_ne!(
            a,
            rules_hash(None, None, &allow, Severity::Error).expect("ok")
        );
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = rfc3339_now();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
