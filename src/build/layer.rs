//! Deterministic layer writing: a directory tree becomes one tar layer with sorted entries, a fixed mtime
//! (`SOURCE_DATE_EPOCH` or 0), uid/gid 0 and no user/group names, normalised modes, then gzip at a fixed
//! level with an empty gzip header. The compressed digest and the `diff_id` are hashed in the same pass.

use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

use flate2::Compression as GzLevel;
use flate2::GzBuilder;
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::image::Digest;
use crate::image::digest::Algorithm;

/// The most bytes a layer built from a directory may have (uncompressed), as a guard against a wrong
/// `--overlay` argument pointing at a huge tree.
pub const MAX_LAYER_BYTES: u64 = 4 << 30;

/// A layer written to a temporary file.
#[derive(Debug)]
pub struct BuiltLayer {
    /// The gzip blob.
    pub file: tempfile::NamedTempFile,
    /// The digest of the gzip blob.
    pub digest: Digest,
    /// The digest of the uncompressed tar.
    pub diff_id: Digest,
    pub size: u64,
}

/// A writer that hashes what passes through it and counts bytes.
pub(crate) struct HashWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        HashWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub(crate) fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_hash(Algorithm::Sha256, &self.hasher.finalize()),
            self.count,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Build a gzip layer whose entries are `prefix/…` for everything below `dir` (e.g. `x1/bin/entrypoint`).
/// Parent directories of `prefix` are emitted too. Symlinks are stored as symlinks, never followed;
/// sockets, devices and fifos are refused.
pub fn layer_from_dir(dir: &Path, prefix: &str, mtime: u64) -> Result<BuiltLayer> {
    layer_from_dir_with_links(dir, prefix, &[], mtime)
}

/// [`layer_from_dir`] plus absolute symlinks `(path, target)` outside `prefix` (e.g. the managed config
/// `etc/opencode/opencode.json` → `/x1/app/config/opencode.json`), with their parent directories.
pub fn layer_from_dir_with_links(
    dir: &Path,
    prefix: &str,
    links: &[(String, String)],
    mtime: u64,
) -> Result<BuiltLayer> {
    let meta = fs::symlink_metadata(dir).map_err(|e| Error::input(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let file =
        tempfile::NamedTempFile::new().map_err(|e| Error::output(std::env::temp_dir(), e))?;
    let out = HashWriter::new(file.reopen().map_err(|e| Error::output(file.path(), e))?);
    let gz = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(out, GzLevel::new(6));
    let mut tar_hash = HashWriter::new(gz);
    {
        let mut builder = tar::Builder::new(&mut tar_hash);
        builder.mode(tar::HeaderMode::Deterministic);
        let mut acc = String::new();
        for part in prefix.split('/').filter(|p| !p.is_empty()) {
            acc.push_str(part);
            acc.push('/');
            append_dir(&mut builder, &acc, 0o755, mtime)?;
        }
        let mut total = 0u64;
        walk(
            &mut builder,
            dir,
            prefix.trim_matches('/'),
            mtime,
            &mut total,
        )?;
        for (path, target) in links {
            let path = path.trim_matches('/');
            let mut acc = String::new();
            let parents: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            for part in &parents[..parents.len().saturating_sub(1)] {
                acc.push_str(part);
                acc.push('/');
                append_dir(&mut builder, &acc, 0o755, mtime)?;
            }
            let mut h = header(tar::EntryType::Symlink, 0o777, mtime, 0);
            builder
                .append_link(&mut h, path, target)
                .map_err(|e| Error::output(path, e))?;
        }
        builder
            .finish()
            .map_err(|e| Error::output(file.path(), e))?;
    }
    let (gz, diff_id, _) = tar_hash.finish();
    let out = gz.finish().map_err(|e| Error::output(file.path(), e))?;
    let (mut f, digest, size) = out.finish();
    f.flush().map_err(|e| Error::output(file.path(), e))?;
    Ok(BuiltLayer {
        file,
        digest,
        diff_id,
        size,
    })
}

fn header(kind: tar::EntryType, mode: u32, mtime: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h
}

fn append_dir<W: Write>(b: &mut tar::Builder<W>, path: &str, mode: u32, mtime: u64) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, mode, mtime, 0);
    b.append_data(&mut h, path, io::empty())
        .map_err(|e| Error::output(path, e))
}

