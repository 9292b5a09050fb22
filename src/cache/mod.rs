//! The per-layer result cache: what one read of one layer blob derives (its listing with the captured
//! files, and its secret-scan result with redacted evidence only), stored on disk so that a layer the
//! gate has read before — the Debian, Node and runtime layers under every `:edge` build — costs a file
//! read instead of an inflate, a SHA-256 and a scan.
//!
//! - **Key**: SHA-256 of the x1-validate version and cache schema (plus, in debug builds, the identity
//!   of the running executable), the effective configuration (secret patterns with their allowlist and
//!   credential names, capture globs and limits: [`LayerCache::open`]'s `context`), and the layer
//!   blob's digest, size and media type. Blobs are content addressed, so a hit is sound without
//!   re-reading the blob; the blob must still be in the input with its size, and the `diff_id` the
//!   config gives is checked against the one the read computed (a mismatch is the same exit 3 as a
//!   cold read).
//! - **What is never stored**: unmasked secrets. Hits carry only [`crate::report::Evidence`]
//!   (prefix, length, fingerprint). A layer whose captured bytes (files the checks read, executable
//!   heads) contain anything a secret pattern matches, or that captures a credential file, is not
//!   stored at all — it is read again next time.
//! - **Layout**: `$X1_VALIDATE_CACHE_DIR`, else `$XDG_CACHE_HOME/x1-validate`, else
//!   `~/.cache/x1-validate` (directories 0700, files 0600); entries under `layers-v<SCHEMA>/<key>`.
//! - **Entry format**: magic, schema, the payload `zstd(postcard(Record))` (encoded while written),
//!   then its length, the decoded length and its SHA-256. postcard (serde) because its wire format is specified and stable, it
//!   is compact for the many small integers of a listing (varints) and it decodes without a schema
//!   description; zstd (already a dependency) shrinks the path-heavy listings about 5×. A damaged,
//!   truncated or foreign entry fails the checksum or decoding and is a miss (then rewritten).
//! - **Writes** are atomic (a private temp file in the same directory, then `rename`), so concurrent
//!   runs see a whole entry or none; two runs writing one key write the same bytes.
//! - **Image memo** (`images-v<MEMO_SCHEMA>/<key>`), on top of the layer entries (as trivy keeps an
//!   artifact cache beside its blob cache): the outcomes of every check but the healthcheck for one
//!   whole image, so that an unchanged image is neither merged nor checked again. Key: this cache's
//!   configuration (above), [`MEMO_SCHEMA`], and what [`crate::app`] lists (the rule set's files, the
//!   preset, `--ref`/`--preset`, the image as opened — descriptors, parsed config and its whole
//!   document, `diff_ids`, history, annotations — and the ordered layer keys). A hit still needs every
//!   layer blob present with its size; the healthcheck still runs on the layers whenever `--exec`
//!   is not `never`. Stored as JSON (the outcomes' serde shape has internally tagged enums) in the
//!   same checksummed entry, and not stored when any string in it holds anything a secret pattern
//!   matches.
//!   A memo also lists the text-match entries its license findings stand on, and a hit refreshes
//!   their age with its own: a cache that keeps answering from the memo does not age out the texts
//!   that the next image with one changed layer needs.
//! - **Bound**: [`DEFAULT_MAX_BYTES`] (1 GiB; `X1_VALIDATE_CACHE_MAX`, e.g. `4GiB`), least recently
//!   used first out: a hit refreshes the entry's mtime; after a run that wrote, the oldest entries are
//!   removed until the total fits (one evicting run at a time, by an advisory lock). The bound counts
//!   every schema's directories (`layers-v*`, `texts-v*`, `images-v*`): after an upgrade the old
//!   schema's entries, which nothing reads any more, age out first instead of staying forever.

mod record;

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rayon::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::checks::CheckOutcome;
use crate::error::{Error, Result};
use crate::image::layer::read_some;
use crate::image::stream::layer_name;
use crate::image::{CapturePolicy, Image, LayerInfo, LayerListing, LayerOutput, Source};
use crate::scan::archive::NestedBudget;
use crate::scan::{Patterns, ScanResult, SecretScanner, scan_value};

use record::RecordRef;
pub use record::{Record, TextRecord};

