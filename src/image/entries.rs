//! The hardened tar walk of one uncompressed layer stream: PAX/GNU names (via the `tar` crate ≥ 0.4.46),
//! path normalisation, whiteout classification, hygiene issues (duplicates, first-layer whiteouts,
//! invalid `.wh.`, setuid/setgid, escapes, unsupported entry types), ambiguous PAX sizes as corrupt
//! input, captures per [`CapturePolicy`], and every regular file's content to the [`ContentScanner`].

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};

use tar::EntryType;

use super::blob::corrupt_io;
use super::capture::{CapturePolicy, ContentScanner};
use super::whiteout::{Marker, classify, normalise, symlink_escapes};
use super::{Entries, Entry, EntryKind, HygieneIssue, LayerInfo, LayerListing};

/// Walk every tar entry of `r`, filling `listing`. Returns the stream offset where the last entry's
/// data ends (to tell a tar that merely lacks its final padding from a truncated one).
pub fn walk<S: ContentScanner>(
    r: &mut dyn super::stream::ReadSeek,
    info: &LayerInfo,
    capture: &CapturePolicy,
    scanner: &mut S,
    listing: &mut LayerListing,
    what: &str,
) -> io::Result<u64> {
    let mut w = Walk {
        info,
        capture,
        scanner,
        listing,
        what,
        seen: Seen::default(),
    };
    let mut ar = tar::Archive::new(r);
    // Where the content of the furthest entry ends, so the caller can tell missing trailing padding
    // (forgiven) from a stream cut inside content (corrupt).
    let mut content_end = 0u64;
    // with seek: the parser skips through the stream's forward seek, not a zeroed buffer per entry
    for (ordinal, entry) in ar.entries_with_seek()?.enumerate() {
        let mut entry = entry?;
        content_end = content_end.max(entry.raw_file_position() + entry.size());
        let ordinal = u32::try_from(ordinal)
            .map_err(|_| corrupt_io(what, "more than 2^32 tar entries in one layer"))?;
        w.entry(&mut entry, ordinal)?;
    }
    w.listing.entries.shrink_to_fit();
    w.listing.heads.shrink_to_fit();
    Ok(content_end)
}

/// One layer's walk: what it reads with, and the listing it fills.
struct Walk<'a, S> {
    info: &'a LayerInfo,
    capture: &'a CapturePolicy,
    scanner: &'a mut S,
    listing: &'a mut LayerListing,
    what: &'a str,
    seen: Seen,
}

impl<S: ContentScanner> Walk<'_, S> {
    /// Classify one tar entry: record it (or the marker or hygiene issue it is), and hand a regular
    /// file's content to the scanner.
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, ordinal: u32) -> io::Result<()> {
        let hdr = entry.header();
        let etype = hdr.entry_type();
        let header_size = hdr.entry_size()?;
        if header_size != 0 && header_size != entry.size() {
            return Err(corrupt_io(
                self.what,
                format!(
                    "ambiguous tar: entry {:?} has a PAX size of {} but a header size of {header_size}",
                    String::from_utf8_lossy(&entry.path_bytes()),
                    entry.size()
                ),
            ));
        }
        if matches!(etype, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let norm = normalise(&raw);
        let mode = hdr.mode()? & 0o7777;
        let (uid, gid, mtime) = (hdr.uid()?, hdr.gid()?, hdr.mtime().unwrap_or(0));
        let mut keep = true;
        if norm.escapes {
            self.listing.hygiene.push(HygieneIssue::PathEscape {
                raw: raw.clone(),
                detail: "the member name climbs above the root with `..`".into(),
            });
            keep = false;
        }
        // An absolute member name (`/`, `/etc/x`: umoci 0.4.7 writes the root as `/`) is joined to the
        // root by every runtime, like GNU tar's "Removing leading `/'": it does not escape, so it is
        // normalised and not reported. Only `..` climbing above the root escapes.
        let Some(kind) = kind_of(entry, etype, &norm.path, &raw, self.listing, &mut keep)? else {
            return Ok(());
        };
        let e = Entry {
            path: &norm.path,
            kind: kind.view(),
            mode,
            uid,
            gid,
            size: entry.size(),
            mtime,
            ordinal,
        };
        let m = classify(e.path);
        if e.is_file() {
            if keep && m != Marker::Plain {
                marker(m, e.path, self.info.index, self.listing);
                return Ok(());
            }
            if mode & 0o6000 != 0 {
                self.listing.hygiene.push(HygieneIssue::Setuid {
                    path: e.path.to_string(),
                    mode,
                });
            }
            self.content(entry, &e, keep)?;
        } else if keep && m != Marker::Plain {
            if !matches!(m, Marker::AufsMeta) {
                marker(m, e.path, self.info.index, self.listing);
            }
            return Ok(());
        }
        if !keep {
            return Ok(());
        }
        if !self.seen.first(e.path, &self.listing.entries) {
            self.listing.hygiene.push(HygieneIssue::DuplicatePath {
                path: e.path.to_string(),
            });
        }
        self.listing
            .entries
            .push(&e)
            .map_err(|err| corrupt_io(self.what, err.to_string()))
    }

    /// Hand a regular file's content to the scanner, capturing what the policy asks for (it will be
    /// entry number `listing.entries.len()` if kept).
    fn content<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        e: &Entry<'_>,
        keep: bool,
    ) -> io::Result<()> {
        let (capture, idx) = (self.capture, self.listing.entries.len());
        if keep && e.size <= capture.max_size && capture.globs.is_match(e.path) {
            let mut v = Vec::with_capacity(e.size as usize);
            entry.read_to_end(&mut v)?;
            let head_ok = capture.head_bytes > 0 && is_exec(e.mode, &v);
            if head_ok {
                self.listing
                    .heads
                    .push(idx, head_to_keep(&v[..v.len().min(capture.head_bytes)]));
            }
            self.scanner.scan(self.info, e, &mut &v[..])?;
            self.listing.captured.insert(idx, v);
            return Ok(());
        }
        if capture.head_bytes > 0 && e.size > 0 {
            let want = (e.size as usize).min(capture.head_bytes);
            let mut head = vec![0u8; want];
            entry.read_exact(&mut head)?;
            let mut chained = (&head[..]).chain(&mut *entry);
            self.scanner.scan(self.info, e, &mut chained)?;
            if keep && is_exec(e.mode, &head) {
                self.listing.heads.push(idx, head_to_keep(&head));
            }
            return Ok(());
        }
        self.scanner.scan(self.info, e, entry)
    }
}

