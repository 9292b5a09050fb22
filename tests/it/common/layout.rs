//! Multi-image writers for tests: an OCI layout (directory or archive) holding several images, nested
//! multi-platform indexes with BuildKit-style attestations, and `docker save` archives with several
//! images and Docker's deduplicated `layer.tar` symlinks.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{ImageBuilder, sha256, tarw};

/// `dir` as an OCI layout whose `edge` is a two-platform index: linux/amd64 and linux/arm64/v8, each a
/// one-file image (`/arch` says which), with a BuildKit-style attestation when `attestation`.
pub fn amd64_arm64(dir: &Path, attestation: bool) {
    let amd = ImageBuilder::new().layer(super::Layer::new().file("arch", b"amd64"));
    let arm = ImageBuilder::new()
        .platform("linux", "arm64", Some("v8"))
        .layer(super::Layer::new().file("arch", b"arm64"));
    Layout::new()
        .multi_platform(Some("edge"), vec![amd, arm], attestation)
        .write_dir(dir);
}

/// What an OCI layout's `index.json` holds.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum IndexItem {
    /// One image manifest with an optional ref name.
    Image(Option<String>, ImageBuilder),
    /// A nested image index of several platforms (optional ref name), optionally with a BuildKit-style
    /// attestation manifest for the first image.
    MultiPlatform(Option<String>, Vec<ImageBuilder>, bool),
}

/// Several images in one OCI layout.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub items: Vec<IndexItem>,
    /// Extra files to add to the layout root (name, bytes), e.g. a `manifest.json` for dual-format tars.
    pub extra_files: Vec<(String, Vec<u8>)>,
}

impl Layout {
    pub fn new() -> Self {
        Self::default()
    }
    #[must_use]
    pub fn image(mut self, tag: Option<&str>, img: ImageBuilder) -> Self {
        self.items.push(IndexItem::Image(tag.map(Into::into), img));
        self
    }
    #[must_use]
    pub fn multi_platform(
        mut self,
        tag: Option<&str>,
        imgs: Vec<ImageBuilder>,
        attestation: bool,
    ) -> Self {
        self.items.push(IndexItem::MultiPlatform(
            tag.map(Into::into),
            imgs,
            attestation,
        ));
        self
    }

    /// All files of the layout, relative names → bytes.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut missing = Vec::new();
        let mut manifests = Vec::new();
        let mut corrupt_index = false;
        for item in &self.items {
            match item {
                IndexItem::Image(tag, img) => {
                    let b = img.build();
                    corrupt_index |= b.corrupt_index;
                    manifests.push(img.index_descriptor(&b, tag.as_deref()));
                    blobs.extend(b.blobs);
                    missing.extend(b.missing);
                }
                IndexItem::MultiPlatform(tag, imgs, att) => {
                    let mut descs = Vec::new();
                    for img in imgs {
                        let b = img.build();
                        descs.push(img.index_descriptor(&b, None));
                        blobs.extend(b.blobs);
                    }
                    if *att {
                        let (d, extra) = attestation_manifest(&descs[0]);
                        descs.push(d);
                        blobs.extend(extra);
                    }
                    let idx = serde_json::to_vec(&json!({
                        "schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": descs,
                    }))
                    .unwrap();
                    let mut d = json!({
                        "mediaType": "application/vnd.oci.image.index.v1+json",
                        "digest": sha256(&idx), "size": idx.len(),
                    });
                    if let Some(t) = tag {
                        d["annotations"] = json!({"org.opencontainers.image.ref.name": t});
                    }
                    manifests.push(d);
                    blobs.insert(sha256(&idx), idx);
                }
            }
        }
        for m in &missing {
            blobs.remove(m);
        }
        let index = if corrupt_index {
            b"{\"schemaVersion\": 2, \"manifests\": [".to_vec()
        } else {
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": manifests,
            }))
            .unwrap()
        };
        let mut files = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), index),
        ];
        for (d, b) in blobs {
            files.push((format!("blobs/sha256/{}", &d[7..]), b));
        }
        files.extend(self.extra_files.iter().cloned());
        files
    }

    /// Write the layout as a directory.
    pub fn write_dir(&self, out: &Path) {
        for (name, bytes) in self.files() {
            let p = out.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
    }

    /// Write the layout as an OCI archive (tar).
    pub fn write_tar(&self, out: &Path) {
        let mut t = tarw::TarWriter::new();
        t.dir("blobs/");
        t.dir("blobs/sha256/");
        for (name, bytes) in self.files() {
            t.file(&name, &bytes);
        }
        std::fs::write(out, t.finish()).unwrap();
    }
}

