//! `x1-validate build`: assemble a runtime image with no container engine, reproducibly. The base image's
//! layers are copied verbatim (every byte verified), the rendered `/x1` overlay is appended as one
//! deterministic layer ([`layer::layer_from_dir`]), and a new config and manifest are written as canonical
//! JSON (sorted keys, no insignificant whitespace). Same inputs → byte-identical output.

pub mod layer;
mod write;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

pub use write::OutFormat;

use crate::error::{Error, Result};
use crate::image::{self, Digest, Platform};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The base image (any input `image::open` accepts).
    pub base: String,
    pub platform: Option<Platform>,
    /// The rendered overlay directory; its contents go under `/x1`.
    pub overlay: PathBuf,
    /// Labels to set (merged over the base's).
    pub labels: BTreeMap<String, String>,
    /// `User` (None keeps the base's).
    pub user: Option<String>,
    /// `Entrypoint` (None keeps the base's). Setting it clears `Cmd`, as a Dockerfile ENTRYPOINT does.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` env entries set over the base's (same key replaces).
    pub env: Vec<String>,
    /// Absolute symlinks `(path, target)` added to the overlay layer (the managed config link).
    pub links: Vec<(String, String)>,
    /// Timestamp for file mtimes, `created` and history (`SOURCE_DATE_EPOCH`, else 0).
    pub epoch: u64,
    /// Ref name written into the output (`x1agent/runtime-opencode:edge`).
    pub tag: Option<String>,
    pub format: OutFormat,
    pub out: PathBuf,
}

/// What was built.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Built {
    pub manifest_digest: Digest,
    pub config_digest: Digest,
    pub overlay_layer_digest: Digest,
    pub overlay_diff_id: Digest,
    pub out: PathBuf,
}

/// RFC 3339 UTC for a Unix time (no external time crate needed for whole seconds).
pub fn rfc3339(epoch: u64) -> String {
    let days = i64::try_from(epoch / 86_400).expect("u64 seconds / 86400 fits in i64");
    let secs = epoch % 86_400;
    // civil-from-days (Howard Hinnant), valid for the whole u64 range we accept.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Build the image described by `spec`.
pub fn build(spec: &BuildSpec) -> Result<Built> {
    let opened = image::open(&spec.base, spec.platform.as_ref())?;
    let base = match opened.images.as_slice() {
        [one] => one,
        [] => {
            return Err(Error::Usage(format!(
                "{}: holds no image for the requested platform",
                spec.base
            )));
        }
        many => {
            let list: Vec<String> = many.iter().map(|i| i.platform.to_string()).collect();
            return Err(Error::Usage(format!(
                "{}: holds {} platform images ({}); pick one with --platform",
                spec.base,
                many.len(),
                list.join(", ")
            )));
        }
    };
    let overlay = layer::layer_from_dir_with_links(&spec.overlay, "x1", &spec.links, spec.epoch)?;

    // Base layers: verbatim blobs; their OCI media type is sniffed from the bytes as they are written.
    let mut layers = Vec::new();
    for l in &base.layers {
        layers.push(write::BlobSource::Base(l.descriptor.clone()));
    }
    layers.push(write::BlobSource::Built(&overlay));

    let config = new_config(&base.config.raw, spec, &overlay.diff_id)?;
    let config_bytes = canonical(&config);
    let ctx = write::Assembly {
        opened: &opened,
        layers: &layers,
        config: &config_bytes,
        tag: spec.tag.as_deref(),
        epoch: spec.epoch,
    };
    let (manifest_digest, config_digest) = write::write_out(&ctx, spec.format, &spec.out)?;
    Ok(Built {
        manifest_digest,
        config_digest,
        overlay_layer_digest: overlay.digest.clone(),
        overlay_diff_id: overlay.diff_id.clone(),
        out: spec.out.clone(),
    })
}

/// Serialise JSON canonically: `serde_json::Value` maps are sorted (no `preserve_order`), compact.
pub fn canonical(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a Value always serialises")
}

fn new_config(base: &Value, spec: &BuildSpec, diff_id: &Digest) -> Result<Value> {
    let mut cfg = base.clone();
    let Some(obj) = cfg.as_object_mut() else {
        return Err(Error::corrupt("base image config", "is not a JSON object"));
    };
    let created = rfc3339(spec.epoch);
    obj.insert("created".into(), json!(created));
    let inner = obj.entry("config").or_insert_with(|| json!({}));
    if !inner.is_object() {
        *inner = json!({});
    }
    let c = inner.as_object_mut().expect("made an object above");
    if let Some(user) = &spec.user {
        c.insert("User".into(), json!(user));
    }
    if let Some(ep) = &spec.entrypoint {
        c.insert("Entrypoint".into(), json!(ep));
        c.insert("Cmd".into(), Value::Null);
    }
    let mut env: Vec<String> = c
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for kv in &spec.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    c.insert("Env".into(), json!(env));
    let mut labels: BTreeMap<String, String> = c
        .get("Labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    labels.extend(spec.labels.clone());
    c.insert("Labels".into(), json!(labels));

    let rootfs = obj
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
    match rootfs.get_mut("diff_ids").and_then(Value::as_array_mut) {
        Some(ids) => ids.push(json!(diff_id.to_string())),
        None => {
            return Err(Error::corrupt(
                "base image config",
                "rootfs.diff_ids is missing",
            ));
        }
    }
    let history = obj.entry("history").or_insert_with(|| json!([]));
    if let Some(h) = history.as_array_mut() {
        h.push(json!({
            "created": created,
            "created_by": "x1-validate build: COPY rendered /x1 overlay",
            "comment": format!("x1-validate {}", env!("CARGO_PKG_VERSION")),
        }));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_points() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_763_683_199), "2025-11-20T23:59:59Z");
    }
}
