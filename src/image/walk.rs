//! Walking an OCI `index.json`: nested indexes and Docker manifest lists, media-type sniffing for
//! descriptors that do not say what they are, image vs artifact vs attestation, and config parsing.

use std::collections::{BTreeMap, HashMap, HashSet};

use oci_spec::image::{self as oci, ANNOTATION_REF_NAME, ImageIndex, ImageManifest};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::json::{self, Doc};
use super::{
    Attestation, Descriptor, Digest, HistoryEntry, Image, ImageConfig, LayerInfo, Platform,
};
use super::{Source, media};
use crate::error::{Error, Result};

/// The annotation containerd (and `docker save` 25+) gives the full image name in.
pub const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

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

/// Parse a descriptor object through oci-spec's `Descriptor`; `where_` names it in errors.
pub fn descriptor(v: &Value, where_: &str) -> Result<Descriptor> {
    let typed_d: oci::Descriptor = typed(lenient_descriptor(v, where_)?, where_)?;
    convert(&typed_d, v, where_)
}

/// A descriptor object as oci-spec reads it, with the tolerances real producers need: a descriptor
/// that does not say its media type (sniffed later; a missing or null `mediaType` reads as `""`) and a
/// `platform` without a string `os` and `architecture` (ignored). Everything else is read the way the
/// runtimes' Go structs read it: a value of the wrong type is corrupt input.
fn lenient_descriptor(v: &Value, where_: &str) -> Result<Value> {
    let bad = |d: &str| Error::corrupt(where_, d.to_string());
    let o = v
        .as_object()
        .ok_or_else(|| bad("descriptor is not a JSON object"))?;
    let digest = o
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("descriptor has no digest"))?;
    Digest::parse(digest).map_err(|_| bad(&format!("malformed digest {digest:?}")))?;
    if !o.get("size").is_some_and(Value::is_u64) {
        return Err(bad("descriptor has no valid size"));
    }
    let mut lenient = o.clone();
    if lenient.get("mediaType").is_none_or(Value::is_null) {
        lenient.insert("mediaType".into(), Value::String(String::new()));
    }
    let whole = |p: &Value| {
        p.get("os").is_some_and(Value::is_string)
            && p.get("architecture").is_some_and(Value::is_string)
    };
    if lenient.get("platform").is_some_and(|p| !whole(p)) {
        lenient.remove("platform");
    }
    Ok(Value::Object(lenient))
}

/// Our [`Descriptor`] of an oci-spec one; `raw` is the object it was read from.
fn convert(d: &oci::Descriptor, raw: &Value, where_: &str) -> Result<Descriptor> {
    let digest = Digest::parse(d.digest().as_ref()).map_err(|_| {
        Error::corrupt(
            where_,
            format!("malformed digest {:?}", d.digest().as_ref()),
        )
    })?;
    let platform = d.platform().as_ref().map(|p| Platform {
        os: p.os().to_string(),
        // oci-spec reads the Go architecture `armbe` as `arm64be`: keep the spelling the image has.
        architecture: match raw["platform"]["architecture"].as_str() {
            Some(a @ "armbe") => a.to_string(),
            _ => p.architecture().to_string(),
        },
        variant: p.variant().clone().filter(|s| !s.is_empty()),
    });
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest,
        size: d.size(),
        annotations: sorted(d.annotations().as_ref()),
        platform,
    })
}

/// An image index (OCI) or manifest list (Docker) read through oci-spec's `ImageIndex`.
struct Index {
    /// Each entry of `manifests`, with where it is (for errors and annotation scans).
    manifests: Vec<(String, Descriptor)>,
    annotations: BTreeMap<String, String>,
}

/// Read the index `doc`, named `name` in errors; `prefix` names its entries (`{prefix} manifests[i]`).
/// A missing or null `manifests` is an empty index and a missing `schemaVersion` is 2, as the runtimes
/// read them.
fn read_index(doc: &Value, name: &str, prefix: &str) -> Result<Index> {
    let mut o = doc
        .as_object()
        .cloned()
        .ok_or_else(|| Error::corrupt(name, "the index is not a JSON object"))?;
    let list = match o.get("manifests") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::Null) | None => Vec::new(),
        Some(_) => return Err(Error::corrupt(name, "`manifests` is not an array")),
    };
    let places = lenient_list(&mut o, "manifests", &list, prefix)?;
    default_schema_version(&mut o);
    let index: ImageIndex = typed(Value::Object(o), name)?;
    let descriptors = converted(index.manifests(), &list, &places)?;
    Ok(Index {
        manifests: places.into_iter().zip(descriptors).collect(),
        annotations: sorted(index.annotations().as_ref()),
    })
}

