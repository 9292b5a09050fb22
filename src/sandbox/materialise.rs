//! Materialise the merged root filesystem of one image into a private directory.
//!
//! Only what survives the merge is written: the [`MergedTree`] names, for every final path, the layer
//! entry that supplies it. Directories, symlinks and FIFOs come straight from the listings; file contents
//! are streamed again from the layer blobs (digest-checked by [`Source::blob`]), the layers in parallel
//! since the surviving paths of two layers are disjoint. Hardlinks are made last (`linkat`).
//!
//! Every write is relative to a directory descriptor opened with `openat2(RESOLVE_IN_ROOT)` from the
//! root, and leaf names are created with `O_EXCL | O_NOFOLLOW` (or the `*at` call's equivalent): a
//! symlink in the image can never redirect a write outside the directory (containerd's in-root semantics:
//! an entry below an in-image symlink lands where the symlink points, inside the root).
//!
//! Ownership is mapped: as host root, image id `n` becomes host id `base + n` (the sandbox's user
//! namespace maps it back to `n`); otherwise every file stays ours and the namespace maps us to the
//! image's user. Device nodes are not created (the sandbox stages its own `/dev`).

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags};

use super::store::Store;
use super::write::{
    Dest, Out, Result, chown_at, finish_meta, local, make_dir, parent_of, replace, stream_layer,
};
pub use super::write::{Error, Ownership};
use crate::image::tree::NodeRef;
use crate::image::{EntryKind, Image, LayerInfo, LayerListing, MergedTree, Source};

/// What materialisation wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub dirs: usize,
    pub files: usize,
    pub symlinks: usize,
    pub hardlinks: usize,
    /// Device nodes and other entries the sandbox does not create.
    pub skipped: usize,
    pub bytes: u64,
}

/// Write the merged tree of `image` into `root` (an existing, empty directory). Refuses before writing
/// anything when the surviving files (and a 512-byte allowance per entry) exceed `max_bytes`.
///
/// With a [`Store`] (same filesystem as `root`), every non-directory entry is hard-linked from the
/// store, which is filled first for the layers it does not hold; only directories are created here.
#[allow(clippy::too_many_arguments)]
pub fn materialise(
    source: &Source,
    image: &Image,
    listings: &[LayerListing],
    tree: &MergedTree,
    root: &Path,
    own: Ownership,
    max_bytes: u64,
    store: Option<&Store>,
) -> Result<Stats> {
    check_size(tree, listings, max_bytes)?;
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| local(root, e))?;
    let out = Out {
        root_fd: &root_fd,
        root,
        own,
        listings,
        written: std::sync::atomic::AtomicU64::new(0),
        max_bytes,
    };
    let mut stats = Stats::default();
    // The store keeps whole layers: it is used when it can hold every layer that contributes.
    let store = store.filter(|s| contributing_bytes(tree, listings) <= s.bound());
    // 1. Directories (parents sort before children), writable for now; modes are fixed in step 5.
    make_dirs(tree, &out, &mut stats)?;
    // 2. Symlinks and FIFOs; the file plan per layer and the hardlinks.
    let (mut plan, links) = plan_entries(tree, &out, store.is_some(), &mut stats)?;
    let link_plan = plan_links(tree, listings, links, &mut plan, &mut stats);
    // 3. File contents (and, with a store, symlinks and FIFOs), layers in parallel.
    match store {
        Some(store) => link_from_store(store, source, image, &plan, &out, &mut stats)?,
        None => write_contents(source, image, &plan, &out, &mut stats)?,
    }
    // 4. Hardlinks.
    make_hardlinks(link_plan, &out, &mut stats)?;
    // 5. Directory modes and owners, deepest first (a 0500 parent must not block its children).
    finish_dirs(tree, &out)?;
    Ok(stats)
}

/// Refuse a tree whose files (and a 512-byte allowance per entry) exceed `max_bytes`.
fn check_size(tree: &MergedTree, listings: &[LayerListing], max_bytes: u64) -> Result<()> {
    let needed = tree.nodes.values().fold(0u64, |acc, n| {
        let e = listings[n.layer].entries.at(n.entry);
        let size = if e.is_file() { e.size } else { 0 };
        acc.saturating_add(size).saturating_add(512)
    });
    if needed > max_bytes {
        return Err(Error::TooLarge {
            needed,
            limit: max_bytes,
        });
    }
    Ok(())
}

/// Step 1: every directory of the tree, writable for now.
fn make_dirs(tree: &MergedTree, out: &Out<'_>, stats: &mut Stats) -> Result<()> {
    for (path, node) in &tree.nodes {
        if out.entry(node).is_dir() {
            make_dir(out.root_fd, path, out.root)?;
            stats.dirs += 1;
        }
    }
    Ok(())
}