/// Bumped whenever what a layer read derives, or its encoding, changes.
pub const SCHEMA: u32 = 3;
/// Bumped whenever a text-match result ([`TextRecord`]) or its encoding changes.
pub const TEXT_SCHEMA: u32 = 1;
/// Bumped whenever an image memo (the check outcomes of a whole image) or its encoding changes.
pub const MEMO_SCHEMA: u32 = 2;
/// Default size bound of the cache directory.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;
/// The environment variable naming the cache directory.
pub const DIR_ENV: &str = "X1_VALIDATE_CACHE_DIR";
/// The environment variable bounding the cache's size (`512MiB`, `4GiB`, bytes).
pub const MAX_ENV: &str = "X1_VALIDATE_CACHE_MAX";

const MAGIC: &[u8; 8] = b"X1VLAYER";
const TEXT_MAGIC: &[u8; 8] = b"X1VLTEXT";
const MEMO_MAGIC: &[u8; 8] = b"X1VIMAGE";
const HEADER: usize = 8 + 4;
const TRAILER: usize = 8 + 8 + 32;
/// Largest decoded record accepted (a million-entry listing is ≈ 100 MB).
const MAX_DECODED: u64 = 1 << 30;
/// Temp files older than this are leftovers of a killed run.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The cache directory by the environment: `$X1_VALIDATE_CACHE_DIR`, `$XDG_CACHE_HOME/x1-validate`,
/// `$HOME/.cache/x1-validate`; `None` when none is set.
pub fn default_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env(DIR_ENV)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("x1-validate")))
        .or_else(|| env("HOME").map(|d| d.join(".cache/x1-validate")))
}

/// The size bound by the environment (`X1_VALIDATE_CACHE_MAX`), else [`DEFAULT_MAX_BYTES`].
pub fn max_bytes_from_env() -> std::result::Result<u64, String> {
    match std::env::var(MAX_ENV) {
        Ok(v) if !v.trim().is_empty() => {
            crate::units::parse_size(&v).map_err(|e| format!("{MAX_ENV}: {e}"))
        }
        _ => Ok(DEFAULT_MAX_BYTES),
    }
}

/// An open layer result cache.
#[derive(Debug, Clone)]
pub struct LayerCache {
    dir: PathBuf,
    /// License text-match results, by text (`texts-v<TEXT_SCHEMA>`).
    text_dir: PathBuf,
    /// Image memos: the check outcomes of whole images (`images-v<MEMO_SCHEMA>`).
    memo_dir: PathBuf,
    /// The directory holding all of them (and other schemas' directories, see [`LayerCache::evict`]).
    root: PathBuf,
    max_bytes: u64,
    /// Hash of everything but the blob that decides a layer's result.
    salt: [u8; 32],
    /// The text-match keys this run read or wrote (an image memo lists them, see
    /// [`LayerCache::put_memo`]).
    texts_used: Arc<Mutex<BTreeSet<String>>>,
}