/// An image manifest (OCI or Docker v2 schema 2) read through oci-spec's `ImageManifest`.
struct Manifest {
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
}

/// Read the manifest `doc`, named `where_` in errors.
fn read_manifest(doc: &Value, where_: &str) -> Result<Manifest> {
    let mut o = doc
        .as_object()
        .cloned()
        .ok_or_else(|| Error::corrupt(where_, "the manifest is not a JSON object"))?;
    let config_where = format!("{where_} config");
    let config_raw = o.get("config").cloned().unwrap_or(Value::Null);
    o.insert(
        "config".into(),
        lenient_descriptor(&config_raw, &config_where)?,
    );
    let layers_raw = o
        .get("layers")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| Error::corrupt(where_, "`layers` is not an array"))?;
    let places = lenient_list(&mut o, "layers", &layers_raw, where_)?;
    default_schema_version(&mut o);
    let m: ImageManifest = typed(Value::Object(o), where_)?;
    let layers = converted(m.layers(), &layers_raw, &places)?;
    Ok(Manifest {
        media_type: m.media_type().as_ref().map(ToString::to_string),
        config: convert(m.config(), &config_raw, &config_where)?,
        layers,
        annotations: sorted(m.annotations().as_ref()),
    })
}

/// Put the lenient form of each descriptor of `list` under `key` in `o`; returns where each one is
/// (`{prefix} {key}[i]`).
fn lenient_list(
    o: &mut serde_json::Map<String, Value>,
    key: &str,
    list: &[Value],
    prefix: &str,
) -> Result<Vec<String>> {
    let places: Vec<String> = (0..list.len())
        .map(|i| format!("{prefix} {key}[{i}]"))
        .collect();
    let lenient = list
        .iter()
        .zip(&places)
        .map(|(v, w)| lenient_descriptor(v, w))
        .collect::<Result<Vec<_>>>()?;
    o.insert(key.into(), Value::Array(lenient));
    Ok(places)
}

/// Our descriptors of the oci-spec ones a [`lenient_list`] gave, each with its raw object and place.
fn converted(
    typed: &[oci::Descriptor],
    raw: &[Value],
    places: &[String],
) -> Result<Vec<Descriptor>> {
    typed
        .iter()
        .zip(raw)
        .zip(places)
        .map(|((d, raw), w)| convert(d, raw, w))
        .collect()
}

/// `schemaVersion` is 2 when a document leaves it out (Go reads a missing number as 0 and goes on).
fn default_schema_version(o: &mut serde_json::Map<String, Value>) {
    if o.get("schemaVersion").is_none_or(Value::is_null) {
        o.insert("schemaVersion".into(), Value::from(2));
    }
}

/// Deserialise a document (or part of one) that [`json::parse`] has read, so with no ambiguous keys
/// and its field names in their canonical spelling, into its oci-spec type; `what` names it in errors.
fn typed<T: DeserializeOwned>(v: Value, what: &str) -> Result<T> {
    serde_json::from_value(v).map_err(|e| Error::corrupt(what, format!("malformed: {e}")))
}

