//! License checks: `runtime-license`, `denied-license`, `license-label`.
//!
//! What they check: the runtime package's license against the preset (with hash-pinned
//! clarifications), every npm/Debian package of every layer against the deny list, and the
//! `org.opencontainers.image.licenses` label. Why: the platform must never ship a runtime or a
//! dependency under a license it cannot honour. The inventory is built from contents captured during
//! the single layer pass ([`capture_globs`]).
//!
//! Notes vs findings: a package whose license cannot be determined (no field, not SPDX, free-form
//! Debian copyright) is not a finding — it goes to [`CheckOutcome::notes`] (one line per kind of
//! reason, naming the packages), so it is never silent but never fails a gate either.

use std::collections::BTreeMap;

use super::support::layer_ref;
use super::{CheckInput, CheckOutcome};
use crate::license::image::TreeFiles;
use crate::license::runtime;
use crate::license::{Inventory, LicenseSource, Package, Unknown, UnknownKind, Verdict};
use crate::report::{Finding, Location, RuleStatus, Severity};
use crate::rules::{Preset, RuleId};

/// The label `license-label` reads.
pub const LICENSE_LABEL: &str = "org.opencontainers.image.licenses";

/// Benchmark switch (`bench/licenses.sh`): when set to `1`, the license checks capture nothing and
/// report `skipped`, so the cost they add to `check` can be measured. Not a user-facing option.
pub const BENCH_SKIP_ENV: &str = "X1_VALIDATE_BENCH_SKIP_LICENSES";

fn bench_skip() -> bool {
    std::env::var_os(BENCH_SKIP_ENV).is_some_and(|v| v == "1")
}

/// Paths (globs, no leading `/`) whose content the license checks need captured during the layer pass.
pub fn capture_globs(preset: Option<&Preset>) -> Vec<String> {
    if bench_skip() {
        return Vec::new();
    }
    crate::license::capture_globs(preset.map(|p| &p.license))
}

/// Outcomes for `runtime-license`, `denied-license`, `license-label`.
pub fn check(input: &CheckInput<'_>) -> Vec<CheckOutcome> {
    if bench_skip() {
        return [
            RuleId::RuntimeLicense,
            RuleId::DeniedLicense,
            RuleId::LicenseLabel,
        ]
        .into_iter()
        .map(|id| CheckOutcome {
            status: RuleStatus::Skipped,
            detail: Some(format!("skipped: {BENCH_SKIP_ENV}=1")),
            ..CheckOutcome::from_findings(id, Vec::new())
        })
        .collect();
    }
    let preset_license = input.preset.map(|p| &p.license);
    let inv =
        crate::license::image::inventory(input.listings, input.tree, preset_license, input.cache);
    vec![
        runtime_license(input, &inv),
        denied_license(input, &inv),
        license_label(input),
    ]
}

fn finding(rule: RuleId, message: String, help: String, location: Location) -> Finding {
    Finding {
        rule_id: rule,
        severity: Severity::Error,
        message,
        help: Some(help),
        location,
        evidence: None,
    }
}

fn entry_location(input: &CheckInput<'_>, layer: usize, path: &str, fate: &str) -> Location {
    Location::Entry {
        layer: layer_ref(input, layer),
        path: path.to_string(),
        fate: fate.to_string(),
        offset: None,
        line: None,
    }
}

