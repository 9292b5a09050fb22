//! Shared test helpers: in-code image builders that write OCI layouts and docker archives into temp dirs,
//! corpus discovery, the built binary, and test-time secret generation.
//!
//! Typical use:
//! ```ignore
//! let img = ImageBuilder::new()
//!     .layer(Layer::new().dir("etc").file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"))
//!     .layer(Layer::new().whiteout("etc/passwd").compression(Comp::Zstd))
//!     .env("PATH=/usr/bin")
//!     .user("1000");
//! let dir = tempfile::tempdir().unwrap();
//! let path = img.write_oci_dir(dir.path());           // or write_oci_archive / write_docker_archive
//! ```
//! The API is additive-only: other test modules depend on it.

#![allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]

pub mod layout;
pub mod tarw;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

#[allow(unused_imports)]
pub use layout::{IndexItem, Layout, write_docker_archive};
pub use tarw::{Comp, Layer};

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One `history[]` entry.
#[derive(Debug, Clone)]
pub struct Hist {
    pub created_by: String,
    pub empty_layer: bool,
    pub comment: Option<String>,
}

/// Which blob a corruption knob targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Manifest,
    Config,
    Layer(usize),
}

/// Ways to damage the written image (each must make x1-validate exit 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// The descriptor names a digest that does not match the blob's bytes.
    WrongDigest(Target),
    /// The descriptor's size differs from the blob's length.
    WrongSize(Target),
    /// The blob file is not written at all.
    MissingBlob(Target),
    /// `rootfs.diff_ids[i]` is wrong (the layer blob itself is consistent).
    WrongDiffId(usize),
    /// The layer blob is cut in half; descriptor digest/size describe the truncated bytes, so only the
    /// decompression/tar parse notices.
    TruncatedLayer(usize),
    /// The config is not JSON (descriptor consistent with it).
    MalformedConfig,
    /// The manifest is not JSON (descriptor consistent with it).
    MalformedManifest,
    /// index.json (or manifest.json for docker archives) is not JSON.
    MalformedIndex,
    /// The layer blob's bytes start with an unknown magic (bzip2) — digest and size consistent.
    UnknownCompression(usize),
    /// Non-zero bytes after the layer tar's end-of-archive marker (`diff_id` and digests consistent):
    /// an ambiguous tar another parser could read differently.
    TrailingGarbage(usize),
}

/// Builds one image from code.
#[derive(Debug, Clone)]
pub struct ImageBuilder {
    pub layers: Vec<Layer>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    /// Explicit history; when empty, one entry per layer is generated (`created_by: "layer N"`).
    pub history: Vec<Hist>,
    pub corruptions: Vec<Corruption>,
    /// Extra top-level config fields (e.g. `"Healthcheck"` inside `config`), merged into `config.config`.
    pub extra_config: BTreeMap<String, Value>,
    /// OCI media types (default) or Docker v2 media types for manifest/config/layers.
    pub docker_media_types: bool,
}

impl Default for ImageBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The serialized blobs of one image.
#[derive(Debug, Clone)]
pub struct Built {
    pub manifest: Vec<u8>,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub config: Vec<u8>,
    pub config_digest: String,
    /// Stored layer blobs (compressed as asked), in order.
    pub layers: Vec<Vec<u8>>,
    pub layer_digests: Vec<String>,
    /// sha256 of each uncompressed layer tar (before any `diff_id` corruption).
    pub diff_ids: Vec<String>,
    /// Uncompressed tars (docker archives store these).
    pub raw_layers: Vec<Vec<u8>>,
    /// blob digest → bytes that are actually written (after corruption), and skipped ones.
    pub blobs: Vec<(String, Vec<u8>)>,
    pub missing: Vec<String>,
    pub corrupt_index: bool,
}

