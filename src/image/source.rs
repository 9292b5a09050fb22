//! Input detection by content (never by file name) and image enumeration: OCI layout dir, OCI archive
//! tar, `docker save` legacy / Docker 25+ OCI-in-tar (`"manifests": null`) / containerd-store archives,
//! and `-` (stdin, spilled to a private temp file removed on drop). `PATH:TAG` / `PATH@sha256:…` select.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::archive::TarIndex;
use super::blob::{VerifyingReader, from_io};
use super::digest::Algorithm;
use super::select::{Selector, select, split_spec};
use super::walk::{JSON_LIMIT, Walk, parse_json, walk_top};
use super::whiteout::normalise;
use super::{Attestation, BlobReader, Descriptor, Digest, Image, Platform, docker};
use crate::error::{Error, Result};
use crate::progress::Progress;

#[derive(Debug)]
enum Store {
    Dir(PathBuf),
    Tar(TarIndex),
    /// `docker://…`: blobs streamed from a registry.
    Registry(Box<super::registry::Remote>),
}

/// Blob access for an opened input. Every blob read goes through the digest- and size-checking reader.
#[derive(Debug)]
pub struct Source {
    store: Store,
    /// Blobs stored under another name than `blobs/<alg>/<hex>` (`docker save` layers and configs).
    paths: HashMap<Digest, String>,
    /// Blobs are named by their hex digest at the top (skopeo/podman `dir:` layout).
    flat: bool,
    /// The stdin spill file, removed when the source is dropped.
    _spill: Option<tempfile::TempPath>,
    /// The bar that counts the blob bytes read, once one is shown ([`Source::show_progress`]).
    progress: OnceLock<Progress>,
}

impl Source {
    fn rel(&self, d: &Digest) -> String {
        if let Some(p) = self.paths.get(d) {
            return p.clone();
        }
        if self.flat {
            // containers/image `dir:`: `<hex>` for sha256 blobs, `<alg>-<hex>` for others, and
            // `<hex>.manifest.json` for the instances of a manifest list.
            let base = if d.algorithm() == Algorithm::Sha256 {
                d.hex().to_string()
            } else {
                format!("{}-{}", d.algorithm(), d.hex())
            };
            let manifest = format!("{base}.manifest.json");
            if self.member_size(&base).is_none() && self.member_size(&manifest).is_some() {
                return manifest;
            }
            return base;
        }
        format!("blobs/{}/{}", d.algorithm(), d.hex())
    }

    /// Open a member (tar) or file (dir) by relative name; `None` when absent.
    fn open_rel(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match &self.store {
            Store::Tar(t) => t.open(name),
            Store::Registry(r) => Ok((name == "index.json").then(|| {
                let b = r.index_json().to_vec();
                let n = b.len() as u64;
                (Box::new(std::io::Cursor::new(b)) as Box<dyn Read + Send>, n)
            })),
            Store::Dir(root) => {
                let n = normalise(name);
                if n.escapes || n.path.is_empty() {
                    return Ok(None);
                }
                let p = root.join(&n.path);
                let Ok(md) = std::fs::metadata(&p) else {
                    return Ok(None);
                };
                if !md.is_file() {
                    return Ok(None);
                }
                let f = File::open(&p).map_err(|e| Error::input(&p, e))?;
                Ok(Some((Box::new(f), md.len())))
            }
        }
    }

    /// Whether the blob of `d` is present.
    pub fn has_blob(&self, d: &Descriptor) -> bool {
        if matches!(self.store, Store::Registry(_)) {
            return true;
        }
        self.member_size(&self.rel(&d.digest)).is_some()
    }

    /// Whether the blob is in the input with the size its descriptor gives (a registry: assumed, the
    /// registry serves it by digest). What a layer result-cache hit checks instead of reading the blob.
    pub fn has_blob_sized(&self, d: &Descriptor) -> bool {
        if matches!(self.store, Store::Registry(_)) {
            return true;
        }
        self.member_size(&self.rel(&d.digest)) == Some(d.size)
    }

