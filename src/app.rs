//! The `check` orchestration: load rules and presets, open the image, read every platform image's layers
//! once (capturing the files the checks read, scanning contents for secrets), merge the tree, run every
//! check kind, merge outcomes per rule id, apply severities and `--deny/--warn/--allow` in one place,
//! sort findings, write the report, and compute the exit code of contract.md.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use crate::checks::{self, CheckInput, CheckOptions, CheckOutcome, ExecMode};
use crate::error::{Error, Result};
use crate::image::{CapturePolicy, Image, MergedTree, Opened, Platform};
use crate::report::{
    self, Finding, Format, ImageReport, Report, RuleResult, RuleStatus, Severity, WriteOptions,
};
use crate::rules::{Preset, RuleId, RuleSet};

/// Everything a `check` run needs, already validated (see `commands::check`).
#[derive(Debug, Clone)]
pub struct CheckPlan {
    pub image: String,
    pub platform: Option<Platform>,
    pub format: Format,
    pub fail_on: Severity,
    /// Per-rule severity overrides from `--deny/--warn/--allow` (allow = note).
    pub overrides: BTreeMap<RuleId, Severity>,
    pub opts: CheckOptions,
    /// ANSI colour for the human format.
    pub color: bool,
    pub width: usize,
    /// The layer result cache's directory and size bound (`None`: `--no-cache`, or no cache dir).
    pub cache: Option<(std::path::PathBuf, u64)>,
}

/// Largest file captured whole for the checks: the maximum of what the structural checks need
/// (passwd, os-release, runtime configs, credential files: 1 MiB) and the license inventory's limit.
pub const CAPTURE_MAX: u64 = if crate::license::CAPTURE_MAX_BYTES > (1 << 20) {
    crate::license::CAPTURE_MAX_BYTES
} else {
    1 << 20
};
/// Leading bytes kept of executables (ELF headers with their program headers, `#!` lines).
pub const HEAD_BYTES: usize = 8192;

/// Run every check on every selected platform image. `Err` only for input that cannot be read at all
/// (exit 3) or bad configuration (exit 2); `partial` receives the images finished before an error.
pub fn check(rules: &RuleSet, plan: &CheckPlan, partial: &mut Vec<ImageReport>) -> Result<u8> {
    let opened = crate::image::open(&plan.image, plan.platform.as_ref())?;
    if opened.images.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no image matches{}",
            plan.image,
            plan.platform
                .as_ref()
                .map(|p| format!(" platform {p}"))
                .unwrap_or_default()
        )));
    }
    let progress = layer_progress(plan, &opened);
    let exit = check_images(rules, plan, &opened, partial);
    if let Some(p) = progress {
        p.finish();
    }
    exit
}

/// A bar of layer bytes read when [`crate::progress::wanted`] says so, counting on `opened`'s source.
fn layer_progress(plan: &CheckPlan, opened: &Opened) -> Option<crate::progress::Progress> {
    let bytes = opened
        .images
        .iter()
        .flat_map(|i| &i.layers)
        .map(|l| l.descriptor.size)
        .sum();
    let show = crate::progress::wanted(
        std::io::stderr().is_terminal(),
        plan.format,
        crate::progress::in_ci(std::env::var_os("CI").as_deref()),
        bytes,
    );
    show.then(|| {
        let p = crate::progress::Progress::stderr(bytes, "reading layers");
        opened.source.show_progress(p.clone());
        p
    })
}

/// [`check`]'s loop over the platform images of `opened`.
fn check_images(
    rules: &RuleSet,
    plan: &CheckPlan,
    opened: &Opened,
    partial: &mut Vec<ImageReport>,
) -> Result<u8> {
    let mut exit = 0u8;
    for image in &opened.images {
        let (report, not_run_required) = check_image(rules, plan, opened, image)?;
        if not_run_required {
            exit = 4;
        } else if exit == 0 && report.findings.iter().any(|f| f.severity <= plan.fail_on) {
            exit = 1;
        }
        partial.push(report);
    }
    if exit == 4 {
        return Ok(4);
    }
    Ok(exit)
}

