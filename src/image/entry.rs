//! One layer's entries, compactly: every entry is a 40-byte record, and all of the layer's names (paths,
//! link targets, device numbers) sit in one shared buffer the records point into. A million-file image
//! holds a million entries, so this is most of the memory a check needs.
//!
//! [`Entry`] is the view the rest of the program reads (`listing.entries.get(i)`, `.iter()`); the buffer is
//! shared (an `Arc`) with the merged tree, whose nodes point into it instead of copying paths.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// Kinds of tar entry, after PAX/GNU processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum EntryKind<'a> {
    File,
    Dir,
    Symlink {
        target: &'a str,
    },
    /// `target` is normalised like a path (no leading `/`).
    Hardlink {
        target: &'a str,
    },
    Char {
        major: u32,
        minor: u32,
    },
    Block {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One tar entry of one layer, normalised (a view into its [`Entries`]). `path` has no leading `/`, no
/// `.`/`..` components; the root is `""`. Whiteout markers never appear as entries (see
/// [`super::LayerListing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub kind: EntryKind<'a>,
    /// Permission bits including setuid/setgid/sticky (`0o7777` mask).
    pub mode: u32,
    /// Position of the entry in the layer's tar (0-based, counting every header incl. whiteouts).
    pub ordinal: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
}

impl Entry<'_> {
    pub fn is_file(&self) -> bool {
        matches!(self.kind, EntryKind::File)
    }
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, EntryKind::Dir)
    }
    /// [`Entry::ordinal`] as an index.
    pub fn ordinal(&self) -> usize {
        self.ordinal as usize
    }
}

/// Why an entry could not be added: the layer's names would pass 4 GiB (offsets are `u32`), or the
/// mode has bits above `0o177777`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error("the layer's entry names take more than 4 GiB")]
    Names,
    #[error("entry mode {0:#o} has bits beyond the permission bits")]
    Mode(u32),
}

const FILE: u8 = 0;
const DIR: u8 = 1;
const SYMLINK: u8 = 2;
const HARDLINK: u8 = 3;
const CHAR: u8 = 4;
const BLOCK: u8 = 5;
const FIFO: u8 = 6;
/// In [`Rec::kind`]: uid/gid are in [`Entries::big_ids`] (one of them does not fit a `u32` below
/// `u32::MAX`).
const BIG_IDS: u8 = 0x80;

/// One entry as stored: its names are `paths[off..off + path_len]` and, up to the next record's `off`,
/// the link target or the device numbers (major and minor as 8 hex digits each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Rec {
    size: u64,
    mtime: u64,
    off: u32,
    path_len: u32,
    ordinal: u32,
    uid: u32,
    gid: u32,
    mode: u16,
    kind: u8,
}

/// Bytes of one [`Rec`] in the cache encoding.
const REC_BYTES: usize = 39;

impl Rec {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime.to_le_bytes());
        out.extend_from_slice(&self.off.to_le_bytes());
        out.extend_from_slice(&self.path_len.to_le_bytes());
        out.extend_from_slice(&self.ordinal.to_le_bytes());
        out.extend_from_slice(&self.uid.to_le_bytes());
        out.extend_from_slice(&self.gid.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
        out.push(self.kind);
    }

    fn decode(b: &[u8; REC_BYTES]) -> Rec {
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or_default());
        Rec {
            size: u64_at(0),
            mtime: u64_at(8),
            off: u32_at(16),
            path_len: u32_at(20),
            ordinal: u32_at(24),
            uid: u32_at(28),
            gid: u32_at(32),
            mode: u16::from_le_bytes([b[36], b[37]]),
            kind: b[38],
        }
    }
}

/// The end offset of `add` more bytes after `start`, if it fits the `u32` offsets (refused, never
/// wrapped).
fn end_offset(start: usize, add: usize) -> Option<u32> {
    start.checked_add(add).and_then(|e| u32::try_from(e).ok())
}