    /// Size of a member/file by name, when present.
    pub(crate) fn member_size(&self, name: &str) -> Option<u64> {
        match &self.store {
            Store::Tar(t) => t.locate(name).map(|(_, s)| s),
            Store::Registry(_) => None,
            Store::Dir(root) => {
                let n = normalise(name);
                if n.escapes {
                    return None;
                }
                std::fs::metadata(root.join(n.path))
                    .ok()
                    .filter(std::fs::Metadata::is_file)
                    .map(|m| m.len())
            }
        }
    }

    /// Read a small member by name without verification (`manifest.json`, legacy configs).
    pub(crate) fn member_bytes(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>> {
        let Some((r, size)) = self.open_rel(name)? else {
            return Ok(None);
        };
        if size > limit {
            return Err(Error::corrupt(
                name,
                format!("{size} bytes is larger than the {limit}-byte limit for JSON documents"),
            ));
        }
        let mut v = Vec::with_capacity(size as usize);
        r.take(limit)
            .read_to_end(&mut v)
            .map_err(|e| from_io(e, name))?;
        Ok(Some(v))
    }

    /// The first bytes of a member (up to `n`), for sniffing.
    pub(crate) fn member_head(&self, name: &str, n: usize) -> Result<Vec<u8>> {
        let Some((r, _)) = self.open_rel(name)? else {
            return Ok(Vec::new());
        };
        let mut v = Vec::with_capacity(n);
        r.take(n as u64)
            .read_to_end(&mut v)
            .map_err(|e| from_io(e, name))?;
        Ok(v)
    }

    /// The sha256 of a whole member (for legacy compressed layers that carry no digest).
    pub(crate) fn member_digest(&self, name: &str) -> Result<Option<Digest>> {
        let Some((mut r, _)) = self.open_rel(name)? else {
            return Ok(None);
        };
        let mut h = super::blob::Hasher::for_digest(&Digest::sha256_of(b""));
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = r.read(&mut buf).map_err(|e| from_io(e, name))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Some(h.finish()))
    }

    /// Record that the blob `d` is stored at `name`.
    pub(crate) fn register(&mut self, d: &Digest, name: &str) {
        self.paths.insert(d.clone(), name.to_string());
    }

    /// A verified reader over the blob of `desc`: yields exactly `desc.size` bytes and fails with
    /// `Error::Corrupt` at EOF if the digest or size differs, or at open if the blob is missing.
    pub fn blob(&self, desc: &Descriptor) -> Result<BlobReader> {
        let what = format!(
            "blob {} ({})",
            desc.digest,
            media_or_unknown(&desc.media_type)
        );
        if let Store::Registry(remote) = &self.store {
            let r = remote.open(desc, &what)?;
            return Ok(self.counted(VerifyingReader::new(
                r,
                desc.digest.clone(),
                desc.size,
                what,
            )));
        }
        let rel = self.rel(&desc.digest);
        let Some((r, size)) = self.open_rel(&rel)? else {
            let cut = match &self.store {
                Store::Tar(t) => t.truncation().map(|c| format!(" ({c})")),
                Store::Dir(_) | Store::Registry(_) => None,
            };
            return Err(Error::corrupt(
                what,
                format!("missing: the input has no {rel}{}", cut.unwrap_or_default()),
            ));
        };
        if size != desc.size {
            return Err(Error::corrupt(
                what,
                format!(
                    "size differs: the descriptor says {} bytes, the blob has {size}",
                    desc.size
                ),
            ));
        }
        Ok(self.counted(VerifyingReader::new(
            r,
            desc.digest.clone(),
            desc.size,
            what,
        )))
    }

    /// Count the blob bytes read from now on on `progress` (the first bar given stays).
    pub fn show_progress(&self, progress: Progress) {
        let _ = self.progress.set(progress);
    }

