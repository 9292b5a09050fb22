//! Walking an OCI `index.json`: nested indexes and Docker manifest lists, media-type sniffing for
//! descriptors that do not say what they are, image vs artifact vs attestation, and config parsing.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::json::{self, Doc};
use super::{
    Attestation, Descriptor, Digest, HistoryEntry, Image, ImageConfig, LayerInfo, Platform,
};
use super::{Source, media};
use crate::error::{Error, Result};

/// Largest JSON document (index, manifest, config) read into memory.
pub const JSON_LIMIT: u64 = 16 * 1024 * 1024;
/// Deepest index nesting followed (real images: index → manifest, or index → index → manifest).
pub const MAX_DEPTH: usize = 8;
/// Most documents (indexes, manifests) visited in one input, after deduplication by digest per top-level
/// entry. Real inputs have a handful per image; a containerd store export with hundreds of images stays
/// well below.
pub const MAX_DOCUMENTS: usize = 4096;
/// Most bytes of JSON (indexes, manifests, configs) read from one input: bounds the memory the parsed
/// documents and the images built from them can take (real configs are kilobytes).
pub const MAX_JSON_BYTES: u64 = 128 * 1024 * 1024;

/// What a walk found.
#[derive(Debug, Default)]
pub struct Walk {
    /// (top-level entry index, image).
    pub images: Vec<(usize, Image)>,
    pub attestations: Vec<Attestation>,
    pub annotations: Vec<(String, String, String)>,
    /// Things that are not fatal but explain an empty result (missing blobs of unknown type …).
    pub notes: Vec<String>,
    /// Per top-level entry: its descriptor digest and ref names.
    pub tops: Vec<(Digest, Vec<String>)>,
}

/// What one input's graph has cost so far.
#[derive(Default)]
struct Budget {
    /// Documents visited so far (against [`MAX_DOCUMENTS`]).
    documents: usize,
    /// JSON bytes read so far (against [`MAX_JSON_BYTES`]).
    json_bytes: u64,
}

impl Budget {
    /// Count one more document of `len` bytes, refusing the input beyond the graph limits.
    fn count(&mut self, what: &str, len: u64) -> Result<()> {
        self.documents += 1;
        self.json_bytes += len;
        if self.documents > MAX_DOCUMENTS {
            return Err(Error::corrupt(
                what,
                format!(
                    "the image graph has more than {MAX_DOCUMENTS} documents (the limit on \
                     indexes and manifests per input)"
                ),
            ));
        }
        if self.json_bytes > MAX_JSON_BYTES {
            return Err(Error::corrupt(
                what,
                format!(
                    "the image's JSON documents add up to more than {MAX_JSON_BYTES} bytes (the \
                     limit per input)"
                ),
            ));
        }
        Ok(())
    }
}

/// Where a visit is in the graph of one top-level entry.
struct Path<'a> {
    top: usize,
    refs: &'a [String],
    /// Digests of the indexes above (a cycle check).
    ancestors: Vec<Digest>,
    /// Digests already visited under this top-level entry (deduplication).
    seen: HashSet<Digest>,
    budget: &'a mut Budget,
}

/// Parse a descriptor object; `where_` names it in errors.
pub fn descriptor(v: &Value, where_: &str) -> Result<Descriptor> {
    let bad = |d: &str| Error::corrupt(where_, d.to_string());
    let o = v
        .as_object()
        .ok_or_else(|| bad("descriptor is not a JSON object"))?;
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("descriptor has no digest"))?;
    let digest = Digest::parse(digest).map_err(|_| bad(&format!("malformed digest {digest:?}")))?;
    let size = o
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("descriptor has no valid size"))?;
    let annotations = o
        .get("annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let platform = o.get("platform").and_then(platform);
    Ok(Descriptor {
        media_type: o
            .get("mediaType")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        digest,
        size,
        annotations,
        platform,
    })
}

fn platform(v: &Value) -> Option<Platform> {
    Some(Platform {
        os: v.get("os")?.as_str()?.to_string(),
        architecture: v.get("architecture")?.as_str()?.to_string(),
        variant: v
            .get("variant")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
    })
}

/// Parse an index or manifest the way the runtimes read it, naming the document in errors
/// (ambiguous keys, malformed or too deeply nested JSON are corrupt input).
pub fn parse_json(bytes: &[u8], what: &str) -> Result<Value> {
    json::parse(bytes, what, Doc::Descriptors)
}

fn blob_name(d: &Descriptor) -> String {
    format!("blob {}", d.digest)
}