/// Every entry of one layer, in tar order.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Entries {
    recs: Vec<Rec>,
    /// All names of the layer, back to back (shared with the merged tree).
    paths: Arc<String>,
    /// `(entry index, uid, gid)` of the entries flagged [`BIG_IDS`], in entry order.
    big_ids: Vec<(u32, u64, u64)>,
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Entries {
    pub fn len(&self) -> usize {
        self.recs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.recs.is_empty()
    }

    /// Append an entry (its names are copied into the layer's buffer).
    pub fn push(&mut self, e: &Entry<'_>) -> Result<(), TooLarge> {
        let mode = u16::try_from(e.mode).map_err(|_| TooLarge::Mode(e.mode))?;
        let dev;
        let (kind, extra): (u8, &str) = match e.kind {
            EntryKind::File => (FILE, ""),
            EntryKind::Dir => (DIR, ""),
            EntryKind::Symlink { target } => (SYMLINK, target),
            EntryKind::Hardlink { target } => (HARDLINK, target),
            EntryKind::Char { major, minor } => {
                dev = format!("{major:08x}{minor:08x}");
                (CHAR, dev.as_str())
            }
            EntryKind::Block { major, minor } => {
                dev = format!("{major:08x}{minor:08x}");
                (BLOCK, dev.as_str())
            }
            EntryKind::Fifo => (FIFO, ""),
        };
        let start = self.paths.len();
        let off = end_offset(start, 0).ok_or(TooLarge::Names)?;
        end_offset(start, e.path.len() + extra.len()).ok_or(TooLarge::Names)?;
        let path_len = u32::try_from(e.path.len()).map_err(|_| TooLarge::Names)?;
        let index = u32::try_from(self.recs.len()).map_err(|_| TooLarge::Names)?;
        let small = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
        let (uid, gid, kind) = if let (Some(u), Some(g)) = (small(e.uid), small(e.gid)) {
            (u, g, kind)
        } else {
            self.big_ids.push((index, e.uid, e.gid));
            (u32::MAX, u32::MAX, kind | BIG_IDS)
        };
        let paths = Arc::make_mut(&mut self.paths);
        paths.push_str(e.path);
        paths.push_str(extra);
        self.recs.push(Rec {
            size: e.size,
            mtime: e.mtime,
            off,
            path_len,
            ordinal: e.ordinal,
            uid,
            gid,
            mode,
            kind,
        });
        Ok(())
    }

    /// The entries `es`, in order.
    pub fn from_entries(es: &[Entry<'_>]) -> Result<Entries, TooLarge> {
        let mut out = Entries::default();
        for e in es {
            out.push(e)?;
        }
        Ok(out)
    }

    /// Release spare capacity once the layer is read.
    pub fn shrink_to_fit(&mut self) {
        self.recs.shrink_to_fit();
        self.big_ids.shrink_to_fit();
        Arc::make_mut(&mut self.paths).shrink_to_fit();
    }

    /// The layer's name buffer (the merged tree keeps a reference to it).
    pub(crate) fn buffer(&self) -> &Arc<String> {
        &self.paths
    }

    /// Where entry `i`'s path sits in [`Entries::buffer`]: `(offset, length)`.
    pub(crate) fn path_span(&self, i: usize) -> Option<(u32, u32)> {
        self.recs.get(i).map(|r| (r.off, r.path_len))
    }

    fn names(&self, i: usize) -> (&str, &str) {
        let Some(r) = self.recs.get(i) else {
            return ("", "");
        };
        let end = self
            .recs
            .get(i + 1)
            .map_or(self.paths.len(), |n| n.off as usize);
        let start = r.off as usize;
        let mid = start + r.path_len as usize;
        (
            self.paths.get(start..mid).unwrap_or_default(),
            self.paths.get(mid..end).unwrap_or_default(),
        )
    }

    /// The path of entry `i` (`""` past the end).
    pub fn path(&self, i: usize) -> &str {
        self.recs.get(i).map_or("", |r| {
            let start = r.off as usize;
            self.paths
                .get(start..start + r.path_len as usize)
                .unwrap_or_default()
        })
    }

    /// Entry `i`.
    pub fn get(&self, i: usize) -> Option<Entry<'_>> {
        let r = self.recs.get(i)?;
        let (path, extra) = self.names(i);
        let dev = || {
            let n = |s: Option<&str>| s.and_then(|s| u32::from_str_radix(s, 16).ok());
            (
                n(extra.get(0..8)).unwrap_or(0),
                n(extra.get(8..16)).unwrap_or(0),
            )
        };
        let kind = match r.kind & !BIG_IDS {
            DIR => EntryKind::Dir,
            SYMLINK => EntryKind::Symlink { target: extra },
            HARDLINK => EntryKind::Hardlink { target: extra },
            CHAR => {
                let (major, minor) = dev();
                EntryKind::Char { major, minor }
            }
            BLOCK => {
                let (major, minor) = dev();
                EntryKind::Block { major, minor }
            }
            FIFO => EntryKind::Fifo,
            _ => EntryKind::File,
        };
        let (uid, gid) = if r.kind & BIG_IDS == 0 {
            (u64::from(r.uid), u64::from(r.gid))
        } else {
            let i = u32::try_from(i).ok()?;
            self.big_ids
                .binary_search_by_key(&i, |&(k, _, _)| k)
                .ok()
                .map_or((u64::from(r.uid), u64::from(r.gid)), |at| {
                    (self.big_ids[at].1, self.big_ids[at].2)
                })
        };
        Some(Entry {
            path,
            kind,
            mode: u32::from(r.mode),
            ordinal: r.ordinal,
            uid,
            gid,
            size: r.size,
            mtime: r.mtime,
        })
    }

    /// Entry `i`; like slice indexing, `i` must be in bounds (the merged tree's nodes always are).
    pub fn at(&self, i: usize) -> Entry<'_> {
        self.get(i).expect("entry index in bounds")
    }

    /// Every entry, in tar order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Entry<'_>> + ExactSizeIterator + '_ {
        (0..self.recs.len()).map(|i| self.at(i))
    }

    /// The index of the entry with tar position `ordinal` (entries are in tar order).
    pub fn by_ordinal(&self, ordinal: usize) -> Option<usize> {
        let ordinal = u32::try_from(ordinal).ok()?;
        self.recs.binary_search_by_key(&ordinal, |r| r.ordinal).ok()
    }
}