    /// `r`, counted on the progress bar when one is shown.
    fn counted<R: Read + Send + 'static>(&self, r: R) -> BlobReader {
        match self.progress.get() {
            Some(p) => Box::new(p.wrap(r)),
            None => Box::new(r),
        }
    }

    /// Read a whole small blob (JSON documents), verified, with a size limit.
    pub fn blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        let what = format!("blob {}", desc.digest);
        if desc.size > limit {
            return Err(Error::corrupt(
                what,
                format!(
                    "{} bytes is larger than the {limit}-byte limit for this document",
                    desc.size
                ),
            ));
        }
        let mut r = self.blob(desc)?;
        let mut v = Vec::with_capacity(desc.size as usize);
        r.read_to_end(&mut v).map_err(|e| from_io(e, &what))?;
        Ok(v)
    }
}

fn media_or_unknown(mt: &str) -> &str {
    if mt.is_empty() { "no media type" } else { mt }
}

/// An opened input: its images (one per platform selected) and the side blobs to scan for secrets.
#[derive(Debug)]
pub struct Opened {
    pub source: Source,
    /// What the input is, for messages: "oci-layout", "oci-archive", "docker-archive", …
    pub kind: &'static str,
    pub images: Vec<Image>,
    pub attestations: Vec<Attestation>,
    /// Annotations of the top-level index and of each index descriptor, for `secret-in-metadata`:
    /// (where, key, value), e.g. ("index.json manifests[0]", "org.opencontainers.image.ref.name", "edge").
    pub annotations: Vec<(String, String, String)>,
    /// Non-fatal structural observations (config file names that are not their digest, skipped
    /// descriptors of unknown media type …).
    pub notes: Vec<String>,
}

/// Open `spec` (`PATH`, `PATH:TAG`, `PATH@sha256:…`, or `-`), sniff its shape, verify and parse the
/// index/manifests/configs, and select images. `platform = None` selects all platforms.
pub fn open(spec: &str, platform: Option<&Platform>) -> Result<Opened> {
    if let Some(rest) = spec.strip_prefix(super::registry::SCHEME) {
        return open_registry(spec, rest, platform);
    }
    let (path, selector) = split_spec(spec)?;
    let (store, spill) = if path == "-" {
        let tmp = spill_stdin()?;
        (Store::Tar(TarIndex::build(&tmp)?), Some(tmp))
    } else {
        let p = Path::new(&path);
        let md = std::fs::metadata(p).map_err(|e| Error::input(p, e))?;
        if md.is_dir() {
            (Store::Dir(p.to_path_buf()), None)
        } else {
            sniff_file(p)?;
            (Store::Tar(TarIndex::build(p)?), None)
        }
    };
    let mut source = Source {
        store,
        paths: HashMap::new(),
        flat: false,
        _spill: spill,
        progress: OnceLock::new(),
    };
    let (kind, walk) = discover(&mut source, &path)?;
    let (images, attestations, annotations, notes) = select(walk, &selector, platform, &path)?;
    Ok(Opened {
        source,
        kind,
        images,
        attestations,
        annotations,
        notes,
    })
}

/// `docker://HOST/REPO:TAG|@sha256:…`: the referenced manifest, read through the same walk.
fn open_registry(spec: &str, rest: &str, platform: Option<&Platform>) -> Result<Opened> {
    let reference = super::registry::Reference::parse(rest)?;
    let remote = super::registry::Remote::connect(&reference)?;
    let mut source = Source {
        store: Store::Registry(Box::new(remote)),
        paths: HashMap::new(),
        flat: false,
        _spill: None,
        progress: OnceLock::new(),
    };
    let (_, walk) = discover(&mut source, spec)?;
    let (images, attestations, annotations, notes) = select(walk, &Selector::None, platform, spec)?;
    Ok(Opened {
        source,
        kind: "registry",
        images,
        attestations,
        annotations,
        notes,
    })
}

impl Source {
    /// The registry behind a `docker://` input.
    pub fn remote(&self) -> Option<&super::registry::Remote> {
        match &self.store {
            Store::Registry(r) => Some(r),
            _ => None,
        }
    }
}

