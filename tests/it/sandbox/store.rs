//! The layer store (`src/sandbox/store.rs`): a tree linked from the store is the tree written without
//! it; a stored layer is used without reading its blob again; a damaged entry is refilled, never
//! trusted; eviction keeps the bound; concurrent runs share one copy; a store directory someone else
//! could have made is not used; a blob changed after the scan is never materialised.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use x1_validate::image::layer::NoScan;
use x1_validate::image::{CapturePolicy, LayerListing, MergedTree, Opened, open, read_layers};
use x1_validate::sandbox::materialise::{self, Stats};
use x1_validate::sandbox::store::Store;
use x1_validate::sandbox::{self, DEFAULT_MAX_ROOTFS};

use crate::common::{ImageBuilder, Layer};

/// Layers with every kind the store keeps: files (one 0600 root file, one owned by 1000), a FIFO, a
/// symlink, a hardlink (also to a file a later layer replaces), whiteouts and an opaque directory.
fn image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("data")
                .file("data/visible", b"v1")
                .file("data/deleted", b"x")
                .file("data/orig", b"orig")
                .hardlink("data/hard", "data/orig")
                .file_full("data/secret", b"s", 0o600, 0, 0)
                .file_full("data/mine", b"m", 0o640, 1000, 1000)
                .fifo("data/pipe")
                .dir("opq")
                .file("opq/old", b"old"),
        )
        .layer(
            Layer::new()
                .file("data/visible", b"v2")
                .whiteout("data/deleted")
                .file("data/orig", b"replaced")
                .symlink("data/link", "visible")
                .opaque("opq")
                .file_full("opq/new", b"new", 0o755, 0, 0),
        )
}

struct Read {
    opened: Opened,
    listings: Vec<LayerListing>,
    tree: MergedTree,
}

fn read(path: &Path) -> Read {
    let opened = open(path.to_str().unwrap(), None).unwrap();
    let layers = read_layers(
        &opened.source,
        &opened.images[0],
        &CapturePolicy::none(),
        |_| NoScan,
    )
    .unwrap();
    let listings: Vec<_> = layers.into_iter().map(|o| o.listing).collect();
    let tree = MergedTree::merge(&listings);
    Read {
        opened,
        listings,
        tree,
    }
}

fn materialise_into(r: &Read, root: &Path, store: Option<&Store>) -> Result<Stats, String> {
    std::fs::create_dir(root).unwrap();
    materialise::materialise(
        &r.opened.source,
        &r.opened.images[0],
        &r.listings,
        &r.tree,
        root,
        sandbox::ownership(),
        DEFAULT_MAX_ROOTFS,
        store,
    )
    .map_err(|e| e.to_string())
}

/// Every path of a tree with its type, permission bits, owner, size and content hash or link target.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = path.symlink_metadata().unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let what = if m.file_type().is_symlink() {
                format!("-> {}", std::fs::read_link(&path).unwrap().display())
            } else if m.is_file() {
                let h = Sha256::digest(std::fs::read(&path).unwrap());
                format!("file {:x} {}", h, m.len())
            } else if m.is_dir() {
                todo.push(path.clone());
                "dir".into()
            } else {
                format!("other {:o}", m.mode() & 0o170_000)
            };
            let perms = if m.file_type().is_symlink() {
                0
            } else {
                m.permissions().mode() & 0o7777
            };
            out.insert(rel, format!("{what} {perms:o} {}:{}", m.uid(), m.gid()));
        }
    }
    out
}

/// A scratch directory on the disk the sandbox uses (a store and its roots must share a filesystem).
fn scratch() -> tempfile::TempDir {
    let parent =
        std::env::var_os("X1_VALIDATE_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::tempdir_in(parent).unwrap()
}

/// The common start: [`image`] as an OCI layout in a scratch directory, read, and an empty store.
fn setup() -> (tempfile::TempDir, PathBuf, Read, Store) {
    let dir = scratch();
    let layout = image().write_oci_dir(dir.path());
    let r = read(&layout);
    let store = store_in(dir.path(), 1 << 30);
    (dir, layout, r, store)
}

fn store_in(dir: &Path, bound: u64) -> Store {
    Store::open(dir, sandbox::ownership(), bound).expect("a fresh store directory is usable")
}

/// The only layer blob file of an OCI layout that is not a JSON document, largest first.
fn layer_blobs(layout: &Path) -> Vec<PathBuf> {
    let mut blobs: Vec<PathBuf> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let b = std::fs::read(p).unwrap();
            b.first() != Some(&b'{')
        })
        .collect();
    blobs.sort_by_key(|p| std::cmp::Reverse(p.metadata().unwrap().len()));
    blobs
}

