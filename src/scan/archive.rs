//! Nested archives inside layer files: sniffed by magic bytes (`.gz`/`.tgz`/npm `_cacache` content are
//! gzip, `.zst`, `.tar`, `.zip`/`.whl`/`.jar`), opened to [`MAX_DEPTH`] containers, with limits against
//! bombs (expanded bytes per entry and expansion ratio). Members are named `outer.tgz!inner/path`. A
//! limit hit or an archive that cannot be read is a note, never a silent skip; what could not be opened
//! is scanned as raw bytes.

use std::cell::Cell;
use std::io::{self, Read, Seek};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::SecretScanner;

/// Containers (tar, zip) opened inside one layer entry, nested.
pub const MAX_DEPTH: usize = 3;
/// Decompressors directly inside decompressors (`.gz.gz`).
const MAX_WRAPS: usize = 2;
/// Expanded bytes allowed per layer entry across all its nested archives.
pub const MAX_EXPANDED: u64 = 2 << 30;
/// Expansion ratio (out/in) allowed once past [`RATIO_GRACE`] bytes.
pub const MAX_RATIO: u64 = 200;
const RATIO_GRACE: u64 = 16 << 20;
/// A zip is spooled to a private temp file (it needs its central directory) up to this size.
pub const MAX_ZIP_SPOOL: u64 = 512 << 20;
/// zstd frames needing a larger window (log2) are refused (bounded memory).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Floor of the per-image budget for bytes expanded out of nested archives.
pub const IMAGE_BUDGET_FLOOR: u64 = 1 << 30;
/// The per-image budget is at least this multiple of the image's (compressed) layer bytes.
pub const IMAGE_BUDGET_FACTOR: u64 = 4;
/// Notes naming a nested archive left unopened because the image's budget is spent; more are counted.
const MAX_BUDGET_NOTES: u64 = 20;
const IMAGE_BUDGET_HIT: &str = "the image's nested-archive budget";

/// Bytes expanded out of nested archives across all layers of one image (shared by its layer scanners,
/// which run in parallel). Per-entry limits alone let ten copies of a small bomb cost ten times the
/// entry cap; this bounds the whole image: `max(1 GiB, 4 × compressed layer bytes)`. 1 GiB is far more
/// than the nested content of real images (npm caches, wheels, jars: tens to hundreds of MiB) and costs a
/// few seconds of inflate; the multiple keeps huge images with many packed artifacts fully scanned.
#[derive(Debug)]
pub struct NestedBudget {
    limit: u64,
    spent: AtomicU64,
    /// Nested archives not opened because the budget was spent.
    skipped: AtomicU64,
}

impl NestedBudget {
    /// The budget for an image whose layers take `compressed_bytes`.
    pub fn for_image(compressed_bytes: u64) -> Arc<NestedBudget> {
        Arc::new(NestedBudget::with_limit(
            IMAGE_BUDGET_FLOOR.max(compressed_bytes.saturating_mul(IMAGE_BUDGET_FACTOR)),
        ))
    }