/// Walk the descriptors of a top-level index (`index.json`).
pub fn walk_top(source: &Source, index: &Value, walk: &mut Walk) -> Result<()> {
    let list = match index.get("manifests") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(Error::corrupt("index.json", "`manifests` is not an array")),
    };
    // The index's own annotations are metadata that ships too (secret-in-metadata scans them).
    for (k, val) in string_map(index.get("annotations")) {
        walk.annotations.push(("index.json".into(), k, val));
    }
    let mut budget = Budget::default();
    for (i, v) in list.iter().enumerate() {
        let where_ = format!("index.json manifests[{i}]");
        let d = descriptor(v, &where_)?;
        for (k, val) in &d.annotations {
            walk.annotations
                .push((where_.clone(), k.clone(), val.clone()));
        }
        let refs: Vec<String> = [
            "org.opencontainers.image.ref.name",
            "io.containerd.image.name",
        ]
        .iter()
        .filter_map(|k| d.annotations.get(*k).cloned())
        .collect();
        walk.tops.push((d.digest.clone(), refs.clone()));
        let mut path = Path {
            top: i,
            refs: &refs,
            ancestors: Vec::new(),
            seen: HashSet::new(),
            budget: &mut budget,
        };
        visit(source, &d, &mut path, walk)?;
    }
    Ok(())
}

