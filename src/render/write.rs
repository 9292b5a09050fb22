//! Writing a rendered tree: only inside `--out`, never through a symlink, never over existing files.
//!
//! `--out` must be absent (it is created) or an empty directory, and must not be a symlink. Every
//! relative path is checked to be plain components (no `..`, no absolute paths), directories are
//! created one level at a time and files with `create_new` (`O_EXCL`: an existing entry or a
//! symlink planted in between fails the write instead of being followed).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};

/// One file to write: a relative path, its bytes and Unix mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Check that `out` may be written to: absent, or an empty real directory.
pub fn check_out_dir(out: &Path) -> Result<()> {
    match fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::output(out, e)),
        Ok(m) if m.file_type().is_symlink() => Err(Error::Usage(format!(
            "--out {} is a symlink; refusing to write through it",
            out.display()
        ))),
        Ok(m) if !m.is_dir() => Err(Error::Usage(format!(
            "--out {} exists and is not a directory",
            out.display()
        ))),
        Ok(_) => {
            let mut entries = fs::read_dir(out).map_err(|e| Error::output(out, e))?;
            if entries.next().is_some() {
                return Err(Error::Usage(format!(
                    "--out {} is not empty; render writes into an empty or new directory only",
                    out.display()
                )));
            }
            Ok(())
        }
    }
}

/// The relative path as checked components, or a usage error.
fn safe_relative(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            _ => {
                return Err(Error::Usage(format!(
                    "refusing to write `{path}`: not a plain relative path"
                )));
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::Usage("refusing to write an empty path".into()));
    }
    Ok(out)
}

/// Write `files` under `out` (see the module docs). `mtime` fixes every file's modification time.
pub fn write_tree(out: &Path, files: &[RenderedFile], mtime: u64) -> Result<()> {
    check_out_dir(out)?;
    if fs::symlink_metadata(out).is_err() {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(|e| Error::output(parent, e))?;
        }
        fs::create_dir(out).map_err(|e| Error::output(out, e))?;
    }
    let stamp = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime);
    for f in files {
        let rel = safe_relative(&f.path)?;
        let mut dir = out.to_path_buf();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                dir.push(c);
                make_dir(&dir)?;
            }
        }
        let target = out.join(&rel);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(f.mode)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| Error::output(&target, e))?;
        file.write_all(&f.bytes)
            .map_err(|e| Error::output(&target, e))?;
        // create_new's mode is filtered by the umask; the overlay's modes are part of the contract.
        file.set_permissions(fs::Permissions::from_mode(f.mode))
            .map_err(|e| Error::output(&target, e))?;
        file.set_modified(stamp)
            .map_err(|e| Error::output(&target, e))?;
    }
    Ok(())
}

/// Create one directory level, or accept an existing real directory (never a symlink).
fn make_dir(dir: &Path) -> Result<()> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Usage(format!(
            "refusing to write under {}: it exists and is not a directory",
            dir.display()
        ))),
        Err(_) => {
            fs::create_dir(dir).map_err(|e| Error::output(dir, e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::output(dir, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_must_be_plain() {
        assert!(safe_relative("bin/entrypoint").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../b", "", "./"] {
            assert!(safe_relative(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn refuses_symlink_and_non_empty_out() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let real = tmp.path().join("real");
        fs::create_dir(&real).expect("mkdir");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(check_out_dir(&link).is_err());
        fs::write(real.join("x"), b"x").expect("write");
        assert!(check_out_dir(&real).is_err());
        assert!(check_out_dir(&tmp.path().join("new")).is_ok());
    }
}
