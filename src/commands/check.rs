//! `x1-validate check IMAGE` (also `x1-validate IMAGE`): validate flags, load rules, run
//! [`crate::app::check`], write the report in full (stdout or `-o FILE`), return the exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::app::{self, CheckPlan};
use crate::checks::{CheckOptions, ExecMode};
use crate::error::{Error, Result};
use crate::image::PlatformChoice;
use crate::image::registry::{Client, Manifest};
use crate::report::{Format, Report, Severity};
use crate::rules::{RuleId, RuleSet, Sources};

/// `--fail-on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FailOn {
    /// Fail on errors only.
    #[default]
    Error,
    /// Fail on warnings and errors.
    Warning,
}

/// Arguments of `x1-validate check`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The image: OCI layout dir, OCI archive, docker-archive tar (`:TAG`/`@sha256:…` select), or `-`.
    pub image: String,
    /// Runtime preset (default: the image's `org.x1agent.runtime` label).
    #[arg(long)]
    pub preset: Option<String>,
    /// The reference the image will be pushed as (`x1agent/runtime-opencode:edge`): enables `tag-policy`.
    #[arg(long = "ref", value_name = "NAME:TAG")]
    pub reference: Option<String>,
    /// `OS/ARCH[/VARIANT]`, or `all` (every platform of an index).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]|all", default_value = "all")]
    pub platform: PlatformChoice,
    /// Whether the healthcheck runs: `auto` (not-run is a warning), `always` (not-run exits 4), `never`.
    #[arg(long, value_enum, default_value_t)]
    pub exec: ExecMode,
    /// Healthcheck time limit (`10s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::units::parse_duration)]
    pub healthcheck_timeout: Duration,
    /// Report format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Write the report to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Directory with rule files overriding the built-in ones (rules.toml, credentials.toml, secrets.toml, licenses.toml).
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Directory of presets (`<runtime>/preset.toml`) replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub presets: Option<PathBuf>,
    /// The least severe level that fails the gate.
    #[arg(long, value_enum, default_value_t)]
    pub fail_on: FailOn,
    /// Treat RULE's findings as errors (repeatable).
    #[arg(long, value_name = "RULE", value_enum, hide_possible_values = true)]
    pub deny: Vec<RuleId>,
    /// Treat RULE's findings as warnings (repeatable).
    #[arg(long, value_name = "RULE", value_enum, hide_possible_values = true)]
    pub warn: Vec<RuleId>,
    /// Report RULE's findings as notes, never failing the gate (repeatable).
    #[arg(long, value_name = "RULE", value_enum, hide_possible_values = true)]
    pub allow: Vec<RuleId>,
    /// Attach the JSON report to the gated digest as an OCI referrer (`docker://` images only; a tag is
    /// resolved to its digest first, and that digest is what is gated).
    #[arg(long)]
    pub attach: bool,
    /// Read every layer, neither using nor filling the layer result cache (by default under
    /// `$X1_VALIDATE_CACHE_DIR`, else `$XDG_CACHE_HOME/x1-validate` or `~/.cache/x1-validate`, bounded
    /// by `$X1_VALIDATE_CACHE_MAX`, default 1GiB), and have the healthcheck write every file instead of
    /// linking it from the layer store.
    #[arg(long)]
    pub no_cache: bool,
}

/// Per-rule overrides from the three flags (clap refuses an unknown id); a rule given two different
/// severities is a usage error.
pub fn overrides(args: &CheckArgs) -> Result<BTreeMap<RuleId, Severity>> {
    let mut map = BTreeMap::new();
    for (list, sev) in [
        (&args.deny, Severity::Error),
        (&args.warn, Severity::Warning),
        (&args.allow, Severity::Note),
    ] {
        for &id in list {
            if map.insert(id, sev).is_some_and(|old| old != sev) {
                return Err(Error::Usage(format!(
                    "rule `{id}` is given two different severities"
                )));
            }
        }
    }
    Ok(map)
}

fn plan(args: &CheckArgs, rules: &RuleSet, to_terminal: bool) -> Result<CheckPlan> {
    if let Some(p) = &args.preset {
        rules.preset(p)?;
    }
    let platform = args.platform.platform().cloned();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let cache = if args.no_cache {
        None
    } else {
        let max = crate::cache::max_bytes_from_env().map_err(Error::Usage)?;
        crate::cache::default_dir().map(|d| (d, max))
    };
    Ok(CheckPlan {
        image: args.image.clone(),
        platform,
        format: args.format,
        fail_on: match args.fail_on {
            FailOn::Error => Severity::Error,
            FailOn::Warning => Severity::Warning,
        },
        overrides: overrides(args)?,
        opts: CheckOptions {
            reference: args.reference.clone(),
            preset_flag: args.preset.clone(),
            exec: args.exec,
            healthcheck_timeout: args.healthcheck_timeout,
            no_layer_store: args.no_cache,
        },
        color: to_terminal && !no_color,
        width: std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100),
        cache,
    })
}

