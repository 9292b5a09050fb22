//! `x1-validate render --preset NAME --out DIR [--values FILE] [--set KEY=VALUE]…`: write the `/x1`
//! overlay and the runtime config (see [`crate::render`]).

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::render::{render_files, write::write_tree};
use crate::rules::RuleSet;

/// Arguments of `x1-validate render`.
#[derive(Debug, Clone, clap::Args)]
pub struct RenderArgs {
    /// The preset to render (`opencode`).
    #[arg(long)]
    pub preset: String,
    /// Output directory: the `/x1` tree is written into it (created; must be empty or absent, and not
    /// a symlink).
    #[arg(long)]
    pub out: PathBuf,
    /// Values file (TOML, or JSON when it starts with `{`) over the preset's render defaults.
    #[arg(long)]
    pub values: Option<PathBuf>,
    /// One value, `KEY=VALUE` with a dotted key (`providers.openai.api_key=...`); repeatable, applied
    /// after `--values`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Run the command; returns the exit code.
pub fn run(args: &RenderArgs, out: &mut dyn Write) -> Result<u8> {
    let rules = RuleSet::embedded()?;
    let values_text = match &args.values {
        Some(p) => Some((
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| Error::input(p, e))?,
        )),
        None => None,
    };
    let files = render_files(
        &rules,
        &args.preset,
        values_text.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        &args.set,
    )?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    write_tree(&args.out, &files, epoch)?;
    for f in &files {
        writeln!(out, "{:o} {:>7} {}", f.mode, f.bytes.len(), f.path)
            .map_err(|e| Error::output("<stdout>", e))?;
    }
    writeln!(
        out,
        "rendered preset `{}` into {}",
        args.preset,
        args.out.display()
    )
    .map_err(|e| Error::output("<stdout>", e))?;
    Ok(0)
}
