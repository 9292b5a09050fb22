//! `x1-validate build`: append a rendered `/x1` overlay to a base image and write the result with no
//! container engine, reproducibly (see [`crate::build`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::build::{self, BuildSpec, OutFormat};
use crate::error::{Error, Result};

/// Arguments of `x1-validate build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// The base image (OCI layout dir, OCI archive, docker-archive tar; `:TAG`/`@sha256:` select).
    #[arg(long)]
    pub base: String,
    /// The runtime preset; sets `org.x1agent.runtime`.
    #[arg(long)]
    pub preset: String,
    /// The rendered overlay directory (`x1-validate render --out DIR`); its contents go under `/x1`.
    #[arg(long)]
    pub overlay: PathBuf,
    /// Where to write the image (must not exist, or be an empty directory for `oci`).
    #[arg(long)]
    pub out: PathBuf,
    /// Output shape.
    #[arg(long, value_enum, default_value_t)]
    pub format: OutFormat,
    /// Reference to record (`x1agent/runtime-opencode:edge`).
    #[arg(long)]
    pub tag: Option<String>,
    /// Platform to take from a multi-platform base (`linux/amd64`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<crate::image::Platform>,
    /// Extra label `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Env entry `KEY=VALUE` set over the base's (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Image user.
    #[arg(long, default_value = "agent")]
    pub user: String,
    /// Timestamp for mtimes and `created`; defaults to `SOURCE_DATE_EPOCH`, else 0.
    #[arg(long)]
    pub epoch: Option<u64>,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(Error::Usage(format!("--{flag} {kv:?}: expected KEY=VALUE"))),
        })
        .collect()
}

/// Run the command; returns the exit code.
pub fn run(args: &BuildArgs, out: &mut dyn Write) -> Result<u8> {
    let epoch = match args.epoch {
        Some(e) => e,
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v.trim().parse().map_err(|_| {
                Error::Usage(format!(
                    "SOURCE_DATE_EPOCH={v:?} is not a whole number of seconds"
                ))
            })?,
            Err(_) => 0,
        },
    };
    let mut labels = key_values("label", &args.labels)?;
    labels.insert("org.x1agent.runtime".into(), args.preset.clone());
    let given = key_values("env", &args.env)?;
    // What makes the preset's runtime config the one in effect: its Env switches (unless given) and the
    // managed config as a link to the rendered file.
    let mut env = args.env.clone();
    let mut links = Vec::new();
    let rules = crate::rules::RuleSet::embedded()?;
    if let Some(rc) = rules
        .presets
        .get(&args.preset)
        .and_then(|p| p.runtime_config.as_ref())
        && let Some(eff) = &rc.effective
    {
        for (name, accepted) in &eff.env {
            if let (false, Some(v)) = (given.contains_key(name), accepted.first()) {
                env.push(format!("{name}={v}"));
            }
        }
        if let Some(managed) = eff.managed.first() {
            links.push((managed.clone(), rc.path.clone()));
        }
    }
    let spec = BuildSpec {
        base: args.base.clone(),
        platform: args.platform.clone(),
        overlay: args.overlay.clone(),
        labels,
        user: Some(args.user.clone()),
        entrypoint: Some(vec!["/x1/bin/entrypoint".into()]),
        env,
        links,
        epoch,
        tag: args.tag.clone(),
        format: args.format,
        out: args.out.clone(),
    };
    let built = build::build(&spec)?;
    let json = serde_json::to_string_pretty(&built).map_err(|e| Error::Usage(e.to_string()))?;
    writeln!(out, "{json}").map_err(|e| Error::output("stdout", e))?;
    Ok(0)
}