    /// A budget of exactly `limit` bytes.
    pub fn with_limit(limit: u64) -> NestedBudget {
        NestedBudget {
            limit,
            spent: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// The limit in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Bytes expanded so far.
    pub fn spent(&self) -> u64 {
        self.spent.load(Ordering::Relaxed)
    }

    fn exhausted(&self) -> bool {
        self.spent() >= self.limit
    }

    /// Whether some nested archive was left unopened or cut short because the budget was spent: then
    /// what each layer found depends on the other layers (and on the order they were read in).
    pub fn was_exceeded(&self) -> bool {
        self.spent() > self.limit || self.skipped.load(Ordering::Relaxed) > 0
    }

    /// Count `n` bytes expanded by a layer that was not read this time (a result-cache hit).
    pub(crate) fn charge(&self, n: u64) {
        self.spent.fetch_add(n, Ordering::Relaxed);
    }

    /// Count `n` more bytes; false once the budget is exceeded.
    fn take(&self, n: u64) -> bool {
        self.spent.fetch_add(n, Ordering::Relaxed).saturating_add(n) <= self.limit
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zstd,
    Zip,
    Tar,
    Plain,
}

fn sniff(head: &[u8]) -> Kind {
    if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Kind::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Kind::Zstd
    } else if head.starts_with(b"PK\x03\x04") {
        Kind::Zip
    } else if head.len() >= 262 && &head[257..262] == b"ustar" {
        Kind::Tar
    } else {
        Kind::Plain
    }
}

/// The most of a UTF-16-looking file held in memory to scan it both as raw bytes and as text.
const UTF16_HOLD: u64 = 16 << 20;

/// A UTF-16 text stream: its byte order and whether it starts with a byte-order mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Utf16 {
    pub big_endian: bool,
    pub bom: bool,
}

/// UTF-16 by its byte-order mark (`FF FE` little-endian, `FE FF` big-endian), or without one by
/// NUL interleaving: at least 16 code units, every one of the first 128 printable ASCII or
/// whitespace with its high byte zero (ASCII text written as UTF-16). Binary data, UTF-8 and
/// UTF-32 (whose mark `FF FE 00 00` is refused) are not UTF-16.
pub(crate) fn sniff_utf16(head: &[u8]) -> Option<Utf16> {
    if head.len() >= 4 && head.starts_with(&[0xff, 0xfe]) && head[2..4] != [0, 0] {
        return Some(Utf16 {
            big_endian: false,
            bom: true,
        });
    }
    if head.len() >= 2 && head.starts_with(&[0xfe, 0xff]) {
        return Some(Utf16 {
            big_endian: true,
            bom: true,
        });
    }
    if head.len() < 32 {
        return None;
    }
    let units = &head[..(head.len() / 2 * 2).min(256)];
    let text = |b: u8| b == b'\t' || b == b'\n' || b == b'\r' || (0x20..0x7f).contains(&b);
    for big_endian in [false, true] {
        let (lo, hi) = if big_endian { (1, 0) } else { (0, 1) };
        if units.chunks_exact(2).all(|u| u[hi] == 0 && text(u[lo])) {
            return Some(Utf16 {
                big_endian,
                bom: false,
            });
        }
    }
    None
}

/// Narrows a UTF-16 stream to one byte per code unit: ASCII units as themselves, every other unit
/// as `0x80` (not a word character, so it never joins a key). A trailing odd byte is dropped.
struct Utf16Narrow<R> {
    inner: R,
    big_endian: bool,
    raw: Vec<u8>,
}

impl<R: Read> Read for Utf16Narrow<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Keep one pending byte (an odd split) at the front of `raw`.
        let pending = self.raw.len();
        self.raw.resize(pending + buf.len() * 2, 0);
        let mut filled = pending;
        loop {
            match self.inner.read(&mut self.raw[filled..]) {
                Ok(0) => break,
                Ok(n) => {
                    filled += n;
                    if filled >= 2 {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.raw.truncate(pending);
                    return Err(e);
                }
            }
        }
        let units = filled / 2;
        for (i, u) in self.raw[..units * 2].chunks_exact(2).enumerate() {
            let v = if self.big_endian {
                u16::from_be_bytes([u[0], u[1]])
            } else {
                u16::from_le_bytes([u[0], u[1]])
            };
            buf[i] = u8::try_from(v).ok().filter(u8::is_ascii).unwrap_or(0x80);
        }
        let odd = filled % 2 == 1;
        if odd {
            self.raw[0] = self.raw[units * 2];
        }
        self.raw.truncate(usize::from(odd));
        Ok(units)
    }
}

/// Shared state for one layer entry's nested tree.
struct Budget<'i> {
    image: &'i NestedBudget,
    expanded: Cell<u64>,
    /// Set by a [`Limited`] reader when it stopped early.
    hit: Rc<Cell<Option<&'static str>>>,
}

