//! `x1-validate licenses IMAGE [--format human|json|cyclonedx]`: the license inventory of every npm
//! package root and Debian package in every layer — ecosystem, name, version, declared license, the
//! SPDX expression it maps to, the deny-list verdict, path and layer. Exit 0 whatever the verdicts (the
//! gate is `check`); 2/3 as usual for bad flags or unreadable images.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::cache::LayerCache;
use crate::error::{Error, Result};
use crate::image::layer::NoScan;
use crate::image::{CapturePolicy, Image, MergedTree, open, read_layers};
use crate::license::cyclonedx::{self, Subject};
use crate::license::{Inventory, LicenseSource, Package, Policy, Verdict};
use crate::rules::{Preset, RuleSet, Sources};

/// `--format` of `licenses`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LicensesFormat {
    /// A table.
    #[default]
    Human,
    /// `{"images": [{…, "packages": [...]}]}`.
    Json,
    /// `CycloneDX` 1.5 JSON (one image: pick it with `--platform`).
    Cyclonedx,
}

/// Arguments of `x1-validate licenses`.
#[derive(Debug, Clone, clap::Args)]
pub struct LicensesArgs {
    /// The image: OCI layout dir, OCI archive, docker-archive tar, or `-` for stdin.
    pub image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: LicensesFormat,
    /// Runtime preset whose clarifications apply (default: the `org.x1agent.runtime` label).
    #[arg(long)]
    pub preset: Option<String>,
    /// Only this platform (`os/arch[/variant]`, or `all`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]|all", default_value = "all")]
    pub platform: crate::image::PlatformChoice,
    /// Directory with rule files overriding the built-in ones (licenses.toml, …).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Directory of presets replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub presets: Option<PathBuf>,
    /// Neither use nor fill the license text-match cache (the one `check` keeps, under
    /// `$X1_VALIDATE_CACHE_DIR`, else `$XDG_CACHE_HOME/x1-validate` or `~/.cache/x1-validate`, bounded
    /// by `$X1_VALIDATE_CACHE_MAX`).
    #[arg(long)]
    pub no_cache: bool,
}

/// One image's inventory.
struct Listed<'a> {
    image: &'a Image,
    preset: Option<&'a Preset>,
    inventory: Inventory,
}

/// Run the command; returns the exit code.
pub fn run(args: &LicensesArgs, out: &mut dyn Write) -> Result<u8> {
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: args.presets.as_deref(),
    })?;
    let opened = open(&args.image, args.platform.platform())?;
    if args.format == LicensesFormat::Cyclonedx && opened.images.len() != 1 {
        return Err(Error::Usage(format!(
            "{}: {} platform images; a CycloneDX BOM describes one, pick it with --platform",
            args.image,
            opened.images.len()
        )));
    }
    let cache = if args.no_cache { None } else { text_cache()? };
    let mut listed = Vec::new();
    for image in &opened.images {
        let preset = match &args.preset {
            Some(name) => Some(rules.preset(name)?),
            None => image
                .config
                .labels
                .get("org.x1agent.runtime")
                .and_then(|l| rules.presets.get(l)),
        };
        let capture = capture_policy(preset)?;
        let outputs = read_layers(&opened.source, image, &capture, |_| NoScan)?;
        let listings: Vec<_> = outputs.into_iter().map(|o| o.listing).collect();
        let tree = MergedTree::merge(&listings);
        let inventory = crate::license::image::inventory(
            &listings,
            &tree,
            preset.map(|p| &p.license),
            cache.as_ref(),
        );
        listed.push(Listed {
            image,
            preset,
            inventory,
        });
    }
    if let Some(c) = &cache {
        let _ = c.evict();
    }
    let w = |e: std::io::Error| Error::output("<stdout>", e);
    match args.format {
        LicensesFormat::Human => human(&listed, &rules.licenses, out).map_err(w)?,
        LicensesFormat::Json => {
            let mut doc = to_json(&args.image, &listed, &rules.licenses);
            crate::report::mask_json(&mut doc);
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| w(e.into()))?;
            writeln!(out).map_err(w)?;
        }
        LicensesFormat::Cyclonedx => {
            let l = &listed[0];
            let name = l
                .image
                .ref_names
                .first()
                .map_or(args.image.as_str(), String::as_str);
            let digest = l.image.manifest.digest.to_string();
            let mut doc = cyclonedx::bom(
                &l.inventory,
                &Subject {
                    name,
                    manifest_digest: &digest,
                    license_label: l
                        .image
                        .config
                        .labels
                        .get(crate::checks::licenses::LICENSE_LABEL)
                        .map(String::as_str),
                },
            );
            crate::report::mask_json(&mut doc);
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| w(e.into()))?;
            writeln!(out).map_err(w)?;
        }
    }
    Ok(0)
}

