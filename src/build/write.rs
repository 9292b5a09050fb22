//! Writing the assembled image: an OCI layout dir, an OCI archive (a tar of that layout), or a
//! docker-archive that is also an OCI layout (the Docker 25+ shape: `manifest.json` + `index.json` +
//! `blobs/`). Tar outputs use fixed headers, so the same blobs give the same archive bytes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use std::str::FromStr;

use oci_spec::image::{self as oci, ANNOTATION_REF_NAME, MediaType};
use serde_json::{Value, json};

use super::canonical;
use super::layer::{BuiltLayer, copy_hashed, reopen};
use crate::error::{Error, Result};
use crate::image::walk::CONTAINERD_IMAGE_NAME;
use crate::image::{Descriptor, Digest, Opened};

/// `--format` of `build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutFormat {
    /// An OCI image layout directory.
    #[default]
    Oci,
    /// A tar of an OCI image layout.
    OciArchive,
    /// A `docker load`-able tar that is also an OCI layout (Docker 25+ shape).
    DockerArchive,
}

/// Where a blob comes from.
#[derive(Debug)]
pub enum BlobSource<'a> {
    /// A blob of the base image, copied verbatim through the verifying reader.
    Base(Descriptor),
    /// A layer this build wrote.
    Built(&'a BuiltLayer),
}

/// Everything to write.
pub struct Assembly<'a> {
    pub opened: &'a Opened,
    pub layers: &'a [BlobSource<'a>],
    pub config: &'a [u8],
    pub tag: Option<&'a str>,
    pub epoch: u64,
}

/// A destination for blobs and top-level files.
trait Sink {
    fn blob(&mut self, hex: &str, size: u64, r: &mut dyn Read) -> Result<()>;
    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<()>;
}

struct DirSink {
    root: PathBuf,
}

impl DirSink {
    fn create(root: &Path) -> Result<Self> {
        if let Ok(m) = fs::symlink_metadata(root) {
            let empty = m.is_dir() && fs::read_dir(root).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                return Err(Error::Usage(format!(
                    "{}: exists and is not an empty directory; refusing to write",
                    root.display()
                )));
            }
        }
        fs::create_dir_all(root.join("blobs/sha256")).map_err(|e| Error::output(root, e))?;
        Ok(DirSink {
            root: root.to_path_buf(),
        })
    }
}

impl Sink for DirSink {
    fn blob(&mut self, hex: &str, size: u64, r: &mut dyn Read) -> Result<()> {
        let path = self.root.join("blobs/sha256").join(hex);
        let mut f = fs::File::create_new(&path).map_err(|e| Error::output(&path, e))?;
        let n = io::copy(&mut r.take(size), &mut f).map_err(|e| Error::output(&path, e))?;
        if n != size {
            return Err(Error::corrupt(
                format!("blob sha256:{hex}"),
                format!("{n} bytes, expected {size}"),
            ));
        }
        Ok(())
    }
    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.root.join(name);
        fs::write(&path, bytes).map_err(|e| Error::output(&path, e))
    }
}

struct TarSink {
    builder: tar::Builder<io::BufWriter<fs::File>>,
    path: PathBuf,
    mtime: u64,
    dirs_done: bool,
}

impl TarSink {
    fn create(path: &Path, mtime: u64) -> Result<Self> {
        let f = fs::File::create_new(path).map_err(|e| Error::output(path, e))?;
        Ok(TarSink {
            builder: tar::Builder::new(io::BufWriter::new(f)),
            path: path.to_path_buf(),
            mtime,
            dirs_done: false,
        })
    }
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }
    fn dirs(&mut self) -> Result<()> {
        if !self.dirs_done {
            self.dirs_done = true;
            for d in ["blobs/", "blobs/sha256/"] {
                let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
                self.builder
                    .append_data(&mut h, d, io::empty())
                    .map_err(|e| Error::output(&self.path, e))?;
            }
        }
        Ok(())
    }
    fn finish(self) -> Result<()> {
        let path = self.path;
        let mut w = self
            .builder
            .into_inner()
            .map_err(|e| Error::output(&path, e))?;
        w.flush().map_err(|e| Error::output(&path, e))
    }
}