impl ImageBuilder {
    pub fn new() -> Self {
        ImageBuilder {
            layers: Vec::new(),
            env: Vec::new(),
            user: None,
            labels: BTreeMap::new(),
            entrypoint: None,
            cmd: None,
            working_dir: None,
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            history: Vec::new(),
            corruptions: Vec::new(),
            extra_config: BTreeMap::new(),
            docker_media_types: false,
        }
    }
    #[must_use]
    pub fn layer(mut self, l: Layer) -> Self {
        self.layers.push(l);
        self
    }
    #[must_use]
    pub fn env(mut self, kv: &str) -> Self {
        self.env.push(kv.into());
        self
    }
    #[must_use]
    pub fn user(mut self, u: &str) -> Self {
        self.user = Some(u.into());
        self
    }
    #[must_use]
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    #[must_use]
    pub fn entrypoint(mut self, argv: &[&str]) -> Self {
        self.entrypoint = Some(argv.iter().map(|s| (*s).to_string()).collect());
        self
    }
    #[must_use]
    pub fn cmd(mut self, argv: &[&str]) -> Self {
        self.cmd = Some(argv.iter().map(|s| (*s).to_string()).collect());
        self
    }
    #[must_use]
    pub fn workdir(mut self, d: &str) -> Self {
        self.working_dir = Some(d.into());
        self
    }
    #[must_use]
    pub fn platform(mut self, os: &str, arch: &str, variant: Option<&str>) -> Self {
        self.os = os.into();
        self.architecture = arch.into();
        self.variant = variant.map(Into::into);
        self
    }
    /// Append a history entry. Once any is given, no history is generated.
    #[must_use]
    pub fn history(mut self, created_by: &str, empty_layer: bool) -> Self {
        self.history.push(Hist {
            created_by: created_by.into(),
            empty_layer,
            comment: None,
        });
        self
    }
    #[must_use]
    pub fn corrupt(mut self, c: Corruption) -> Self {
        self.corruptions.push(c);
        self
    }
    #[must_use]
    pub fn config_field(mut self, key: &str, v: Value) -> Self {
        self.extra_config.insert(key.into(), v);
        self
    }
    #[must_use]
    pub fn docker_types(mut self) -> Self {
        self.docker_media_types = true;
        self
    }

    fn has(&self, c: &Corruption) -> bool {
        self.corruptions.contains(c)
    }

    fn config_json(&self, diff_ids: &[String]) -> Vec<u8> {
        if self.has(&Corruption::MalformedConfig) {
            return b"{\"architecture\": \"amd64\", \"os\": ".to_vec();
        }
        let mut cfg = serde_json::Map::new();
        cfg.insert("Env".into(), json!(self.env));
        if let Some(u) = &self.user {
            cfg.insert("User".into(), json!(u));
        }
        if !self.labels.is_empty() {
            cfg.insert("Labels".into(), json!(self.labels));
        }
        if let Some(e) = &self.entrypoint {
            cfg.insert("Entrypoint".into(), json!(e));
        }
        if let Some(c) = &self.cmd {
            cfg.insert("Cmd".into(), json!(c));
        }
        if let Some(w) = &self.working_dir {
            cfg.insert("WorkingDir".into(), json!(w));
        }
        for (k, v) in &self.extra_config {
            cfg.insert(k.clone(), v.clone());
        }
        let history: Vec<Value> = if self.history.is_empty() {
            (0..self.layers.len())
                .map(|i| json!({"created_by": format!("layer {i}"), "comment": "x1 test"}))
                .collect()
        } else {
            self.history
                .iter()
                .map(|h| {
                    let mut o = json!({"created_by": h.created_by});
                    if h.empty_layer {
                        o["empty_layer"] = json!(true);
                    }
                    if let Some(c) = &h.comment {
                        o["comment"] = json!(c);
                    }
                    o
                })
                .collect()
        };
        let mut ids = diff_ids.to_vec();
        for c in &self.corruptions {
            if let Corruption::WrongDiffId(i) = c {
                ids[*i] = sha256(format!("not layer {i}").as_bytes());
            }
        }
        let mut doc = json!({
            "architecture": self.architecture,
            "os": self.os,
            "created": "2026-01-01T00:00:00Z",
            "config": Value::Object(cfg),
            "rootfs": {"type": "layers", "diff_ids": ids},
            "history": history,
        });
        if let Some(v) = &self.variant {
            doc["variant"] = json!(v);
        }
        serde_json::to_vec(&doc).unwrap()
    }

    fn media(&self, what: Target, comp: Comp) -> String {
        match (self.docker_media_types, what) {
            (false, Target::Manifest) => "application/vnd.oci.image.manifest.v1+json".into(),
            (false, Target::Config) => "application/vnd.oci.image.config.v1+json".into(),
            (false, Target::Layer(_)) => match comp {
                Comp::None => "application/vnd.oci.image.layer.v1.tar".into(),
                Comp::Gzip | Comp::GzipMulti => {
                    "application/vnd.oci.image.layer.v1.tar+gzip".into()
                }
                Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd".into(),
            },
            (true, Target::Manifest) => {
                "application/vnd.docker.distribution.manifest.v2+json".into()
            }
            (true, Target::Config) => "application/vnd.docker.container.image.v1+json".into(),
            (true, Target::Layer(_)) => match comp {
                Comp::None => "application/vnd.docker.image.rootfs.diff.tar".into(),
                Comp::Gzip | Comp::GzipMulti => {
                    "application/vnd.docker.image.rootfs.diff.tar.gzip".into()
                }
                Comp::Zstd => "application/vnd.docker.image.rootfs.diff.tar.zstd".into(),
            },
        }
    }