/// The cache encoding: the records as one byte string (fixed 39 bytes each, little-endian), the
/// names as one string, and the large ids: decoding is three bulk copies plus one pass of checks.
#[derive(Serialize, serde::Deserialize)]
struct Wire {
    recs: Bytes,
    paths: String,
    big_ids: Vec<(u32, u64, u64)>,
}

/// A byte string postcard encodes as one length-prefixed run (a `Vec<u8>` would go through serde's
/// per-element sequence path).
struct Bytes(Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

impl Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut recs = Vec::with_capacity(self.recs.len() * REC_BYTES);
        for r in &self.recs {
            r.encode(&mut recs);
        }
        Wire {
            recs: Bytes(recs),
            paths: self.paths.to_string(),
            big_ids: self.big_ids.clone(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Entries {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Entries, D::Error> {
        let w = Wire::deserialize(d)?;
        Entries::from_wire(w).map_err(serde::de::Error::custom)
    }
}

impl Entries {
    /// Rebuild from the cache encoding, checking every offset: names back to back from 0 to the
    /// buffer's end on character boundaries, known kinds, device numbers of the right size, large
    /// ids listed exactly for the flagged entries.
    fn from_wire(w: Wire) -> Result<Entries, &'static str> {
        if !w.recs.0.len().is_multiple_of(REC_BYTES) {
            return Err("entry records are not whole");
        }
        let recs: Vec<Rec> = w
            .recs
            .0
            .chunks_exact(REC_BYTES)
            .map(|c| Rec::decode(c.try_into().unwrap_or(&[0; REC_BYTES])))
            .collect();
        let p = &w.paths;
        let mut big = w.big_ids.iter();
        for (i, r) in recs.iter().enumerate() {
            let start = r.off as usize;
            let mid = start + r.path_len as usize;
            let end = recs.get(i + 1).map_or(p.len(), |n| n.off as usize);
            if (i == 0 && start != 0)
                || mid > end
                || end > p.len()
                || !p.is_char_boundary(start)
                || !p.is_char_boundary(mid)
                || !p.is_char_boundary(end)
            {
                return Err("entry names out of bounds");
            }
            match r.kind & !BIG_IDS {
                FILE | DIR | FIFO if mid != end => return Err("names after a plain entry"),
                CHAR | BLOCK
                    if end - mid != 16 || !p[mid..end].bytes().all(|b| b.is_ascii_hexdigit()) =>
                {
                    return Err("bad device numbers");
                }
                k if k > FIFO => return Err("unknown entry kind"),
                _ => {}
            }
            if r.kind & BIG_IDS != 0 && big.next().map(|b| b.0 as usize) != Some(i) {
                return Err("large ids out of step");
            }
        }
        if big.next().is_some() || (recs.is_empty() && !p.is_empty()) {
            return Err("stray names or ids");
        }
        Ok(Entries {
            recs,
            paths: Arc::new(w.paths),
            big_ids: w.big_ids,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e<'a>(path: &'a str, kind: EntryKind<'a>, ordinal: u32) -> Entry<'a> {
        Entry {
            path,
            kind,
            mode: 0o755,
            ordinal,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 7,
        }
    }

    fn sample() -> (Entries, Vec<Entry<'static>>) {
        let long: &'static str = Box::leak("d/".repeat(32 * 1024).into_boxed_str());
        let want = vec![
            e("", EntryKind::Dir, 0),
            e("etc/passwd", EntryKind::File, 2),
            e(
                "bin/sh",
                EntryKind::Symlink {
                    target: "/usr/bin/dash",
                },
                3,
            ),
            e(
                "hl",
                EntryKind::Hardlink {
                    target: "etc/passwd",
                },
                4,
            ),
            e(
                "dev/null",
                EntryKind::Char {
                    major: 1,
                    minor: u32::MAX,
                },
                5,
            ),
            e("dev/sda", EntryKind::Block { major: 8, minor: 0 }, 6),
            e("p", EntryKind::Fifo, 7),
            e(long, EntryKind::Symlink { target: long }, 8),
            Entry {
                uid: 1 << 40,
                gid: 5,
                ..e("big", EntryKind::File, 9)
            },
            Entry {
                uid: u64::from(u32::MAX),
                gid: u64::MAX,
                ..e("max", EntryKind::File, 10)
            },
            Entry {
                uid: u64::from(u32::MAX - 1),
                gid: 65534,
                mode: 0o7777,
                ..e("ünïcödé/ファイル", EntryKind::File, 11)
            },
        ];
        let mut es = Entries::default();
        for x in &want {
            es.push(x).unwrap();
        }
        (es, want)
    }

    #[test]
    fn entries_round_trip_every_kind_and_value() {
        let (es, want) = sample();
        assert_eq!(es.len(), want.len());
        assert_eq!(es.iter().collect::<Vec<_>>(), want);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(es.path(i), w.path);
            assert_eq!(es.get(i), Some(*w));
        }
        assert_eq!(es.get(want.len()), None);
        assert_eq!(es.path(want.len()), "");
        assert_eq!(es.path(7).len(), 64 * 1024, "a 64 KiB path is kept whole");
        assert_eq!(es.by_ordinal(5), Some(4));
        assert_eq!(es.by_ordinal(1), None);
        assert_eq!(es.by_ordinal(usize::MAX), None);
        assert_eq!(
            es.big_ids.len(),
            2,
            "only ids that do not fit are kept aside"
        );
    }

    #[test]
    fn record_is_40_bytes() {
        assert_eq!(std::mem::size_of::<Rec>(), 40);
    }

    #[test]
    fn offsets_past_4_gib_are_refused_not_wrapped() {
        assert_eq!(end_offset(0, u32::MAX as usize), Some(u32::MAX));
        assert_eq!(end_offset(u32::MAX as usize, 1), None);
        assert_eq!(end_offset(1, u32::MAX as usize), None);
        assert_eq!(end_offset(usize::MAX, 1), None);
        let mut es = Entries::default();
        assert_eq!(
            es.push(&Entry {
                mode: 0o1_000_000,
                ..e("x", EntryKind::File, 0)
            }),
            Err(TooLarge::Mode(0o1_000_000))
        );
        assert!(es.is_empty(), "a refused entry leaves nothing behind");
    }

    type Damage<'a> = &'a dyn Fn(&mut Vec<Rec>, &mut String, &mut Vec<(u32, u64, u64)>);

    #[test]
    fn cache_encoding_round_trips_and_refuses_damage() {
        let (es, want) = sample();
        let bytes = postcard::to_allocvec(&es).unwrap();
        let back: Entries = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.iter().collect::<Vec<_>>(), want);
        let empty: Entries =
            postcard::from_bytes(&postcard::to_allocvec(&Entries::default()).unwrap()).unwrap();
        assert!(empty.is_empty());

        let wire = |f: Damage<'_>| {
            let mut recs = es.recs.clone();
            let mut paths = es.paths.to_string();
            let mut big = es.big_ids.clone();
            f(&mut recs, &mut paths, &mut big);
            let mut b = Vec::new();
            for r in &recs {
                r.encode(&mut b);
            }
            Entries::from_wire(Wire {
                recs: Bytes(b),
                paths,
                big_ids: big,
            })
        };
        assert!(wire(&|_, _, _| {}).is_ok());
        assert!(wire(&|r, _, _| r[1].path_len += 1000).is_err());
        assert!(wire(&|r, _, _| r[2].off = u32::MAX).is_err());
        assert!(wire(&|r, _, _| r[0].off = 1).is_err());
        assert!(wire(&|r, _, _| r[1].kind = 9).is_err());
        assert!(wire(&|r, _, _| r[1].kind = SYMLINK).is_ok());
        assert!(wire(&|r, _, _| r[6].kind = CHAR).is_err());
        assert!(wire(&|_, p, _| p.push('x')).is_err());
        assert!(wire(&|_, _, b| b.clear()).is_err());
        assert!(wire(&|_, _, b| b.push((99, 1, 1))).is_err());
        // the last path is multi-byte: cutting it inside a character is refused
        assert!(wire(&|r, _, _| r[10].path_len -= 1).is_err());
    }
}