/// The files to write per layer (`plan[layer]`, by tar ordinal), and the hardlinks to make.
type Planned = (Vec<HashMap<usize, Vec<Dest>>>, Vec<(String, NodeRef)>);

/// Step 2: symlinks and FIFOs are made here (unless `from_store`: then they are planned, to be linked
/// from the store like files); files are planned per layer; hardlinks are collected; device nodes
/// are skipped.
fn plan_entries(
    tree: &MergedTree,
    out: &Out<'_>,
    from_store: bool,
    stats: &mut Stats,
) -> Result<Planned> {
    let (root_fd, root) = (out.root_fd, out.root);
    let mut plan: Vec<HashMap<usize, Vec<Dest>>> = vec![HashMap::new(); out.listings.len()];
    let mut links: Vec<(String, NodeRef)> = Vec::new();
    for (path, node) in &tree.nodes {
        let path: &str = path;
        let e = out.entry(node);
        let linked = matches!(e.kind, EntryKind::Symlink { .. } | EntryKind::Fifo);
        if e.is_file() || (linked && from_store) {
            let dest = Dest {
                path: path.to_string(),
                node,
            };
            plan[node.layer].entry(e.ordinal()).or_default().push(dest);
            continue;
        }
        match &e.kind {
            EntryKind::Dir | EntryKind::File => {}
            EntryKind::Symlink { target } => {
                let (dir, name) = parent_of(root_fd, path, root)?;
                replace(&dir, name);
                rustix::fs::symlinkat(*target, &dir, name)
                    .map_err(|err| local(&root.join(path), err))?;
                chown_at(&dir, name, out.own.ids(e.uid, e.gid), root, path)?;
                stats.symlinks += 1;
            }
            EntryKind::Fifo => {
                let (dir, name) = parent_of(root_fd, path, root)?;
                replace(&dir, name);
                rustix::fs::mknodat(
                    &dir,
                    name,
                    rustix::fs::FileType::Fifo,
                    Mode::from_raw_mode(0o600),
                    0,
                )
                .map_err(|err| local(&root.join(path), err))?;
                finish_meta(&dir, name, out.own.ids(e.uid, e.gid), e.mode, root, path)?;
            }
            EntryKind::Hardlink { .. } => links.push((path.to_string(), node)),
            EntryKind::Char { .. } | EntryKind::Block { .. } => stats.skipped += 1,
        }
    }
    Ok((plan, links))
}

/// Step 4: `(link path, existing path)` pairs from [`plan_links`].
fn make_hardlinks(
    link_plan: Vec<(String, String)>,
    out: &Out<'_>,
    stats: &mut Stats,
) -> Result<()> {
    let (root_fd, root) = (out.root_fd, out.root);
    for (path, target) in link_plan {
        let (dir, name) = parent_of(root_fd, &path, root)?;
        let (tdir, tname) = parent_of(root_fd, &target, root)?;
        replace(&dir, name);
        rustix::fs::linkat(&tdir, tname, &dir, name, AtFlags::empty())
            .map_err(|e| local(&root.join(&path), e))?;
        stats.hardlinks += 1;
    }
    Ok(())
}

/// Step 5: directory modes and owners, deepest first, then the root's owner.
fn finish_dirs(tree: &MergedTree, out: &Out<'_>) -> Result<()> {
    let (root_fd, root) = (out.root_fd, out.root);
    for (path, node) in tree.nodes.iter().rev() {
        let e = out.entry(node);
        if e.is_dir() {
            let (dir, name) = parent_of(root_fd, path, root)?;
            finish_meta(&dir, name, out.own.ids(e.uid, e.gid), e.mode, root, path)?;
        }
    }
    if let Some((u, g)) = out.own.ids(0, 0) {
        rustix::fs::chown(root, Some(u), Some(g)).map_err(|e| local(root, e))?;
    }
    Ok(())
}

/// File bytes of all the layers that contribute at least one entry to the tree.
fn contributing_bytes(tree: &MergedTree, listings: &[LayerListing]) -> u64 {
    let mut used = vec![false; listings.len()];
    for n in tree.nodes.values() {
        used[n.layer] = true;
    }
    listings
        .iter()
        .zip(used)
        .filter(|(_, u)| *u)
        .flat_map(|(l, _)| {
            l.entries
                .iter()
                .filter(crate::image::Entry::is_file)
                .map(|e| e.size)
        })
        .fold(0u64, u64::saturating_add)
}

