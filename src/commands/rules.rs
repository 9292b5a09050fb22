//! `x1-validate rules [--preset NAME]`: the rule catalogue with default severities, and a preset's facts.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::rules::{RuleSet, Sources};

/// Arguments of `x1-validate rules`.
#[derive(Debug, Clone, clap::Args)]
pub struct RulesArgs {
    /// Also show this preset's required files, user, runtime config and descriptor.
    #[arg(long)]
    pub preset: Option<String>,
    /// Directory with rule files overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Directory of presets replacing the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub presets: Option<PathBuf>,
}

/// Run the command; returns the exit code.
pub fn run(args: &RulesArgs, out: &mut dyn Write) -> Result<u8> {
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: args.presets.as_deref(),
    })?;
    let preset = args
        .preset
        .as_deref()
        .map(|p| rules.preset(p))
        .transpose()?;
    write(&rules, preset, out).map_err(|e| Error::output("<stdout>", e))?;
    Ok(0)
}

fn write(
    rules: &RuleSet,
    preset: Option<&crate::rules::Preset>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let width = rules
        .rules
        .iter()
        .map(|r| r.id.as_str().len())
        .max()
        .unwrap_or(0);
    for r in &rules.rules {
        writeln!(
            out,
            "{:<width$}  {:<7}  {}",
            r.id,
            r.default_severity.as_str(),
            r.summary
        )?;
    }
    let Some(p) = preset else { return Ok(()) };
    writeln!(out, "\npreset {}: {}", p.name, p.summary)?;
    writeln!(out, "  image       {}", p.image)?;
    writeln!(
        out,
        "  user        {} (uid {}, home {})",
        p.user.name, p.user.uid, p.user.home
    )?;
    writeln!(out, "  entrypoint  {}", p.entrypoint)?;
    writeln!(
        out,
        "  base OS     {} {} ({})",
        p.base_os.id, p.base_os.version_id, p.base_os.codename
    )?;
    for f in &p.required {
        writeln!(out, "  requires    {} ({})", f.path, f.kind.describe())?;
    }
    if let Some(rc) = &p.runtime_config {
        writeln!(
            out,
            "  config      {} ({:?}), sidecar {}",
            rc.path, rc.format, rc.sidecar.base_url
        )?;
    }
    let d = &p.descriptor;
    let list = |v: &[String]| v.join(", ");
    writeln!(out, "  headless    {}", d.headless)?;
    writeln!(out, "  tools       {}", list(&d.builtin_tools))?;
    writeln!(out, "  MCP         {}", list(&d.mcp_transports))?;
    writeln!(out, "  hooks       {}", list(&d.hook_surfaces))?;
    writeln!(out, "  state       {}", list(&d.state_paths))?;
    Ok(())
}