impl LayerCache {
    /// Open (creating, mode 0700) the cache under `root`. `context` names the effective
    /// configuration a layer's result depends on (see [`context`]).
    pub fn open(root: &Path, max_bytes: u64, context: &str) -> io::Result<LayerCache> {
        let dir = root.join(format!("layers-v{SCHEMA}"));
        let text_dir = root.join(format!("texts-v{TEXT_SCHEMA}"));
        let memo_dir = root.join(format!("images-v{MEMO_SCHEMA}"));
        for d in [root, &dir, &text_dir, &memo_dir] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(d)?;
            let m = fs::metadata(d)?;
            if !m.is_dir() || m.uid() != rustix::process::geteuid().as_raw() {
                return Err(io::Error::other(format!(
                    "{}: not a directory owned by this user",
                    d.display()
                )));
            }
            if m.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(d, fs::Permissions::from_mode(0o700))?;
            }
        }
        let mut h = Sha256::new();
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(SCHEMA.to_le_bytes());
        h.update(build_identity().as_bytes());
        h.update((context.len() as u64).to_le_bytes());
        h.update(context.as_bytes());
        Ok(LayerCache {
            dir,
            text_dir,
            memo_dir,
            root: root.to_path_buf(),
            max_bytes,
            salt: h.finalize().into(),
            texts_used: Arc::default(),
        })
    }

    /// The directory holding the entries.
    pub fn entries_dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `info`'s layer under this configuration.
    pub fn key(&self, info: &LayerInfo) -> String {
        let d = &info.descriptor;
        let mut h = Sha256::new();
        h.update(self.salt);
        for part in [d.digest.to_string().as_str(), d.media_type.as_str()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update(d.size.to_le_bytes());
        hex::encode(h.finalize())
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The stored result for `info`'s layer; `None` when absent, damaged or not this layer's. A hit
    /// refreshes the entry's age (LRU).
    pub fn get(&self, info: &LayerInfo) -> Option<Record> {
        let key = self.key(info);
        let path = self.path(&key);
        let bytes = read_bounded(&path).ok()??;
        let rec: Record = decode_entry(&bytes, *MAGIC, SCHEMA)?;
        if rec.key != key || rec.digest != info.descriptor.digest.to_string() {
            return None;
        }
        touch(&path);
        Some(rec)
    }

    /// Store `info`'s layer result (atomically: temp file, then rename). Encoded as it is written.
    pub fn put(
        &self,
        info: &LayerInfo,
        listing: &LayerListing,
        scan: &ScanResult,
    ) -> io::Result<()> {
        let key = self.key(info);
        let rec = RecordRef::new(&key, info, listing, scan);
        write_entry(&self.dir, &key, *MAGIC, SCHEMA, &rec, self.max_bytes / 2)
    }

    /// The key of a license text's match result: the program's version (and, in a debug build,
    /// its identity), [`TEXT_SCHEMA`], `matcher` (what else decides the result: the license store's
    /// hash, the threshold, the limits) and the SHA-256 of the text's bytes.
    pub fn text_key(&self, matcher: &str, text: &[u8]) -> String {
        let mut h = Sha256::new();
        h.update(b"x1-validate text match\0");
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(TEXT_SCHEMA.to_le_bytes());
        for part in [build_identity().as_bytes(), matcher.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update(Sha256::digest(text));
        hex::encode(h.finalize())
    }

    /// The stored text-match result under `key` ([`LayerCache::text_key`]); `None` when absent,
    /// damaged or another key's. A hit refreshes the entry's age (LRU).
    pub fn get_text(&self, key: &str) -> Option<TextRecord> {
        let rec = read_keyed(
            &self.text_dir,
            key,
            *TEXT_MAGIC,
            TEXT_SCHEMA,
            |r: &TextRecord| &r.key,
        )?;
        self.used_text(key);
        Some(rec)
    }

    fn used_text(&self, key: &str) {
        if let Ok(mut used) = self.texts_used.lock() {
            used.insert(key.to_string());
        }
    }

    /// Store a text-match result under its key (atomically).
    pub fn put_text(&self, rec: &TextRecord) -> io::Result<()> {
        if !is_key(&rec.key) {
            return Err(io::Error::other("not a text-match key"));
        }
        write_entry(
            &self.text_dir,
            &rec.key,
            *TEXT_MAGIC,
            TEXT_SCHEMA,
            rec,
            self.max_bytes / 2,
        )?;
        self.used_text(&rec.key);
        Ok(())
    }

    /// The key of an image memo: this cache's configuration (see [`LayerCache::open`]),
    /// [`MEMO_SCHEMA`], and `parts` — everything else the memoised outcomes depend on (the caller's
    /// list: [`crate::app`]'s `memo_parts`), each length-prefixed.
    pub fn memo_key(&self, parts: &[&[u8]]) -> String {
        let mut h = Sha256::new();
        h.update(b"x1-validate image memo\0");
        h.update(self.salt);
        h.update(MEMO_SCHEMA.to_le_bytes());
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        hex::encode(h.finalize())
    }

    /// The memoised outcomes under `key` ([`LayerCache::memo_key`]); `None` when absent, damaged
    /// or another key's. A hit refreshes the entry's age (LRU), and that of the text-match entries
    /// it lists.
    pub fn get_memo(&self, key: &str) -> Option<Vec<CheckOutcome>> {
        let rec = read_keyed(
            &self.memo_dir,
            key,
            *MEMO_MAGIC,
            MEMO_SCHEMA,
            |r: &MemoRecord| &r.key,
        )?;
        let outcomes = serde_json::from_slice(&rec.outcomes).ok()?;
        for t in rec.texts.iter().filter(|t| is_key(t)) {
            touch(&self.text_dir.join(t));
        }
        Some(outcomes)
    }

    /// Store `outcomes` under `key` (atomically), unless a string in them holds anything a secret
    /// pattern matches (the policy of layer entries: nothing unmasked on disk). `Ok(false)` when
    /// not stored for that reason.
    pub fn put_memo(
        &self,
        key: &str,
        outcomes: &[CheckOutcome],
        patterns: &Patterns,
    ) -> io::Result<bool> {
        if !is_key(key) {
            return Err(io::Error::other("not a memo key"));
        }
        let value = serde_json::to_value(outcomes).map_err(io::Error::other)?;
        if value_holds_secret(&value, patterns) {
            return Ok(false);
        }
        let texts = self
            .texts_used
            .lock()
            .map(|used| used.iter().cloned().collect())
            .unwrap_or_default();
        let rec = MemoRecord {
            key: key.to_string(),
            outcomes: serde_json::to_vec(&value).map_err(io::Error::other)?,
            texts,
        };
        write_entry(
            &self.memo_dir,
            key,
            *MEMO_MAGIC,
            MEMO_SCHEMA,
            &rec,
            self.max_bytes / 2,
        )?;
        Ok(true)
    }

    /// Refresh the age (LRU) of `layers`' entries, where present: an image memo hit reads none of
    /// them, and they must outlive the memo for the next image that shares them (a new top layer).
    pub fn touch_layers(&self, layers: &[LayerInfo]) {
        for l in layers {
            touch(&self.path(&self.key(l)));
        }
    }

    /// Remove the least recently used entries until the total fits the bound (and temp files left
    /// by killed runs), over every schema's entry directories under the root
    /// (`is_entry_dir_name`): another version's entries share the bound. One run evicts at a
    /// time; a run that finds the lock taken skips eviction.
    pub fn evict(&self) -> io::Result<()> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(".evict.lock"))?;
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            return Ok(());
        }
        let now = SystemTime::now();
        let mut entries = Vec::new();
        let mut total = 0u64;
        for dir in self.entry_dirs() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd {
                let e = e?;
                let name = e.file_name();
                let name = name.to_string_lossy();
                let Ok(m) = e.metadata() else { continue };
                if !m.is_file() || name == ".evict.lock" {
                    continue;
                }
                let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if name.starts_with(".tmp-") {
                    if now.duration_since(mtime).unwrap_or_default() > STALE_TEMP {
                        let _ = fs::remove_file(e.path());
                    }
                    continue;
                }
                // Only what the cache writes: an entry is named by its key. Anything else in these
                // directories is not the cache's to count or remove.
                if !is_key(&name) {
                    continue;
                }
                total += m.len();
                entries.push((mtime, m.len(), e.path()));
            }
        }
        if total <= self.max_bytes {
            return Ok(());
        }
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&path) {
                Ok(()) => total -= len,
                Err(e) if e.kind() == io::ErrorKind::NotFound => total -= len,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl LayerCache {
    /// This schema's entry directories, then any other schema's under the root (real directories
    /// only: a symbolic link is never followed out of the cache).
    fn entry_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = vec![
            self.dir.clone(),
            self.text_dir.clone(),
            self.memo_dir.clone(),
        ];
        if let Ok(rd) = fs::read_dir(&self.root) {
            for e in rd.flatten() {
                let path = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir())
                    && is_entry_dir_name(&e.file_name().to_string_lossy())
                    && !dirs.contains(&path)
                {
                    dirs.push(path);
                }
            }
        }
        dirs
    }
}

