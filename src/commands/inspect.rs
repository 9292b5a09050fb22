//! `x1-validate inspect`: platform(s), manifest and config digests, labels, env, user, entrypoint,
//! history, and per layer its digest, `diff_id`, media type, detected compression, sizes and entry count.
//! Every layer is streamed and verified to get those figures. JSON shape: `docs/json-output.md`.

use std::io::Write;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::image::layer::NoScan;
use crate::image::{CapturePolicy, Image, LayerListing, Opened, PlatformChoice, open, read_layers};
use crate::report::{ImageText as T, mask, mask_json};

/// Output format of `inspect` and `files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ListFormat {
    #[default]
    Human,
    Json,
}

/// Arguments of `x1-validate inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The image: OCI layout dir, OCI archive, docker-archive tar, or `-` for stdin; `PATH:TAG` or
    /// `PATH@sha256:…` picks one image of several.
    pub image: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Human)]
    pub format: ListFormat,
    /// Only this platform (`os/arch[/variant]`, or `all`).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]|all", default_value = "all")]
    pub platform: PlatformChoice,
}

/// Open the input and stream every layer of every selected image (verifying all of it).
pub fn load(image: &str, platform: &PlatformChoice) -> Result<(Opened, Vec<Vec<LayerListing>>)> {
    let opened = open(image, platform.platform())?;
    let mut all = Vec::new();
    for img in &opened.images {
        let outs = read_layers(&opened.source, img, &CapturePolicy::none(), |_| NoScan)?;
        all.push(outs.into_iter().map(|o| o.listing).collect());
    }
    Ok((opened, all))
}

/// Run the command; returns the exit code.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<u8> {
    let (opened, listings) = load(&args.image, &args.platform)?;
    let w = |e: std::io::Error| Error::output("<stdout>", e);
    match args.format {
        ListFormat::Json => {
            let mut doc = to_json(&opened, &listings);
            mask_json(&mut doc);
            serde_json::to_writer_pretty(&mut *out, &doc).map_err(|e| w(e.into()))?;
            writeln!(out).map_err(w)?;
        }
        ListFormat::Human => human(&opened, &listings, out).map_err(w)?,
    }
    Ok(0)
}

/// The `inspect --format json` document.
pub fn to_json(opened: &Opened, listings: &[Vec<LayerListing>]) -> Value {
    let images: Vec<Value> = opened
        .images
        .iter()
        .zip(listings)
        .map(|(img, ls)| image_json(img, ls))
        .collect();
    json!({
        "input_kind": opened.kind,
        "images": images,
        "attestations": opened.attestations.iter().map(|a| json!({
            "digest": a.descriptor.digest, "media_type": a.descriptor.media_type,
            "size": a.descriptor.size, "subject": a.subject,
        })).collect::<Vec<_>>(),
        "notes": opened.notes,
    })
}

fn image_json(img: &Image, ls: &[LayerListing]) -> Value {
    let c = &img.config;
    json!({
        "platform": img.platform.to_string(),
        "ref_names": img.ref_names,
        "manifest": {"digest": img.manifest.digest, "media_type": img.manifest.media_type, "size": img.manifest.size, "synthesised": img.manifest_synthesised},
        "config": {"digest": img.config_descriptor.digest, "media_type": img.config_descriptor.media_type, "size": img.config_descriptor.size},
        "user": c.user,
        "env": c.env.iter().map(|e| redact_kv(e)).collect::<Vec<_>>(),
        "entrypoint": c.entrypoint,
        "cmd": c.cmd,
        "working_dir": c.working_dir,
        "labels": c.labels.iter().map(|(k, v)| (k.clone(), json!(redact_value(k, v)))).collect::<serde_json::Map<_, _>>(),
        "history": c.history.iter().map(|h| json!({
            "created": h.created, "created_by": h.created_by.as_deref().map(redact_words),
            "comment": h.comment, "empty_layer": h.empty_layer,
        })).collect::<Vec<_>>(),
        "diff_ids": c.diff_ids,
        "layers": img.layers.iter().zip(ls).map(|(l, x)| json!({
            "index": l.index,
            "digest": l.descriptor.digest,
            "diff_id": l.diff_id,
            "media_type": l.descriptor.media_type,
            "compression": x.compression,
            "compressed_size": x.compressed_size,
            "uncompressed_size": x.uncompressed_size,
            "entries": x.entries.len(),
            "whiteouts": x.whiteouts.len() + x.opaque_dirs.len(),
            "created_by": l.history.as_ref().and_then(|h| h.created_by.as_deref()).map(redact_words),
        })).collect::<Vec<_>>(),
    })
}

/// User, entrypoint, cmd, workdir, env and labels, masked.
fn config_lines(c: &crate::image::ImageConfig, out: &mut dyn Write) -> std::io::Result<()> {
    let user = if c.user.is_empty() {
        "(unset: root)"
    } else {
        &c.user
    };
    writeln!(out, "user        {}", T(user))?;
    let argv = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
    writeln!(out, "entrypoint  {}", T(&argv(&c.entrypoint)))?;
    writeln!(out, "cmd         {}", T(&argv(&c.cmd)))?;
    writeln!(out, "workdir     {}", T(&c.working_dir))?;
    for e in &c.env {
        writeln!(out, "env         {}", T(&redact_kv(e)))?;
    }
    for (k, v) in &c.labels {
        writeln!(
            out,
            "label       {}",
            T(&format!("{k}={}", redact_value(k, v)))
        )?;
    }
    Ok(())
}

