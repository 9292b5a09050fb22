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
    /// Set when the archive ends without end-of-archive blocks (see [`TarIndex::truncation`]).
    cut: Option<String>,
}

impl TarIndex {
    /// Index every member of the tar at `path` (headers only; data is skipped by seeking).
    pub fn build(path: &Path) -> Result<TarIndex> {
        let file = File::open(path).map_err(|e| Error::input(path, e))?;
        let what = path.display().to_string();
        let file_len = file.metadata().map_err(|e| Error::input(path, e))?.len();
        let mut ar = tar::Archive::new(BufReader::with_capacity(64 * 1024, file));
        let mut members = HashMap::new();
        // End of the last member's padded data, and its name (for truncation messages).
        let mut last_end = 0u64;
        let mut last_name = String::new();
        let entries = ar
            .entries_with_seek()
            .map_err(|e| Error::corrupt(&what, format!("not a readable tar archive: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| {
                // A header cut in the middle: the tar crate reads a short block.
                if !members.is_empty() && file_len < last_end + 512 {
                    Error::corrupt(
                        &what,
                        format!(
                            "the archive is cut short at byte {file_len}: expected a whole \
                             512-byte tar header after {last_name:?} (bytes {last_end}..{})",
                            last_end + 512
                        ),
                    )
                } else {
                    Error::corrupt(&what, format!("not a readable tar archive: {e}"))
                }
            })?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let name = normalise(&raw).path;
            let kind = entry.header().entry_type();
            let data_end = entry.raw_file_position().saturating_add(entry.size());
            if data_end > file_len {
                return Err(Error::corrupt(
                    &what,
                    format!(
                        "the archive is cut short at byte {file_len}: member {raw:?} needs {} \
                         bytes from byte {} (to byte {data_end})",
                        entry.size(),
                        entry.raw_file_position()
                    ),
                ));
            }
            last_end = data_end.div_ceil(512).saturating_mul(512);
            last_name.clone_from(&raw);
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
        // Every producer ends its archive with zero blocks; a file that stops right after a member's
        // data was most likely cut there.
        let cut = (!members.is_empty() && file_len < last_end.saturating_add(512)).then(|| {
            format!(
                "the archive is cut short at byte {file_len}: it stops after member {last_name:?} \
                 with no further tar header and no end-of-archive blocks"
            )
        });
        Ok(TarIndex {
            path: path.to_path_buf(),
            members,
            cut,
        })
    }

    /// Why the archive looks cut short (it ends without the end-of-archive marker), if it does.
    pub fn truncation(&self) -> Option<&str> {
        self.cut.as_deref()
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