/// Run the command; returns the exit code. The report is written in full before an error is
/// returned, whatever the code: on exit 2 (a flag, a preset, a rule file) and exit 3 (an unreadable
/// image) it says NOT CHECKED and why, with the images finished before the error (contract:
/// "Every report format is written in full before the process exits").
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<u8> {
    let mut images = Vec::new();
    let mut ctx = None;
    let mut attach = None;
    let result = run_inner(args, &mut images, &mut ctx, &mut attach);
    let (report, rules, plan) = match (&result, ctx) {
        (Ok(_), Some((rules, plan))) => {
            (Report::new(env!("CARGO_PKG_VERSION"), images), rules, plan)
        }
        // An output error is about the report itself: nothing more can be written.
        (Err(Error::Io { output: true, .. }), _) => return result,
        (Err(e), Some((rules, plan))) => (
            Report::failed(env!("CARGO_PKG_VERSION"), images, e),
            rules,
            plan,
        ),
        (Err(e), None) => {
            // The flags or the rule files could not be used: a report in the requested format
            // (or stdout) with the embedded rule catalogue.
            let rules = RuleSet::embedded().unwrap_or_default();
            let plan = fallback_plan(args);
            (
                Report::failed(env!("CARGO_PKG_VERSION"), images, e),
                rules,
                plan,
            )
        }
        (Ok(_), None) => unreachable!("run_inner returns Ok only with a plan"),
    };
    write_report(&rules, &plan, &report, args.output.as_deref(), out)?;
    if let (Some((client, m)), Ok(code)) = (&attach, &result) {
        attach_report(args, &rules, &plan, &report, client, m, *code, out)?;
    }
    result
}

/// `--attach`: push the gate's JSON report as an OCI referrer of the gated digest.
#[allow(clippy::too_many_arguments)]
fn attach_report(
    args: &CheckArgs,
    rules: &RuleSet,
    plan: &CheckPlan,
    report: &Report,
    client: &Client,
    m: &Manifest,
    code: u8,
    out: &mut dyn Write,
) -> Result<()> {
    let mut json_plan = plan.clone();
    json_plan.format = Format::Json;
    json_plan.color = false;
    let mut json = Vec::new();
    app::write_report(rules, &json_plan, report, &mut json)
        .map_err(|e| Error::output("<report>", e))?;
    let sha = super::verify::rules_hash(
        args.rules.as_deref(),
        args.presets.as_deref(),
        &plan.overrides,
        plan.fail_on,
    )?;
    let (artifact, fallback) =
        super::verify::attach_report(client, m, &json, &sha, code, args.reference.as_deref())?;
    if args.output.is_some() || args.format == Format::Human {
        writeln!(
            out,
            "attached the gate report ({}) to {} as {artifact}{}",
            super::verify::verdict_word(code),
            m.digest,
            if fallback {
                " (referrers tag schema)"
            } else {
                ""
            }
        )
        .map_err(|e| Error::output("<stdout>", e))?;
    }
    Ok(())
}

fn run_inner(
    args: &CheckArgs,
    images: &mut Vec<crate::report::ImageReport>,
    ctx: &mut Option<(RuleSet, CheckPlan)>,
    attach: &mut Option<(Client, Manifest)>,
) -> Result<u8> {
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: args.presets.as_deref(),
    })?;
    crate::report::mask::use_rules(&rules);
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let mut plan = plan(args, &rules, to_terminal)?;
    if args.attach {
        // Gate exactly the digest the report will be attached to (a tag may move meanwhile).
        let (r, client, m) = super::verify::resolve(&args.image)?;
        plan.image = format!(
            "{}{}/{}@{}",
            crate::image::registry::SCHEME,
            r.host,
            r.repo,
            m.digest
        );
        *attach = Some((client, m));
    }
    let (rules, plan) = ctx.insert((rules, plan));
    app::check(rules, plan, images)
}

/// The rendering part of a plan when the flags could not all be validated.
fn fallback_plan(args: &CheckArgs) -> CheckPlan {
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    CheckPlan {
        image: args.image.clone(),
        platform: None,
        format: args.format,
        fail_on: match args.fail_on {
            FailOn::Error => Severity::Error,
            FailOn::Warning => Severity::Warning,
        },
        overrides: BTreeMap::new(),
        opts: CheckOptions {
            reference: None,
            preset_flag: None,
            exec: args.exec,
            healthcheck_timeout: std::time::Duration::from_secs(10),
            no_layer_store: false,
        },
        color: to_terminal && !no_color,
        width: 100,
        cache: None,
    }
}

fn write_report(
    rules: &RuleSet,
    plan: &CheckPlan,
    report: &Report,
    output: Option<&std::path::Path>,
    out: &mut dyn Write,
) -> Result<()> {
    match output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| Error::output(path, e))?;
            let mut w = std::io::BufWriter::new(file);
            app::write_report(rules, plan, report, &mut w)
                .and_then(|()| w.flush())
                .map_err(|e| Error::output(path, e))
        }
        None => match app::write_report(rules, plan, report, out) {
            // A closed pipe (`| head`) is not an error of the gate; the exit code still stands.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| Error::output("<stdout>", e)),
        },
    }
}
