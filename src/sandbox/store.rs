//! The layer store: every non-directory entry of a layer, written once and hard-linked into each root
//! filesystem that needs it.
//!
//! # Why
//! Materialising the corpus image writes ~17,000 files and 1 GB. Creating that many inodes is slow where
//! the filesystem has just freed many (ext4 without a journal checks every recently deleted inode on each
//! allocation: measured here, 2 s of system time on a quiet disk, 12–17 s right after a previous run's
//! tree was removed), and it inflates and hashes every layer a second time. A hard link costs one
//! directory entry and no inode, so an image whose layers were seen before is materialised by creating
//! its directories and linking everything else; removing the tree afterwards frees no file inode.
//!
//! # Soundness
//! A layer is keyed by its blob digest (content addressed), the ownership mapping and the store format.
//! It is filled only from a blob read to its last byte through the digest-checking [`Source::blob`]; a
//! fill that fails is never published. Every link is checked against the listing first (type, size,
//! permission bits, owner, symlink target): a mismatch discards the layer and fills it again, never
//! trusts it. The sandbox sees the links through a read-only bind, so it cannot change a stored inode.
//!
//! # Layout and concurrency
//! `<tmpdir>/x1-validate-layers-<euid>/` (created `0700`; used only when it is a real directory, ours,
//! and `0700`) holds `<key>/` per layer, with `e<ordinal>` per entry and `.complete` (entries and bytes,
//! written last; its mtime is the last use, for LRU eviction). It lives beside the workspaces because a
//! hard link cannot cross filesystems. A fill is written to `fill-<pid>-*` and renamed into place without
//! replacing, so a crash or a concurrent run never leaves half a layer under a key. Users hold a shared
//! `flock` on the layer directory while they link; eviction takes it exclusively and skips a busy layer.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags, RenameFlags, Timespec};

use super::write::{Dest, Error, Ownership, Result, local};
use crate::image::tree::NodeRef;
use crate::image::{EntryKind, LayerInfo, LayerListing, Source};

/// `X1_VALIDATE_LAYER_STORE`: `off`, or the store's size bound (e.g. `8G`); default [`DEFAULT_BOUND`].
pub const STORE_ENV: &str = "X1_VALIDATE_LAYER_STORE";
/// Default bound on the bytes the store keeps (least recently used layers are evicted beyond it).
pub const DEFAULT_BOUND: u64 = 8 << 30;
const FORMAT: &str = "1";
const COMPLETE: &str = ".complete";
const PREFIX: &str = "x1-validate-layers-";

/// The store's bound as [`STORE_ENV`] sets it; `Ok(None)` when switched off.
pub fn bound_from_env() -> std::result::Result<Option<u64>, String> {
    match std::env::var(STORE_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(Some(DEFAULT_BOUND)),
        Err(_) => Err(format!("{STORE_ENV} is not valid UTF-8")),
        Ok(v) if v.trim().eq_ignore_ascii_case("off") => Ok(None),
        Ok(v) => crate::units::parse_size(&v)
            .map(Some)
            .map_err(|_| format!("{STORE_ENV}={v:?} is neither `off` nor a size (e.g. 8G)")),
    }
}

/// An open, checked store directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    fd: OwnedFd,
    bound: u64,
    own: Ownership,
}

/// A layer of the store, held (shared lock) while its entries are linked.
pub(crate) struct Held {
    pub(crate) fd: OwnedFd,
    pub(crate) key: String,
}

