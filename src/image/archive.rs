//! Tar inputs without extraction: one pass over the archive's headers records every member's data offset
//! and size; blobs are then read by seeking into the file. Member symlinks (`docker save`'s deduplicated
//! `layer.tar -> ../<id>/layer.tar`) are followed inside the archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::whiteout::{normalise, split};
use crate::error::{Error, Result};

/// One archive member.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
    Other,
}

/// The member index of a tar file.
#[derive(Debug)]
pub struct TarIndex {
    path: PathBuf,
    members: HashMap<String, Member>,
}

impl TarIndex {
    /// Index every member of the tar at `path` (headers only; data is skipped by seeking).
    pub fn build(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|e| Error::input(path, e))?;
        let what = path.display().to_string();
        let mut ar = tar::Archive::new(BufReader::with_capacity(64 * 1024, file));
        let mut members = HashMap::new();
        let entries = ar
            .entries_with_seek()
            .map_err(|e| Error::corrupt(&what, format!("not a readable tar archive: {e}")))?;
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::corrupt(&what, format!("not a readable tar archive: {e}")))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = normalise(&raw).path;
            let kind = entry.header().entry_type();
            let m = if kind.is_file() || kind.is_contiguous() {
                Member::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let abs = if kind.is_hard_link() || target.starts_with('/') {
                    normalise(&target).path
                } else {
                    normalise(&format!("{}/{target}", split(&name).0)).path
                };
                Member::Link(abs)
            } else {
                Member::Other
            };
            members.insert(name, m);
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
        })
    }

    /// Whether the archive holds a member (any type) named `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.members.contains_key(&normalise(name).path)
    }

    /// How many members the archive has.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the archive has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// `(offset, size)` of the regular file `name`, following member links (at most 16 hops).
    pub fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut cur = normalise(name).path;
        for _ in 0..16 {
            match self.members.get(&cur)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(t) => cur.clone_from(t),
                Member::Other => return None,
            }
        }
        None
    }

    /// A reader over exactly the member's bytes, and its size.
    pub fn open(&self, name: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        let Some((offset, size)) = self.locate(name) else {
            return Ok(None);
        };
        let mut f = File::open(&self.path).map_err(|e| Error::input(&self.path, e))?;
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::input(&self.path, e))?;
        Ok(Some((Box::new(f.take(size)), size)))
    }
}