/// The paths of one layer seen so far, without a second copy of each: a path's 64-bit hash (keyed
/// per run) → the entry that has it; the rare path whose hash another path took is kept whole.
#[derive(Default)]
struct Seen {
    first: HashMap<u64, usize>,
    collided: HashSet<String>,
    keys: std::hash::RandomState,
}

impl Seen {
    /// Whether `path` is new in this layer (`entries` are the layer's entries so far).
    fn first(&mut self, path: &str, entries: &Entries) -> bool {
        use std::hash::BuildHasher;
        let h = self.keys.hash_one(path);
        match self.first.get(&h) {
            None => {
                self.first.insert(h, entries.len());
                true
            }
            Some(&i) if i < entries.len() && entries.path(i) == path => false,
            Some(_) => self.collided.insert(path.to_string()),
        }
    }
}

/// Record a whiteout/opaque/invalid marker.
fn marker(m: Marker, path: &str, layer: usize, listing: &mut LayerListing) {
    match m {
        Marker::Whiteout(p) => {
            if layer == 0 {
                listing.hygiene.push(HygieneIssue::WhiteoutInFirstLayer {
                    path: path.to_string(),
                });
            }
            listing.whiteouts.push(p);
        }
        Marker::Opaque(d) => {
            if layer == 0 {
                listing.hygiene.push(HygieneIssue::WhiteoutInFirstLayer {
                    path: path.to_string(),
                });
            }
            listing.opaque_dirs.push(d);
        }
        Marker::Invalid => listing.hygiene.push(HygieneIssue::InvalidWhiteout {
            path: path.to_string(),
        }),
        Marker::AufsMeta | Marker::Plain => {}
    }
}

/// An entry kind as the walk reads it: link targets owned until the entry is stored.
enum Kind {
    Plain(EntryKind<'static>),
    Symlink(String),
    Hardlink(String),
}

impl Kind {
    fn view(&self) -> EntryKind<'_> {
        match self {
            Kind::Plain(k) => *k,
            Kind::Symlink(target) => EntryKind::Symlink { target },
            Kind::Hardlink(target) => EntryKind::Hardlink { target },
        }
    }
}