impl Sink for TarSink {
    fn blob(&mut self, hex: &str, size: u64, r: &mut dyn Read) -> Result<()> {
        self.dirs()?;
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        let name = format!("blobs/sha256/{hex}");
        self.builder
            .append_data(&mut h, &name, r.take(size))
            .map_err(|e| Error::output(&self.path, e))
    }
    fn file(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        self.builder
            .append_data(&mut h, name, bytes)
            .map_err(|e| Error::output(&self.path, e))
    }
}

/// Reads the first bytes that pass, to sniff compression of base blobs with a Docker media type.
struct Peek<R> {
    inner: R,
    head: Vec<u8>,
}

impl<R: Read> Read for Peek<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let want = 4usize.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..want]);
        Ok(n)
    }
}

fn sniffed_layer_type(head: &[u8]) -> MediaType {
    if head.starts_with(&[0x1f, 0x8b]) {
        MediaType::ImageLayerGzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        MediaType::ImageLayerZstd
    } else {
        MediaType::ImageLayer
    }
}

/// An oci-spec descriptor of a blob this build writes.
fn oci_descriptor(media_type: MediaType, digest: &Digest, size: u64) -> Result<oci::Descriptor> {
    let digest = oci::Digest::from_str(&digest.to_string())
        .map_err(|e| Error::corrupt(format!("blob {digest}"), e.to_string()))?;
    Ok(oci::Descriptor::new(media_type, size, digest))
}

/// A document as canonical JSON (sorted keys, compact): the same document gives the same bytes.
fn canonical_doc<T: serde::Serialize>(doc: &T) -> Vec<u8> {
    canonical(&serde_json::to_value(doc).expect("oci-spec documents serialise"))
}

/// An oci-spec builder's error (a required field left out: a bug here, not bad input).
fn built<T>(r: std::result::Result<T, oci_spec::OciSpecError>) -> T {
    r.expect("every required field is set")
}

/// Write blobs and index files; returns (manifest digest, config digest).
pub fn write_out(a: &Assembly<'_>, format: OutFormat, out: &Path) -> Result<(Digest, Digest)> {
    match format {
        OutFormat::Oci => {
            let existed = out.exists();
            let mut s = DirSink::create(out)?;
            write_all(a, &mut s, false).inspect_err(|_| {
                // Leave nothing half-written: the directory was absent or empty before.
                let _ = fs::remove_dir_all(out);
                if existed {
                    let _ = fs::create_dir(out);
                }
            })
        }
        OutFormat::OciArchive | OutFormat::DockerArchive => {
            let mut s = TarSink::create(out, a.epoch)?;
            let r = write_all(a, &mut s, format == OutFormat::DockerArchive);
            match r {
                Ok(v) => s.finish().map(|()| v),
                Err(e) => {
                    drop(s);
                    let _ = fs::remove_file(out);
                    Err(e)
                }
            }
        }
    }
}

