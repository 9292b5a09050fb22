//! Reading images: every input shape (OCI layout dir, OCI archive, `docker save` in all its variants,
//! stdin), digest-verified blob access, one streaming pass per layer, and the merged virtual filesystem
//! with per-path provenance.
//!
//! Flow: [`open`] sniffs the input and returns an [`Opened`] holding a [`Source`] (blob access) and one
//! [`Image`] per platform. [`layer::read_layers`] streams every layer of an image once (in parallel),
//! verifying digest, size and `diff_id`, producing a [`LayerListing`] per layer and feeding regular-file
//! content to a caller-supplied [`ContentScanner`]. [`tree::MergedTree::merge`] folds the listings into
//! the final filesystem.

pub mod archive;
pub mod blob;
pub mod capture;
pub mod digest;
pub mod docker;
pub mod entries;
pub mod entry;
pub mod json;
pub mod layer;
pub mod media;
pub mod registry;
pub mod select;
pub mod source;
pub mod stream;
pub mod tree;
pub mod walk;
pub mod whiteout;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;

use serde::Serialize;

pub use digest::Digest;
pub use entry::{Entries, Entry, EntryKind};
pub use layer::{CapturePolicy, ContentScanner, LayerOutput, read_layers};
pub use source::{Opened, Source, open};
pub use tree::{MergedTree, Resolved};

/// An OCI content descriptor (also used for Docker v2 descriptors).
#[derive(Debug, Clone, Serialize)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A `--platform` value that is not `OS/ARCH[/VARIANT]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected OS/ARCH or OS/ARCH/VARIANT (e.g. linux/amd64)")]
pub struct BadPlatform(pub String);

/// `os/arch[/variant]`, each part non-empty (`linux/amd64/` is refused): the one parser of `--platform`,
/// used by clap for every subcommand.
impl std::str::FromStr for Platform {
    type Err = BadPlatform;

    fn from_str(s: &str) -> std::result::Result<Platform, BadPlatform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(BadPlatform(s.into()));
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(BadPlatform(s.into())),
        }
    }
}

/// `--platform` of the image-reading commands: `all` (every platform of an index) or one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PlatformChoice {
    #[default]
    All,
    One(Platform),
}

impl PlatformChoice {
    /// The one platform asked for; `None` for `all`.
    pub fn platform(&self) -> Option<&Platform> {
        match self {
            PlatformChoice::All => None,
            PlatformChoice::One(p) => Some(p),
        }
    }
}

impl std::str::FromStr for PlatformChoice {
    type Err = BadPlatform;