/// Nesting position.
#[derive(Clone, Copy)]
struct Depth {
    containers: usize,
    wraps: usize,
}

/// Records whether an error came from the layer's own stream (which must propagate).
struct Outer<'a> {
    inner: &'a mut dyn Read,
    failed: Rc<Cell<bool>>,
}

impl Read for Outer<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        if r.is_err() {
            self.failed.set(true);
        }
        r
    }
}

/// Counts bytes read through it.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Stops (EOF, flagging the budget) when the expansion ratio or the entry's budget is exceeded.
struct Limited<'b, R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
    out: u64,
    budget: &'b Budget<'b>,
}

impl<R: Read> Read for Limited<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.budget.hit.get().is_some() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if !self.budget.image.take(n as u64) {
            self.budget.hit.set(Some(IMAGE_BUDGET_HIT));
            return Ok(0);
        }
        self.out += n as u64;
        let total = self.budget.expanded.get() + n as u64;
        self.budget.expanded.set(total);
        if total > MAX_EXPANDED {
            self.budget.hit.set(Some("expanded size limit"));
            return Ok(0);
        }
        if self.out > RATIO_GRACE && self.out / self.consumed.get().max(1) > MAX_RATIO {
            self.budget.hit.set(Some("expansion ratio limit"));
            return Ok(0);
        }
        Ok(n)
    }
}

