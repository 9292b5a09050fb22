//! One cache entry: a layer's listing and scan result in a form postcard can encode (plain,
//! externally tagged types: the listing's own serde shape is the JSON report's, with internally tagged
//! enums that only self-describing formats decode). The entries are stored in their own compact form
//! ([`Entries`]: fixed-size records and one name buffer), so a warm read decodes them in bulk.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::{Compression, Entries, Heads, HygieneIssue, LayerInfo, LayerListing};
use crate::scan::ScanResult;

/// A license text's stored match result (`license::textmatch::identify_bytes`): only SPDX ids,
/// scores and the matcher's own messages, nothing of the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextRecord {
    /// The key it was stored under (checked on read).
    pub key: String,
    /// Analyses it took from the inventory's text-match budget.
    pub cost: usize,
    /// The terms found (SPDX id, score), or why none.
    pub outcome: Result<Vec<(String, f32)>, String>,
}

/// A stored layer result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The cache key it was stored under (checked on read).
    pub key: String,
    /// The layer blob's digest.
    pub digest: String,
    /// The digest of the uncompressed layer, as the read computed it.
    pub diff_id: String,
    listing: Listing,
    scan: ScanResult,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Listing {
    compression: Option<Comp>,
    uncompressed_size: u64,
    /// The layer's own compact form: records and names as a few bulk buffers.
    entries: Entries,
    whiteouts: Vec<String>,
    opaque_dirs: Vec<String>,
    hygiene: Vec<Hygiene>,
    captured: BTreeMap<usize, Vec<u8>>,
    heads: Heads,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Comp {
    None,
    Gzip,
    Zstd,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Hygiene {
    DuplicatePath(String),
    WhiteoutInFirstLayer(String),
    InvalidWhiteout(String),
    Setuid(String, u32),
    PathEscape(String, String),
    MediaTypeMismatch(String, String),
    Unsupported(String, String),
}

/// The same shape as [`Record`], borrowing the listing (hygiene issues are converted one at a time while
/// they are written, so storing a layer never holds a second copy of its listing).
#[derive(Serialize)]
pub(super) struct RecordRef<'a> {
    key: &'a str,
    digest: String,
    diff_id: String,
    listing: ListingRef<'a>,
    scan: &'a ScanResult,
}

#[derive(Serialize)]
struct ListingRef<'a> {
    compression: Option<Comp>,
    uncompressed_size: u64,
    entries: &'a Entries,
    whiteouts: &'a [String],
    opaque_dirs: &'a [String],
    hygiene: Seq<'a, HygieneIssue, Hygiene>,
    captured: &'a BTreeMap<usize, Vec<u8>>,
    heads: &'a Heads,
}

/// A slice serialised as the sequence of its items converted to `T`.
struct Seq<'a, S, T>(&'a [S], std::marker::PhantomData<T>);

impl<'a, S, T> Serialize for Seq<'a, S, T>
where
    T: Serialize + From<&'a S>,
{
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        s.collect_seq(self.0.iter().map(T::from))
    }
}

impl<'a> RecordRef<'a> {
    pub(super) fn new(
        key: &'a str,
        info: &LayerInfo,
        l: &'a LayerListing,
        scan: &'a ScanResult,
    ) -> RecordRef<'a> {
        RecordRef {
            key,
            digest: info.descriptor.digest.to_string(),
            diff_id: info.diff_id.to_string(),
            listing: ListingRef {
                compression: l.compression.map(|c| match c {
                    Compression::None => Comp::None,
                    Compression::Gzip => Comp::Gzip,
                    Compression::Zstd => Comp::Zstd,
                }),
                uncompressed_size: l.uncompressed_size,
                entries: &l.entries,
                whiteouts: &l.whiteouts,
                opaque_dirs: &l.opaque_dirs,
                hygiene: Seq(&l.hygiene, std::marker::PhantomData),
                captured: &l.captured,
                heads: &l.heads,
            },
            scan,
        }
    }
}

impl Record {
    /// The listing (as layer `info` of the image being checked) and the scan result.
    pub(super) fn into_parts(self, info: &LayerInfo) -> (LayerListing, ScanResult) {
        let l = self.listing;
        let listing = LayerListing {
            index: info.index,
            compression: l.compression.map(|c| match c {
                Comp::None => Compression::None,
                Comp::Gzip => Compression::Gzip,
                Comp::Zstd => Compression::Zstd,
            }),
            compressed_size: info.descriptor.size,
            uncompressed_size: l.uncompressed_size,
            entries: l.entries,
            whiteouts: l.whiteouts,
            opaque_dirs: l.opaque_dirs,
            hygiene: l.hygiene.into_iter().map(HygieneIssue::from).collect(),
            captured: l.captured,
            heads: l.heads,
        };
        (listing, self.scan)
    }
}

impl From<&HygieneIssue> for Hygiene {
    fn from(h: &HygieneIssue) -> Hygiene {
        match h.clone() {
            HygieneIssue::DuplicatePath { path } => Hygiene::DuplicatePath(path),
            HygieneIssue::WhiteoutInFirstLayer { path } => Hygiene::WhiteoutInFirstLayer(path),
            HygieneIssue::InvalidWhiteout { path } => Hygiene::InvalidWhiteout(path),
            HygieneIssue::Setuid { path, mode } => Hygiene::Setuid(path, mode),
            HygieneIssue::PathEscape { raw, detail } => Hygiene::PathEscape(raw, detail),
            HygieneIssue::MediaTypeMismatch { media_type, detail } => {
                Hygiene::MediaTypeMismatch(media_type, detail)
            }
            HygieneIssue::Unsupported { path, detail } => Hygiene::Unsupported(path, detail),
        }
    }
}

impl From<Hygiene> for HygieneIssue {
    fn from(h: Hygiene) -> HygieneIssue {
        match h {
            Hygiene::DuplicatePath(path) => HygieneIssue::DuplicatePath { path },
            Hygiene::WhiteoutInFirstLayer(path) => HygieneIssue::WhiteoutInFirstLayer { path },
            Hygiene::InvalidWhiteout(path) => HygieneIssue::InvalidWhiteout { path },
            Hygiene::Setuid(path, mode) => HygieneIssue::Setuid { path, mode },
            Hygiene::PathEscape(raw, detail) => HygieneIssue::PathEscape { raw, detail },
            Hygiene::MediaTypeMismatch(media_type, detail) => {
                HygieneIssue::MediaTypeMismatch { media_type, detail }
            }
            Hygiene::Unsupported(path, detail) => HygieneIssue::Unsupported { path, detail },
        }
    }
}