    /// A descriptor for `bytes`, with WrongDigest/WrongSize applied for `t`.
    fn descriptor(&self, t: Target, media: &str, bytes: &[u8]) -> Value {
        let mut digest = sha256(bytes);
        let mut size = bytes.len() as u64;
        if self.has(&Corruption::WrongDigest(t)) {
            digest = sha256(b"something else entirely");
        }
        if self.has(&Corruption::WrongSize(t)) {
            size += 7;
        }
        json!({"mediaType": media, "digest": digest, "size": size})
    }

    /// Serialize everything (corruptions applied).
    pub fn build(&self) -> Built {
        let mut raw_layers = Vec::new();
        let mut stored = Vec::new();
        for (i, l) in self.layers.iter().enumerate() {
            let mut raw = l.tar_bytes();
            if self.has(&Corruption::TrailingGarbage(i)) {
                let mut hidden = Layer::new().file("hidden", b"smuggled").tar_bytes();
                hidden.truncate(1024);
                raw.extend_from_slice(&hidden);
            }
            let mut blob = if self.has(&Corruption::UnknownCompression(i)) {
                let mut b = b"BZh91AY&SY".to_vec();
                b.extend_from_slice(&raw);
                b
            } else {
                l.comp.compress(&raw)
            };
            if self.has(&Corruption::TruncatedLayer(i)) {
                blob.truncate(blob.len() / 2);
            }
            raw_layers.push(raw);
            stored.push(blob);
        }
        let diff_ids: Vec<String> = raw_layers.iter().map(|r| sha256(r)).collect();
        let config = self.config_json(&diff_ids);
        let layer_descs: Vec<Value> = stored
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let t = Target::Layer(i);
                self.descriptor(t, &self.media(t, self.layers[i].comp), b)
            })
            .collect();
        let manifest_media_type = self.media(Target::Manifest, Comp::None);
        let manifest = if self.has(&Corruption::MalformedManifest) {
            b"{\"schemaVersion\": 2, \"layers\": [".to_vec()
        } else {
            serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": manifest_media_type,
                "config": self.descriptor(Target::Config, &self.media(Target::Config, Comp::None), &config),
                "layers": layer_descs,
            }))
            .unwrap()
        };
        // a blob whose descriptor names a wrong digest is stored under that (wrong) name, so the
        // reader finds it and must notice that its content does not match
        let key = |t: Target, bytes: &[u8]| {
            if self.has(&Corruption::WrongDigest(t)) {
                sha256(b"something else entirely")
            } else {
                sha256(bytes)
            }
        };
        let mut blobs = vec![(key(Target::Config, &config), config.clone())];
        let mut missing = Vec::new();
        if self.has(&Corruption::MissingBlob(Target::Config)) {
            missing.push(sha256(&config));
            blobs.pop();
        }
        for (i, b) in stored.iter().enumerate() {
            if self.has(&Corruption::MissingBlob(Target::Layer(i))) {
                missing.push(sha256(b));
            } else {
                blobs.push((key(Target::Layer(i), b), b.clone()));
            }
        }
        if self.has(&Corruption::MissingBlob(Target::Manifest)) {
            missing.push(sha256(&manifest));
        } else {
            blobs.push((key(Target::Manifest, &manifest), manifest.clone()));
        }
        Built {
            manifest_digest: sha256(&manifest),
            manifest_media_type,
            config_digest: sha256(&config),
            layer_digests: stored.iter().map(|b| sha256(b)).collect(),
            layers: stored,
            diff_ids,
            raw_layers,
            blobs,
            missing,
            corrupt_index: self.has(&Corruption::MalformedIndex),
            manifest,
            config,
        }
    }

    /// The index.json descriptor for this image (platform included).
    pub fn index_descriptor(&self, built: &Built, tag: Option<&str>) -> Value {
        let mut d = self.descriptor(
            Target::Manifest,
            &built.manifest_media_type,
            &built.manifest,
        );
        let mut p = json!({"os": self.os, "architecture": self.architecture});
        if let Some(v) = &self.variant {
            p["variant"] = json!(v);
        }
        d["platform"] = p;
        if let Some(t) = tag {
            d["annotations"] = json!({"org.opencontainers.image.ref.name": t});
        }
        d
    }

    /// Write an OCI image layout into `dir/oci` and return its path.
    pub fn write_oci_dir(&self, dir: &Path) -> PathBuf {
        let out = dir.join("oci");
        Layout::new()
            .image(Some("latest"), self.clone())
            .write_dir(&out);
        out
    }

    /// Write an OCI archive (tar of the layout) to `dir/image.oci.tar`.
    pub fn write_oci_archive(&self, dir: &Path) -> PathBuf {
        let out = dir.join("image.oci.tar");
        Layout::new()
            .image(Some("latest"), self.clone())
            .write_tar(&out);
        out
    }

    /// Write a legacy `docker save` archive to `dir/image.docker.tar` (tag `test/image:latest`).
    pub fn write_docker_archive(&self, dir: &Path) -> PathBuf {
        let out = dir.join("image.docker.tar");
        write_docker_archive(
            &out,
            &[(vec!["test/image:latest".to_string()], self.clone())],
        );
        out
    }
}

