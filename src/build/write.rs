//! Writing the assembled image: an OCI layout dir, an OCI archive (a tar of that layout), or a
//! docker-archive that is also an OCI layout (the Docker 25+ shape: `manifest.json` + `index.json` +
//! `blobs/`). Tar outputs use fixed headers, so the same blobs give the same archive bytes.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::canonical;
use super::layer::{BuiltLayer, copy_hashed, reopen};
use crate::error::{Error, Result};
use crate::image::{Descriptor, Opened};

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

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
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

fn sniffed_layer_type(head: &[u8]) -> &'static str {
    if head.starts_with(&[0x1f, 0x8b]) {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    } else {
        "application/vnd.oci.image.layer.v1.tar"
    }
}

/// Write blobs and index files; returns (manifest digest, config digest).
pub fn write_out(a: &Assembly<'_>, format: OutFormat, out: &Path) -> Result<(String, String)> {
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

fn write_all(a: &Assembly<'_>, sink: &mut dyn Sink, docker: bool) -> Result<(String, String)> {
    sink.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut written = BTreeSet::new();
    let mut sniffed: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let mut layer_descs = Vec::new();
    for l in a.layers {
        match l {
            BlobSource::Base(desc) => {
                let digest = desc.digest.to_string();
                let mut media_type = desc.media_type.clone();
                if written.insert(digest.clone()) {
                    let mut r = Peek {
                        inner: a.opened.source.blob(desc)?,
                        head: Vec::new(),
                    };
                    sink.blob(hex_of(&digest), desc.size, &mut r)?;
                    sniffed.insert(digest.clone(), sniffed_layer_type(&r.head).into());
                }
                // Media types lie (containerd: "may have been compressed but failed to use the correct
                // media type"); the bytes decide.
                if let Some(t) = sniffed.get(&digest) {
                    media_type.clone_from(t);
                }
                layer_descs
                    .push(json!({"mediaType": media_type, "digest": digest, "size": desc.size}));
            }
            BlobSource::Built(b) => {
                if written.insert(b.digest.clone()) {
                    let mut f = reopen(b).map_err(|e| Error::output(b.file.path(), e))?;
                    sink.blob(hex_of(&b.digest), b.size, &mut f)?;
                }
                layer_descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": b.digest, "size": b.size}));
            }
        }
    }
    let (config_digest, _) =
        copy_hashed(&mut &a.config[..], &mut io::sink()).map_err(|e| Error::output("config", e))?;
    sink.blob(
        hex_of(&config_digest),
        a.config.len() as u64,
        &mut &a.config[..],
    )?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": a.config.len()},
        "layers": layer_descs,
    });
    let mbytes = canonical(&manifest);
    let (manifest_digest, _) =
        copy_hashed(&mut &mbytes[..], &mut io::sink()).map_err(|e| Error::output("manifest", e))?;
    sink.blob(
        hex_of(&manifest_digest),
        mbytes.len() as u64,
        &mut &mbytes[..],
    )?;

    let mut desc = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": mbytes.len()});
    if let Some(tag) = a.tag {
        let short = tag_part(tag);
        desc["annotations"] =
            json!({"io.containerd.image.name": tag, "org.opencontainers.image.ref.name": short});
    }
    sink.file("index.json", &canonical(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]})))?;
    if docker {
        let layers: Vec<Value> = layer_descs
            .iter()
            .map(|d| {
                json!(format!(
                    "blobs/sha256/{}",
                    hex_of(d["digest"].as_str().unwrap_or_default())
                ))
            })
            .collect();
        let tags = a.tag.map_or(Value::Null, |t| json!([t]));
        sink.file("manifest.json", &canonical(&json!([{"Config": format!("blobs/sha256/{}", hex_of(&config_digest)), "RepoTags": tags, "Layers": layers}])))?;
        if let Some(tag) = a.tag {
            let name = tag
                .strip_suffix(&format!(":{}", tag_part(tag)))
                .unwrap_or(tag);
            sink.file(
                "repositories",
                &canonical(&json!({name: {tag_part(tag): hex_of(&config_digest)}})),
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
        assert!(sniffed_layer_type(&[0x1f, 0x8b, 8, 0]).ends_with("+gzip"));
        assert!(sniffed_layer_type(&[0x28, 0xb5, 0x2f, 0xfd]).ends_with("+zstd"));
        assert_eq!(
            sniffed_layer_type(b"usta"),
            "application/vnd.oci.image.layer.v1.tar"
        );
    }
}
