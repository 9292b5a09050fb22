//! `x1-validate promote docker://HOST/REPO@sha256:… --to vN [--regate]`: put the very manifest bytes of
//! a gated digest under `:vN` (no blob copy, no re-encoding: the digest cannot change).
//!
//! Refused (exit 1, nothing written) when: `:vN` exists with another digest; N is not greater than the
//! highest `vM` tag of the repository; the `vN` policy (`tag-policy`: repository, tag, version label)
//! fails; without `--regate`, no passing gate report by the current rules is attached; with `--regate`,
//! the full gate (run now, report attached) fails. A reference by tag is a usage error (exit 2): only an
//! exact digest is promoted. On success a promotion record is printed and attached to the digest.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::checks::{CheckInput, CheckOptions, ExecMode};
use crate::error::{Error, Result};
use crate::image::MergedTree;
use crate::image::registry::SCHEME;
use crate::report::Severity;
use crate::rules::{RuleSet, Sources};

/// Arguments of `x1-validate promote`.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// The gated image, by digest: `docker://HOST[:PORT]/REPO@sha256:…`.
    pub image: String,
    /// The promotion tag, `vN` (N a positive integer).
    #[arg(long, value_name = "vN")]
    pub to: String,
    /// Gate the digest in full now (and attach that report) instead of requiring an attached one.
    #[arg(long)]
    pub regate: bool,
    /// With --regate: whether the healthcheck runs (as for `check`).
    #[arg(long, value_enum, default_value_t)]
    pub exec: ExecMode,
    /// With --regate: write the gate report to FILE (the format follows --format).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// With --regate: the report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: crate::report::Format,
    /// Directory with rule files overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Directory of presets replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub presets: Option<PathBuf>,
}

/// `vN` → N (also accepts `N`).
fn parse_version(s: &str) -> Result<u64> {
    let n = s.strip_prefix('v').unwrap_or(s);
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "--to {s:?}: expected vN with N a positive integer (v1, v2, …)"
        )));
    }
    match n.parse::<u64>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(Error::Usage(format!("--to {s:?}: N must be at least 1"))),
    }
}

