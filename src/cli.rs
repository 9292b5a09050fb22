//! The command line (clap derive types only). `x1-validate IMAGE` is `x1-validate check IMAGE`:
//! [`normalize_args`] inserts `check` when the first argument is not a subcommand.

use std::ffi::OsString;

use clap::{Parser, Subcommand};

use crate::commands::{
    build::BuildArgs, check::CheckArgs, explain::ExplainArgs, files::FilesArgs,
    inspect::InspectArgs, licenses::LicensesArgs, promote::PromoteArgs, render::RenderArgs,
    rules::RulesArgs, verify::VerifyArgs,
};

/// Gates and builds x1agent runtime images.
#[derive(Debug, Parser)]
#[command(
    name = "x1-validate",
    version,
    about = "Gate x1agent runtime images against the runtime preset contract",
    long_about = None,
    after_help = "`x1-validate IMAGE` is short for `x1-validate check IMAGE`.\nExit codes: 0 passed, 1 findings at or above --fail-on, 2 usage or configuration error, 3 unreadable or corrupt image, 4 healthcheck could not run (--exec always)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Largest image read from stdin (`-`), which is spilled to a private temp file under `$TMPDIR`:
    /// bytes, or with a K/M/G/T (or KiB/MiB/GiB/TiB) suffix, powers of 1024. Beyond it: exit 3.
    #[arg(long, global = true, value_name = "SIZE", default_value = "16GiB", value_parser = parse_size)]
    pub max_input_size: u64,
    /// Talk plain http (no TLS) to the registry of a `docker://` image (loopback test registries).
    #[arg(long, global = true)]
    pub insecure: bool,
}

pub use crate::units::{parse_duration, parse_size};

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check an image against the preset contract (the gate).
    Check(CheckArgs),
    /// Show an image's manifests, config and layers.
    Inspect(InspectArgs),
    /// List the files of an image, per layer, with their fate.
    Files(FilesArgs),
    /// List the licenses of the packages in an image.
    Licenses(LicensesArgs),
    /// Render a preset's `/x1` overlay and runtime config.
    Render(RenderArgs),
    /// Build a runtime image from a base image and a rendered overlay.
    Build(BuildArgs),
    /// List the rules with their default severity.
    Rules(RulesArgs),
    /// Explain a rule: what it checks, why, how to fix it.
    Explain(ExplainArgs),
    /// Promote a gated registry digest to `:vN` (same manifest bytes), with a promotion record.
    Promote(PromoteArgs),
    /// Show the gate reports attached to a registry digest; exit 0 only if one passes by the current rules.
    Verify(VerifyArgs),
}

impl Command {
    /// Run the parsed command; returns the process exit code.
    pub fn run(&self, out: &mut dyn std::io::Write) -> crate::error::Result<u8> {
        use crate::commands::{
            build, check, explain, files, inspect, licenses, promote, render, rules, verify,
        };
        match self {
            Command::Check(a) => check::run(a, out),
            Command::Inspect(a) => inspect::run(a, out),
            Command::Files(a) => files::run(a, out),
            Command::Licenses(a) => licenses::run(a, out),
            Command::Render(a) => render::run(a, out),
            Command::Build(a) => build::run(a, out),
            Command::Rules(a) => rules::run(a, out),
            Command::Explain(a) => explain::run(a, out),
            Command::Promote(a) => promote::run(a, out),
            Command::Verify(a) => verify::run(a, out),
        }
    }
}

/// The flags that stand on their own in first position.
const FIRST_FLAGS: &[&str] = &["-h", "--help", "-V", "--version"];

/// Whether `word` in first position is a subcommand (read from the clap definition, so a new
/// subcommand is known without a list to update) or help/version.
fn is_first_word(word: &str) -> bool {
    use clap::CommandFactory as _;
    FIRST_FLAGS.contains(&word)
        || word == "help"
        || Cli::command()
            .get_subcommands()
            .any(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
}

/// Insert `check` after the program name unless the first argument is a subcommand or help/version.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut v: Vec<OsString> = args.into_iter().collect();
    if let Some(first) = v.get(1) {
        let known = first.to_str().is_some_and(is_first_word);
        if !known {
            v.insert(1, OsString::from("check"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(normalize_args(args.iter().map(OsString::from)))
    }

    #[test]
    fn bare_image_means_check() {
        let Command::Check(c) = parse(&["x1-validate", "img.tar", "--deny", "base-os"])
            .expect("ok")
            .command
        else {
            panic!("not check");
        };
        assert_eq!(c.image, "img.tar");
        assert_eq!(c.deny, vec![crate::rules::RuleId::BaseOs]);
        let Command::Check(c) = parse(&["x1-validate", "--preset", "codex", "x"])
            .expect("ok")
            .command
        else {
            panic!("not check");
        };
        assert_eq!(c.preset.as_deref(), Some("codex"));
        assert!(matches!(
            parse(&["x1-validate", "rules"]).expect("ok").command,
            Command::Rules(_)
        ));
        assert!(parse(&["x1-validate", "img", "--format", "xml"]).is_err());
    }

    #[test]
    fn flags_parse() {
        let Command::Check(c) = parse(&[
            "x1-validate",
            "check",
            "i",
            "-o",
            "r.sarif",
            "--format",
            "sarif",
            "--exec",
            "never",
            "--fail-on",
            "warning",
            "--allow",
            "base-os",
            "--allow",
            "image-user",
            "--ref",
            "x1agent/runtime-opencode:edge",
        ])
        .expect("ok")
        .command
        else {
            panic!("not check");
        };
        assert_eq!(c.allow.len(), 2);
        assert_eq!(c.output.as_deref(), Some(std::path::Path::new("r.sarif")));
        assert_eq!(c.exec, crate::checks::ExecMode::Never);
    }
    #[test]
    fn every_subcommand_is_a_first_word() {
        use clap::CommandFactory as _;
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        assert!(names.len() >= 10, "{names:?}");
        for name in names {
            let v = normalize_args(["x1-validate", name.as_str(), "arg"].map(OsString::from));
            assert_eq!(
                v[1],
                OsString::from(&name),
                "`{name}` would be read as `check {name}`"
            );
        }
        for first in ["help", "--help", "-V"] {
            assert_eq!(normalize_args(["x", first].map(OsString::from)).len(), 2);
        }
        assert_eq!(
            normalize_args(["x", "image.tar"].map(OsString::from))[1],
            OsString::from("check")
        );
    }
}