/// The entry kind; `None` for types that are skipped (recorded as unsupported).
fn kind_of<R: Read>(
    entry: &tar::Entry<'_, R>,
    etype: EntryType,
    path: &str,
    raw: &str,
    listing: &mut LayerListing,
    keep: &mut bool,
) -> io::Result<Option<Kind>> {
    let link = || {
        entry
            .link_name_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let hdr = entry.header();
    let dev = || -> io::Result<(u32, u32)> {
        Ok((
            hdr.device_major()?.unwrap_or(0),
            hdr.device_minor()?.unwrap_or(0),
        ))
    };
    Ok(Some(match etype {
        EntryType::Regular | EntryType::Continuous => Kind::Plain(EntryKind::File),
        EntryType::Directory => Kind::Plain(EntryKind::Dir),
        EntryType::Symlink => {
            let target = link();
            if symlink_escapes(path, &target) {
                listing.hygiene.push(HygieneIssue::PathEscape {
                    raw: raw.to_string(),
                    detail: format!("symlink target {target:?} climbs above the root"),
                });
            }
            Kind::Symlink(target)
        }
        EntryType::Link => {
            let t = link();
            let n = normalise(&t);
            if n.escapes {
                listing.hygiene.push(HygieneIssue::PathEscape {
                    raw: raw.to_string(),
                    detail: format!("hardlink target {t:?} climbs above the root"),
                });
                *keep = false;
            }
            Kind::Hardlink(n.path)
        }
        EntryType::Char => {
            let (major, minor) = dev()?;
            if major == 0 && minor == 0 {
                listing.hygiene.push(HygieneIssue::Unsupported {
                    path: path.to_string(),
                    detail: "character device 0/0 (an overlayfs whiteout, not an OCI one)".into(),
                });
            }
            Kind::Plain(EntryKind::Char { major, minor })
        }
        EntryType::Block => {
            let (major, minor) = dev()?;
            Kind::Plain(EntryKind::Block { major, minor })
        }
        EntryType::Fifo => Kind::Plain(EntryKind::Fifo),
        other => {
            listing.hygiene.push(HygieneIssue::Unsupported {
                path: path.to_string(),
                detail: format!(
                    "tar entry type {:?} is not modelled",
                    other.as_byte() as char
                ),
            });
            return Ok(None);
        }
    }))
}

/// The part of an executable's head the checks read (the `entrypoint` check is the only reader): a
/// `#!` script's first line (with its newline), the bytes [`crate::elf::parse`] depends on for an ELF
/// file, and the first 4 bytes of anything else (enough to tell it is neither). Each check gives the
/// same answer on the kept bytes as on the whole head.
pub fn head_to_keep(head: &[u8]) -> &[u8] {
    if head.starts_with(b"#!") {
        return match head.iter().position(|&b| b == b'\n') {
            Some(nl) => &head[..=nl],
            None => head,
        };
    }
    if crate::elf::is_elf(head) {
        return &head[..crate::elf::extent(head)];
    }
    &head[..head.len().min(4)]
}

fn is_exec(mode: u32, head: &[u8]) -> bool {
    mode & 0o111 != 0 || head.starts_with(b"\x7fELF") || head.starts_with(b"#!")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Heads;

    #[test]
    fn heads_keep_what_the_checks_read() {
        assert_eq!(
            head_to_keep(b"#!/bin/sh -e\nrest of the script"),
            b"#!/bin/sh -e\n"
        );
        assert_eq!(head_to_keep(b"#!/bin/sh"), b"#!/bin/sh");
        assert_eq!(head_to_keep(b"plain text, mode 0755"), b"plai");
        assert_eq!(head_to_keep(b"\x7fEL"), b"\x7fEL");
        let mut elf = crate::elf::synth_elf64(62, Some("/lib/ld.so"));
        let n = elf.len();
        elf.resize(8192, 0xAA);
        let kept = head_to_keep(&elf);
        assert_eq!(kept.len(), n);
        assert_eq!(crate::elf::parse(kept), crate::elf::parse(&elf));
    }

    #[test]
    fn heads_buffer_looks_up_by_entry() {
        let mut h = Heads::default();
        assert!(h.push(3, b"#!/bin/sh\n"));
        assert!(h.push(7, b""));
        assert!(h.push(9, b"\x7fELF"));
        assert!(!h.push(9, b"again"), "out of order is refused");
        assert!(!h.push(2, b"before"), "out of order is refused");
        assert_eq!(h.get(3), Some(&b"#!/bin/sh\n"[..]));
        assert_eq!(h.get(7), Some(&b""[..]));
        assert_eq!(h.get(9), Some(&b"\x7fELF"[..]));
        assert_eq!(h.get(8), None);
        assert_eq!(h.get(usize::MAX), None);
        let all: Vec<_> = h.iter().collect();
        assert_eq!(
            all,
            [
                (3, &b"#!/bin/sh\n"[..]),
                (7, &b""[..]),
                (9, &b"\x7fELF"[..])
            ]
        );
        assert_eq!(h.len(), 3);
    }
}