/// Every entry under `dir` into the layer as `rel/<path>`: depth-first, a directory before its
/// contents, names in byte order at each level (`walkdir`, iterative, symlinks not followed).
fn walk<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &str,
    mtime: u64,
    total: &mut u64,
) -> Result<()> {
    let entries = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name();
    for entry in entries {
        let entry = entry.map_err(|e| {
            let at = e.path().unwrap_or(dir).to_path_buf();
            Error::input(&at, io::Error::from(e))
        })?;
        let path = entry.path();
        let Some(sub) = path.strip_prefix(dir).ok().and_then(Path::to_str) else {
            return Err(Error::Usage(format!(
                "{}: file names must be UTF-8",
                path.parent().unwrap_or(dir).display()
            )));
        };
        let entry_path = if rel.is_empty() {
            sub.to_string()
        } else {
            format!("{rel}/{sub}")
        };
        let meta = fs::symlink_metadata(path).map_err(|e| Error::input(path, e))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            append_dir(b, &format!("{entry_path}/"), 0o755, mtime)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(|e| Error::input(path, e))?;
            let mut h = header(tar::EntryType::Symlink, 0o777, mtime, 0);
            b.append_link(&mut h, &entry_path, &target)
                .map_err(|e| Error::output(&entry_path, e))?;
        } else if ft.is_file() {
            *total += meta.len();
            if *total > MAX_LAYER_BYTES {
                return Err(Error::Usage(format!(
                    "{}: more than {MAX_LAYER_BYTES} bytes",
                    dir.display()
                )));
            }
            let mode = if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0
            {
                0o755
            } else {
                0o644
            };
            let mut h = header(tar::EntryType::Regular, mode, mtime, meta.len());
            let f = fs::File::open(path).map_err(|e| Error::input(path, e))?;
            b.append_data(&mut h, &entry_path, f.take(meta.len()))
                .map_err(|e| Error::output(&entry_path, e))?;
        } else {
            return Err(Error::Usage(format!(
                "{}: only files, directories and symlinks can go into a layer",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Copy `r` into `w` while hashing; returns (sha256 digest, bytes).
pub fn copy_hashed(r: &mut dyn Read, w: &mut dyn Write) -> io::Result<(Digest, u64)> {
    let mut hw = HashWriter::new(w);
    io::copy(r, &mut hw)?;
    let (_, d, n) = hw.finish();
    Ok((d, n))
}

/// Rewind a built layer's temp file for reading.
pub fn reopen(layer: &BuiltLayer) -> io::Result<fs::File> {
    let mut f = layer.file.reopen()?;
    f.rewind()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("bin")).unwrap();
        fs::write(d.path().join("bin/entrypoint"), "#!/bin/sh\nexit 0\n").unwrap();
        let mut p = fs::metadata(d.path().join("bin/entrypoint"))
            .unwrap()
            .permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o700);
        fs::set_permissions(d.path().join("bin/entrypoint"), p).unwrap();
        fs::write(d.path().join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("bin/entrypoint", d.path().join("link")).unwrap();
        d
    }

    #[test]
    fn same_tree_gives_same_digests_whatever_the_mtimes() {
        let a = tree();
        let l1 = layer_from_dir(a.path(), "x1", 0).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = tree();
        let l2 = layer_from_dir(b.path(), "x1", 0).unwrap();
        assert_eq!(l1.digest, l2.digest);
        assert_eq!(l1.diff_id, l2.diff_id);
        let l3 = layer_from_dir(b.path(), "x1", 1).unwrap();
        assert_ne!(l1.diff_id, l3.diff_id, "mtime must be part of the layer");
    }

    #[test]
    fn entries_are_sorted_normalised_and_prefixed() {
        let a = tree();
        let l = layer_from_dir(a.path(), "x1", 7).unwrap();
        let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(reopen(&l).unwrap()));
        let mut seen = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            assert_eq!(
                (h.uid().unwrap(), h.gid().unwrap(), h.mtime().unwrap()),
                (0, 0, 7)
            );
            seen.push((
                e.path().unwrap().to_string_lossy().into_owned(),
                h.mode().unwrap(),
            ));
        }
        let names: Vec<_> = seen.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            ["x1/", "x1/a.txt", "x1/bin/", "x1/bin/entrypoint", "x1/link"]
        );
        assert_eq!(seen[3].1, 0o755, "an executable file is normalised to 0755");
        assert_eq!(seen[1].1, 0o644);
    }

    /// Pins the bytes: a change here means every rebuilt image changes digest, which must be deliberate.
    #[test]
    fn pinned_digest_of_a_known_tree() {
        let a = tree();
        let l = layer_from_dir(a.path(), "x1", 1_700_000_000).unwrap();
        assert_eq!(
            l.diff_id.to_string(),
            "sha256:c69535941582f92526508d5c9c0eef27913b9d03974a1849b8aa091fa924767b"
        );
        assert_eq!(
            l.digest.to_string(),
            "sha256:d36dc8c86353cc9ebdbfa3d91cfc87c9bc2d5d6fd9bb2b1403b6913bc318d4f5"
        );
    }

    #[test]
    fn refuses_a_file_as_the_tree() {
        let a = tree();
        let err = layer_from_dir(&a.path().join("a.txt"), "x1", 0).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