/// Whether `name` is an entry directory of some schema: `layers-v<n>`, `texts-v<n>` or `images-v<n>`.
fn is_entry_dir_name(name: &str) -> bool {
    ["layers-v", "texts-v", "images-v"].iter().any(|p| {
        name.strip_prefix(p)
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// What identifies the build: nothing more than the version in a release build; in a debug build the
/// executable's size, mtime and inode too, so that developers' and tests' builds of one version never
/// share entries made by other code.
fn build_identity() -> String {
    if !cfg!(debug_assertions) {
        return String::new();
    }
    std::env::current_exe().and_then(fs::metadata).map_or_else(
        |_| format!("{:?}", SystemTime::now()),
        |m| format!("{}:{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()),
    )
}

/// The configuration a layer's result depends on besides its blob: the secret patterns and the
/// capture policy's globs and limits.
pub fn context(
    patterns: &Patterns,
    capture_globs: &[String],
    max_size: u64,
    head: usize,
) -> String {
    format!(
        "patterns {}\ncapture {capture_globs:?} max {max_size} head {head}",
        patterns.fingerprint()
    )
}

fn read_bounded(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len > MAX_DECODED {
        return Ok(None);
    }
    let mut v = Vec::with_capacity(len as usize);
    f.take(MAX_DECODED).read_to_end(&mut v)?;
    Ok(Some(v))
}

/// Hashes and counts what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Counts what passes through to `inner`.
struct Counting<W> {
    inner: W,
    len: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Refresh an entry's age (LRU).
/// The entry stored under `key` in `dir`: `None` when the key is not one of ours, or the entry is
/// absent, damaged, of another schema or another key's. A hit refreshes the entry's age (LRU).
fn read_keyed<T: serde::de::DeserializeOwned>(
    dir: &Path,
    key: &str,
    magic: [u8; 8],
    schema: u32,
    key_of: impl Fn(&T) -> &str,
) -> Option<T> {
    if !is_key(key) {
        return None;
    }
    let path = dir.join(key);
    let bytes = read_bounded(&path).ok()??;
    let rec: T = decode_entry(&bytes, magic, schema)?;
    if key_of(&rec) != key {
        return None;
    }
    touch(&path);
    Some(rec)
}

fn touch(path: &Path) {
    if let Ok(f) = OpenOptions::new().write(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Write `value` as entry `name` of `dir`, atomically (a private temp file, then rename), encoded
/// as it is written; an entry larger than `max_len` is dropped.
fn write_entry<T: serde::Serialize>(
    dir: &Path,
    name: &str,
    magic: [u8; 8],
    schema: u32,
    value: &T,
    max_len: u64,
) -> io::Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)?;
    let mut out = io::BufWriter::with_capacity(256 * 1024, tmp);
    out.write_all(&magic)?;
    out.write_all(&schema.to_le_bytes())?;
    let mut hashed = Hashing {
        inner: out,
        sha: Sha256::new(),
        len: 0,
    };
    let mut counted = Counting {
        inner: zstd::stream::Encoder::new(&mut hashed, 3)?,
        len: 0,
    };
    postcard::to_io(value, &mut counted).map_err(io::Error::other)?;
    let plain_len = counted.len;
    counted.inner.finish()?;
    let Hashing {
        inner: mut out,
        sha,
        len,
    } = hashed;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&plain_len.to_le_bytes())?;
    out.write_all(&sha.finalize())?;
    let tmp = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    if len > max_len {
        return Ok(());
    }
    tmp.as_file().sync_data()?;
    tmp.persist(dir.join(name)).map_err(|e| e.error)?;
    Ok(())
}

/// An entry is `magic, schema (u32 LE), payload, payload length (u64 LE), decoded length (u64 LE),
/// SHA-256 of the payload`, the payload being `zstd(postcard(T))`. The value in `bytes`, or `None`
/// when anything about it is off (never trusted then).
fn decode_entry<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    magic: [u8; 8],
    want_schema: u32,
) -> Option<T> {
    let n = bytes.len();
    if n < HEADER + TRAILER || bytes[..8] != magic {
        return None;
    }
    let schema = u32::from_le_bytes(bytes[8..12].try_into().ok()?);
    let trailer = &bytes[n - TRAILER..];
    let len = u64::from_le_bytes(trailer[..8].try_into().ok()?);
    let plain_len = u64::from_le_bytes(trailer[8..16].try_into().ok()?);
    let payload = &bytes[HEADER..n - TRAILER];
    if schema != want_schema
        || len != payload.len() as u64
        || plain_len > MAX_DECODED
        || Sha256::digest(payload)[..] != trailer[16..]
    {
        return None;
    }
    let plain = zstd::bulk::decompress(payload, plain_len as usize).ok()?;
    if plain.len() as u64 != plain_len {
        return None;
    }
    postcard::from_bytes(&plain).ok()
}

/// A key as the cache makes them: 64 hex digits (a name in one directory, nothing else).
fn is_key(key: &str) -> bool {
    key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())
}

/// An image memo as stored: the outcomes as JSON (their serde shape has internally tagged enums
/// and skipped fields, which postcard cannot decode), inside the usual checksummed entry.
#[derive(serde::Serialize, serde::Deserialize)]
struct MemoRecord {
    /// The key it was stored under (checked on read).
    key: String,
    outcomes: Vec<u8>,
    /// The text-match keys read or written while the outcomes were computed (refreshed on a hit).
    texts: Vec<String>,
}

/// Whether any string (or object key) in `v` holds anything a secret pattern matches.
fn value_holds_secret(v: &serde_json::Value, patterns: &Patterns) -> bool {
    use serde_json::Value;
    let hit = |s: &str| !scan_value(patterns, s.as_bytes()).is_empty();
    match v {
        Value::String(s) => hit(s),
        Value::Array(a) => a.iter().any(|x| value_holds_secret(x, patterns)),
        Value::Object(o) => o
            .iter()
            .any(|(k, x)| hit(k) || value_holds_secret(x, patterns)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Whether storing this layer's result could put a secret on disk: a captured file or executable head
/// in which a secret pattern matches, or a captured file that `secret_file` says is a credential file.
fn holds_secret(
    listing: &LayerListing,
    patterns: &Patterns,
    secret_file: &dyn Fn(&str) -> bool,
) -> bool {
    listing.captured.iter().any(|(&i, bytes)| {
        listing.entries.get(i).is_none_or(|e| secret_file(e.path))
            || !scan_value(patterns, bytes).is_empty()
    }) || listing
        .heads
        .iter()
        .any(|(_, bytes)| !scan_value(patterns, bytes).is_empty())
}

/// What the layer reads of one image need besides the cache.
pub struct Reader<'a> {
    pub source: &'a Source,
    pub image: &'a Image,
    pub capture: &'a CapturePolicy,
    pub patterns: &'a Arc<Patterns>,
    /// The image's shared nested-archive budget.
    pub nested: &'a Arc<NestedBudget>,
    /// Paths of credential files (never stored).
    pub secret_file: &'a (dyn Fn(&str) -> bool + Sync),
}

/// [`crate::image::read_layers`] with a [`SecretScanner`] per layer, through the cache: layers with a
/// stored result are not read (their blob must be present with its size; the `diff_id` is checked),
/// the others are read and then stored — unless a nested-archive budget was exceeded (then results
/// depend on the other layers) or the layer holds a secret in what it captured.
pub fn read_layers(
    cache: Option<&LayerCache>,
    r: &Reader<'_>,
) -> Result<Vec<LayerOutput<SecretScanner>>> {
    let scanner = |_: &LayerInfo| SecretScanner::new(Arc::clone(r.patterns)).sharing(r.nested);
    let Some(cache) = cache else {
        return crate::image::read_layers(r.source, r.image, r.capture, scanner);
    };
    let found: Vec<Option<Record>> = r
        .image
        .layers
        .par_iter()
        .map(|l| {
            r.source
                .has_blob_sized(&l.descriptor)
                .then(|| cache.get(l))
                .flatten()
        })
        .collect();
    let misses: Vec<&LayerInfo> = r
        .image
        .layers
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(l, _)| l)
        .collect();
    let mut hits = Vec::new();
    for (l, f) in r.image.layers.iter().zip(found) {
        if let Some(rec) = f {
            if rec.diff_id != l.diff_id.to_string() {
                return Err(Error::corrupt(
                    layer_name(l),
                    format!(
                        "diff_id differs: the uncompressed layer hashes to {}, the config says {}",
                        rec.diff_id, l.diff_id
                    ),
                ));
            }
            hits.push((l, rec));
        }
    }
    let mut restored: Vec<LayerOutput<SecretScanner>> = hits
        .into_iter()
        .map(|(l, rec)| {
            let (listing, scan) = rec.into_parts(l);
            LayerOutput {
                listing,
                scan: scanner(l).restored(scan),
            }
        })
        .collect();
    let read = read_some(r.source, &misses, r.capture, scanner)?;
    if !read.is_empty() && !r.nested.was_exceeded() {
        // One at a time: storing streams each listing out without copying it; in parallel the
        // encoders' buffers would add to the peak memory for little gain.
        let stored = read
            .iter()
            .zip(&misses)
            .filter(|(o, _)| !holds_secret(&o.listing, r.patterns, r.secret_file))
            .map(|(o, l)| cache.put(l, &o.listing, &o.scan.result()).is_ok())
            .filter(|ok| *ok)
            .count();
        if stored > 0 {
            let _ = cache.evict();
        }
    }
    restored.extend(read);
    restored.sort_by_key(|o| o.listing.index);
    Ok(restored)
}

#[cfg(test)]
mod tests {
    #[test]
    fn entry_directories_of_every_schema_and_nothing_else() {
        for name in ["layers-v3", "texts-v1", "images-v12", "layers-v0"] {
            assert!(is_entry_dir_name(name), "{name}");
        }
        for name in [
            "layers-v",
            "layers-vx",
            "layers-v1x",
            "layers",
            "notes-v1",
            ".tmp-layers-v1",
            "x-layers-v1",
        ] {
            assert!(!is_entry_dir_name(name), "{name}");
        }
    }

    use super::*;
    use crate::image::{Descriptor, Digest, Entry, EntryKind, HygieneIssue};

    fn info(index: usize) -> LayerInfo {
        let d = |c: char| {
            Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).expect("digest")
        };
        LayerInfo {
            index,
            descriptor: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                digest: d('a'),
                size: 1234,
                annotations: std::collections::BTreeMap::new(),
                platform: None,
            },
            diff_id: d('b'),
            history: None,
        }
    }

    fn listing() -> LayerListing {
        let e = |path: &'static str, kind: EntryKind<'static>, ordinal| Entry {
            path,
            kind,
            mode: 0o4755,
            uid: 1 << 40,
            gid: 7,
            size: 99,
            mtime: 1_700_000_000,
            ordinal,
        };
        let mut l = LayerListing {
            index: 0,
            compression: Some(crate::image::Compression::Zstd),
            compressed_size: 1234,
            uncompressed_size: 4096,
            entries: crate::image::Entries::from_entries(&[
                e("etc", EntryKind::Dir, 0),
                e("etc/passwd", EntryKind::File, 1),
                e(
                    "bin/sh",
                    EntryKind::Symlink {
                        target: "/bin/dash",
                    },
                    3,
                ),
                e("dev/null", EntryKind::Char { major: 1, minor: 3 }, 4),
            ])
            .unwrap(),
            whiteouts: vec!["old".into()],
            opaque_dirs: vec![String::new()],
            hygiene: vec![HygieneIssue::Setuid {
                path: "etc/passwd".into(),
                mode: 0o4755,
            }],
            ..LayerListing::default()
        };
        l.captured
            .insert(1, b"root:x:0:0::/root:/bin/sh\n".to_vec());
        l.heads.push(1, b"#!/bin/sh");
        l
    }

    fn json(l: &LayerListing) -> String {
        serde_json::to_string(&(l, &l.captured, &l.heads)).expect("json")
    }

    #[test]
    fn text_results_are_keyed_checked_and_evicted_with_the_layers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LayerCache::open(dir.path(), 1 << 20, "ctx").expect("open");
        let key = cache.text_key("matcher", b"text");
        assert_eq!(key.len(), 64);
        assert_ne!(key, cache.text_key("matcher 2", b"text"));
        assert_ne!(key, cache.text_key("matcher", b"text 2"));
        let rec = TextRecord {
            key: key.clone(),
            cost: 3,
            outcome: Ok(vec![("MIT".into(), 0.97)]),
        };
        assert!(cache.get_text(&key).is_none());
        cache.put_text(&rec).expect("put");
        assert_eq!(cache.get_text(&key), Some(rec.clone()));
        // An entry stored under another text's name is not that text's result.
        let other = cache.text_key("matcher", b"other");
        let text_dir = dir.path().join(format!("texts-v{TEXT_SCHEMA}"));
        fs::copy(text_dir.join(&key), text_dir.join(&other)).expect("copy");
        assert!(cache.get_text(&other).is_none());
        // Keys are names in one directory, nothing else.
        assert!(cache.get_text("../layers-v1/x").is_none());
        let bad = TextRecord {
            key: "../escape".into(),
            ..rec.clone()
        };
        assert!(cache.put_text(&bad).is_err());
        // The size bound counts text results too.
        LayerCache::open(dir.path(), 0, "ctx")
            .expect("open")
            .evict()
            .expect("evict");
        assert!(cache.get_text(&key).is_none());
    }

    #[test]
    fn a_memo_comes_back_whole_damage_is_a_miss_and_secrets_are_not_stored() {
        use crate::report::{Evidence, Finding, Location, RuleStatus, Severity};
        use crate::rules::RuleId;
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LayerCache::open(dir.path(), 1 << 20, "ctx").expect("open");
        let patterns = crate::rules::RuleSet::embedded()
            .expect("embedded rules")
            .secrets;
        let key = cache.memo_key(&[b"a", b"bc"]);
        assert_eq!(key.len(), 64);
        // Parts are length-prefixed: moving a byte between two parts is another key.
        assert_ne!(key, cache.memo_key(&[b"ab", b"c"]));
        assert_ne!(
            key,
            LayerCache::open(dir.path(), 1 << 20, "ctx2")
                .expect("open")
                .memo_key(&[b"a", b"bc"])
        );
        let mut o = CheckOutcome::from_findings(
            RuleId::SecretInLayer,
            vec![Finding {
                rule_id: RuleId::SecretInLayer,
                severity: Severity::Error,
                message: "a key".into(),
                help: None,
                location: Location::Entry {
                    layer: crate::report::LayerRef {
                        index: 2,
                        digest: "sha256:ab".into(),
                        diff_id: "sha256:cd".into(),
                        created_by: None,
                    },
                    path: "/srv/x".into(),
                    fate: "visible".into(),
                    offset: Some(7),
                    line: None,
                },
                evidence: Some(Evidence {
                    prefix: "ghp_".into(),
                    length: 40,
                    fingerprint: "sha256:00".into(),
                    pattern: "github-pat".into(),
                }),
            }],
        );
        o.notes.push("a note".into());
        o.suppressed.insert("allow-1".into(), 3);
        let mut skipped = CheckOutcome::from_findings(RuleId::Healthcheck, Vec::new());
        skipped.status = RuleStatus::Skipped;
        skipped.detail = Some("why".into());
        let outcomes = vec![o, skipped];
        assert!(cache.get_memo(&key).is_none());
        assert!(cache.put_memo(&key, &outcomes, &patterns).expect("put"));
        assert_eq!(cache.get_memo(&key), Some(outcomes.clone()));
        // Another key's entry under this name is not this key's memo; names are keys only.
        let other = cache.memo_key(&[b"other"]);
        let memo_dir = dir.path().join(format!("images-v{MEMO_SCHEMA}"));
        fs::copy(memo_dir.join(&key), memo_dir.join(&other)).expect("copy");
        assert!(cache.get_memo(&other).is_none());
        assert!(cache.get_memo("../layers-v2/x").is_none());
        assert!(cache.put_memo("../x", &outcomes, &patterns).is_err());
        // Every single flipped byte makes the entry a miss.
        let path = memo_dir.join(&key);
        let good = fs::read(&path).expect("read");
        for at in (0..good.len()).step_by(5) {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            fs::write(&path, &bad).expect("write");
            assert!(
                cache.get_memo(&key).is_none(),
                "damage at byte {at} was trusted"
            );
        }
        // A string anywhere in the outcomes that a secret pattern matches: not stored.
        let mut rng = rand::rng();
        let mut pick = |a: &[u8]| a[rand::Rng::random_range(&mut rng, 0..a.len())];
        let secret = crate::scan::template::expand("ghp_{alnum:36}", &mut pick).expect("classes");
        assert!(!scan_value(&patterns, secret.as_bytes()).is_empty());
        for place in 0..3 {
            let mut leaky = outcomes.clone();
            match place {
                0 => leaky[0].findings[0].message = format!("path /opt/{secret}/x"),
                1 => leaky[1].notes.push(format!("x{secret}")),
                _ => {
                    leaky[0].suppressed.insert(secret.clone(), 1);
                }
            }
            let k = cache.memo_key(&[&[place]]);
            assert!(!cache.put_memo(&k, &leaky, &patterns).expect("put"));
            assert!(!memo_dir.join(&k).exists());
        }
        // The size bound counts memos too.
        fs::write(&path, &good).expect("write");
        assert!(cache.get_memo(&key).is_some());
        LayerCache::open(dir.path(), 0, "ctx")
            .expect("open")
            .evict()
            .expect("evict");
        assert!(cache.get_memo(&key).is_none());
    }

    #[test]
    fn a_stored_layer_comes_back_whole_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LayerCache::open(dir.path(), 1 << 20, "ctx").expect("open");
        let (i, l) = (info(3), listing());
        let scan = ScanResult {
            notes: vec!["a note".into()],
            bytes_scanned: 42,
            nested_expanded: 7,
            ..ScanResult::default()
        };
        assert!(cache.get(&i).is_none());
        cache.put(&i, &l, &scan).expect("put");
        let (back, back_scan) = cache.get(&i).expect("hit").into_parts(&i);
        assert_eq!(back.index, 3);
        let mut want = l.clone();
        want.index = 3;
        assert_eq!(json(&back), json(&want));
        assert_eq!(back_scan, scan);
        // Another configuration is another key.
        let other = LayerCache::open(dir.path(), 1 << 20, "ctx2").expect("open");
        assert!(other.get(&i).is_none());
        // Every single flipped byte makes the entry a miss.
        let path = cache.path(&cache.key(&i));
        let good = fs::read(&path).expect("read");
        for at in (0..good.len()).step_by(7) {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            fs::write(&path, &bad).expect("write");
            assert!(cache.get(&i).is_none(), "damage at byte {at} was trusted");
        }
        fs::write(&path, &good[..good.len() - 1]).expect("write");
        assert!(cache.get(&i).is_none());
    }
}
