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

/// `123`, `64K`, `16GiB`, `1T` → bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 16GiB, 512M, 1000000)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

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

/// The subcommand names (and the flags that stand on their own).
const FIRST_WORDS: &[&str] = &[
    "check",
    "inspect",
    "files",
    "licenses",
    "render",
    "build",
    "rules",
    "explain",
    "promote",
    "verify",
    "help",
    "-h",
    "--help",
    "-V",
    "--version",
];

/// Insert `check` after the program name unless the first argument is a subcommand or help/version.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut v: Vec<OsString> = args.into_iter().collect();
    if let Some(first) = v.get(1) {
        let known = first.to_str().is_some_and(|s| FIRST_WORDS.contains(&s));
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
        assert_eq!(c.deny, vec!["base-os".to_string()]);
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
            "a",
            "--allow",
            "b",
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
}
