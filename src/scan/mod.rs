//! Secret scanning: patterns as data (`rules/secrets.toml`), an exact-case keyword prefilter (SIMD
//! packed searchers), regexes run near keyword hits, entropy filters, windowed streaming with overlap, nested archives to a bounded
//! depth, and redacted evidence.
//!
//! A [`SecretScanner`] is made per layer and plugged into [`crate::image::read_layers`]; it reads every
//! regular file's bytes once, in fixed windows (a secret on a window boundary is found thanks to the
//! overlap), opens nested archives ([`archive`]) and collects [`Hit`]s, notes and allowlist counts.

pub mod archive;
pub mod engine;
mod gate;
pub mod patterns;
pub mod template;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

pub use engine::{evidence, fingerprint, shannon_entropy};
pub use patterns::{AllowEntry, Pattern, Patterns};

use crate::report::Evidence;
use engine::{RawMatch, Scratch};
use patterns::CONTEXT;

/// Bytes read per window (plus the overlap carried over from the previous one).
pub const CHUNK: usize = 256 * 1024;
/// At most this many hits are kept per layer; more are counted in a note.
pub const MAX_HITS_PER_LAYER: usize = 2000;

/// One secret found in one layer entry (or in a member of a nested archive inside it). Holds only the
/// redacted [`Evidence`], never the value (the layer result cache stores hits as they are).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    /// The entry's `ordinal` in the layer tar ([`crate::image::Entry::ordinal`]).
    pub ordinal: usize,
    /// Absolute path, nested archive members joined with `!` (`/a/b.tgz!package/x.js`).
    pub path: String,
    /// Byte offset of the secret in the innermost file.
    pub offset: u64,
    /// 1-based line when the innermost file is text.
    pub line: Option<u64>,
    pub evidence: Evidence,
}

/// Secret matches found in one small value (metadata): pattern id and redacted evidence.
pub fn scan_value(patterns: &Patterns, value: &[u8]) -> Vec<Evidence> {
    let c = &patterns.inner;
    engine::scan_value(c, value)
        .into_iter()
        .map(|m| evidence(&c.patterns[m.pattern].id, &value[m.start..m.end]))
        .collect()
}

/// Everything one layer's [`SecretScanner`] found: hits (redacted evidence only), notes, allowlist
/// counts and the bytes it read and expanded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScanResult {
    pub hits: Vec<Hit>,
    pub notes: Vec<String>,
    pub suppressed: BTreeMap<String, u64>,
    pub dropped: u64,
    pub bytes_scanned: u64,
    pub nested_expanded: u64,
}

/// The per-layer content scanner plugged into [`crate::image::read_layers`]; carries its hits out.
#[derive(Debug)]
pub struct SecretScanner {
    patterns: Patterns,
    /// What it found so far: hits in scan order, notes (limits hit and archives that could not be
    /// opened: never silent), allowlist suppressions, hits over [`MAX_HITS_PER_LAYER`], bytes scanned
    /// (after nested decompression) and bytes expanded out of nested archives (drawn from the image's
    /// shared budget).
    pub found: ScanResult,
    buf: Vec<u8>,
    scratch: Scratch,
    matches: Vec<RawMatch>,
    /// Bytes expanded out of nested archives: per image when shared ([`SecretScanner::sharing`]).
    nested: Arc<archive::NestedBudget>,
}

impl Default for SecretScanner {
    fn default() -> Self {
        SecretScanner::new(Arc::new(Patterns::default()))
    }
}

impl SecretScanner {
    /// A scanner for one layer.
    #[allow(clippy::needless_pass_by_value)] // the signature the orchestrator uses
    pub fn new(patterns: Arc<Patterns>) -> Self {
        SecretScanner {
            patterns: (*patterns).clone(),
            found: ScanResult::default(),
            buf: Vec::new(),
            scratch: Scratch::default(),
            matches: Vec::new(),
            nested: archive::NestedBudget::for_image(0),
        }
    }

    /// Share `budget` for nested-archive expansion with the image's other layer scanners.
    #[must_use]
    pub fn sharing(mut self, budget: &Arc<archive::NestedBudget>) -> Self {
        self.nested = Arc::clone(budget);
        self
    }

    /// What this scanner found, without its working state (what the layer result cache stores).
    pub fn result(&self) -> ScanResult {
        self.found.clone()
    }

    /// This scanner as if it had read the layer that produced `r` (a result-cache hit): the findings
    /// are `r`'s, and the layer's nested-archive expansion is charged to the shared image budget, as
    /// the read would have.
    #[must_use]
    pub fn restored(mut self, r: ScanResult) -> Self {
        self.nested.charge(r.nested_expanded);
        self.found = r;
        self
    }