fn runtime_license(input: &CheckInput<'_>, inv: &Inventory) -> CheckOutcome {
    let skipped = |why: String| CheckOutcome {
        status: RuleStatus::Skipped,
        detail: Some(why),
        ..CheckOutcome::from_findings(RuleId::RuntimeLicense, Vec::new())
    };
    let Some(preset) = input.preset else {
        return skipped("no preset (from --preset or the org.x1agent.runtime label)".into());
    };
    if preset.license.package.is_none() || preset.license.expression.is_none() {
        return skipped(format!("preset `{}` names no runtime package", preset.name));
    }
    let preset_file = format!("presets/{}/preset.toml", preset.name);
    let fin = TreeFiles {
        tree: input.tree,
        listings: input.listings,
    };
    let v = runtime::evaluate(inv, &preset.license, &fin, &preset_file);
    // A clarification is the preset's word, not the image's: say so in every format (notes reach
    // human, json, sarif, junit and github output alike).
    let notes = inv
        .packages
        .iter()
        .filter(|p| p.source == LicenseSource::Clarification && p.fate == "visible")
        .map(|p| {
            // `asserted_by` already says "asserted by clarification, not read from the image (pins …)".
            format!(
                "runtime-license: {} package `{}` {} is `{}` per {preset_file}: {}",
                p.ecosystem.as_str(),
                p.name,
                p.version,
                p.expression.as_deref().unwrap_or("?"),
                p.asserted_by
                    .as_deref()
                    .unwrap_or("asserted by clarification, not read from the image (no pins)")
            )
        })
        .collect();
    let findings = v
        .problems
        .into_iter()
        .map(|p| {
            let location = match p.layer {
                Some(l) => entry_location(input, l, &p.path, "visible"),
                None => Location::Path { path: p.path },
            };
            finding(RuleId::RuntimeLicense, p.message, p.help, location)
        })
        .collect();
    CheckOutcome {
        detail: Some(v.summary),
        notes,
        ..CheckOutcome::from_findings(RuleId::RuntimeLicense, findings)
    }
}

fn denied_license(input: &CheckInput<'_>, inv: &Inventory) -> CheckOutcome {
    let policy = &input.rules.licenses;
    let mut findings = Vec::new();
    let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
    let mut unknown: BTreeMap<String, Vec<&Package>> = BTreeMap::new();
    for p in &inv.packages {
        let (message, help) = match (&p.parsed, &p.declared) {
            (Some(e), _) => match policy.evaluate(p.ecosystem, &p.name, &p.version, e) {
                Verdict::Allowed { exception } => {
                    if let Some(id) = exception {
                        *suppressed.entry(id).or_default() += 1;
                    }
                    continue;
                }
                Verdict::Denied { terms } => {
                    let names: Vec<&str> = terms.iter().map(|(n, _)| n.as_str()).collect();
                    let reasons: Vec<String> =
                        terms.iter().map(|(n, r)| format!("{n}: {r}")).collect();
                    (
                        format!(
                            "{} package `{}` {} is licensed `{e}`: {} on the deny list",
                            p.ecosystem.as_str(),
                            p.name,
                            p.version,
                            names.join(", ")
                        ),
                        format!(
                            "{}. Remove the package, pick an alternative, or after legal review add an \
                             [[allow]] exception to rules/licenses.toml",
                            reasons.join("; ")
                        ),
                    )
                }
            },
            (None, Some(d)) if policy.denied_by_text(d).is_some() => {
                let (entry, phrase) = policy.denied_by_text(d).expect("checked just above");
                (
                    format!(
                        "{} package `{}` {} declares `{d}`, which is not SPDX but names \"{phrase}\" \
                         ({} is on the deny list)",
                        p.ecosystem.as_str(),
                        p.name,
                        p.version,
                        entry.license.as_str()
                    ),
                    format!("{}; remove the package or review it", entry.reason),
                )
            }
            (None, _) => {
                unknown
                    .entry(reason_kind(p.unknown.as_ref()))
                    .or_default()
                    .push(p);
                continue;
            }
        };
        let path = p.license_path.as_deref().unwrap_or(&p.path);
        let location = entry_location(input, p.layer, path, &p.fate);
        findings.push(finding(RuleId::DeniedLicense, message, help, location));
    }
    let count = |eco| inv.packages.iter().filter(|p| p.ecosystem == eco).count();
    let npm = count(crate::license::Ecosystem::Npm);
    let deb = count(crate::license::Ecosystem::Deb);
    let files = count(crate::license::Ecosystem::File);
    let matched = inv
        .packages
        .iter()
        .filter(|p| p.source == LicenseSource::TextMatch && p.parsed.is_some())
        .count();
    let n_unknown: usize = unknown.values().map(Vec::len).sum();
    let mut out = CheckOutcome::from_findings(RuleId::DeniedLicense, findings);
    out.detail = Some(format!(
        "{npm} npm and {deb} Debian packages, {files} loose license files; {matched} identified by \
         their license text; {} denied; {n_unknown} with a license that could not be determined",
        out.findings.len()
    ));
    out.notes = unknown
        .into_iter()
        .map(|(kind, pkgs)| unknown_note(&kind, &pkgs))
        .collect();
    out.suppressed = suppressed;
    out
}