fn write_all(a: &Assembly<'_>, sink: &mut dyn Sink, docker: bool) -> Result<(Digest, Digest)> {
    sink.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = BTreeSet::new();
    let mut sniffed: BTreeMap<Digest, MediaType> = BTreeMap::new();
    let mut layer_descs = Vec::new();
    for l in a.layers {
        match l {
            BlobSource::Base(desc) => {
                let digest = &desc.digest;
                if written.insert(digest.clone()) {
                    let mut r = Peek {
                        inner: a.opened.source.blob(desc)?,
                        head: Vec::new(),
                    };
                    sink.blob(digest.hex(), desc.size, &mut r)?;
                    sniffed.insert(digest.clone(), sniffed_layer_type(&r.head));
                }
                // Media types lie (containerd: "may have been compressed but failed to use the correct
                // media type"); the bytes decide.
                let media_type = sniffed
                    .get(digest)
                    .cloned()
                    .unwrap_or_else(|| MediaType::from(desc.media_type.as_str()));
                layer_descs.push(oci_descriptor(media_type, digest, desc.size)?);
            }
            BlobSource::Built(b) => {
                if written.insert(b.digest.clone()) {
                    let mut f = reopen(b).map_err(|e| Error::output(b.file.path(), e))?;
                    sink.blob(b.digest.hex(), b.size, &mut f)?;
                }
                layer_descs.push(oci_descriptor(
                    MediaType::ImageLayerGzip,
                    &b.digest,
                    b.size,
                )?);
            }
        }
    }
    let (config_digest, _) =
        copy_hashed(&mut &a.config[..], &mut io::sink()).map_err(|e| Error::output("config", e))?;
    sink.blob(
        config_digest.hex(),
        a.config.len() as u64,
        &mut &a.config[..],
    )?;
    let docker_layers: Vec<Value> = layer_descs
        .iter()
        .map(|d| json!(format!("blobs/sha256/{}", d.digest().digest())))
        .collect();
    let manifest = built(
        oci::ImageManifestBuilder::default()
            .schema_version(oci::SCHEMA_VERSION)
            .media_type(MediaType::ImageManifest)
            .config(oci_descriptor(
                MediaType::ImageConfig,
                &config_digest,
                a.config.len() as u64,
            )?)
            .layers(layer_descs)
            .build(),
    );
    let mbytes = canonical_doc(&manifest);
    let (manifest_digest, _) =
        copy_hashed(&mut &mbytes[..], &mut io::sink()).map_err(|e| Error::output("manifest", e))?;
    sink.blob(manifest_digest.hex(), mbytes.len() as u64, &mut &mbytes[..])?;

    let mut desc = oci_descriptor(
        MediaType::ImageManifest,
        &manifest_digest,
        mbytes.len() as u64,
    )?;
    if let Some(tag) = a.tag {
        desc.set_annotations(Some(HashMap::from([
            (CONTAINERD_IMAGE_NAME.to_string(), tag.to_string()),
            (ANNOTATION_REF_NAME.to_string(), tag_part(tag).to_string()),
        ])));
    }
    let index = built(
        oci::ImageIndexBuilder::default()
            .schema_version(oci::SCHEMA_VERSION)
            .media_type(MediaType::ImageIndex)
            .manifests(vec![desc])
            .build(),
    );
    sink.file("index.json", &canonical_doc(&index))?;
    if docker {
        let tags = a.tag.map_or(Value::Null, |t| json!([t]));
        sink.file("manifest.json", &canonical(&json!([{"Config": format!("blobs/sha256/{}", config_digest.hex()), "RepoTags": tags, "Layers": docker_layers}])))?;
        if let Some(tag) = a.tag {
            let name = tag
                .strip_suffix(&format!(":{}", tag_part(tag)))
                .unwrap_or(tag);
            sink.file(
                "repositories",
                &canonical(&json!({name: {tag_part(tag): config_digest.hex()}})),
            )?;
        }
    }
    Ok((manifest_digest, config_digest))
}

/// The tag of a reference (`edge` of `x1agent/runtime-opencode:edge`; `latest` when there is none).
fn tag_part(reference: &str) -> &str {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    last.rsplit_once(':').map_or("latest", |(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_part_handles_registry_ports() {
        assert_eq!(tag_part("x1agent/runtime-opencode:edge"), "edge");
        assert_eq!(tag_part("registry:5000/x1agent/runtime-opencode"), "latest");
        assert_eq!(tag_part("registry:5000/x1agent/runtime-opencode:v3"), "v3");
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            sniffed_layer_type(&[0x1f, 0x8b, 8, 0]).as_ref(),
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            sniffed_layer_type(&[0x28, 0xb5, 0x2f, 0xfd]).as_ref(),
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
        assert_eq!(
            sniffed_layer_type(b"usta").as_ref(),
            "application/vnd.oci.image.layer.v1.tar"
        );
    }
}