/// Scan one top-level layer entry.
pub(crate) fn scan_entry(
    s: &mut SecretScanner,
    ordinal: usize,
    path: &str,
    content: &mut dyn Read,
) -> io::Result<()> {
    let failed = Rc::new(Cell::new(false));
    let mut outer = Outer {
        inner: content,
        failed: Rc::clone(&failed),
    };
    let image = s.nested_budget();
    let budget = Budget {
        image: &image,
        expanded: Cell::new(0),
        hit: Rc::new(Cell::new(None)),
    };
    let depth = Depth {
        containers: 0,
        wraps: 0,
    };
    let r = scan_any(s, ordinal, path, &mut outer, &budget, depth);
    s.found.nested_expanded += budget.expanded.get();
    match r {
        Err(e) if failed.get() => Err(e),
        Err(e) => {
            s.note(format!(
                "secret scan: could not read {path} to the end ({e}); the part read was scanned"
            ));
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}

/// Read a sniffing head of up to 512 bytes.
fn read_head(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut head = vec![0u8; 512];
    let mut n = 0;
    while n < head.len() {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(head)
}

fn scan_any(
    s: &mut SecretScanner,
    ordinal: usize,
    path: &str,
    r: &mut dyn Read,
    budget: &Budget<'_>,
    depth: Depth,
) -> io::Result<()> {
    let head = read_head(r)?;
    let kind = sniff(&head);
    let opens = match kind {
        Kind::Plain => false,
        Kind::Gzip | Kind::Zstd => depth.wraps < MAX_WRAPS && depth.containers < MAX_DEPTH,
        Kind::Tar | Kind::Zip => depth.containers < MAX_DEPTH,
    };
    if kind != Kind::Plain && !opens {
        s.note(format!(
            "secret scan: nesting limit (depth {MAX_DEPTH}) reached at {path}; scanned as raw bytes"
        ));
    }
    if opens && budget.image.exhausted() {
        let n = budget.image.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= MAX_BUDGET_NOTES {
            s.note(format!(
                "secret scan: the image's budget for nested archives ({} bytes expanded) is spent; \
                 {path} was not opened and was scanned as raw bytes{}",
                budget.image.limit,
                if n == MAX_BUDGET_NOTES {
                    " (further archives left unopened are not named)"
                } else {
                    ""
                }
            ));
        }
        return s.scan_leaf(ordinal, path, &head, r);
    }
    if !opens {
        if kind == Kind::Plain
            && let Some(enc) = sniff_utf16(&head)
        {
            // UTF-16 text (a `.env` saved by a Windows editor): scanned as one byte per code unit, so
            // the ASCII patterns apply and offsets map back exactly (`bom + 2 × i`). A byte-order mark
            // is two bytes anyone can put in front of anything, so the raw bytes are scanned too:
            // the file is held (up to UTF16_HOLD) and read both ways; a larger one is scanned raw.
            let bom = if enc.bom { 2 } else { 0 };
            let mut whole = head;
            r.take(UTF16_HOLD).read_to_end(&mut whole)?;
            if whole.len() as u64 > UTF16_HOLD {
                s.note(format!(
                    "secret scan: {path} looks like UTF-16 text but is larger than {} MiB; scanned as raw bytes only",
                    UTF16_HOLD >> 20
                ));
                return s.scan_leaf(ordinal, path, &whole, r);
            }
            s.scan_leaf(ordinal, path, &whole, &mut io::empty())?;
            let mut narrow = Utf16Narrow {
                inner: io::Cursor::new(&whole[bom..]),
                big_endian: enc.big_endian,
                raw: Vec::new(),
            };
            return s.scan_leaf_mapped(ordinal, path, &[], &mut narrow, (2, bom as u64));
        }
        return s.scan_leaf(ordinal, path, &head, r);
    }
    let mut chained = io::Cursor::new(head).chain(r);
    match kind {
        Kind::Gzip | Kind::Zstd => {
            scan_compressed(s, ordinal, path, &mut chained, budget, depth, kind)
        }
        Kind::Tar => {
            scan_tar(s, ordinal, path, &mut chained, budget, depth);
            Ok(())
        }
        Kind::Zip => scan_zip(s, ordinal, path, &mut chained, budget, depth),
        Kind::Plain => unreachable!("plain content returned above"),
    }
}

/// The name a decompressed stream gets: `x.json.gz` → `x.json`, `x.tgz` → `x.tar`.
fn inner_name(path: &str) -> String {
    let base = path.rsplit(['/', '!']).next().unwrap_or(path);
    for (suffix, repl) in [(".tgz", ".tar"), (".gz", ""), (".zst", ""), (".zstd", "")] {
        if let Some(stem) = base.strip_suffix(suffix)
            && !stem.is_empty()
        {
            return format!("{stem}{repl}");
        }
    }
    "-".to_string()
}

fn limit_note(s: &mut SecretScanner, path: &str, budget: &Budget) {
    if let Some(why) = budget.hit.get() {
        s.note(format!(
            "secret scan: {why} hit in nested archive {path} (max {MAX_EXPANDED} bytes, ratio \
             {MAX_RATIO}:1); the rest of it was not scanned"
        ));
    }
}

fn scan_compressed(
    s: &mut SecretScanner,
    ordinal: usize,
    path: &str,
    r: &mut dyn Read,
    budget: &Budget<'_>,
    depth: Depth,
    kind: Kind,
) -> io::Result<()> {
    let consumed = Rc::new(Cell::new(0));
    let counted = Counting {
        inner: r,
        count: Rc::clone(&consumed),
    };
    let decoder: Box<dyn Read + '_> = if kind == Kind::Gzip {
        Box::new(flate2::read::MultiGzDecoder::new(counted))
    } else {
        let mut d = zstd::stream::read::Decoder::new(counted)?;
        d.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
        Box::new(d)
    };
    let mut limited = Limited {
        inner: decoder,
        consumed,
        out: 0,
        budget,
    };
    let inner = format!("{path}!{}", inner_name(path));
    let next = Depth {
        containers: depth.containers,
        wraps: depth.wraps + 1,
    };
    // A tar inside (`.tgz`) names its members `x.tgz!member`, not `x.tgz!x.tar!member`.
    let head = read_head(&mut limited)?;
    let mut chained = io::Cursor::new(head.clone()).chain(&mut limited);
    let res = if sniff(&head) == Kind::Tar && depth.containers < MAX_DEPTH {
        scan_tar(s, ordinal, path, &mut chained, budget, next);
        Ok(())
    } else {
        scan_any(s, ordinal, &inner, &mut chained, budget, next)
    };
    limit_note(s, path, budget);
    res
}

fn scan_tar(
    s: &mut SecretScanner,
    ordinal: usize,
    path: &str,
    r: &mut dyn Read,
    budget: &Budget<'_>,
    depth: Depth,
) {
    let mut ar = tar::Archive::new(r);
    let next = Depth {
        containers: depth.containers + 1,
        wraps: 0,
    };
    let res = (|| -> io::Result<()> {
        for entry in ar.entries()? {
            let mut entry = entry?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let member = format!("{path}!{}", name.trim_start_matches("./"));
            scan_any(s, ordinal, &member, &mut entry, budget, next)?;
        }
        Ok(())
    })();
    if let Err(e) = res
        && budget.hit.get().is_none()
    {
        s.note(format!(
            "secret scan: nested tar {path} could not be read to the end ({e}); members \
             before the damage were scanned"
        ));
    }
    limit_note(s, path, budget);
}

fn scan_zip(
    s: &mut SecretScanner,
    ordinal: usize,
    path: &str,
    r: &mut dyn Read,
    budget: &Budget<'_>,
    depth: Depth,
) -> io::Result<()> {
    let mut spool = tempfile::tempfile()?;
    let copied = io::copy(&mut r.take(MAX_ZIP_SPOOL), &mut spool)?;
    spool.rewind()?;
    if copied == MAX_ZIP_SPOOL {
        s.note(format!(
            "secret scan: zip {path} is larger than {MAX_ZIP_SPOOL} bytes; scanned as raw bytes"
        ));
        let mut rest = spool.chain(r);
        return s.scan_leaf(ordinal, path, &[], &mut rest);
    }
    let mut zip = match zip::ZipArchive::new(&mut spool) {
        Ok(z) => z,
        Err(e) => {
            s.note(format!(
                "secret scan: zip {path} could not be opened ({e}); scanned as raw bytes"
            ));
            spool.rewind()?;
            return s.scan_leaf(ordinal, path, &[], &mut spool);
        }
    };
    let next = Depth {
        containers: depth.containers + 1,
        wraps: 0,
    };
    for i in 0..zip.len() {
        let file = match zip.by_index(i) {
            Ok(f) => f,
            Err(e) => {
                s.note(format!(
                    "secret scan: member {i} of zip {path} could not be read ({e})"
                ));
                continue;
            }
        };
        if file.is_dir() {
            continue;
        }
        let member = format!("{path}!{}", file.name());
        let consumed = Rc::new(Cell::new(file.compressed_size().max(1)));
        let mut limited = Limited {
            inner: file,
            consumed,
            out: 0,
            budget,
        };
        if let Err(e) = scan_any(s, ordinal, &member, &mut limited, budget, next) {
            s.note(format!(
                "secret scan: zip member {member} could not be read ({e})"
            ));
        }
        if budget.hit.get().is_some() {
            break;
        }
    }
    limit_note(s, path, budget);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_magic_not_name() {
        assert_eq!(sniff(&[0x1f, 0x8b, 0x08, 0]), Kind::Gzip);
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Kind::Zstd);
        assert_eq!(sniff(b"PK\x03\x04rest"), Kind::Zip);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(sniff(&tar), Kind::Tar);
        assert_eq!(sniff(b"plain text"), Kind::Plain);
    }

    #[test]
    fn inner_names() {
        assert_eq!(inner_name("/a/b.json.gz"), "b.json");
        assert_eq!(inner_name("/a/pkg.tgz"), "pkg.tar");
        assert_eq!(inner_name("/x/_cacache/content-v2/sha512/ab/cd"), "-");
        assert_eq!(inner_name("/o.tgz!p/inner.zst"), "inner");
    }
}