/// The preset in force for `image`: `--preset`, else the runtime label (None when unknown).
pub fn preset_for<'r>(
    rules: &'r RuleSet,
    plan: &CheckPlan,
    image: &Image,
) -> Result<Option<&'r Preset>> {
    match &plan.opts.preset_flag {
        Some(name) => rules.preset(name).map(Some),
        None => Ok(image
            .config
            .labels
            .get(checks::labels::RUNTIME_LABEL)
            .and_then(|l| rules.presets.get(l))),
    }
}

/// The capture policy: the structural checks' files plus the license checks' files.
pub fn capture_policy(rules: &RuleSet, preset: Option<&Preset>) -> Result<CapturePolicy> {
    CapturePolicy::from_globs(capture_globs(rules, preset), CAPTURE_MAX, HEAD_BYTES)
}

fn capture_globs(rules: &RuleSet, preset: Option<&Preset>) -> Vec<String> {
    checks::capture_globs(rules, preset)
        .into_iter()
        .chain(checks::licenses::capture_globs(preset))
        .collect()
}

/// The layer result cache for `plan` under the capture policy of `preset` (`None` without a cache
/// dir, or when it cannot be opened: the cache only saves time).
fn layer_cache(
    rules: &RuleSet,
    plan: &CheckPlan,
    preset: Option<&Preset>,
) -> Option<crate::cache::LayerCache> {
    let (dir, max) = plan.cache.as_ref()?;
    let context = crate::cache::context(
        &rules.secrets,
        &capture_globs(rules, preset),
        CAPTURE_MAX,
        HEAD_BYTES,
    );
    crate::cache::LayerCache::open(dir, *max, &context).ok()
}

fn check_image(
    rules: &RuleSet,
    plan: &CheckPlan,
    opened: &Opened,
    image: &Image,
) -> Result<(ImageReport, bool)> {
    let preset = preset_for(rules, plan, image)?;
    let capture = capture_policy(rules, preset)?;
    let patterns = Arc::new(rules.secrets.clone());
    let nested = crate::scan::archive::NestedBudget::for_image(
        image.layers.iter().map(|l| l.descriptor.size).sum(),
    );
    let cache = layer_cache(rules, plan, preset);
    let memo_key = cache
        .as_ref()
        .and_then(|c| memo_key(c, rules, plan, preset, opened, image));
    // A memo counts only while every layer blob is still in the input with its size (as a layer
    // entry does); the diff_ids were checked when it was stored (they are in its key).
    let memoised = match (&cache, &memo_key) {
        (Some(c), Some(k))
            if image
                .layers
                .iter()
                .all(|l| opened.source.has_blob_sized(&l.descriptor)) =>
        {
            let hit = c.get_memo(k);
            if hit.is_some() {
                c.touch_layers(&image.layers);
            }
            hit
        }
        _ => None,
    };
    // The healthcheck reads what it materialises: the layers are needed unless it does not run.
    let outputs = if memoised.is_none() || plan.opts.exec != ExecMode::Never {
        let credential_file = |p: &str| rules.credentials.file_kind(p).is_some();
        crate::cache::read_layers(
            cache.as_ref(),
            &crate::cache::Reader {
                source: &opened.source,
                image,
                capture: &capture,
                patterns: &patterns,
                nested: &nested,
                secret_file: &credential_file,
            },
        )?
    } else {
        Vec::new()
    };
    let (listings, scans): (Vec<_>, Vec<_>) =
        outputs.into_iter().map(|o| (o.listing, o.scan)).unzip();
    let tree = MergedTree::merge(&listings);
    let input = CheckInput {
        opened,
        image,
        listings: &listings,
        scans: &scans,
        tree: &tree,
        rules,
        preset,
        opts: &plan.opts,
        cache: cache.as_ref(),
    };
    let mut outcomes = if let Some(stored) = memoised {
        stored
    } else {
        let fresh = checks::run_some(&input, true);
        if let (Some(c), Some(k)) = (&cache, &memo_key)
            && !nested.was_exceeded()
            && c.put_memo(k, &fresh, &patterns).unwrap_or(false)
        {
            let _ = c.evict();
        }
        fresh
    };
    outcomes.extend(checks::run_some(&input, false));
    let (mut report, not_run) = assemble(rules, plan, outcomes);
    report.input.clone_from(&plan.image);
    report.platform = image.platform.to_string();
    report.manifest_digest = image.manifest.digest.to_string();
    report.manifest_digest_source = Some(if image.manifest_synthesised {
        report.notes.push(format!(
            "manifest digest {} is synthesised: the input (a legacy `docker save`) holds no \
             manifest, so no registry shows this digest; the registry digest of a pulled image is \
             not in the archive (see `docker inspect --format '{{{{json .RepoDigests}}}}'` on the \
             host that saved it)",
            image.manifest.digest
        ));
        report::DigestSource::Synthesised
    } else {
        report::DigestSource::Input
    });
    report.config_digest = image.config_descriptor.digest.to_string();
    report.preset = preset.map(|p| p.name.clone());
    Ok((report, not_run && plan.opts.exec == ExecMode::Always))
}