    fn from_str(s: &str) -> std::result::Result<PlatformChoice, BadPlatform> {
        if s == "all" {
            Ok(PlatformChoice::All)
        } else {
            s.parse().map(PlatformChoice::One)
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One `history[]` entry of the config.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HistoryEntry {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub author: Option<String>,
    pub empty_layer: bool,
}

/// The parts of the image config the checks use. `raw` keeps the whole document (Healthcheck etc.).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageConfig {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub user: String,
    /// `KEY=VALUE` strings exactly as in the config.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub history: Vec<HistoryEntry>,
    pub diff_ids: Vec<Digest>,
    #[serde(skip)]
    pub raw: serde_json::Value,
}

/// One layer of one image.
#[derive(Debug, Clone, Serialize)]
pub struct LayerInfo {
    /// 0-based position in the manifest.
    pub index: usize,
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    /// The non-empty history entry that belongs to this layer, when history lines up.
    pub history: Option<HistoryEntry>,
}

/// Compression found by sniffing magic bytes (never by media type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One runnable image: a manifest of one platform, its config and its layers.
#[derive(Debug, Clone, Serialize)]
pub struct Image {
    pub platform: Platform,
    pub manifest: Descriptor,
    pub config_descriptor: Descriptor,
    pub config: ImageConfig,
    pub layers: Vec<LayerInfo>,
    /// Tags/refs this image is known by (`org.opencontainers.image.ref.name`, `RepoTags`, …).
    pub ref_names: Vec<String>,
    /// The manifest's own annotations.
    pub annotations: BTreeMap<String, String>,
    /// The input has no manifest for this image (`docker save` legacy): `manifest` describes one made up
    /// by x1-validate, whose digest no registry shows.
    pub manifest_synthesised: bool,
}

/// A blob that is not a platform image but is scanned for secrets: attestation manifests and their
/// layers (in-toto), index annotations, signatures.
#[derive(Debug, Clone, Serialize)]
pub struct Attestation {
    pub descriptor: Descriptor,
    /// What refers to it (e.g. `vnd.docker.reference.digest` of the subject).
    pub subject: Option<String>,
}

/// A problem in one layer that the `layer-hygiene` rule reports.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HygieneIssue {
    DuplicatePath {
        path: String,
    },
    WhiteoutInFirstLayer {
        path: String,
    },
    InvalidWhiteout {
        path: String,
    },
    Setuid {
        path: String,
        mode: u32,
    },
    /// The raw tar name (or hardlink/symlink target) escapes the root (`../`, or a link target that
    /// climbs above `/`). Always an error.
    PathEscape {
        raw: String,
        detail: String,
    },
    /// The layer's media type declares another compression than its bytes have (podman
    /// `save --format oci-dir --uncompressed` labels plain tars `tar+gzip`). Not tied to a path.
    MediaTypeMismatch {
        media_type: String,
        detail: String,
    },
    /// Entry types x1-validate does not model (e.g. overlayfs 0/0 char-device whiteouts) are listed here.
    Unsupported {
        path: String,
        detail: String,
    },
}

/// Everything one streaming pass learns about one layer, except content scan results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LayerListing {
    pub index: usize,
    pub compression: Option<Compression>,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    /// Every entry except whiteout markers, in tar order.
    pub entries: Entries,
    /// Paths deleted by `.wh.<name>` (the deleted path, normalised).
    pub whiteouts: Vec<String>,
    /// Directories made opaque by `.wh..wh..opq` (`""` for the root).
    pub opaque_dirs: Vec<String>,
    pub hygiene: Vec<HygieneIssue>,
    /// Small files captured by the [`CapturePolicy`], keyed by the entry's index in `entries`.
    #[serde(skip)]
    pub captured: BTreeMap<usize, Vec<u8>>,
    /// What the checks need of the leading bytes of executable regular files (read up to
    /// [`CapturePolicy::head_bytes`], kept as [`entries::head_to_keep`] trims them), keyed likewise.
    #[serde(skip)]
    pub heads: Heads,
}

/// Executable heads of one layer in one buffer: `(entry index, end offset)` in increasing entry order,
/// and the bytes (a `BTreeMap<usize, Vec<u8>>` costs about 60 bytes of bookkeeping per head).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Heads {
    index: Vec<(u32, u32)>,
    bytes: Vec<u8>,
}

impl Heads {
    /// Add the head of entry `entry`. Entries come in increasing order; an entry out of order, or
    /// one past the `u32` bounds of the buffer, is not kept (`false`).
    pub fn push(&mut self, entry: usize, head: &[u8]) -> bool {
        let Ok(e) = u32::try_from(entry) else {
            return false;
        };
        if self.index.last().is_some_and(|&(last, _)| last >= e) {
            return false;
        }
        let Ok(end) = u32::try_from(self.bytes.len() + head.len()) else {
            return false;
        };
        self.bytes.extend_from_slice(head);
        self.index.push((e, end));
        true
    }

    /// The head of entry `entry`, if kept.
    pub fn get(&self, entry: usize) -> Option<&[u8]> {
        let e = u32::try_from(entry).ok()?;
        let i = self.index.binary_search_by_key(&e, |&(k, _)| k).ok()?;
        let start = if i == 0 { 0 } else { self.index[i - 1].1 };
        self.bytes.get(start as usize..self.index[i].1 as usize)
    }

    /// Every `(entry index, head)` in entry order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        let starts = std::iter::once(0).chain(self.index.iter().map(|&(_, end)| end));
        self.index.iter().zip(starts).map(|(&(e, end), start)| {
            (
                e as usize,
                self.bytes
                    .get(start as usize..end as usize)
                    .unwrap_or_default(),
            )
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Release spare capacity once the layer is read.
    pub fn shrink_to_fit(&mut self) {
        self.index.shrink_to_fit();
        self.bytes.shrink_to_fit();
    }
}

/// A `Read` of one blob whose bytes are checked against its descriptor; returned by [`Source::blob`].
pub type BlobReader = Box<dyn Read + Send>;
