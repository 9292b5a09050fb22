//! Writing image entries in-root: the directory-descriptor helpers every write of the sandbox goes
//! through, and the streaming of one layer blob into the planned paths. Used by [`super::materialise`]
//! (the merged tree) and [`super::store`] (whole layers); neither imports the other for these.
//!
//! Every write is relative to a directory descriptor opened with `openat2(RESOLVE_IN_ROOT)` from the
//! root, and leaf names are created with `O_EXCL | O_NOFOLLOW` (or the `*at` call's equivalent): a
//! symlink in the image can never redirect a write outside the directory (containerd's in-root semantics:
//! an entry below an in-image symlink lands where the symlink points, inside the root).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, ResolveFlags, Uid};

use crate::image::stream;
use crate::image::tree::NodeRef;
use crate::image::{Compression, LayerInfo, LayerListing, Source};

/// Why materialisation stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A layer blob could not be read back (digest, compression or tar).
    #[error("{what}: {detail}")]
    Corrupt { what: String, detail: String },
    /// Writing into the temporary directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    /// The surviving files add up to more than the cap.
    #[error(
        "image too large to materialise: its files need {needed} bytes, the cap is {limit} bytes \
         (X1_VALIDATE_MAX_ROOTFS_SIZE)"
    )]
    TooLarge { needed: u64, limit: u64 },
}

impl Error {
    /// Whether the image's own content caused this (a tree the kernel refuses: a name too long, a
    /// directory under a dangling symlink, a loop, too large …) rather than this machine (disk full, out
    /// of memory or descriptors, an I/O error). The former is a healthcheck finding, the latter not-run.
    pub fn image_caused(&self) -> bool {
        match self {
            Error::Corrupt { .. } | Error::TooLarge { .. } => true,
            Error::Io { source, .. } => !matches!(
                source
                    .raw_os_error()
                    .map(rustix::io::Errno::from_raw_os_error),
                Some(
                    rustix::io::Errno::NOSPC
                        | rustix::io::Errno::DQUOT
                        | rustix::io::Errno::NOMEM
                        | rustix::io::Errno::MFILE
                        | rustix::io::Errno::NFILE
                        | rustix::io::Errno::IO
                        | rustix::io::Errno::ROFS
                )
            ),
        }
    }

    fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt {
            what: what.to_string(),
            detail: detail.to_string(),
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// How image ids become host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Host id = `base + image id` (ids above 65535 become `base + 65534`).
    Shifted { base: u32 },
    /// Leave everything owned by the calling user (non-root: the user namespace maps it).
    Caller,
}

impl Ownership {
    /// The host uid/gid that image ids `uid`/`gid` become (`None`: the caller's own).
    pub fn host_ids(self, uid: u32, gid: u32) -> Option<(u32, u32)> {
        self.ids(u64::from(uid), u64::from(gid))
            .map(|(u, g)| (u.as_raw(), g.as_raw()))
    }

