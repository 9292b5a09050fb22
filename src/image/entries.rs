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
use super::{Entry, EntryKind, HygieneIssue, LayerInfo, LayerListing};

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
    let mut ar = tar::Archive::new(r);
    let mut seen = Seen::default();
    // Where the content of the furthest entry ends, so the caller can tell missing trailing padding
    // (forgiven) from a stream cut inside content (corrupt).
    let mut content_end = 0u64;
    // with seek: the parser skips through the stream's forward seek, not a zeroed buffer per entry
    for (ordinal, entry) in ar.entries_with_seek()?.enumerate() {
        let mut entry = entry?;
        content_end = content_end.max(entry.raw_file_position() + entry.size());
        let hdr = entry.header();
        let etype = hdr.entry_type();
        let header_size = hdr.entry_size()?;
        if header_size != 0 && header_size != entry.size() {
            return Err(corrupt_io(
                what,
                format!(
                    "ambiguous tar: entry {:?} has a PAX size of {} but a header size of {header_size}",
                    String::from_utf8_lossy(&entry.path_bytes()),
                    entry.size()
                ),
            ));
        }
        if matches!(etype, EntryType::XGlobalHeader) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut norm = normalise(&raw);
        let mode = hdr.mode()? & 0o7777;
        let ordinal = u32::try_from(ordinal)
            .map_err(|_| corrupt_io(what, "more than 2^32 tar entries in one layer"))?;
        let mut e = Entry {
            path: std::mem::take(&mut norm.path).into(),
            kind: EntryKind::File,
            mode,
            uid: hdr.uid()?,
            gid: hdr.gid()?,
            size: entry.size(),
            mtime: hdr.mtime().unwrap_or(0),
            ordinal,
        };
        let mut keep = true;
        if norm.escapes {
            listing.hygiene.push(HygieneIssue::PathEscape {
                raw: raw.clone(),
                detail: "the member name climbs above the root with `..`".into(),
            });
            keep = false;
        }
        // An absolute member name (`/`, `/etc/x`: umoci 0.4.7 writes the root as `/`) is joined to the
        // root by every runtime, like GNU tar's "Removing leading `/'": it does not escape, so it is
        // normalised and not reported. Only `..` climbing above the root escapes.

        e.kind = match kind_of(&entry, etype, &e.path, &raw, listing, &mut keep)? {
            Some(k) => k,
            None => continue,
        };
        if e.is_file() {
            if keep {
                match classify(&e.path) {
                    Marker::Plain => {}
                    m => {
                        marker(m, &e.path, info.index, listing);
                        continue;
                    }
                }
            }
            if mode & 0o6000 != 0 {
                listing.hygiene.push(HygieneIssue::Setuid {
                    path: e.path.to_string(),
                    mode,
                });
            }
            let idx = listing.entries.len();
            content(&mut entry, info, &e, capture, scanner, listing, idx, keep)?;
        } else if keep && classify(&e.path) != Marker::Plain {
            let m = classify(&e.path);
            if matches!(m, Marker::AufsMeta) {
                continue;
            }
            marker(m, &e.path, info.index, listing);
            continue;
        }
        if !keep {
            continue;
        }
        if !seen.first(&e.path, &listing.entries) {
            listing.hygiene.push(HygieneIssue::DuplicatePath {
                path: e.path.to_string(),
            });
        }
        listing.entries.push(e);
    }
    listing.entries.shrink_to_fit();
    listing.heads.shrink_to_fit();
    Ok(content_end)
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
    fn first(&mut self, path: &str, entries: &[Entry]) -> bool {
        use std::hash::BuildHasher;
        let h = self.keys.hash_one(path);
        match self.first.get(&h) {
            None => {
                self.first.insert(h, entries.len());
                true
            }
            Some(&i) if entries.get(i).is_some_and(|e| *e.path == *path) => false,
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

/// The entry kind; `None` for types that are skipped (recorded as unsupported).
fn kind_of<R: Read>(
    entry: &tar::Entry<'_, R>,
    etype: EntryType,
    path: &str,
    raw: &str,
    listing: &mut LayerListing,
    keep: &mut bool,
) -> io::Result<Option<EntryKind>> {
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
        EntryType::Regular | EntryType::Continuous => EntryKind::File,
        EntryType::Directory => EntryKind::Dir,
        EntryType::Symlink => {
            let target = link();
            if symlink_escapes(path, &target) {
                listing.hygiene.push(HygieneIssue::PathEscape {
                    raw: raw.to_string(),
                    detail: format!("symlink target {target:?} climbs above the root"),
                });
            }
            EntryKind::Symlink { target }
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
            EntryKind::Hardlink { target: n.path }
        }
        EntryType::Char => {
            let (major, minor) = dev()?;
            if major == 0 && minor == 0 {
                listing.hygiene.push(HygieneIssue::Unsupported {
                    path: path.to_string(),
                    detail: "character device 0/0 (an overlayfs whiteout, not an OCI one)".into(),
                });
            }
            EntryKind::Char { major, minor }
        }
        EntryType::Block => {
            let (major, minor) = dev()?;
            EntryKind::Block { major, minor }
        }
        EntryType::Fifo => EntryKind::Fifo,
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

/// Hand a regular file's content to the scanner, capturing what the policy asks for.
#[allow(clippy::too_many_arguments)]
fn content<R: Read, S: ContentScanner>(
    entry: &mut tar::Entry<'_, R>,
    info: &LayerInfo,
    e: &Entry,
    capture: &CapturePolicy,
    scanner: &mut S,
    listing: &mut LayerListing,
    idx: usize,
    keep: bool,
) -> io::Result<()> {
    if keep && e.size <= capture.max_size && capture.globs.is_match(&*e.path) {
        let mut v = Vec::with_capacity(e.size as usize);
        entry.read_to_end(&mut v)?;
        let head_ok = capture.head_bytes > 0 && is_exec(e.mode, &v);
        if head_ok {
            listing
                .heads
                .push(idx, head_to_keep(&v[..v.len().min(capture.head_bytes)]));
        }
        scanner.scan(info, e, &mut &v[..])?;
        listing.captured.insert(idx, v);
        return Ok(());
    }
    if capture.head_bytes > 0 && e.size > 0 {
        let want = (e.size as usize).min(capture.head_bytes);
        let mut head = vec![0u8; want];
        entry.read_exact(&mut head)?;
        let mut chained = (&head[..]).chain(&mut *entry);
        scanner.scan(info, e, &mut chained)?;
        if keep && is_exec(e.mode, &head) {
            listing.heads.push(idx, head_to_keep(&head));
        }
        return Ok(());
    }
    scanner.scan(info, e, entry)
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