impl Store {
    /// Open (creating) `parent/x1-validate-layers-<euid>`; `None` unless it is a directory (not a
    /// symlink) owned by us with mode `0700` — in a shared `/tmp` anyone could have made it first.
    pub fn open(parent: &Path, own: Ownership, bound: u64) -> Option<Store> {
        let me = rustix::process::geteuid();
        let dir = parent.join(format!("{PREFIX}{}", me.as_raw()));
        match rustix::fs::mkdir(&dir, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(_) => return None,
        }
        let fd = rustix::fs::open(
            &dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let st = rustix::fs::fstat(&fd).ok()?;
        let ours = FileType::from_raw_mode(st.st_mode) == FileType::Directory
            && st.st_uid == me.as_raw()
            && st.st_mode & 0o7777 == 0o700;
        ours.then(|| {
            let store = Store {
                dir,
                fd,
                bound,
                own,
            };
            store.sweep();
            store
        })
    }

    /// Where the store is.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The bound on the bytes kept.
    pub fn bound(&self) -> u64 {
        self.bound
    }

    /// The key of a layer: blob digest, ownership mapping, store format and tool version. `None` for a
    /// digest that is not plain `algorithm:hex` (never used as a name then).
    pub fn key(&self, layer: &LayerInfo) -> Option<String> {
        let digest = layer.descriptor.digest.to_string();
        let (alg, hex) = digest.split_once(':')?;
        let plain = |s: &str, f: fn(&char) -> bool| {
            !s.is_empty() && s.len() <= 128 && s.chars().all(|c| f(&c))
        };
        if !plain(alg, char::is_ascii_alphanumeric) || !plain(hex, char::is_ascii_hexdigit) {
            return None;
        }
        let own = match self.own {
            Ownership::Shifted { base } => format!("s{base}"),
            Ownership::Caller => "c".to_string(),
        };
        Some(format!(
            "{alg}-{hex}-{own}-f{FORMAT}-v{}",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// The layer held for linking, its `plan`ned entries checked against the listing: filled from its
    /// blob first when it is not in the store (or was evicted while we waited for it), and thrown away
    /// and filled again when an entry does not match (damaged: never trusted).
    pub(crate) fn layer(
        &self,
        source: &Source,
        layer: &LayerInfo,
        listings: &[LayerListing],
        li: usize,
        plan: &HashMap<usize, Vec<Dest>>,
    ) -> Result<Held> {
        let key = self.key(layer).ok_or_else(|| Error::Corrupt {
            what: crate::image::stream::layer_name(layer),
            detail: "a digest that cannot name a store entry".into(),
        })?;
        // At most: damaged → discarded, filled, held; one more round for an eviction race.
        for _ in 0..4 {
            match self.hold(&key)? {
                Some(held) if self.intact(&held, plan, listings) => return Ok(held),
                Some(damaged) => self.discard(damaged),
                None => self.fill(source, layer, listings, li, &key)?,
            }
        }
        Err(Error::Io {
            path: self.dir.join(&key),
            source: io::Error::other(
                "the layer does not match its listing after a fresh fill, or was evicted each time",
            ),
        })
    }

    /// Open and share-lock `key`; `None` when absent or evicted meanwhile. Touches it (LRU).
    fn hold(&self, key: &str) -> Result<Option<Held>> {
        let fd = match rustix::fs::openat(
            &self.fd,
            key,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(local(&self.dir.join(key), e)),
        };
        rustix::fs::flock(&fd, FlockOperation::LockShared)
            .map_err(|e| local(&self.dir.join(key), e))?;
        let now = Timespec {
            tv_sec: 0,
            tv_nsec: rustix::fs::UTIME_NOW,
        };
        let times = rustix::fs::Timestamps {
            last_access: now,
            last_modification: now,
        };
        match rustix::fs::utimensat(&fd, COMPLETE, &times, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(()) => Ok(Some(Held {
                fd,
                key: key.to_string(),
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(local(&self.dir.join(key), e)),
        }
    }

    /// Write every non-directory entry of layer `li` into a fresh directory and publish it as `key`.
    fn fill(
        &self,
        source: &Source,
        layer: &LayerInfo,
        listings: &[LayerListing],
        li: usize,
        key: &str,
    ) -> Result<()> {
        let listing = &listings[li];
        let bytes: u64 = listing
            .entries
            .iter()
            .filter(crate::image::Entry::is_file)
            .map(|e| e.size)
            .fold(0, u64::saturating_add);
        if bytes > self.bound {
            return Err(Error::TooLarge {
                needed: bytes,
                limit: self.bound,
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix(&format!("fill-{}-", std::process::id()))
            .tempdir_in(&self.dir)
            .map_err(|e| Error::Io {
                path: self.dir.clone(),
                source: e,
            })?;
        let tmp_fd = rustix::fs::open(
            tmp.path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| local(tmp.path(), e))?;
        let plan = self.stage_links(&tmp_fd, tmp.path(), listing, li)?;
        let out = super::write::Out {
            root_fd: &tmp_fd,
            root: tmp.path(),
            own: self.own,
            listings,
            written: std::sync::atomic::AtomicU64::new(0),
            max_bytes: self.bound,
        };
        super::write::stream_layer(source, layer, &plan, &out)?;
        let mut f = File::create_new(tmp.path().join(COMPLETE)).map_err(|e| Error::Io {
            path: tmp.path().join(COMPLETE),
            source: e,
        })?;
        writeln!(
            f,
            "x1-validate layer store {FORMAT}\nlayer {}\nentries {}\nbytes {bytes}",
            layer.descriptor.digest,
            listing.entries.len()
        )
        .map_err(|e| Error::Io {
            path: tmp.path().join(COMPLETE),
            source: e,
        })?;
        drop(f);
        let made = tmp.keep();
        match rustix::fs::renameat_with(
            &self.fd,
            made.file_name().unwrap_or_default(),
            &self.fd,
            key,
            RenameFlags::NOREPLACE,
        ) {
            Ok(()) => Ok(()),
            // A concurrent run published the same layer first: use theirs.
            Err(rustix::io::Errno::EXIST | rustix::io::Errno::NOTEMPTY) => {
                super::cleanup::force_remove(&made);
                Ok(())
            }
            Err(e) => {
                super::cleanup::force_remove(&made);
                Err(local(&self.dir.join(key), e))
            }
        }
    }

    /// Create the symlinks and FIFOs of layer `li` in `tmp`; return the plan for its files.
    fn stage_links(
        &self,
        tmp_fd: &OwnedFd,
        tmp: &Path,
        listing: &LayerListing,
        li: usize,
    ) -> Result<HashMap<usize, Vec<Dest>>> {
        let mut plan: HashMap<usize, Vec<Dest>> = HashMap::new();
        for (i, e) in listing.entries.iter().enumerate() {
            let name = entry_name(e.ordinal());
            let ids = self.own.ids(e.uid, e.gid);
            match &e.kind {
                EntryKind::File => plan.entry(e.ordinal()).or_default().push(Dest {
                    path: name,
                    node: NodeRef {
                        layer: li,
                        entry: i,
                    },
                }),
                EntryKind::Symlink { target } => {
                    rustix::fs::symlinkat(*target, tmp_fd, name.as_str())
                        .map_err(|err| local(&tmp.join(&name), err))?;
                    super::write::chown_at(tmp_fd, &name, ids, tmp, &name)?;
                }
                EntryKind::Fifo => {
                    rustix::fs::mknodat(
                        tmp_fd,
                        name.as_str(),
                        FileType::Fifo,
                        Mode::from_raw_mode(0o600),
                        0,
                    )
                    .map_err(|err| local(&tmp.join(&name), err))?;
                    super::write::finish_meta(tmp_fd, &name, ids, e.mode, tmp, &name)?;
                }
                EntryKind::Dir
                | EntryKind::Hardlink { .. }
                | EntryKind::Char { .. }
                | EntryKind::Block { .. } => {}
            }
        }
        Ok(plan)
    }

    /// Whether every planned entry of `held` is what the listing says; `false` means damaged.
    fn intact(
        &self,
        held: &Held,
        plan: &HashMap<usize, Vec<Dest>>,
        listings: &[LayerListing],
    ) -> bool {
        let me = rustix::process::geteuid().as_raw();
        plan.iter().all(|(&ordinal, dests)| {
            let Some(first) = dests.first() else {
                return true;
            };
            let e = listings[first.node.layer].entries.at(first.node.entry);
            let name = entry_name(ordinal);
            let Ok(st) = rustix::fs::statat(&held.fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                return false;
            };
            let uid_ok = match self.own.ids(e.uid, e.gid) {
                Some((u, g)) => st.st_uid == u.as_raw() && st.st_gid == g.as_raw(),
                None => st.st_uid == me,
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            let shape_ok = match &e.kind {
                EntryKind::File => {
                    ft == FileType::RegularFile
                        && u64::try_from(st.st_size).ok() == Some(e.size)
                        && st.st_mode & 0o7777 == e.mode & 0o7777
                }
                EntryKind::Fifo => ft == FileType::Fifo && st.st_mode & 0o7777 == e.mode & 0o7777,
                EntryKind::Symlink { target } => {
                    ft == FileType::Symlink
                        && rustix::fs::readlinkat(&held.fd, name.as_str(), Vec::new())
                            .is_ok_and(|t| t.as_bytes() == target.as_bytes())
                }
                _ => false,
            };
            uid_ok && shape_ok
        })
    }

    /// Throw a damaged layer away (so the next [`Store::layer`] fills it again).
    fn discard(&self, held: Held) {
        let key = held.key.clone();
        drop(held);
        self.evict_one(&key, true);
    }

    /// Evict least recently used layers until the store holds at most its bound, never one of `keep`
    /// nor one another run is using.
    pub fn evict(&self, keep: &[String]) {
        let mut layers: Vec<(i64, u64, String)> = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name.starts_with("fill-") || name.starts_with("trash-") {
                continue;
            }
            let Ok(st) = rustix::fs::statat(
                &self.fd,
                format!("{name}/{COMPLETE}").as_str(),
                AtFlags::SYMLINK_NOFOLLOW,
            ) else {
                continue;
            };
            let bytes = std::fs::read_to_string(self.dir.join(&name).join(COMPLETE))
                .ok()
                .and_then(|t| {
                    t.lines()
                        .find_map(|l| l.strip_prefix("bytes ").and_then(|b| b.parse().ok()))
                })
                .unwrap_or(0u64);
            layers.push((st.st_mtime, bytes, name));
        }
        let mut total: u64 = layers.iter().map(|l| l.1).fold(0, u64::saturating_add);
        layers.sort();
        for (_, bytes, name) in layers {
            if total <= self.bound {
                break;
            }
            if keep.contains(&name) {
                continue;
            }
            if self.evict_one(&name, false) {
                total = total.saturating_sub(bytes);
            }
        }
    }

    /// Move `key` aside under an exclusive lock (waiting for it only when `wait`), remove its marker
    /// so a run that waited on the old directory sees it gone, then delete it.
    fn evict_one(&self, key: &str, wait: bool) -> bool {
        let Ok(fd) = rustix::fs::openat(
            &self.fd,
            key,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return false;
        };
        let op = if wait {
            FlockOperation::LockExclusive
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        if rustix::fs::flock(&fd, op).is_err() {
            return false;
        }
        let trash = format!("trash-{}-{key}", std::process::id());
        if rustix::fs::renameat(&self.fd, key, &self.fd, trash.as_str()).is_err() {
            return false;
        }
        let _ = rustix::fs::unlinkat(&fd, COMPLETE, AtFlags::empty());
        drop(fd);
        super::cleanup::force_remove(&self.dir.join(trash));
        true
    }

    /// Remove `fill-<pid>-*` and `trash-<pid>-*` left by runs that died.
    fn sweep(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            let Some(rest) = name
                .to_str()
                .and_then(|n| n.strip_prefix("fill-").or_else(|| n.strip_prefix("trash-")))
            else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                super::cleanup::force_remove(&e.path());
            }
        }
    }
}

/// The name of a stored entry.
pub(crate) fn entry_name(ordinal: usize) -> String {
    format!("e{ordinal}")
}

/// Link the planned entries of one held layer into the root (parents exist: directories are made
/// first). Returns (files, symlinks, file bytes).
pub(crate) fn link_layer(
    held: &Held,
    plan: &HashMap<usize, Vec<Dest>>,
    listings: &[LayerListing],
    root_fd: &OwnedFd,
    root: &Path,
) -> Result<(usize, usize, u64)> {
    let (mut files, mut symlinks, mut bytes) = (0usize, 0usize, 0u64);
    let mut parents: BTreeMap<String, OwnedFd> = BTreeMap::new();
    for (&ordinal, dests) in plan {
        let name = entry_name(ordinal);
        for d in dests {
            let (dir, leaf) = super::write::cached_parent(root_fd, &mut parents, &d.path, root)?;
            // A name already there (a path listed twice) is replaced; trying first saves an unlink
            // per entry in the usual fresh tree.
            let link = || rustix::fs::linkat(&held.fd, name.as_str(), dir, leaf, AtFlags::empty());
            match link() {
                Err(rustix::io::Errno::EXIST) => {
                    super::write::replace(dir, leaf);
                    link()
                }
                r => r,
            }
            .map_err(|e| local(&root.join(&d.path), e))?;
            let e = listings[d.node.layer].entries.at(d.node.entry);
            match e.kind {
                EntryKind::File => {
                    files += 1;
                    bytes += e.size;
                }
                EntryKind::Symlink { .. } => symlinks += 1,
                _ => {}
            }
        }
    }
    Ok((files, symlinks, bytes))
}