/// An annotation or label map in a stable order.
fn sorted(m: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
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
    let index = read_index(index, "index.json", "index.json")?;
    // The index's own annotations are metadata that ships too (secret-in-metadata scans them).
    for (k, val) in index.annotations {
        walk.annotations.push(("index.json".into(), k, val));
    }
    let mut budget = Budget::default();
    for (i, (where_, d)) in index.manifests.into_iter().enumerate() {
        for (k, val) in &d.annotations {
            walk.annotations
                .push((where_.clone(), k.clone(), val.clone()));
        }
        let refs: Vec<String> = [ANNOTATION_REF_NAME, CONTAINERD_IMAGE_NAME]
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
        let index = read_index(&doc, &name, &blob_name(d))?;
        drop(doc);
        for (k, val) in index.annotations {
            walk.annotations.push((blob_name(d), k, val));
        }
        for (where_, child) in index.manifests {
            for (k, val) in &child.annotations {
                walk.annotations
                    .push((where_.clone(), k.clone(), val.clone()));
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
    let Manifest {
        media_type,
        config: config_descriptor,
        layers: layer_descs,
        annotations,
    } = read_manifest(doc, &where_)?;
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
        manifest.media_type = media_type.unwrap_or_default();
    }
    Ok(Some(Image {
        platform,
        manifest,
        config_descriptor,
        config,
        layers,
        ref_names: refs.to_vec(),
        annotations,
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

/// The image config document: oci-spec's `Config` (the runtime config: `User`, `Env`, …) and `History`,
/// around a top level read here rather than as oci-spec's `ImageConfiguration`, which requires `rootfs`
/// (configs without one exist: they have no layers) and reads the architecture `armbe` as `arm64be`.
#[derive(Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<oci::Config>,
    /// Docker's config of the build container: what old `docker save` configs without `config` have.
    #[serde(default)]
    container_config: Option<oci::Config>,
    #[serde(default)]
    rootfs: Option<RootFs>,
    #[serde(default)]
    history: Option<Vec<oci::History>>,
}

/// `rootfs` (its `type` is not checked: the runtimes only read `diff_ids`).
#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Option<Vec<String>>,
}

/// Parse an image config (OCI or Docker).
pub fn parse_config(bytes: &[u8], what: &str) -> Result<ImageConfig> {
    let raw = json::parse(bytes, what, Doc::Config)?;
    if !raw.is_object() {
        return Err(Error::corrupt(what, "the config is not a JSON object"));
    }
    let doc: ConfigDoc = typed(raw.clone(), what)?;
    // A `config` key, even null, is the config; only without one is `container_config` read.
    let c = if raw.get("config").is_some() {
        doc.config
    } else {
        doc.container_config
    }
    .unwrap_or_default();
    let diff_ids = doc
        .rootfs
        .and_then(|r| r.diff_ids)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            Digest::parse(s).map_err(|_| Error::corrupt(what, format!("malformed diff_id {s:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let history = doc
        .history
        .unwrap_or_default()
        .into_iter()
        .map(|h| HistoryEntry {
            created: h.created().clone(),
            created_by: h.created_by().clone(),
            comment: h.comment().clone(),
            author: h.author().clone(),
            empty_layer: h.empty_layer().unwrap_or(false),
        })
        .collect();
    Ok(ImageConfig {
        os: doc.os.unwrap_or_default(),
        architecture: doc.architecture.unwrap_or_default(),
        variant: doc.variant.filter(|s| !s.is_empty()),
        user: c.user().clone().unwrap_or_default(),
        env: c.env().clone().unwrap_or_default(),
        entrypoint: c.entrypoint().clone().unwrap_or_default(),
        cmd: c.cmd().clone().unwrap_or_default(),
        working_dir: c.working_dir().clone().unwrap_or_default(),
        labels: sorted(c.labels().as_ref()),
        history,
        diff_ids,
        raw,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(v: &str) -> Result<Descriptor> {
        descriptor(&parse_json(v.as_bytes(), "d")?, "d")
    }

    const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn descriptors_keep_the_tolerances_real_producers_need() {
        // No media type: read as "" and sniffed later.
        let d = read(&format!(r#"{{"digest":"{DIGEST}","size":5}}"#)).expect("tolerated");
        assert_eq!((d.media_type.as_str(), d.size), ("", 5));
        // A platform without an os is ignored; a whole one is read, `armbe` kept as written.
        let d = read(&format!(
            r#"{{"mediaType":"x","digest":"{DIGEST}","size":5,"platform":{{"architecture":"amd64"}}}}"#
        ))
        .expect("tolerated");
        assert_eq!(d.platform, None);
        let d = read(&format!(
            r#"{{"digest":"{DIGEST}","size":5,"platform":{{"os":"linux","architecture":"armbe","variant":""}},
               "annotations":{{"b":"2","a":"1"}}}}"#
        ))
        .expect("valid");
        assert_eq!(d.platform.expect("read").to_string(), "linux/armbe");
        assert_eq!(d.annotations.keys().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn descriptors_of_the_wrong_shape_are_corrupt() {
        for bad in [
            format!(r#"{{"digest":"{DIGEST}"}}"#),
            format!(r#"{{"digest":"{DIGEST}","size":-1}}"#),
            r#"{"digest":"sha256:abc","size":1}"#.to_string(),
            format!(r#"{{"digest":"{DIGEST}","size":1,"annotations":{{"a":1}}}}"#),
            format!(r#"{{"digest":"{DIGEST}","size":1,"mediaType":7}}"#),
        ] {
            let e = read(&bad).expect_err(&bad);
            assert_eq!(e.exit_code(), 3, "{bad}: {e}");
        }
    }
}
