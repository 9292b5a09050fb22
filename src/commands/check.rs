//! `x1-validate check IMAGE` (also `x1-validate IMAGE`): validate flags, load rules, run
//! [`crate::app::check`], write the report in full (stdout or `-o FILE`), return the exit code.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use crate::app::{self, CheckPlan};
use crate::checks::{CheckOptions, ExecMode};
use crate::error::{Error, Result};
use crate::report::{Format, Report, Severity};
use crate::rules::{RULE_IDS, RuleSet, Sources};

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
    #[arg(long, default_value = "all")]
    pub platform: String,
    /// Whether the healthcheck runs: `auto` (not-run is a warning), `always` (not-run exits 4), `never`.
    #[arg(long, value_enum, default_value_t)]
    pub exec: ExecMode,
    /// Healthcheck time limit (`10s`, `500ms`).
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub healthcheck_timeout: String,
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
    #[arg(long, value_name = "RULE")]
    pub deny: Vec<String>,
    /// Treat RULE's findings as warnings (repeatable).
    #[arg(long, value_name = "RULE")]
    pub warn: Vec<String>,
    /// Report RULE's findings as notes, never failing the gate (repeatable).
    #[arg(long, value_name = "RULE")]
    pub allow: Vec<String>,
    /// Attach the JSON report to the gated digest as an OCI referrer (`docker://` images only; a tag is
    /// resolved to its digest first, and that digest is what is gated).
    #[arg(long)]
    pub attach: bool,
}

/// Per-rule overrides from the three flags; an unknown id or a rule named twice is a usage error.
pub fn overrides(args: &CheckArgs) -> Result<BTreeMap<String, Severity>> {
    let mut map = BTreeMap::new();
    for (flag, list, sev) in [
        ("--deny", &args.deny, Severity::Error),
        ("--warn", &args.warn, Severity::Warning),
        ("--allow", &args.allow, Severity::Note),
    ] {
        for id in list {
            if !RULE_IDS.contains(&id.as_str()) {
                return Err(Error::Usage(format!(
                    "{flag} {id}: unknown rule (see `x1-validate rules`)"
                )));
            }
            if map.insert(id.clone(), sev).is_some_and(|old| old != sev) {
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
    let platform = match args.platform.as_str() {
        "all" => None,
        p => Some(crate::commands::build::parse_platform(p)?),
    };
    let timeout = app::parse_duration(&args.healthcheck_timeout)
        .map_err(|e| Error::Usage(format!("--healthcheck-timeout: {e}")))?;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
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
            healthcheck_timeout: timeout,
        },
        color: to_terminal && !no_color,
        width: std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100),
    })
}

/// Run the command; returns the exit code. The report is written in full (also when the image turns
/// out to be unreadable: then with the images finished so far) before an error is returned.
pub fn run(args: &CheckArgs, out: &mut dyn Write) -> Result<u8> {
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: args.presets.as_deref(),
    })?;
    let to_terminal = args.output.is_none() && std::io::stdout().is_terminal();
    let mut plan = plan(args, &rules, to_terminal)?;
    let attach = if args.attach {
        let (r, client, m) = super::verify::resolve(&args.image)?;
        plan.image = format!(
            "{}{}/{}@{}",
            crate::image::registry::SCHEME,
            r.host,
            r.repo,
            m.digest
        );
        Some((client, m))
    } else {
        None
    };
    let mut images = Vec::new();
    let result = app::check(&rules, &plan, &mut images);
    if matches!(&result, Err(Error::Usage(_) | Error::RuleFile { .. })) {
        return result;
    }
    let report = Report::new(env!("CARGO_PKG_VERSION"), images);
    write_report(&rules, &plan, &report, args.output.as_deref(), out)?;
    if let (Some((client, m)), Ok(code)) = (&attach, &result) {
        let mut json_plan = plan.clone();
        json_plan.format = Format::Json;
        json_plan.color = false;
        let mut json = Vec::new();
        app::render(&rules, &json_plan, &report, &mut json)
            .map_err(|e| Error::output("<report>", e))?;
        let sha = super::verify::rules_hash(
            args.rules.as_deref(),
            args.presets.as_deref(),
            &plan.overrides,
            plan.fail_on,
        )?;
        let (artifact, fallback) =
            super::verify::attach_report(client, m, &json, &sha, *code, args.reference.as_deref())?;
        if args.output.is_some() || args.format == Format::Human {
            writeln!(
                out,
                "attached the gate report ({}) to {} as {artifact}{}",
                super::verify::verdict_word(*code),
                m.digest,
                if fallback {
                    " (referrers tag schema)"
                } else {
                    ""
                }
            )
            .map_err(|e| Error::output("<stdout>", e))?;
        }
    }
    result
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
            app::render(rules, plan, report, &mut w)
                .and_then(|()| w.flush())
                .map_err(|e| Error::output(path, e))
        }
        None => match app::render(rules, plan, report, out) {
            // A closed pipe (`| head`) is not an error of the gate; the exit code still stands.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            r => r.map_err(|e| Error::output("<stdout>", e)),
        },
    }
}