/// Visit one descriptor: index → recurse, manifest → image/artifact/attestation, other → sniff or note.
///
/// Each digest is visited once per top-level entry (an index repeating a child is read once), a digest
/// among its own ancestors is a cycle, and depth and document count are limited: all exit 3.
fn visit(source: &Source, d: &Descriptor, path: &mut Path, walk: &mut Walk) -> Result<()> {
    let depth = path.ancestors.len();
    if path.ancestors.contains(&d.digest) {
        return Err(Error::corrupt(
            blob_name(d),
            "the image graph has a cycle: this index references itself (directly or through \
             another index)",
        ));
    }
    if depth > MAX_DEPTH {
        return Err(Error::corrupt(
            blob_name(d),
            format!("indexes nest deeper than {MAX_DEPTH} levels (the limit on index depth)"),
        ));
    }
    if !path.seen.insert(d.digest.clone()) {
        return Ok(());
    }
    let mt = d.media_type.as_str();
    if is_attestation(d) {
        walk.attestations.push(Attestation {
            descriptor: d.clone(),
            subject: d.annotations.get("vnd.docker.reference.digest").cloned(),
        });
        return Ok(());
    }
    let known = media::is_index(mt) || media::is_manifest(mt);
    if !known && !source.has_blob(d) {
        walk.notes.push(format!(
            "missing blob {} (media type {mt:?}) referenced by the index",
            d.digest
        ));
        return Ok(());
    }
    if !known && (d.size > JSON_LIMIT || !mt.is_empty() && !mt.contains("json")) {
        walk.notes
            .push(format!("skipped {} with media type {mt:?}", d.digest));
        return Ok(());
    }
    path.budget.count(&blob_name(d), d.size)?;
    let bytes = source.blob_bytes(d, JSON_LIMIT)?;
    let name = if media::is_index(mt) {
        format!("index {}", d.digest)
    } else if media::is_manifest(mt) {
        format!("manifest {}", d.digest)
    } else {
        blob_name(d)
    };
    let doc = parse_json(&bytes, &name)?;
    drop(bytes);
    let is_index = media::is_index(mt) || (!known && doc.get("manifests").is_some());
    if is_index {
        for (k, val) in string_map(doc.get("annotations")) {
            walk.annotations.push((blob_name(d), k, val));
        }
        let list = doc.get("manifests").and_then(Value::as_array).cloned();
        for (i, v) in list.unwrap_or_default().iter().enumerate() {
            let child = descriptor(v, &format!("{} manifests[{i}]", blob_name(d)))?;
            for (k, val) in &child.annotations {
                walk.annotations.push((
                    format!("{} manifests[{i}]", blob_name(d)),
                    k.clone(),
                    val.clone(),
                ));
            }
            path.ancestors.push(d.digest.clone());
            let r = visit(source, &child, path, walk);
            path.ancestors.pop();
            r?;
        }
        return Ok(());
    }
    if doc.get("config").is_none() || doc.get("layers").is_none() {
        walk.notes.push(format!(
            "{} is neither an index nor a manifest",
            blob_name(d)
        ));
        return Ok(());
    }
    if let Some(c) = doc
        .get("config")
        .and_then(|c| c.get("size"))
        .and_then(Value::as_u64)
    {
        path.budget
            .count(&format!("config of {}", blob_name(d)), c)?;
    }
    match manifest_image(source, d, &doc, path.refs)? {
        Some(img) => walk.images.push((path.top, img)),
        None => walk.attestations.push(Attestation {
            descriptor: d.clone(),
            subject: d.annotations.get("vnd.docker.reference.digest").cloned(),
        }),
    }
    Ok(())
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.contains_key("vnd.docker.reference.type")
        || d.platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Turn a manifest document into an image, or `None` when it is an artifact (non-image config or
/// non-tar layers such as cosign signatures).
pub fn manifest_image(
    source: &Source,
    d: &Descriptor,
    doc: &Value,
    refs: &[String],
) -> Result<Option<Image>> {
    let where_ = format!("manifest {}", d.digest);
    let config_descriptor = descriptor(&doc["config"], &format!("{where_} config"))?;
    let layer_descs = doc["layers"]
        .as_array()
        .ok_or_else(|| Error::corrupt(&where_, "`layers` is not an array"))?
        .iter()
        .enumerate()
        .map(|(i, v)| descriptor(v, &format!("{where_} layers[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    if !media::is_image_config(&config_descriptor.media_type) {
        return Ok(None);
    }
    for (i, l) in layer_descs.iter().enumerate() {
        if !media::is_tar_layer(&l.media_type) {
            if media::is_unsupported_layer(&l.media_type) {
                return Err(Error::corrupt(
                    format!("{where_} layer {i} ({})", l.digest),
                    format!(
                        "unsupported layer media type {:?}: not a tar stream",
                        l.media_type
                    ),
                ));
            }
            return Ok(None);
        }
    }
    let cfg_bytes = source.blob_bytes(&config_descriptor, JSON_LIMIT)?;
    let config = parse_config(&cfg_bytes, &format!("config {}", config_descriptor.digest))?;
    let layers = layer_infos(&where_, layer_descs, &config)?;
    let platform = d
        .platform
        .clone()
        .unwrap_or_else(|| config_platform(&config));
    let mut manifest = d.clone();
    if manifest.media_type.is_empty() {
        manifest.media_type = doc["mediaType"].as_str().unwrap_or_default().to_string();
    }
    Ok(Some(Image {
        platform,
        manifest,
        config_descriptor,
        config,
        layers,
        ref_names: refs.to_vec(),
        annotations: string_map(doc.get("annotations")),
        manifest_synthesised: false,
    }))
}

/// The platform a config declares.
pub fn config_platform(c: &ImageConfig) -> Platform {
    Platform {
        os: c.os.clone(),
        architecture: c.architecture.clone(),
        variant: c.variant.clone(),
    }
}

/// Pair layer descriptors with `diff_ids` and history.
pub fn layer_infos(
    where_: &str,
    descs: Vec<Descriptor>,
    config: &ImageConfig,
) -> Result<Vec<LayerInfo>> {
    if descs.len() != config.diff_ids.len() {
        return Err(Error::corrupt(
            where_,
            format!(
                "the manifest lists {} layers but the config lists {} diff_ids",
                descs.len(),
                config.diff_ids.len()
            ),
        ));
    }
    let non_empty: Vec<&HistoryEntry> = config.history.iter().filter(|h| !h.empty_layer).collect();
    let lined_up = non_empty.len() == descs.len();
    Ok(descs
        .into_iter()
        .enumerate()
        .map(|(index, descriptor)| LayerInfo {
            index,
            descriptor,
            diff_id: config.diff_ids[index].clone(),
            history: lined_up.then(|| non_empty[index].clone()),
        })
        .collect())
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Parse an image config (OCI or Docker).
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig> {
    let raw = json::parse(bytes, what, Doc::Config)?;
    if !raw.is_object() {
        return Err(Error::corrupt(what, "the config is not a JSON object"));
    }
    let c = raw.get("config").or_else(|| raw.get("container_config"));
    let get = |k: &str| c.and_then(|c| c.get(k));
    let diff_ids = raw
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|d| {
                    d.as_str()
                        .ok_or_else(|| Error::corrupt(what, "a diff_id is not a string"))
                        .and_then(|s| {
                            Digest::parse(s).map_err(|_| {
                                Error::corrupt(what, format!("malformed diff_id {s:?}"))
                            })
                        })
                })
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .unwrap_or_default();
    let history = raw
        .get("history")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|h| HistoryEntry {
                    created: h.get("created").and_then(Value::as_str).map(String::from),
                    created_by: h
                        .get("created_by")
                        .and_then(Value::as_str)
                        .map(String::from),
                    comment: h.get("comment").and_then(Value::as_str).map(String::from),
                    author: h.get("author").and_then(Value::as_str).map(String::from),
                    empty_layer: h
                        .get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ImageConfig {
        os: text(raw.get("os")),
        architecture: text(raw.get("architecture")),
        variant: raw
            .get("variant")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from),
        user: text(get("User")),
        env: strings(get("Env")),
        entrypoint: strings(get("Entrypoint")),
        cmd: strings(get("Cmd")),
        working_dir: text(get("WorkingDir")),
        labels: string_map(get("Labels")),
        history,
        diff_ids,
        raw,
    })
}
