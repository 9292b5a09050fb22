//! Input detection by content (never by file name) and image enumeration: OCI layout dir, OCI archive
//! tar, `docker save` legacy / Docker 25+ OCI-in-tar (`"manifests": null`) / containerd-store archives,
//! and `-` (stdin, spilled to a private temp file removed on drop). `PATH:TAG` / `PATH@sha256:…` select.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::archive::TarIndex;
use super::blob::{VerifyingReader, from_io};
use super::select::{Selector, select, split_spec};
use super::walk::{JSON_LIMIT, Walk, parse_json, walk_top};
use super::whiteout::normalise;
use super::{Attestation, BlobReader, Descriptor, Digest, Image, Platform, docker};
use crate::error::{Error, Result};

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
    /// The stdin spill file, removed when the source is dropped.
    _spill: Option<tempfile::TempPath>,
}

impl Source {
    fn rel(&self, d: &Digest) -> String {
        self.paths
            .get(d)
            .cloned()
            .unwrap_or_else(|| format!("blobs/{}/{}", d.algorithm, d.hex))
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
            return Ok(Box::new(VerifyingReader::new(
                r,
                desc.digest.clone(),
                desc.size,
                what,
            )));
        }
        let rel = self.rel(&desc.digest);
        let Some((r, size)) = self.open_rel(&rel)? else {
            return Err(Error::corrupt(
                what,
                format!("missing: the input has no {rel}"),
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
        Ok(Box::new(VerifyingReader::new(
            r,
            desc.digest.clone(),
            desc.size,
            what,
        )))
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
        _spill: spill,
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
        _spill: None,
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

/// Copy stdin to a private (0600) temp file.
fn spill_stdin() -> Result<tempfile::TempPath> {
    let mut tmp = tempfile::NamedTempFile::new().map_err(|e| Error::input("<temp file>", e))?;
    let mut stdin = std::io::stdin().lock();
    std::io::copy(&mut stdin, tmp.as_file_mut()).map_err(|e| Error::input("<stdin>", e))?;
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
    if let Some(index) = index {
        let doc = parse_json(&index, "index.json")?;
        let mut walk = Walk::default();
        walk_top(source, &doc, &mut walk)?;
        if !walk.images.is_empty() || manifest_json.as_deref().is_none_or(|m| !docker::usable(m)) {
            if let Some(m) = &manifest_json {
                add_repo_tags(&mut walk, m);
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
        Store::Tar(t) => format!(
            "not a container image: the tar has no index.json or manifest.json \
             ({} members; it looks like a bare layer)",
            t.len()
        ),
        Store::Registry(_) => "the registry served no manifest".into(),
    };
    Err(Error::corrupt(path, detail))
}

/// Attach `RepoTags` from a Docker 25+ `manifest.json` to the images its configs match.
fn add_repo_tags(walk: &mut Walk, manifest_json: &[u8]) {
    let Ok(serde_json::Value::Array(list)) = serde_json::from_slice(manifest_json) else {
        return;
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
            if cfg.ends_with(&img.config_descriptor.digest.hex) {
                for t in &tags {
                    if !img.ref_names.contains(t) {
                        img.ref_names.push(t.clone());
                    }
                }
            }
        }
    }
}

impl Selector {
    /// Whether a selector was given.
    pub fn is_some(&self) -> bool {
        !matches!(self, Selector::None)
    }
}
