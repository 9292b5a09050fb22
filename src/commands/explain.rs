//! `x1-validate explain RULE`: what a rule checks, why it matters, and how to fix a failure.

use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::rules::{RuleId, RuleSet, Sources};

/// Arguments of `x1-validate explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The rule id (`x1-validate rules` lists them).
    #[arg(value_enum, hide_possible_values = true)]
    pub rule: RuleId,
    /// Directory with rule files overriding the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub rules: Option<PathBuf>,
}

/// Run the command; returns the exit code.
pub fn run(args: &ExplainArgs, out: &mut dyn Write) -> Result<u8> {
    let rules = RuleSet::load(Sources {
        rules_dir: args.rules.as_deref(),
        presets_dir: None,
    })?;
    let Some(rule) = rules.rule(args.rule) else {
        return Err(Error::Usage(format!(
            "{}: no [[rule]] in rules.toml",
            args.rule
        )));
    };
    let text = format!(
        "{} (default severity: {})\n\n{}\n\n{}\n",
        rule.id,
        rule.default_severity.as_str(),
        rule.summary,
        rule.explain.trim()
    );
    out.write_all(text.as_bytes())
        .map_err(|e| Error::output("<stdout>", e))?;
    Ok(0)
}