/// Same size, same decoded content, different bytes: the gzip header's MTIME field changes, which every
/// decoder ignores, so only the blob digest can tell.
fn damage(blob: &Path) {
    let mut b = std::fs::read(blob).unwrap();
    assert_eq!(&b[..2], b"\x1f\x8b", "a gzip layer");
    for x in &mut b[4..8] {
        *x ^= 0x5a;
    }
    std::fs::write(blob, b).unwrap();
}

#[test]
fn a_tree_linked_from_the_store_is_the_tree_written_without_it() {
    let (dir, _, r, store) = setup();
    let direct = materialise_into(&r, &dir.path().join("direct"), None).unwrap();
    let cold = materialise_into(&r, &dir.path().join("cold"), Some(&store)).unwrap();
    let warm = materialise_into(&r, &dir.path().join("warm"), Some(&store)).unwrap();
    let want = describe(&dir.path().join("direct"));
    assert!(want.contains_key("data/pipe") && want.contains_key("data/link"));
    assert_eq!(
        want.get("data/visible").map(|s| s.starts_with("file ")),
        Some(true)
    );
    assert!(!want.contains_key("data/deleted") && !want.contains_key("opq/old"));
    assert_eq!(describe(&dir.path().join("cold")), want);
    assert_eq!(describe(&dir.path().join("warm")), want);
    assert_eq!((cold.files, cold.symlinks), (direct.files, direct.symlinks));
    assert_eq!(warm, cold);
    // The linked files are the store's inodes.
    let m = std::fs::metadata(dir.path().join("warm/data/visible")).unwrap();
    assert!(m.nlink() >= 3, "nlink {}", m.nlink());
}

#[test]
fn a_stored_layer_is_used_without_reading_its_blob_again() {
    let (dir, layout, r, store) = setup();
    materialise_into(&r, &dir.path().join("first"), Some(&store)).unwrap();
    let want = describe(&dir.path().join("first"));
    for b in layer_blobs(&layout) {
        damage(&b);
    }
    // The store answers: no blob is read.
    materialise_into(&r, &dir.path().join("second"), Some(&store)).unwrap();
    assert_eq!(describe(&dir.path().join("second")), want);
    // Without it, the damaged blobs are read and refused.
    let err = materialise_into(&r, &dir.path().join("third"), None).unwrap_err();
    assert!(err.contains("digest"), "{err}");
}

#[test]
fn a_blob_changed_after_the_scan_is_never_materialised() {
    let dir = scratch();
    // The last entry of layer 0 is 2 MB of noise that layer 1 deletes: nothing planned needs those
    // bytes, so only reading the blob to its end (as materialisation does) reaches its digest check.
    let noise: Vec<u8> = (0..2_000_000).map(|_| rand::random::<u8>()).collect();
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("data/kept", b"kept")
                .file("data/zz-noise", &noise),
        )
        .layer(
            Layer::new()
                .whiteout("data/zz-noise")
                .file("data/new", b"n"),
        );
    let layout = img.write_oci_dir(dir.path());
    let r = read(&layout);
    let blobs = layer_blobs(&layout);
    damage(&blobs[0]);
    let store = store_in(dir.path(), 1 << 30);
    for (name, s) in [("direct", None), ("stored", Some(&store))] {
        let err = materialise_into(&r, &dir.path().join(name), s).unwrap_err();
        assert!(err.contains("digest"), "{name}: {err}");
    }
    // Nothing half-filled was published: only the intact layer 1 is in the store.
    let left: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.len() <= 1, "{left:?}");
}

