//! What one layer pass keeps and hands on: the [`CapturePolicy`] (which file contents the checks need)
//! and the [`ContentScanner`] every regular file's bytes go through. Shared by the pass
//! ([`super::layer`]) and the tar walk ([`super::entries`]), so neither depends on the other.

use std::io::Read;

use globset::GlobSet;

use super::{Entry, LayerInfo};

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

    /// The layer is read: drop working buffers (the scanner is kept with its results until every
    /// layer is read, so a buffer kept here is held once per layer).
    fn finish(&mut self) {}
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
    /// Capture the files matching `globs` (normalised paths, no leading `/`; `**` crosses directories)
    /// up to `max_size` bytes each, plus `head_bytes` of every executable.
    pub fn from_globs(
        globs: impl IntoIterator<Item = String>,
        max_size: u64,
        head_bytes: usize,
    ) -> crate::Result<Self> {
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            let glob = globset::GlobBuilder::new(&g)
                .literal_separator(true)
                .build()
                .map_err(|e| crate::Error::Usage(format!("invalid capture glob `{g}`: {e}")))?;
            b.add(glob);
        }
        let globs = b
            .build()
            .map_err(|e| crate::Error::Usage(format!("invalid capture globs: {e}")))?;
        Ok(CapturePolicy {
            globs,
            max_size,
            head_bytes,
        })
    }

    /// Capture nothing.
    pub fn none() -> Self {
        CapturePolicy {
            globs: GlobSet::empty(),
            max_size: 0,
            head_bytes: 0,
        }
    }
}
