//! One streaming pass per layer blob: digest-verified read → compression sniffed from magic bytes →
//! `diff_id` hashed over the uncompressed bytes → hardened tar parse → [`LayerListing`], with every
//! regular file's content handed to a [`ContentScanner`]. Layers run in parallel (rayon) and come back in
//! order. Nothing is extracted to disk; no whole layer or whole file is held in memory.

use std::io::Read;

use globset::GlobSet;

use super::{Entry, Image, LayerInfo, LayerListing, Source};
use crate::error::Result;

/// Receives the content of every regular-file entry of one layer (deleted, overwritten and hidden
/// entries included). One instance per layer, made by the factory given to [`read_layers`]; the instance
/// is returned in [`LayerOutput::scan`] so it can carry its findings out.
pub trait ContentScanner: Send {
    /// `content` yields exactly `entry.size` bytes. The scanner may stop early; the reader drains the rest.
    fn scan(
        &mut self,
        layer: &LayerInfo,
        entry: &Entry,
        content: &mut dyn Read,
    ) -> std::io::Result<()>;
}

/// A scanner that reads nothing (for `inspect`/`files`).
#[derive(Debug, Default)]
pub struct NoScan;

impl ContentScanner for NoScan {
    fn scan(&mut self, _: &LayerInfo, _: &Entry, _: &mut dyn Read) -> std::io::Result<()> {
        Ok(())
    }
}

/// Which file contents to keep in memory during the pass (for the checks that read files: os-release,
/// passwd, package.json, dpkg status, runtime config, credential files …).
#[derive(Debug, Clone)]
pub struct CapturePolicy {
    /// Paths (normalised, no leading `/`) whose regular-file content is captured whole…
    pub globs: GlobSet,
    /// …when the entry is at most this many bytes (larger ones are not captured).
    pub max_size: u64,
    /// Leading bytes kept for every regular file with an execute bit or an ELF/`#!` start (0 = none).
    pub head_bytes: usize,
}

impl CapturePolicy {
    /// Capture nothing.
    pub fn none() -> Self {
        CapturePolicy {
            globs: GlobSet::empty(),
            max_size: 0,
            head_bytes: 0,
        }
    }
}

/// What [`read_layers`] returns for each layer, in layer order.
#[derive(Debug)]
pub struct LayerOutput<S> {
    pub listing: LayerListing,
    pub scan: S,
}

/// Stream every layer of `image` once, in parallel, verifying compressed digest+size and `diff_id`.
/// Any mismatch, truncation or unknown compression is `Error::Corrupt` (exit 3) naming the blob.
pub fn read_layers<S, F>(
    source: &Source,
    image: &Image,
    capture: &CapturePolicy,
    make_scanner: F,
) -> Result<Vec<LayerOutput<S>>>
where
    S: ContentScanner,
    F: Fn(&LayerInfo) -> S + Sync,
{
    let _ = (source, image, capture, &make_scanner);
    todo!("image helper: implement")
}