/// The image memo's key for `image` (see [`crate::cache::LayerCache::memo_key`]): besides the
/// cache's own configuration (version, schema, secret patterns, capture policy), everything the
/// memoisable checks read — the rule set's files, the preset in force, the options that change
/// outcomes (`--ref`, `--preset`), the image as opened (platform, manifest and config descriptors,
/// the parsed config and its whole document, layer descriptors, `diff_ids` and history, ref names,
/// manifest annotations), the input's index annotations and kind, and the ordered layer keys.
/// Severity overrides, `--fail-on`, the format and `--exec` apply after the checks (`assemble`) or
/// to the healthcheck only, so they are not in it. `None` (no memo) when the input holds
/// attestations: the secret check reads their blobs, which a memo could not vouch for.
fn memo_key(
    cache: &crate::cache::LayerCache,
    rules: &RuleSet,
    plan: &CheckPlan,
    preset: Option<&Preset>,
    opened: &Opened,
    image: &Image,
) -> Option<String> {
    if !opened.attestations.is_empty() {
        return None;
    }
    let opt = |o: Option<&str>| o.map_or_else(|| vec![0u8], |s| [b"=", s.as_bytes()].concat());
    let image_json = serde_json::to_vec(image).ok()?;
    let config_json = serde_json::to_vec(&image.config.raw).ok()?;
    let annotations = serde_json::to_vec(&opened.annotations).ok()?;
    let layer_keys: Vec<String> = image.layers.iter().map(|l| cache.key(l)).collect();
    let skip_licenses =
        std::env::var_os(checks::licenses::BENCH_SKIP_ENV).is_some_and(|v| v == "1");
    Some(cache.memo_key(&[
        rules.digest.as_bytes(),
        &opt(preset.map(|p| p.name.as_str())),
        &opt(plan.opts.reference.as_deref()),
        &opt(plan.opts.preset_flag.as_deref()),
        &[u8::from(skip_licenses)],
        opened.kind.as_bytes(),
        &image_json,
        &config_json,
        &annotations,
        layer_keys.join(",").as_bytes(),
    ]))
}