#[test]
fn a_damaged_store_entry_is_refilled_not_trusted() {
    let (dir, _, r, store) = setup();
    materialise_into(&r, &dir.path().join("first"), Some(&store)).unwrap();
    let want = describe(&dir.path().join("first"));
    std::fs::remove_dir_all(dir.path().join("first")).unwrap();
    // Damage every stored file: append to one, chmod another, replace a symlink's target.
    let mut damaged = 0;
    for layer in std::fs::read_dir(store.path()).unwrap().flatten() {
        for e in std::fs::read_dir(layer.path()).unwrap().flatten() {
            let p = e.path();
            let m = p.symlink_metadata().unwrap();
            if m.file_type().is_symlink() {
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink("/etc/shadow", &p).unwrap();
                damaged += 1;
            } else if m.is_file() && !p.ends_with(".complete") {
                if damaged % 2 == 0 {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&p)
                        .and_then(|mut f| std::io::Write::write_all(&mut f, b"evil"))
                        .unwrap();
                } else {
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4777)).unwrap();
                }
                damaged += 1;
            }
        }
    }
    assert!(damaged >= 4, "{damaged}");
    materialise_into(&r, &dir.path().join("second"), Some(&store)).unwrap();
    assert_eq!(describe(&dir.path().join("second")), want);
}

#[test]
fn eviction_keeps_the_store_within_its_bound() {
    let dir = scratch();
    let big = |tag: &str| {
        ImageBuilder::new().layer(Layer::new().file(
            &format!("data/{tag}"),
            format!("{tag}-").repeat(100_000).as_bytes(),
        ))
    };
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let ra = read(&big("aaaa").write_oci_dir(&a));
    let rb = read(&big("bbbb").write_oci_dir(&b));
    // Room for one of the two 500 kB layers only.
    let store = store_in(dir.path(), 700_000);
    materialise_into(&ra, &dir.path().join("ra"), Some(&store)).unwrap();
    materialise_into(&rb, &dir.path().join("rb"), Some(&store)).unwrap();
    let kept: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let key_b = store.key(&rb.opened.images[0].layers[0]).unwrap();
    assert_eq!(kept, vec![key_b], "the older layer is evicted");
    // The evicted layer's tree is still whole (its links keep the inodes).
    assert_eq!(
        std::fs::read(dir.path().join("ra/data/aaaa"))
            .unwrap()
            .len(),
        500_000
    );
}

#[test]
fn concurrent_runs_share_one_copy() {
    let (dir, _, r, store) = setup();
    let roots: Vec<PathBuf> = (0..4).map(|i| dir.path().join(format!("r{i}"))).collect();
    std::thread::scope(|s| {
        for root in &roots {
            let (r, store) = (&r, &store);
            s.spawn(move || materialise_into(r, root, Some(store)).unwrap());
        }
    });
    let want = describe(&roots[0]);
    for root in &roots[1..] {
        assert_eq!(describe(root), want);
    }
    let names: Vec<_> = std::fs::read_dir(store.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "one directory per layer, no leftovers: {names:?}"
    );
    assert!(names.iter().all(|n| n.starts_with("sha256-")), "{names:?}");
}

#[test]
fn a_store_directory_someone_else_could_have_made_is_not_used() {
    let dir = scratch();
    let me = rustix::process::geteuid().as_raw();
    let name = format!("x1-validate-layers-{me}");
    // A symlink to elsewhere.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    std::os::unix::fs::symlink(&elsewhere, a.join(&name)).unwrap();
    assert!(Store::open(&a, sandbox::ownership(), 1 << 30).is_none());
    // A directory others can write.
    let b = dir.path().join("b");
    std::fs::create_dir_all(b.join(&name)).unwrap();
    std::fs::set_permissions(b.join(&name), std::fs::Permissions::from_mode(0o777)).unwrap();
    assert!(Store::open(&b, sandbox::ownership(), 1 << 30).is_none());
    // A file.
    let c = dir.path().join("c");
    std::fs::create_dir(&c).unwrap();
    std::fs::write(c.join(&name), b"").unwrap();
    assert!(Store::open(&c, sandbox::ownership(), 1 << 30).is_none());
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