    pub(crate) fn ids(self, uid: u64, gid: u64) -> Option<(Uid, Gid)> {
        match self {
            Ownership::Caller => None,
            Ownership::Shifted { base } => {
                let shift = |id: u64| {
                    base + u32::try_from(id)
                        .ok()
                        .filter(|&i| i < 65536)
                        .unwrap_or(65534)
                };
                Some((Uid::from_raw(shift(uid)), Gid::from_raw(shift(gid))))
            }
        }
    }
}

/// A file to write while streaming a layer: the final path and the entry whose metadata it takes.
#[derive(Debug, Clone)]
pub(crate) struct Dest {
    pub(crate) path: String,
    pub(crate) node: NodeRef,
}

/// Stream one layer blob (the image reader's sniff → decoder → inflate-thread pipeline) and write the
/// planned files. Tar entries are matched by ordinal, exactly as the reader numbered them.
pub(crate) fn stream_layer(
    source: &Source,
    layer: &LayerInfo,
    plan: &HashMap<usize, Vec<Dest>>,
    out: &Out<'_>,
) -> Result<(usize, u64)> {
    let what = stream::layer_name(layer);
    let blob = source
        .blob(&layer.descriptor)
        .map_err(|e| Error::corrupt(&what, e))?;
    let mut raw = BufReader::with_capacity(stream::CHUNK, blob);
    let head = raw.fill_buf().map_err(|e| Error::corrupt(&what, e))?;
    let c = stream::sniff(&head[..head.len().min(512)]).map_err(|e| Error::corrupt(&what, e))?;
    // Every blob is read to its last byte, so the digest check of `Source::blob` always runs: what is
    // written is what was scanned, even if the input changed in between.
    if c == Compression::None {
        let n = write_entries(&mut raw, plan, out, &what)?;
        io::copy(&mut raw, &mut io::sink()).map_err(|e| Error::corrupt(&what, e))?;
        return Ok(n);
    }
    stream::pipelined(
        |send| {
            let ok = match stream::decoder(c, &mut raw) {
                Ok(mut d) => {
                    stream::pump(&mut d, send);
                    true
                }
                Err(e) => !send(Err(e)),
            };
            if ok && let Err(e) = io::copy(&mut raw, &mut io::sink()) {
                send(Err(e));
            }
        },
        |mut ch| {
            let n = write_entries(&mut ch, plan, out, &what)?;
            io::copy(&mut ch, &mut io::sink()).map_err(|e| Error::corrupt(&what, e))?;
            Ok(n)
        },
    )
}

/// Where files go and how they are owned.
pub(crate) struct Out<'a> {
    pub(crate) root_fd: &'a OwnedFd,
    pub(crate) root: &'a Path,
    pub(crate) own: Ownership,
    pub(crate) listings: &'a [LayerListing],
    /// Bytes of file content written so far, all layers (hardlinked copies included).
    pub(crate) written: std::sync::atomic::AtomicU64,
    pub(crate) max_bytes: u64,
}

impl Out<'_> {
    /// The layer entry a tree node names.
    pub(crate) fn entry(&self, n: NodeRef) -> crate::image::Entry<'_> {
        self.listings[n.layer].entries.at(n.entry)
    }
}

fn write_entries(
    r: &mut dyn Read,
    plan: &HashMap<usize, Vec<Dest>>,
    out: &Out<'_>,
    what: &str,
) -> Result<(usize, u64)> {
    let mut archive = tar::Archive::new(r);
    let mut buf = vec![0u8; 256 * 1024];
    let (mut files, mut bytes, mut left) = (0usize, 0u64, plan.len());
    let mut parents: BTreeMap<String, OwnedFd> = BTreeMap::new();
    let entries = archive.entries().map_err(|e| Error::corrupt(what, e))?;
    for (ordinal, item) in entries.enumerate() {
        if left == 0 {
            break;
        }
        let mut item = item.map_err(|e| Error::corrupt(what, e))?;
        let Some(dests) = plan.get(&ordinal) else {
            continue;
        };
        left -= 1;
        let (first, rest) = dests.split_first().expect("plan entries are never empty");
        let (root_fd, root) = (out.root_fd, out.root);
        let size = item.header().size().unwrap_or(u64::MAX);
        let before = out
            .written
            .fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        if before.saturating_add(size) > out.max_bytes {
            return Err(Error::TooLarge {
                needed: before.saturating_add(size),
                limit: out.max_bytes,
            });
        }
        let file = create_file(root_fd, &mut parents, &first.path, root)?;
        let n = copy(&mut item, &file, &mut buf).map_err(|e| Error::corrupt(what, e))?;
        let meta = out.listings[first.node.layer].entries.at(first.node.entry);
        let at = || root.join(&first.path);
        if let Some((u, g)) = out.own.ids(meta.uid, meta.gid) {
            rustix::fs::fchown(&file, Some(u), Some(g)).map_err(|e| local(&at(), e))?;
        }
        rustix::fs::fchmod(&file, Mode::from_raw_mode(meta.mode & 0o7777))
            .map_err(|e| local(&at(), e))?;
        files += 1;
        bytes += n;
        // Further destinations of the same entry (hardlinks of a hidden origin) share the inode.
        for d in rest {
            let (dir, name) = parent_of(root_fd, &d.path, root)?;
            let (fdir, fname) = parent_of(root_fd, &first.path, root)?;
            replace(&dir, name);
            rustix::fs::linkat(&fdir, fname, &dir, name, AtFlags::empty())
                .map_err(|e| local(&root.join(&d.path), e))?;
        }
    }
    Ok((files, bytes))
}