/// Merge outcomes per rule id (catalogue order), apply severities and overrides, sort findings.
/// Returns the report (identity fields empty) and whether the healthcheck was not run.
pub fn assemble(
    rules: &RuleSet,
    plan: &CheckPlan,
    outcomes: Vec<CheckOutcome>,
) -> (ImageReport, bool) {
    let mut by_rule: BTreeMap<RuleId, Vec<CheckOutcome>> = BTreeMap::new();
    for o in outcomes {
        by_rule.entry(o.rule_id).or_default().push(o);
    }
    let mut report = ImageReport {
        input: String::new(),
        platform: String::new(),
        manifest_digest: String::new(),
        manifest_digest_source: None,
        config_digest: String::new(),
        preset: None,
        rules: Vec::new(),
        findings: Vec::new(),
        suppressed: BTreeMap::new(),
        notes: Vec::new(),
    };
    let mut healthcheck_not_run = false;
    for rule in &rules.rules {
        let outs = by_rule.remove(&rule.id).unwrap_or_default();
        let over = plan.overrides.get(&rule.id).copied();
        let severity = over.unwrap_or(rule.default_severity);
        let merged = merge(rule.id, outs, over, severity, &mut report);
        if rule.id.can_be_not_run() && merged.status == RuleStatus::NotRun {
            healthcheck_not_run = true;
            if plan.opts.exec == ExecMode::Auto && merged.findings.is_empty() {
                report.findings.push(Finding {
                    rule_id: rule.id,
                    severity: over.unwrap_or(Severity::Warning),
                    message: format!(
                        "the healthcheck was not run: {}",
                        merged.detail.as_deref().unwrap_or("no sandbox available")
                    ),
                    help: Some("run where bubblewrap (`bwrap`) and user namespaces are available, or pass --exec never to skip it knowingly".into()),
                    location: report::Location::Image,
                    evidence: None,
                });
            }
        }
        report.findings.extend(merged.findings);
        report.rules.push(RuleResult {
            rule_id: rule.id,
            severity,
            status: merged.status,
            detail: merged.detail,
        });
    }
    debug_assert!(by_rule.is_empty(), "rules.toml lists every RuleId");
    report::sort_findings(&mut report.findings);
    (report, healthcheck_not_run)
}

struct Merged {
    status: RuleStatus,
    detail: Option<String>,
    findings: Vec<Finding>,
}

fn merge(
    id: RuleId,
    outs: Vec<CheckOutcome>,
    over: Option<Severity>,
    severity: Severity,
    report: &mut ImageReport,
) -> Merged {
    if outs.is_empty() {
        return Merged {
            status: RuleStatus::NotRun,
            detail: Some("no check in this build decided this rule".into()),
            findings: Vec::new(),
        };
    }
    let rank = |s: RuleStatus| match s {
        RuleStatus::Failed => 3,
        RuleStatus::NotRun => 2,
        RuleStatus::Passed => 1,
        RuleStatus::Skipped => 0,
    };
    let mut status = RuleStatus::Skipped;
    let mut details = Vec::new();
    let mut findings = Vec::new();
    for o in outs {
        if rank(o.status) > rank(status) {
            status = o.status;
        }
        details.extend(o.detail);
        report.notes.extend(o.notes);
        for (k, v) in o.suppressed {
            *report.suppressed.entry(k).or_default() += v;
        }
        for mut f in o.findings {
            let pinned = over.is_none() && id.pins_errors() && f.severity == Severity::Error;
            f.severity = if pinned { Severity::Error } else { severity };
            f.rule_id = id;
            findings.push(f);
        }
    }
    if !findings.is_empty() && status != RuleStatus::Failed {
        status = RuleStatus::Failed;
    }
    if over == Some(Severity::Note) {
        details.push("allowed by --allow: findings are notes".into());
    }
    Merged {
        status,
        detail: (!details.is_empty()).then(|| details.join("; ")),
        findings,
    }
}

/// Write `report` completely to `out`.
pub fn write_report(
    rules: &RuleSet,
    plan: &CheckPlan,
    report: &Report,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let opts = WriteOptions {
        color: plan.color,
        width: plan.width,
        catalog: rules.catalog(),
        fail_on: Some(plan.fail_on),
    };
    report::write(report, plan.format, &opts, out)
}