/// A BuildKit-style attestation manifest (in-toto layer) for the image `subject`.
fn attestation_manifest(subject: &Value) -> (Value, Vec<(String, Vec<u8>)>) {
    let layer = br#"{"_type":"https://in-toto.io/Statement/v0.1","predicate":{}}"#.to_vec();
    let config =
        br#"{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let m = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": sha256(&layer), "size": layer.len(),
                    "annotations": {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"}}],
    }))
    .unwrap();
    let d = json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": sha256(&m), "size": m.len(),
        "platform": {"os": "unknown", "architecture": "unknown"},
        "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                        "vnd.docker.reference.digest": subject["digest"]},
    });
    (
        d,
        vec![
            (sha256(&layer), layer),
            (sha256(&config), config),
            (sha256(&m), m),
        ],
    )
}

/// Write a legacy `docker save` archive holding `images` (each with its `RepoTags`). Layers are stored as
/// `<v1id>/layer.tar` in their builder's compression (None = classic Docker); a layer identical to an
/// earlier one is stored as a symlink `../<id>/layer.tar`, as Docker does.
pub fn write_docker_archive(out: &Path, images: &[(Vec<String>, ImageBuilder)]) {
    let mut t = tarw::TarWriter::new();
    let mut manifest = Vec::new();
    let mut repositories = serde_json::Map::new();
    let mut written: BTreeMap<String, String> = BTreeMap::new();
    let mut corrupt_index = false;
    for (tags, img) in images {
        let b = img.build();
        corrupt_index |= b.corrupt_index;
        let cfg_name = format!("{}.json", &b.config_digest[7..]);
        if !b.missing.contains(&b.config_digest) {
            t.file(&cfg_name, &b.config);
        }
        let mut layer_paths = Vec::new();
        let mut parent = String::new();
        for (i, blob) in b.layers.iter().enumerate() {
            let id = sha256(format!("{parent}{}", b.layer_digests[i]).as_bytes())[7..].to_string();
            let name = format!("{id}/layer.tar");
            if !written.contains_key(&name) {
                t.dir(&format!("{id}/"));
                t.file(&format!("{id}/VERSION"), b"1.0");
                t.file(
                    &format!("{id}/json"),
                    format!("{{\"id\":\"{id}\"}}").as_bytes(),
                );
                if let Some(first) = written.iter().find(|(_, d)| **d == b.layer_digests[i]) {
                    let first_id = first.0.trim_end_matches("/layer.tar").to_string();
                    t.symlink(&name, &format!("../{first_id}/layer.tar"));
                } else if !b.missing.contains(&b.layer_digests[i]) {
                    t.file(&name, blob);
                }
                written.insert(name.clone(), b.layer_digests[i].clone());
            }
            layer_paths.push(name);
            parent = id;
        }
        manifest.push(json!({"Config": cfg_name, "RepoTags": tags, "Layers": layer_paths}));
        for tag in tags {
            let (repo, tg) = tag.rsplit_once(':').unwrap_or((tag, "latest"));
            repositories
                .entry(repo.to_string())
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(tg.into(), json!(parent));
        }
    }
    let mj = if corrupt_index {
        b"[{\"Config\": ".to_vec()
    } else {
        serde_json::to_vec(&manifest).unwrap()
    };
    t.file("manifest.json", &mj);
    t.file(
        "repositories",
        &serde_json::to_vec(&Value::Object(repositories)).unwrap(),
    );
    std::fs::write(out, t.finish()).unwrap();
}