fn human(
    opened: &Opened,
    listings: &[Vec<LayerListing>],
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "input       {}", opened.kind)?;
    let n = opened.images.len();
    for (i, (img, ls)) in opened.images.iter().zip(listings).enumerate() {
        writeln!(
            out,
            "\nimage {}/{n}   {}",
            i + 1,
            T(&img.platform.to_string())
        )?;
        image_header(img, out)?;
        config_lines(&img.config, out)?;
        history_lines(&img.config, out)?;
        layer_table(img, ls, out)?;
    }
    if !opened.attestations.is_empty() {
        writeln!(
            out,
            "\nattestations / artifacts (scanned for secrets, not platforms)"
        )?;
        for a in &opened.attestations {
            writeln!(
                out,
                "  {}  {}",
                a.descriptor.digest,
                T(&a.descriptor.media_type)
            )?;
        }
    }
    for note in &opened.notes {
        writeln!(out, "note: {}", T(note))?;
    }
    Ok(())
}

/// An image's references, manifest and config digests.
fn image_header(img: &Image, out: &mut dyn Write) -> std::io::Result<()> {
    if !img.ref_names.is_empty() {
        writeln!(out, "refs        {}", T(&img.ref_names.join(", ")))?;
    }
    writeln!(
        out,
        "manifest    {} ({}){}",
        img.manifest.digest,
        T(&img.manifest.media_type),
        if img.manifest_synthesised {
            " — synthesised: the input holds no manifest; no registry shows this digest"
        } else {
            ""
        }
    )?;
    writeln!(out, "config      {}", img.config_descriptor.digest)
}

/// The config's history, one line a step (credentials redacted, masked, cut to one line).
fn history_lines(c: &crate::image::ImageConfig, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "history")?;
    for (hi, h) in c.history.iter().enumerate() {
        let by = h
            .created_by
            .as_deref()
            .map(redact_words)
            .unwrap_or_default();
        let empty = if h.empty_layer { " (empty layer)" } else { "" };
        writeln!(out, "  {hi:>3}  {}{empty}", one_line(&mask(&by), 90))?;
    }
    Ok(())
}

/// One row a layer: digests, compression, sizes, entry count, media type.
fn layer_table(img: &Image, ls: &[LayerListing], out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(out, "layers")?;
    writeln!(
        out,
        "    #  digest        diff_id       compression  compressed  uncompressed  entries  media type"
    )?;
    for (l, x) in img.layers.iter().zip(ls) {
        let comp = x.compression.map_or("-", |c| match c {
            crate::image::Compression::None => "none",
            crate::image::Compression::Gzip => "gzip",
            crate::image::Compression::Zstd => "zstd",
        });
        writeln!(
            out,
            "  {:>3}  {}  {}  {comp:<11}  {:>10}  {:>12}  {:>7}  {}",
            l.index,
            l.descriptor.digest.short(),
            l.diff_id.short(),
            x.compressed_size,
            x.uncompressed_size,
            x.entries.len(),
            T(&l.descriptor.media_type)
        )?;
    }
    Ok(())
}

fn one_line(s: &str, max: usize) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        format!("{}…", s.chars().take(max).collect::<String>())
    } else {
        s
    }
}

/// Key names whose values are never printed in full.
const SECRET_KEYS: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
];
/// The secret patterns of the embedded rule set (`rules/secrets.toml`), compiled once: the one source of
/// what a credential value looks like, shared with the gate's scan.
fn patterns() -> &'static crate::scan::Patterns {
    static PATTERNS: std::sync::OnceLock<crate::scan::Patterns> = std::sync::OnceLock::new();
    PATTERNS.get_or_init(|| {
        crate::rules::RuleSet::embedded()
            .expect("the embedded rule files are valid (tested by the registry tests)")
            .secrets
    })
}

/// Mask a value that looks like a credential: a short prefix, its length, never the whole value.
pub fn redact_value(key: &str, value: &str) -> String {
    let k = key.to_ascii_uppercase();
    let by_key = SECRET_KEYS.iter().any(|s| k.contains(s)) && !value.is_empty();
    let by_value =
        !value.is_empty() && !crate::scan::scan_value(patterns(), value.as_bytes()).is_empty();
    if by_key || by_value {
        let head: String = value.chars().take(4).collect();
        format!("{head}… (redacted, {} chars)", value.chars().count())
    } else {
        value.to_string()
    }
}

/// `KEY=VALUE` with the value masked when it looks like a credential.
pub fn redact_kv(kv: &str) -> String {
    match kv.split_once('=') {
        Some((k, v)) => format!("{k}={}", redact_value(k, v)),
        None => kv.to_string(),
    }
}

/// Mask every `KEY=VALUE` word (build args in `RUN |N K=V …`) and bare credential-looking words.
pub fn redact_words(s: &str) -> String {
    s.split(' ')
        .map(|w| match w.split_once('=') {
            Some((k, v))
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                format!("{k}={}", redact_value(k, v))
            }
            _ => redact_value("", w),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;

    use super::*;

    #[test]
    fn redacts_credentials() {
        let v = format!("sk-ant-api03-{}", "x".repeat(40));
        let r = redact_kv(&format!("ANTHROPIC_API_KEY={v}"));
        assert!(
            !r.contains(&v) && r.starts_with("ANTHROPIC_API_KEY=sk-a"),
            "{r}"
        );
        assert_eq!(redact_kv("PATH=/usr/bin"), "PATH=/usr/bin");
        // by value, through the gate's own patterns, whatever the key is called
        let body: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(35)
            .map(char::from)
            .collect();
        let key = format!("ghp_{body}7"); // a real prefix, a random body built now (never committed)
        let r = redact_kv(&format!("NOTE={key}"));
        assert!(!r.contains(&key) && r.starts_with("NOTE=ghp_"), "{r}");
        let w = redact_words("RUN |1 GH_TOKEN=abcdef1234 /bin/sh -c make");
        assert!(
            !w.contains("abcdef1234") && w.contains("/bin/sh -c make"),
            "{w}"
        );
    }
}