/// Default of `--max-input-size`: 16 GiB, well above real runtime images (about 1 GiB) and most other
/// images, while keeping a hostile or runaway stream from filling `$TMPDIR`.
pub const DEFAULT_MAX_INPUT_SIZE: u64 = 16 << 30;
static MAX_INPUT_SIZE: AtomicU64 = AtomicU64::new(DEFAULT_MAX_INPUT_SIZE);

/// Set the largest input read from stdin (`--max-input-size`).
pub fn set_max_input_size(bytes: u64) {
    MAX_INPUT_SIZE.store(bytes, Ordering::Relaxed);
}

/// Copy stdin to a private (0600) temp file, at most `--max-input-size` bytes; the file is removed on
/// every error (it is a `NamedTempFile` until returned, a `TempPath` after).
fn spill_stdin() -> Result<tempfile::TempPath> {
    spill(
        &mut std::io::stdin().lock(),
        MAX_INPUT_SIZE.load(Ordering::Relaxed),
    )
}

fn spill(input: &mut dyn Read, limit: u64) -> Result<tempfile::TempPath> {
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| Error::input("<temp file>", e))?;
    let copied = std::io::copy(&mut input.take(limit.saturating_add(1)), tmp.as_file_mut())
        .map_err(|e| Error::input("<stdin>", e))?;
    if copied > limit {
        return Err(Error::corrupt(
            "<stdin>",
            format!(
                "the input is larger than the {limit}-byte limit for images read from stdin \
                 (--max-input-size; the spilled part was removed)"
            ),
        ));
    }
    tmp.as_file_mut()
        .flush()
        .map_err(|e| Error::input("<temp file>", e))?;
    Ok(tmp.into_temp_path())
}

/// Refuse compressed files early with a clear message (an image archive is a plain tar).
fn sniff_file(p: &Path) -> Result<()> {
    let mut head = [0u8; 6];
    let mut f = File::open(p).map_err(|e| Error::input(p, e))?;
    let n = f.read(&mut head).map_err(|e| Error::input(p, e))?;
    let what = match &head[..n] {
        [0x1f, 0x8b, ..] => "gzip",
        [0x28, 0xb5, 0x2f, 0xfd, ..] => "zstd",
        [b'B', b'Z', b'h', ..] => "bzip2",
        [0xfd, b'7', b'z', b'X', b'Z', 0] => "xz",
        _ => return Ok(()),
    };
    Err(Error::corrupt(
        p.display().to_string(),
        format!(
            "not a container image: this is {what}-compressed data (perhaps a single layer); \
             x1-validate reads OCI layouts, OCI archives and `docker save` tars"
        ),
    ))
}

