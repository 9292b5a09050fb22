//! `docker save` archives read through `manifest.json`: the legacy layout (`<id>/layer.tar`, possibly a
//! symlink to another layer's), Docker 25+ when `index.json` is unusable (`"manifests": null`), and
//! containerd-store archives whose `Layers` point at compressed `blobs/sha256/…`.
//!
//! Legacy archives have no manifest: the config is read by path (its digest is computed, and a file name
//! that is not that digest is noted), an uncompressed layer's digest is its `diff_id`, and a synthetic
//! Docker v2 manifest is made so every image has a manifest digest. That digest is flagged
//! ([`Image::manifest_synthesised`]): reports never present it as one a registry shows. Its layer
//! media types follow the bytes' compression (gzip layers get the `.gzip` type).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::json::{self, Doc};
use super::walk::{JSON_LIMIT, config_platform, layer_infos, parse_config};
use super::{Descriptor, Digest, Image, Source, media};
use crate::error::{Error, Result};

/// Images described by `manifest.json`, with notes on structural oddities.
pub fn images(source: &mut Source, manifest_json: &[u8]) -> Result<(Vec<Image>, Vec<String>)> {
    let doc = json::parse(manifest_json, "manifest.json", Doc::DockerManifest)?;
    // `docker load` of old archives reads `repositories` too: it must not be ambiguous either.
    if let Some(repos) = source.member_bytes("repositories", JSON_LIMIT)? {
        json::parse(&repos, "repositories", Doc::Repositories)?;
    }
    let list = doc
        .as_array()
        .ok_or_else(|| Error::corrupt("manifest.json", "not a JSON array"))?;
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        out.push(one(source, i, entry, &mut notes)?);
    }
    Ok((out, notes))
}

fn hex_of_blob_path(p: &str) -> Option<Digest> {
    let rest = p.trim_start_matches("./").strip_prefix("blobs/")?;
    let (alg, hex) = rest.split_once('/')?;
    Digest::parse(&format!("{alg}:{hex}")).ok()
}

/// A digest spelled by a member's name: `blobs/sha256/<hex>`, `<hex>.tar.gz`, `sha256:<hex>`, `<hex>.json`.
fn digest_of_name(p: &str) -> Option<Digest> {
    if let Some(d) = hex_of_blob_path(p) {
        return Some(d);
    }
    let base = p.rsplit('/').next()?;
    let stem = base.strip_prefix("sha256:").unwrap_or(base);
    let stem = stem.split('.').next()?;
    Digest::parse(&format!("sha256:{stem}")).ok()
}

fn one(source: &mut Source, i: usize, entry: &Value, notes: &mut Vec<String>) -> Result<Image> {
    let where_ = format!("manifest.json[{i}]");
    let cfg_path = entry
        .get("Config")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::corrupt(&where_, "no `Config` path"))?;
    let cfg_bytes = source.member_bytes(cfg_path, JSON_LIMIT)?.ok_or_else(|| {
        Error::corrupt(
            &where_,
            format!("config {cfg_path:?} is missing from the archive"),
        )
    })?;
    let cfg_digest = Digest::sha256_of(&cfg_bytes);
    let named = digest_of_name(cfg_path);
    if let Some(n) = named
        && n != cfg_digest
    {
        if cfg_path.starts_with("blobs/") {
            return Err(Error::corrupt(
                format!("config {cfg_path}"),
                format!("content digest is {cfg_digest}, but its name says {n}"),
            ));
        }
        notes.push(format!(
            "image {i}: config file name {cfg_path} does not match its sha256 ({cfg_digest})"
        ));
    }
    source.register(&cfg_digest, cfg_path);
    let config = parse_config(&cfg_bytes, &format!("config {cfg_path}"))?;
    let layer_paths: Vec<&str> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::corrupt(&where_, "no `Layers` list"))?
        .iter()
        .map(|v| {
            v.as_str()
                .ok_or_else(|| Error::corrupt(&where_, "a `Layers` item is not a string"))
        })
        .collect::<Result<_>>()?;
    let descs = layer_paths
        .iter()
        .enumerate()
        .map(|(li, p)| layer_descriptor(source, &where_, li, p, &config))
        .collect::<Result<Vec<_>>>()?;
    let config_descriptor = Descriptor {
        media_type: media::DOCKER_CONFIG.into(),
        digest: cfg_digest,
        size: cfg_bytes.len() as u64,
        annotations: BTreeMap::new(),
        platform: None,
    };
    let manifest = synthetic_manifest(&config_descriptor, &descs);
    let layers = layer_infos(&where_, descs, &config)?;
    let ref_names = entry
        .get("RepoTags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Image {
        platform: config_platform(&config),
        manifest,
        config_descriptor,
        config,
        layers,
        ref_names,
        annotations: BTreeMap::new(),
        manifest_synthesised: true,
    })
}

/// The descriptor of layer `li` stored at member `p`.
fn layer_descriptor(
    source: &mut Source,
    where_: &str,
    li: usize,
    p: &str,
    config: &super::ImageConfig,
) -> Result<Descriptor> {
    let size = source.member_size(p).ok_or_else(|| {
        Error::corrupt(
            format!("{where_} layer {li}"),
            format!("blob {p:?} is missing from the archive"),
        )
    })?;
    // The synthetic manifest names the compression the bytes have (crane tarballs store gzip layers).
    let head = source.member_head(p, 512)?;
    let compression = super::stream::sniff(&head).ok();
    let compressed = compression.is_some_and(|c| c != super::Compression::None)
        || compression.is_none() && !head.is_empty();
    let digest = if let Some(d) = digest_of_name(p) {
        d
    } else {
        let d = config.diff_ids.get(li).cloned().ok_or_else(|| {
            Error::corrupt(
                where_,
                "the archive lists more layers than the config has diff_ids",
            )
        })?;
        // `docker load` accepts a compressed layer.tar; its stored digest is then unknown, so it is
        // computed (the diff_id is still verified while streaming).
        if compressed {
            source.member_digest(p)?.unwrap_or(d)
        } else {
            d
        }
    };
    let oci = p.trim_start_matches("./").starts_with("blobs/");
    let media_type = media::layer_type(oci, compression.unwrap_or(super::Compression::None));
    source.register(&digest, p);
    Ok(Descriptor {
        media_type: media_type.to_string(),
        digest,
        size,
        annotations: BTreeMap::new(),
        platform: None,
    })
}

/// The Docker v2 manifest `docker push` would write for this config and these layers.
fn synthetic_manifest(config: &Descriptor, layers: &[Descriptor]) -> Descriptor {
    let d = |x: &Descriptor| json!({"mediaType": x.media_type, "size": x.size, "digest": x.digest.to_string()});
    let doc = json!({
        "schemaVersion": 2,
        "mediaType": media::DOCKER_MANIFEST,
        "config": d(config),
        "layers": layers.iter().map(d).collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&doc).expect("a JSON value serialises");
    Descriptor {
        media_type: media::DOCKER_MANIFEST.into(),
        digest: Digest::sha256_of(&bytes),
        size: bytes.len() as u64,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// Whether bytes of `manifest.json` plausibly describe images (used to prefer it over a broken index).
pub fn usable(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.as_array().map(|a| !a.is_empty()))
        .unwrap_or(false)
}