/// Group unknown reasons into a few kinds so notes stay short (a reason of no known kind is its own
/// group).
fn reason_kind(why: Option<&Unknown>) -> String {
    let Some(why) = why else {
        return "unknown".into();
    };
    match why.kind {
        UnknownKind::NotSpdx => "the declared license is not an SPDX expression",
        UnknownKind::PinBroken => "a preset clarification's pinned file changed",
        UnknownKind::Dep5Unmapped => "a DEP-5 license name could not be mapped to SPDX",
        UnknownKind::NoCopyright => "no /usr/share/doc/<package>/copyright in the image",
        UnknownKind::FreeFormCopyright => {
            "free-form copyright file whose text matched no SPDX license"
        }
        UnknownKind::LooseText => "loose license file whose text matched no SPDX license",
        UnknownKind::BudgetSpent => "the text-matching budget was spent",
        UnknownKind::NoLicenseField => "no `license` field",
        UnknownKind::Other => why.as_str(),
    }
    .to_string()
}

fn unknown_note(kind: &str, pkgs: &[&Package]) -> String {
    const SHOWN: usize = 12;
    let mut names: Vec<String> = pkgs
        .iter()
        .take(SHOWN)
        .map(|p| match &p.declared {
            Some(d) if p.ecosystem == crate::license::Ecosystem::Npm => {
                format!("{}@{} (`{d}`)", p.name, p.version)
            }
            _ => format!("{}@{}", p.name, p.version),
        })
        .collect();
    if pkgs.len() > SHOWN {
        names.push(format!("and {} more", pkgs.len() - SHOWN));
    }
    format!(
        "denied-license: license not determined for {} package(s): {kind}: {} \
         (`x1-validate licenses` lists them all)",
        pkgs.len(),
        names.join(", ")
    )
}

fn license_label(input: &CheckInput<'_>) -> CheckOutcome {
    let pointer = format!(
        "/config/Labels/{}",
        LICENSE_LABEL.replace('~', "~0").replace('/', "~1")
    );
    let location = Location::Config { pointer };
    let findings = match input.image.config.labels.get(LICENSE_LABEL) {
        None => vec![finding(
            RuleId::LicenseLabel,
            format!("label `{LICENSE_LABEL}` is missing"),
            format!(
                "declare the image's license as an SPDX expression, e.g. `LABEL {LICENSE_LABEL}=\"MIT\"`"
            ),
            location,
        )],
        Some(v) => match crate::license::SpdxExpr::strict(v) {
            Ok(_) => Vec::new(),
            Err(e) => vec![finding(
                RuleId::LicenseLabel,
                format!("label `{LICENSE_LABEL}`: {e}"),
                "use SPDX ids (https://spdx.org/licenses/) joined with AND/OR/WITH; \
                 `LicenseRef-<name>` for others"
                    .into(),
                location,
            )],
        },
    };
    let mut out = CheckOutcome::from_findings(RuleId::LicenseLabel, findings);
    out.detail = input
        .image
        .config
        .labels
        .get(LICENSE_LABEL)
        .map(|v| format!("{LICENSE_LABEL}={v}"));
    out
}