/// The result cache `check` uses, for its license text-match results only (their key is the text's
/// hash and the matcher's, whatever else the cache is opened for); `None` without a cache directory or
/// when it cannot be opened (the cache only saves time).
fn text_cache() -> Result<Option<LayerCache>> {
    let max = crate::cache::max_bytes_from_env().map_err(Error::Usage)?;
    Ok(crate::cache::default_dir()
        .and_then(|dir| LayerCache::open(&dir, max, "licenses: text matches only").ok()))
}

/// Capture only what the inventory needs.
fn capture_policy(preset: Option<&Preset>) -> Result<CapturePolicy> {
    CapturePolicy::from_globs(
        crate::license::capture_globs(preset.map(|p| &p.license)),
        crate::license::CAPTURE_MAX_BYTES,
        0,
    )
}

/// `allowed`, `denied`, `allowed-by-exception`, or `unknown`, with the denied terms.
fn verdict(policy: &Policy, p: &Package) -> (&'static str, Vec<String>) {
    match &p.parsed {
        Some(e) => match policy.evaluate(p.ecosystem, &p.name, &p.version, e) {
            Verdict::Allowed { exception: None } => ("allowed", Vec::new()),
            Verdict::Allowed {
                exception: Some(id),
            } => ("allowed-by-exception", vec![id]),
            Verdict::Denied { terms } => ("denied", terms.into_iter().map(|(n, _)| n).collect()),
        },
        None => match p.declared.as_deref().and_then(|d| policy.denied_by_text(d)) {
            Some((entry, _)) => ("denied", vec![entry.license.as_str().to_string()]),
            None => ("unknown", Vec::new()),
        },
    }
}

fn to_json(input: &str, listed: &[Listed<'_>], policy: &Policy) -> Value {
    let images: Vec<Value> = listed
        .iter()
        .map(|l| {
            let packages: Vec<Value> = l
                .inventory
                .packages
                .iter()
                .map(|p| {
                    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
                    let (status, terms) = verdict(policy, p);
                    v["verdict"] = json!(status);
                    if !terms.is_empty() {
                        v["verdict_terms"] = json!(terms);
                    }
                    v
                })
                .collect();
            json!({
                "platform": l.image.platform.to_string(),
                "manifest_digest": l.image.manifest.digest.to_string(),
                "preset": l.preset.map(|p| p.name.clone()),
                "packages": packages,
            })
        })
        .collect();
    json!({ "input": input, "images": images })
}

fn human(listed: &[Listed<'_>], policy: &Policy, out: &mut dyn Write) -> std::io::Result<()> {
    for l in listed {
        let pkgs = &l.inventory.packages;
        writeln!(
            out,
            "{} ({}), preset {}: {} packages",
            crate::report::ImageText(&l.image.platform.to_string()),
            l.image.manifest.digest,
            l.preset.map_or("none", |p| p.name.as_str()),
            pkgs.len()
        )?;
        let rows: Vec<[String; 7]> = pkgs
            .iter()
            .map(|p| {
                let (status, terms) = verdict(policy, p);
                let license = match (&p.expression, &p.declared) {
                    (Some(e), _) if p.source == LicenseSource::Clarification => {
                        format!("{e} (asserted by clarification)")
                    }
                    (Some(e), _) if p.source == LicenseSource::TextMatch => {
                        format!("{e} (text-match {:.2})", p.score.unwrap_or(0.0))
                    }
                    (Some(e), _) => e.clone(),
                    (None, Some(d)) => format!("? `{d}`"),
                    (None, None) => "?".into(),
                };
                let status = if terms.is_empty() {
                    status.to_string()
                } else {
                    format!("{status} ({})", terms.join(", "))
                };
                [
                    p.ecosystem.as_str().to_string(),
                    p.name.clone(),
                    p.version.clone(),
                    license,
                    status,
                    p.layer.to_string(),
                    p.path.clone(),
                ]
                .map(|cell| crate::report::mask(&cell).into_owned())
            })
            .collect();
        let head = [
            "ECO", "NAME", "VERSION", "LICENSE", "VERDICT", "LAYER", "PATH",
        ];
        let mut widths = head.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count().min(60));
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(c);
                } else {
                    let _ = write!(s, "{c:<w$}  ", w = widths[i]);
                }
            }
            s
        };
        writeln!(out, "{}", line(&head.map(String::from)))?;
        for r in &rows {
            writeln!(out, "{}", line(r))?;
        }
        let unknown = pkgs.iter().filter(|p| p.parsed.is_none()).count();
        writeln!(
            out,
            "{unknown} package(s) with a license that could not be determined"
        )?;
        for p in pkgs.iter().filter(|p| p.asserted_by.is_some()) {
            let line = format!(
                "{} {}: {}",
                p.name,
                p.version,
                p.asserted_by.as_deref().unwrap_or_default()
            );
            writeln!(out, "{}", crate::report::mask(&line))?;
        }
    }
    Ok(())
}