/// The version numbers of the repository's `vN` tags.
fn versions(tags: &[String]) -> Vec<u64> {
    tags.iter()
        .filter_map(|t| {
            let n = t.strip_prefix('v')?;
            (!n.is_empty() && n.len() <= 9 && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
        })
        .collect()
}

#[allow(clippy::too_many_lines)] // one linear sequence of checks, each refusing with its reason
pub fn run(args: &PromoteArgs, out: &mut dyn Write) -> Result<u8> {
    let w = |e| Error::output("<stdout>", e);
    let n = parse_version(&args.to)?;
    let rest = args.image.strip_prefix(SCHEME).ok_or_else(|| {
        Error::Usage(format!(
            "{}: promote takes a registry digest, {SCHEME}HOST[:PORT]/REPO@sha256:…",
            args.image
        ))
    })?;
    let reference = crate::image::registry::Reference::parse(rest)?;
    if reference.digest.is_none() {
        return Err(Error::Usage(format!(
            "{}: promote only an exact digest (…@sha256:…), never a tag that can move",
            args.image
        )));
    }
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: args.presets.as_deref(),
    })?;
    let (r, client, m) = super::verify::resolve(&args.image)?;
    let tag = format!("v{n}");
    let spec = format!("{SCHEME}{}/{}@{}", r.host, r.repo, m.digest);
    let refuse = |out: &mut dyn Write, why: String| -> Result<u8> {
        writeln!(out, "promotion refused: {why}").map_err(w)?;
        Ok(1)
    };

    // 1. The tag list: an existing vN, and the highest vM.
    let tags = client.tags()?;
    let highest = versions(&tags).into_iter().max();
    if tags.contains(&tag) {
        let existing = client.manifest(&tag)?;
        if let Some(e) = existing {
            if e.digest == m.digest {
                writeln!(
                    out,
                    "{}:{tag} already is {}: nothing to do",
                    client.name(),
                    m.digest
                )
                .map_err(w)?;
                return Ok(0);
            }
            return refuse(
                out,
                format!(
                    "{}:{tag} already exists with another digest ({})",
                    client.name(),
                    e.digest
                ),
            );
        }
    }
    if let Some(h) = highest
        && n <= h
    {
        return refuse(
            out,
            format!("v{n} is not greater than the highest existing tag v{h}"),
        );
    }

    // 2. The vN policy (tag-policy with --ref REPO:vN) on the image's config.
    let policy_ref = format!("{}:{tag}", r.repo);
    let opened = crate::image::open(&spec, None)?;
    let opts = CheckOptions {
        reference: Some(policy_ref.clone()),
        ..CheckOptions::default()
    };
    let tree = MergedTree::default();
    let mut policy = Vec::new();
    for image in &opened.images {
        let preset = image
            .config
            .labels
            .get(crate::checks::labels::RUNTIME_LABEL)
            .and_then(|l| rules.presets.get(l));
        let input = CheckInput {
            opened: &opened,
            image,
            listings: &[],
            scans: &[],
            tree: &tree,
            rules: &rules,
            preset,
            opts: &opts,
            cache: None,
        };
        let outcome = crate::checks::labels::tag_policy(&input);
        policy.extend(outcome.findings.into_iter().map(|f| f.message));
    }
    if !policy.is_empty() {
        return refuse(
            out,
            format!("the {tag} policy fails: {}", policy.join("; ")),
        );
    }

    // 3. The gate: an attached passing report by the current rules, or a full gate now.
    let current = super::verify::rules_hash(
        args.rules.as_deref(),
        args.presets.as_deref(),
        &BTreeMap::new(),
        Severity::Error,
    )?;
    if args.regate {
        let cargs = super::check::CheckArgs {
            image: spec.clone(),
            preset: None,
            reference: Some(policy_ref.clone()),
            platform: crate::image::PlatformChoice::All,
            exec: args.exec,
            healthcheck_timeout: std::time::Duration::from_secs(10),
            format: args.format,
            output: args.output.clone(),
            rules: args.rules.clone(),
            presets: args.presets.clone(),
            fail_on: super::check::FailOn::Error,
            deny: Vec::new(),
            warn: Vec::new(),
            allow: Vec::new(),
            attach: true,
            no_cache: false,
        };
        let code = super::check::run(&cargs, out)?;
        if code != 0 {
            return refuse(
                out,
                format!(
                    "the gate {} ({}) for {}",
                    if code == 4 {
                        "could not run the healthcheck"
                    } else {
                        "fails"
                    },
                    super::verify::verdict_word(code),
                    m.digest
                ),
            );
        }
    }
    let reports = super::verify::attached_reports(&client, &m, &current)?;
    let Some(gate) = reports
        .iter()
        .rev()
        .find(|a| a.current_rules && a.verdict == "pass")
    else {
        return refuse(
            out,
            format!(
                "no passing gate report by the current rules is attached to {} ({} report(s) attached); \
                 gate it with `check --attach`, or use --regate",
                m.digest,
                reports.len()
            ),
        );
    };

    // 4. The same manifest bytes under :vN, then read back.
    client.put_manifest(&tag, &m.media_type, &m.bytes)?;
    let back = client.manifest(&tag)?.ok_or_else(|| {
        Error::corrupt(
            format!("{}:{tag}", client.name()),
            "the tag is missing right after it was pushed",
        )
    })?;
    if back.digest != m.digest {
        return Err(Error::corrupt(
            format!("{}:{tag}", client.name()),
            format!("resolves to {} instead of {}", back.digest, m.digest),
        ));
    }

    // 5. The promotion record.
    let record = serde_json::json!({
        "type": "x1agent.promotion.v1",
        "repository": client.name(),
        "digest": m.digest.to_string(),
        "tag": tag,
        "previous_highest": highest.map(|h| format!("v{h}")),
        "gate_report": gate.artifact,
        "regated": args.regate,
        "rules_sha256": current,
        "x1_validate_version": env!("CARGO_PKG_VERSION"),
        "time": super::verify::rfc3339_now(),
    });
    let bytes = serde_json::to_vec_pretty(&record).expect("a JSON value serialises");
    let mut ann = BTreeMap::new();
    ann.insert(
        super::verify::ANN_VERSION.to_string(),
        env!("CARGO_PKG_VERSION").to_string(),
    );
    ann.insert(super::verify::ANN_RULES.to_string(), current.clone());
    ann.insert(
        super::verify::ANN_REF.to_string(),
        format!("{}:{tag}", client.name()),
    );
    ann.insert(
        super::verify::ANN_CREATED.to_string(),
        super::verify::rfc3339_now(),
    );
    let (artifact, _) = client.attach(&m, super::verify::PROMOTION_TYPE, &bytes, &ann)?;
    out.write_all(&bytes).map_err(w)?;
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "promoted {} to {}:{tag} (record {})",
        m.digest,
        client.name(),
        artifact.digest
    )
    .map_err(w)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("v3").expect("ok"), 3);
        assert_eq!(parse_version("12").expect("ok"), 12);
        for bad in ["v0", "v", "vx", "v1.2", "-1", "v99999999999"] {
            assert!(matches!(parse_version(bad), Err(Error::Usage(_))), "{bad}");
        }
        let tags: Vec<String> = ["edge", "v2", "v10", "vx", "sha256-ab", "v1.0"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        assert_eq!(versions(&tags).into_iter().max(), Some(10));
    }
}