fn create_file(
    root_fd: &OwnedFd,
    cache: &mut BTreeMap<String, OwnedFd>,
    path: &str,
    root: &Path,
) -> Result<File> {
    let (dir, name) = cached_parent(root_fd, cache, path, root)?;
    replace(dir, name);
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| local(&root.join(path), e))?;
    Ok(File::from(fd))
}

/// The parent directory of `path` (in-root; created like the runtimes do when the tar does not list
/// it) from a small cache of open descriptors, and the leaf name.
pub(crate) fn cached_parent<'c, 'p>(
    root_fd: &OwnedFd,
    cache: &'c mut BTreeMap<String, OwnedFd>,
    path: &'p str,
    root: &Path,
) -> Result<(&'c OwnedFd, &'p str)> {
    let (parent, name) = split(path);
    if !cache.contains_key(parent) {
        if cache.len() > 256 {
            cache.clear();
        }
        let fd = if let Ok(fd) = open_dir(root_fd, parent, root) {
            fd
        } else {
            make_dir(root_fd, parent, root)?;
            open_dir(root_fd, parent, root)?
        };
        cache.insert(parent.to_string(), fd);
    }
    Ok((cache.get(parent).expect("inserted above"), name))
}

fn copy(from: &mut dyn Read, mut to: &File, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match from.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..k])?;
        n += k as u64;
    }
}

fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Open `dir` (in-root: `..` and absolute symlinks stay inside `root_fd`) as an `O_PATH` descriptor.
pub(crate) fn open_dir(root_fd: &OwnedFd, dir: &str, root: &Path) -> Result<OwnedFd> {
    let p = if dir.is_empty() { "." } else { dir };
    rustix::fs::openat2(
        root_fd,
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| local(&root.join(dir), e))
}

/// The parent directory of `path` (created `0755` if missing) and the leaf name.
pub(crate) fn parent_of<'p>(
    root_fd: &OwnedFd,
    path: &'p str,
    root: &Path,
) -> Result<(OwnedFd, &'p str)> {
    let (parent, name) = split(path);
    match open_dir(root_fd, parent, root) {
        Ok(fd) => Ok((fd, name)),
        Err(_) if !parent.is_empty() => {
            make_dir(root_fd, parent, root)?;
            Ok((open_dir(root_fd, parent, root)?, name))
        }
        Err(e) => Err(e),
    }
}

/// `mkdir -p` inside the root; an existing directory is kept (dir over dir merges).
pub(crate) fn make_dir(root_fd: &OwnedFd, path: &str, root: &Path) -> Result<()> {
    let (dir, name) = parent_of(root_fd, path, root)?;
    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700)) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => {
            let st = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| local(&root.join(path), e))?;
            if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
                replace(&dir, name);
                rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| local(&root.join(path), e))?;
            }
            Ok(())
        }
        Err(e) => Err(local(&root.join(path), e)),
    }
}

/// Remove a non-directory leaf if present (replace semantics); errors are ignored (ENOENT is normal).
pub(crate) fn replace(dir: &OwnedFd, name: &str) {
    let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
}

pub(crate) fn chown_at(
    dir: &OwnedFd,
    name: &str,
    ids: Option<(Uid, Gid)>,
    root: &Path,
    path: &str,
) -> Result<()> {
    if let Some((u, g)) = ids {
        rustix::fs::chownat(dir, name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| local(&root.join(path), e))?;
    }
    Ok(())
}

/// chown (which clears set-id bits) then chmod, never following a symlink.
pub(crate) fn finish_meta(
    dir: &OwnedFd,
    name: &str,
    ids: Option<(Uid, Gid)>,
    mode: u32,
    root: &Path,
    path: &str,
) -> Result<()> {
    chown_at(dir, name, ids, root, path)?;
    let target = if name.is_empty() { "." } else { name };
    rustix::fs::chmodat(
        dir,
        target,
        Mode::from_raw_mode(mode & 0o7777),
        AtFlags::empty(),
    )
    .map_err(|e| local(&root.join(path), e))
}

pub(crate) fn local(path: &Path, e: rustix::io::Errno) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: io::Error::from(e),
    }
}