/// The corpus directory (`X1_CORPUS_DIR`, else `$HOME/x1-corpus/runtime-opencode`), if it exists.
pub fn corpus_dir() -> Option<PathBuf> {
    let p = match std::env::var_os("X1_CORPUS_DIR") {
        Some(v) => PathBuf::from(v),
        None => PathBuf::from(std::env::var_os("HOME")?).join("x1-corpus/runtime-opencode"),
    };
    p.join("oci").is_dir().then_some(p)
}

/// The third-party fixtures dir (`testdata/third-party`: upstream files with their licenses, see its README).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/third-party")
}

/// Path of the built `x1-validate` binary.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_x1-validate"))
}

/// Run the built binary with `args` (`NO_COLOR`, fixed width) and return its output.
pub fn run_bin(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .output()
        .expect("run x1-validate")
}

/// Run the built binary with `stdin` bytes piped in.
pub fn run_bin_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn x1-validate");
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let w = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait x1-validate");
    w.join().unwrap();
    out
}

/// Run `cmd`; panic with its stderr unless it succeeds.
pub fn sh(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// A private buildah (vfs storage, chroot isolation) whose storage lives in `dir` and whose images
/// are removed on drop.
pub struct Buildah {
    storage: PathBuf,
    runroot: PathBuf,
}

impl Buildah {
    pub fn new(dir: &Path) -> Buildah {
        Buildah {
            storage: dir.join("storage"),
            runroot: dir.join("run"),
        }
    }

    /// `buildah --storage-driver vfs --root … --runroot …`
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("buildah");
        c.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(&self.storage)
            .arg("--runroot")
            .arg(&self.runroot);
        c
    }

    /// `bud --layers --isolation chroot -t TAG CONTEXT`. Retried (twice at most) only when a `RUN`
    /// step failed to seal buildah's own memfd copy of its binary (`F_ADD_SEALS` → `EBUSY`: a
    /// transient kernel refusal while the copy's pages are still pinned, seen here once in a clean
    /// CI run); any other failure panics at once.
    pub fn bud(&self, ctx: &Path, tag: &str) {
        let mut cmd = self.cmd();
        cmd.args(["bud", "--layers", "--isolation", "chroot", "-t", tag])
            .arg(ctx);
        for _ in 0..2 {
            let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            let stderr = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                return;
            }
            assert!(stderr.contains("sealing memfd copy"), "{cmd:?}: {stderr}");
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        sh(&mut cmd);
    }

    /// `push TAG DEST` (e.g. `oci-archive:/path`).
    pub fn push(&self, tag: &str, dest: &str) {
        sh(self.cmd().args(["push", tag, dest]));
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let _ = self.cmd().args(["rmi", "-a", "-f"]).output();
    }
}

/// Whether `tool` is on PATH; prints a skip reason when it is not.
#[allow(clippy::print_stderr)]
pub fn have_tool(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!("`{tool}` is not installed"));
    }
    ok
}

/// Report a test that cannot run because a prerequisite (a tool, the corpus, fixtures) is missing. Under
/// `X1_REQUIRE_ALL=1` — set by `scripts/test.sh`, so in CI — a missing prerequisite is a failure: a skip
/// must never hide a missing install step.
#[allow(clippy::print_stderr)]
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("X1_REQUIRE_ALL").is_none_or(|v| v != "1"),
        "required prerequisite missing (X1_REQUIRE_ALL=1): {reason}"
    );
    eprintln!("SKIP: {reason}");
}

/// A random alphanumeric string of `n` chars (for test-time secrets: real prefix + random body).
pub fn random_alnum(n: usize) -> String {
    use rand::Rng as _;
    const CS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CS[rng.random_range(0..CS.len())] as char)
        .collect()
}