/// Find the images by the input's shape.
fn discover(source: &mut Source, path: &str) -> Result<(&'static str, Walk)> {
    let is_dir = matches!(source.store, Store::Dir(_));
    let index = source.member_bytes("index.json", JSON_LIMIT)?;
    let manifest_json = source.member_bytes("manifest.json", JSON_LIMIT)?;
    if let Some(m) = &manifest_json
        && is_manifest_object(m)
    {
        // Both shapes at once: tools would disagree on which image this is; never guess.
        if index.is_some() {
            return Err(Error::corrupt(
                path,
                "ambiguous input: it has an OCI index.json and a `dir:`-layout manifest.json \
                 (one manifest object); tools disagree on which image it holds",
            ));
        }
        let walk = dir_layout(source, m)?;
        return Ok((if is_dir { "dir" } else { "dir (tar)" }, walk));
    }
    if let Some(index) = index {
        let doc = parse_json(&index, "index.json")?;
        let mut walk = Walk::default();
        walk_top(source, &doc, &mut walk)?;
        if !walk.images.is_empty() || manifest_json.as_deref().is_none_or(|m| !docker::usable(m)) {
            if let Some(m) = &manifest_json {
                add_repo_tags(&mut walk, m)?;
            }
            let kind = match (is_dir, manifest_json.is_some()) {
                (true, _) => "oci-layout",
                (false, false) => "oci-archive",
                (false, true) => "docker-archive (OCI)",
            };
            return Ok((kind, walk));
        }
    }
    if let Some(m) = manifest_json {
        let (images, notes) = docker::images(source, &m)?;
        let mut walk = Walk {
            notes,
            ..Walk::default()
        };
        for (i, img) in images.into_iter().enumerate() {
            walk.tops
                .push((img.manifest.digest.clone(), img.ref_names.clone()));
            walk.images.push((i, img));
        }
        return Ok(("docker-archive", walk));
    }
    let detail = match &source.store {
        Store::Dir(_) => "not an OCI image layout: the directory has no index.json".to_string(),
        Store::Tar(t) if t.is_empty() => "not a container image: an empty or non-tar file".into(),
        Store::Tar(t) if t.truncation().is_some() => format!(
            "{}; expected more members (it has {} and no index.json or manifest.json yet)",
            t.truncation().unwrap_or_default(),
            t.len()
        ),
        Store::Tar(t) => format!(
            "not a container image: the tar has no index.json or manifest.json \
             ({} members; it looks like a bare layer)",
            t.len()
        ),
        Store::Registry(_) => "the registry served no manifest".into(),
    };
    Err(Error::corrupt(path, detail))
}

/// The skopeo/podman `dir:` layout (containers/image "Directory Transport"): `manifest.json` is ONE
/// manifest (or manifest list) object — never the array `docker save` writes — blobs are files named by
/// their hex digest, instance manifests `<hex>.manifest.json`, and a `version` file.
fn dir_layout(source: &mut Source, manifest_json: &[u8]) -> Result<Walk> {
    let doc = parse_json(manifest_json, "manifest.json")?;
    let media_type = doc
        .get("mediaType")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let digest = Digest::sha256_of(manifest_json);
    source.flat = true;
    source.register(&digest, "manifest.json");
    let top = serde_json::json!({"manifests": [{
        "mediaType": media_type,
        "digest": digest.to_string(),
        "size": manifest_json.len(),
    }]});
    let mut walk = Walk::default();
    match source.member_bytes("version", 4096)? {
        Some(v) if v.starts_with(b"Directory Transport Version:") => {}
        Some(_) => walk.notes.push(
            "dir layout: the `version` file is not a containers/image Directory Transport version"
                .into(),
        ),
        None => walk
            .notes
            .push("dir layout: no `version` file (read as a skopeo/podman `dir:` layout)".into()),
    }
    walk_top(source, &top, &mut walk)?;
    Ok(walk)
}

/// Whether `manifest.json` is one JSON object (the `dir:` layout) rather than `docker save`'s array.
fn is_manifest_object(bytes: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(bytes),
        Ok(serde_json::Value::Object(_))
    )
}

/// Attach `RepoTags` from a Docker 25+ `manifest.json` to the images its configs match. `docker load`
/// reads this file, not `index.json`, so an ambiguous one is refused like any image document.
fn add_repo_tags(walk: &mut Walk, manifest_json: &[u8]) -> Result<()> {
    let serde_json::Value::Array(list) = super::json::parse(
        manifest_json,
        "manifest.json",
        super::json::Doc::DockerManifest,
    )?
    else {
        return Ok(());
    };
    for e in list {
        let cfg = e.get("Config").and_then(|c| c.as_str()).unwrap_or_default();
        let tags: Vec<String> = e
            .get("RepoTags")
            .and_then(|t| t.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|t| t.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for (_, img) in &mut walk.images {
            if cfg.ends_with(img.config_descriptor.digest.hex()) {
                for t in &tags {
                    if !img.ref_names.contains(t) {
                        img.ref_names.push(t.clone());
                    }
                }
            }
        }
    }
    Ok(())
}

impl Selector {
    /// Whether a selector was given.
    pub fn is_some(&self) -> bool {
        !matches!(self, Selector::None)
    }
}