/// `f` for every layer with something planned, the layers in parallel; the results in layer order,
/// or the first layer's error in layer order (every layer runs to its end either way).
fn per_layer<T: Send>(
    image: &Image,
    plan: &[HashMap<usize, Vec<Dest>>],
    f: impl Fn(usize, &LayerInfo, &HashMap<usize, Vec<Dest>>) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    let results: Vec<Result<T>> = image
        .layers
        .par_iter()
        .zip(plan.par_iter())
        .enumerate()
        .filter(|(_, (_, p))| !p.is_empty())
        .map(|(li, (layer, p))| f(li, layer, p))
        .collect();
    results.into_iter().collect()
}

/// Step 3 with a store: hold each layer (filled and checked by the store), link; then evict beyond
/// its bound.
fn link_from_store(
    store: &Store,
    source: &Source,
    image: &Image,
    plan: &[HashMap<usize, Vec<Dest>>],
    out: &Out<'_>,
    stats: &mut Stats,
) -> Result<()> {
    let listings = out.listings;
    let linked = per_layer(image, plan, |li, layer, p| {
        let held = store.layer(source, layer, listings, li, p)?;
        let (files, symlinks, bytes) =
            super::store::link_layer(&held, p, listings, out.root_fd, out.root)?;
        Ok((files, symlinks, bytes, held.key.clone()))
    })?;
    let mut keys = Vec::new();
    for (files, symlinks, bytes, key) in linked {
        stats.files += files;
        stats.symlinks += symlinks;
        stats.bytes += bytes;
        keys.push(key);
    }
    store.evict(&keys);
    Ok(())
}

/// Step 3 without a store: stream each layer and write its planned files.
fn write_contents(
    source: &Source,
    image: &Image,
    plan: &[HashMap<usize, Vec<Dest>>],
    out: &Out<'_>,
    stats: &mut Stats,
) -> Result<()> {
    for (n, bytes) in per_layer(image, plan, |_, layer, p| {
        stream_layer(source, layer, p, out)
    })? {
        stats.files += n;
        stats.bytes += bytes;
    }
    Ok(())
}

/// Make sure a directory exists at `path` (in-root), for mount points and the working directory:
/// a non-directory there is replaced. Missing parents are created `0755`, owned by image root.
pub fn ensure_dir(root: &Path, path: &str, own: Ownership) -> Result<()> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| local(root, e))?;
    let path = normalise(path);
    if path.is_empty() {
        return Ok(());
    }
    let (dir, name) = parent_of(&root_fd, &path, root)?;
    match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if rustix::fs::FileType::from_raw_mode(st.st_mode)
                == rustix::fs::FileType::Directory =>
        {
            Ok(())
        }
        _ => {
            replace(&dir, name);
            rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(0o755))
                .map_err(|e| local(&root.join(&path), e))?;
            chown_at(&dir, name, own.ids(0, 0), root, &path)
        }
    }
}

/// `a//b/./c/` → `a/b/c`; `..` components are dropped by the caller's contract (paths are normalised).
pub fn normalise(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Hardlinks become `(link path, existing path)` pairs; a link whose origin is not visible at its own
/// path gets the origin's content written directly (added to `plan`), and its siblings link to it.
fn plan_links(
    tree: &MergedTree,
    listings: &[LayerListing],
    links: Vec<(String, NodeRef)>,
    plan: &mut [HashMap<usize, Vec<Dest>>],
    stats: &mut Stats,
) -> Vec<(String, String)> {
    let mut link_plan: Vec<(String, String)> = Vec::new();
    let mut carried: HashMap<NodeRef, String> = HashMap::new();
    for (path, node) in links {
        let Some(origin) = link_origin(tree, listings, node) else {
            stats.skipped += 1;
            continue;
        };
        let origin_path = listings[origin.layer].entries.at(origin.entry).path;
        if tree.nodes.get(origin_path) == Some(origin) {
            link_plan.push((path, origin_path.to_string()));
        } else if let Some(first) = carried.get(&origin) {
            link_plan.push((path, first.clone()));
        } else {
            carried.insert(origin, path.clone());
            plan[origin.layer]
                .entry(listings[origin.layer].entries.at(origin.entry).ordinal())
                .or_default()
                .push(Dest { path, node: origin });
        }
    }
    link_plan
}

fn link_origin(tree: &MergedTree, listings: &[LayerListing], node: NodeRef) -> Option<NodeRef> {
    if let Some(&o) = tree.link_origin.get(&node) {
        return Some(o);
    }
    // Fallback: the target path as it stands in the final tree.
    let EntryKind::Hardlink { target } = listings[node.layer].entries.at(node.entry).kind else {
        return None;
    };
    let o = tree.nodes.get(normalise(target).as_str())?;
    listings[o.layer].entries.at(o.entry).is_file().then_some(o)
}