    /// The nested-archive budget this scanner draws on.
    pub(crate) fn nested_budget(&self) -> Arc<archive::NestedBudget> {
        Arc::clone(&self.nested)
    }

    /// Scan one stream as the file `path` (absolute) of entry `ordinal`, opening nested archives.
    pub fn scan_stream(
        &mut self,
        ordinal: usize,
        path: &str,
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        archive::scan_entry(self, ordinal, path, content)
    }

    /// Window size plus overlap and look-behind.
    fn overlap(&self) -> usize {
        self.patterns.inner.max_extent + CONTEXT
    }

    /// Scan `head` followed by the rest of `r` as one plain file, window by window.
    pub(crate) fn scan_leaf(
        &mut self,
        ordinal: usize,
        path: &str,
        head: &[u8],
        r: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.scan_leaf_mapped(ordinal, path, head, r, (1, 0))
    }

    /// [`Self::scan_leaf`] over a transformed stream (UTF-16 narrowed to one byte per unit): a hit at
    /// stream offset `o` is reported at file offset `map.1 + map.0 × o`.
    pub(crate) fn scan_leaf_mapped(
        &mut self,
        ordinal: usize,
        path: &str,
        head: &[u8],
        r: &mut dyn Read,
        map: (u64, u64),
    ) -> std::io::Result<()> {
        let overlap = self.overlap();
        let cap = CHUNK.max(head.len()) + overlap;
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(cap, 0);
        buf[..head.len()].copy_from_slice(head);
        let mut filled = head.len();
        let mut base = 0u64;
        let mut lo = 0usize;
        let mut newlines = 0u64;
        let mut text: Option<bool> = None;
        let result = loop {
            let mut eof = false;
            while filled < cap {
                match r.read(&mut buf[filled..cap]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf = buf;
                        return Err(e);
                    }
                }
            }
            let is_text = *text.get_or_insert_with(|| !buf[..filled.min(8192)].contains(&0));
            let hi = if eof { filled } else { filled - overlap };
            self.matches.clear();
            engine::scan_region(
                &self.patterns.inner,
                &buf[..filled],
                lo,
                hi,
                &mut self.scratch,
                &mut self.matches,
            );
            let matches = std::mem::take(&mut self.matches);
            for m in &matches {
                let line = is_text.then(|| newlines + count_newlines(&buf[..m.start]) + 1);
                let secret = &buf[m.start..m.end];
                self.record(
                    ordinal,
                    path,
                    map.1 + map.0 * (base + m.start as u64),
                    line,
                    m.pattern,
                    secret,
                );
            }
            self.matches = matches;
            if eof {
                self.found.bytes_scanned += base + filled as u64;
                break Ok(());
            }
            let drop = hi - CONTEXT;
            if is_text {
                newlines += count_newlines(&buf[..drop]);
            }
            buf.copy_within(drop..filled, 0);
            filled -= drop;
            base += drop as u64;
            lo = hi - drop;
        };
        self.buf = buf;
        result
    }

    /// Keep (or suppress, counted) one match.
    fn record(
        &mut self,
        ordinal: usize,
        path: &str,
        offset: u64,
        line: Option<u64>,
        pattern: usize,
        secret: &[u8],
    ) {
        let id = &self.patterns.inner.patterns[pattern].id;
        let ev = evidence(id, secret);
        if let Some(a) = self.patterns.allowed(path, id, &ev.fingerprint) {
            *self.found.suppressed.entry(a.id.clone()).or_default() += 1;
            return;
        }
        if self.found.hits.len() >= MAX_HITS_PER_LAYER {
            self.found.dropped += 1;
            return;
        }
        self.found.hits.push(Hit {
            ordinal,
            path: path.to_string(),
            offset,
            line,
            evidence: ev,
        });
    }

    /// A note that is reported, never dropped.
    pub(crate) fn note(&mut self, text: String) {
        self.found.notes.push(text);
    }
}

fn count_newlines(b: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', b).count() as u64
}

impl crate::image::ContentScanner for SecretScanner {
    fn scan(
        &mut self,
        _layer: &crate::image::LayerInfo,
        entry: &crate::image::Entry,
        content: &mut dyn Read,
    ) -> std::io::Result<()> {
        let path = format!("/{}", entry.path);
        self.scan_stream(entry.ordinal(), &path, content)
    }

    fn finish(&mut self) {
        self.buf = Vec::new();
        self.matches = Vec::new();
        self.scratch = Scratch::default();
    }
}
