//! Image reader unit cases built with the in-code `ImageBuilder`: every merge rule (whiteouts, opaque
//! markers, dir-over-dir, replacement, duplicates, hardlinks, writes through symlinked parents), symlink
//! resolution inside the root, hygiene issues and escapes, compression variants and long names.

use x1_validate::image::layer::NoScan;
use x1_validate::image::tree::{Fate, MergedTree, NodeRef, Resolved};
use x1_validate::image::{CapturePolicy, EntryKind, HygieneIssue, LayerListing, open, read_layers};

use crate::common::{Comp, ImageBuilder, Layer};

fn capture_all() -> CapturePolicy {
    let mut b = globset::GlobSetBuilder::new();
    b.add(globset::Glob::new("**").unwrap());
    CapturePolicy {
        globs: b.build().unwrap(),
        max_size: 1 << 20,
        head_bytes: 16,
    }
}

/// Write `img` as an OCI layout, read it back, merge.
fn merged(img: &ImageBuilder) -> (Vec<LayerListing>, MergedTree) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = img.write_oci_dir(tmp.path());
    let opened = open(&dir.display().to_string(), None).unwrap();
    let outs = read_layers(&opened.source, &opened.images[0], &capture_all(), |_| {
        NoScan
    })
    .unwrap();
    let l: Vec<LayerListing> = outs.into_iter().map(|o| o.listing).collect();
    let t = MergedTree::merge(&l);
    (l, t)
}

fn one(l: Layer) -> ImageBuilder {
    ImageBuilder::new().layer(l)
}

fn two(a: Layer, b: Layer) -> ImageBuilder {
    ImageBuilder::new().layer(a).layer(b)
}

fn fate_of(l: &[LayerListing], t: &MergedTree, layer: usize, path: &str) -> Vec<Fate> {
    l[layer]
        .entries
        .iter()
        .enumerate()
        .filter(|(_, e)| *e.path == *path)
        .map(|(i, _)| t.fates[layer][i])
        .collect()
}

fn text<'a>(l: &'a [LayerListing], t: &MergedTree, p: &str) -> Option<&'a str> {
    t.content(l, p).map(|b| std::str::from_utf8(b).unwrap())
}

#[test]
fn whiteout_deletes_from_lower_layers_only() {
    let (l, t) = merged(&two(
        Layer::new()
            .dir("a")
            .file("a/x", b"old")
            .file("a/keep", b"k"),
        Layer::new().file("a/x", b"new").whiteout("a/x"),
    ));
    // the same layer's own a/x survives its whiteout; the lower one is deleted
    assert_eq!(text(&l, &t, "a/x"), Some("new"));
    assert_eq!(fate_of(&l, &t, 0, "a/x"), [Fate::Deleted { by: 1 }]);
    assert_eq!(fate_of(&l, &t, 1, "a/x"), [Fate::Visible]);
    assert_eq!(text(&l, &t, "a/keep"), Some("k"));
    assert!(
        !t.nodes.keys().any(|k| k.contains(".wh.")),
        "markers never appear"
    );
}

#[test]
fn whiteout_of_directory_removes_its_children() {
    let (l, t) = merged(&two(
        Layer::new()
            .dir("a")
            .dir("a/b")
            .file("a/b/c", b"c")
            .file("a/d", b"d"),
        Layer::new().whiteout("a/b"),
    ));
    assert!(!t.nodes.contains_key("a/b") && !t.nodes.contains_key("a/b/c"));
    assert_eq!(fate_of(&l, &t, 0, "a/b/c"), [Fate::Deleted { by: 1 }]);
    assert!(t.nodes.contains_key("a/d"));
}

#[test]
fn opaque_marker_applies_before_own_entries_wherever_it_sits() {
    // marker written AFTER the layer's own child: it must still hide only the lower children
    let (l, t) = merged(&two(
        Layer::new()
            .dir("a")
            .file("a/old", b"o")
            .dir("a/sub")
            .file("a/sub/deep", b"d"),
        Layer::new().dir("a").file("a/new", b"n").opaque("a"),
    ));
    assert_eq!(text(&l, &t, "a/new"), Some("n"));
    for p in ["a/old", "a/sub", "a/sub/deep"] {
        assert!(!t.nodes.contains_key(p), "{p} hidden");
        assert_eq!(
            fate_of(&l, &t, 0, p),
            [Fate::HiddenByOpaque { by: 1 }],
            "{p}"
        );
    }
    assert_eq!(l[1].opaque_dirs, ["a"]);
}

#[test]
fn opaque_root_hides_everything_below() {
    let (_, t) = merged(&two(
        Layer::new().file("x", b"x").dir("d").file("d/y", b"y"),
        Layer::new().opaque("").file("z", b"z"),
    ));
    assert_eq!(t.nodes.keys().collect::<Vec<_>>(), ["z"]);
}

#[test]
fn directory_over_directory_merges_and_takes_new_attributes() {
    let (l, t) = merged(&two(
        Layer::new().dir_mode("a", 0o755).file("a/x", b"x"),
        Layer::new().dir_mode("a", 0o700).file("a/y", b"y"),
    ));
    let a = MergedTree::entry(&l, t.nodes.get("a").unwrap());
    assert_eq!(a.mode, 0o700);
    assert!(t.nodes.contains_key("a/x") && t.nodes.contains_key("a/y"));
    assert_eq!(fate_of(&l, &t, 0, "a"), [Fate::Overwritten { by: 1 }]);
}

#[test]
fn non_directory_replaces_a_directory_and_its_children() {
    let (l, t) = merged(&two(
        Layer::new().dir("a").file("a/x", b"x"),
        Layer::new().symlink("a", "/elsewhere"),
    ));
    assert!(matches!(
        MergedTree::entry(&l, t.nodes.get("a").unwrap()).kind,
        EntryKind::Symlink { .. }
    ));
    assert!(!t.nodes.contains_key("a/x"));
    assert_eq!(fate_of(&l, &t, 0, "a/x"), [Fate::Overwritten { by: 1 }]);
}

#[test]
fn duplicate_in_one_layer_last_wins_and_is_recorded() {
    let (l, t) = merged(&one(Layer::new().file("f", b"first").file("f", b"second")));
    assert_eq!(text(&l, &t, "f"), Some("second"));
    assert_eq!(
        fate_of(&l, &t, 0, "f"),
        [Fate::Overwritten { by: 0 }, Fate::Visible]
    );
    assert!(
        l[0].hygiene
            .iter()
            .any(|h| matches!(h, HygieneIssue::DuplicatePath { path } if path == "f"))
    );
}

#[test]
fn hardlink_keeps_content_when_target_name_is_deleted() {
    let (l, t) = merged(&two(
        Layer::new()
            .dir("d")
            .file("d/orig", b"payload")
            .hardlink("d/link", "d/orig"),
        Layer::new().whiteout("d/orig"),
    ));
    assert!(!t.nodes.contains_key("d/orig"));
    assert_eq!(text(&l, &t, "d/link"), Some("payload"));
    let link = t.nodes.get("d/link").unwrap();
    assert_eq!(t.origin(link), NodeRef { layer: 0, entry: 1 });
}

#[test]
fn hardlink_to_lower_layer_and_chained_links_share_content() {
    let (l, t) = merged(&two(
        Layer::new().file("a", b"A"),
        Layer::new().hardlink("b", "a").hardlink("c", "b"),
    ));
    assert_eq!(
        t.origin(t.nodes.get("b").unwrap()),
        t.origin(t.nodes.get("c").unwrap())
    );
    assert_eq!(text(&l, &t, "c"), Some("A"));
}

#[test]
fn symlinks_resolve_inside_the_root() {
    let (l, t) = merged(&one(Layer::new()
        .dir("etc")
        .file("etc/target", b"T")
        .symlink("abs", "/etc/target")
        .symlink("rel", "etc/target")
        .symlink("climb", "../../../../etc/target")
        .symlink("etcdir", "/etc")
        .symlink("loop1", "loop2")
        .symlink("loop2", "loop1")
        .symlink("dangling", "/nope")));
    for p in [
        "abs",
        "rel",
        "climb",
        "/etcdir/target",
        "etcdir/../etc/target",
    ] {
        assert_eq!(text(&l, &t, p), Some("T"), "{p}");
    }
    assert!(matches!(t.resolve(&l, "loop1"), Resolved::Loop { .. }));
    assert!(matches!(
        t.resolve(&l, "dangling"),
        Resolved::Missing { .. }
    ));
    assert!(matches!(
        t.resolve(&l, "etc/target/x"),
        Resolved::NotADirectory { .. }
    ));
}

#[test]
fn symlink_hop_limit_is_forty() {
    let mut layer = Layer::new().file("f", b"end").symlink("s0", "f");
    for i in 1..=40 {
        layer = layer.symlink(&format!("s{i}"), &format!("s{}", i - 1));
    }
    let (l, t) = merged(&one(layer));
    assert_eq!(text(&l, &t, "s39"), Some("end"), "40 hops resolve");
    assert!(
        matches!(t.resolve(&l, "s40"), Resolved::Loop { .. }),
        "41 hops do not"
    );
}

#[test]
fn tree_keys_share_the_entry_paths_unless_a_symlinked_parent_moved_them() {
    let (l, t) = merged(&two(
        Layer::new()
            .dir("usr")
            .dir("usr/bin")
            .symlink("bin", "usr/bin"),
        Layer::new().file_mode("bin/tool", b"x", 0o755),
    ));
    // No second copy of a path: the key is the supplying entry's own allocation…
    let (key, n) = t.nodes.get_key_value("usr/bin").unwrap();
    assert!(std::ptr::eq(key, MergedTree::entry(&l, n).path));
    // …except where the write landed elsewhere: `bin/tool` is keyed at `usr/bin/tool`.
    let (key, n) = t.nodes.get_key_value("usr/bin/tool").unwrap();
    assert_eq!(MergedTree::entry(&l, n).path, "bin/tool");
    assert!(!std::ptr::eq(key, MergedTree::entry(&l, n).path));
    // Keys iterate in byte order of the paths, as before.
    let keys: Vec<&str> = t.nodes.keys().collect();
    assert_eq!(keys, ["bin", "usr", "usr/bin", "usr/bin/tool"]);
}

#[test]
fn writes_through_a_symlinked_parent_land_inside_the_root() {
    let (l, t) = merged(&two(
        Layer::new()
            .dir("usr")
            .dir("usr/bin")
            .symlink("bin", "usr/bin"),
        Layer::new().file_mode("bin/tool", b"#!/bin/sh\n", 0o755),
    ));
    assert!(t.nodes.contains_key("usr/bin/tool"));
    assert!(matches!(
        MergedTree::entry(&l, t.nodes.get("bin").unwrap()).kind,
        EntryKind::Symlink { .. }
    ));
    assert_eq!(t.head(&l, "/bin/tool"), Some(&b"#!/bin/sh\n"[..]));
}

#[test]
fn hygiene_first_layer_whiteout_invalid_whiteout_and_setuid() {
    let (l, t) = merged(&two(
        Layer::new()
            .whiteout("ghost")
            .opaque("d")
            .setuid("usr/bin/su", b"elf"),
        Layer::new().file("x/.wh.", b""),
    ));
    let h0 = &l[0].hygiene;
    assert!(
        h0.iter().any(
            |h| matches!(h, HygieneIssue::WhiteoutInFirstLayer { path } if path == ".wh.ghost")
        )
    );
    assert!(h0.iter().any(
        |h| matches!(h, HygieneIssue::WhiteoutInFirstLayer { path } if path == "d/.wh..wh..opq")
    ));
    assert!(h0.iter().any(|h| matches!(h, HygieneIssue::Setuid { path, mode } if path == "usr/bin/su" && *mode == 0o4755)));
    assert!(
        l[1].hygiene
            .iter()
            .any(|h| matches!(h, HygieneIssue::InvalidWhiteout { .. }))
    );
    assert!(t.nodes.contains_key("usr/bin/su"));
    assert!(!t.nodes.keys().any(|k| k.contains(".wh.")));
}

#[test]
fn escapes_are_recorded_and_never_enter_the_tree() {
    let (l, t) = merged(&one(Layer::new()
        .raw("../evil", b"x")
        .raw("a/../../evil2", b"x")
        .raw("/abs/file", b"abs")
        .symlink("up", "../../etc/shadow")
        .hardlink("hl", "../../etc/shadow")
        .symlink("fine", "/etc/shadow")));
    let esc: Vec<&str> = l[0]
        .hygiene
        .iter()
        .filter_map(|h| match h {
            HygieneIssue::PathEscape { raw, .. } => Some(raw.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        esc,
        ["../evil", "a/../../evil2", "up", "hl"],
        "an absolute name does not escape"
    );
    assert!(!t.nodes.contains_key("evil") && !t.nodes.contains_key("evil2"));
    assert!(!t.nodes.contains_key("hl"));
    // an absolute name is read relative to the root, as every runtime does
    assert_eq!(text(&l, &t, "abs/file"), Some("abs"));
    assert!(matches!(t.resolve(&l, "up"), Resolved::Missing { path } if path == "etc"));
}

#[test]
fn long_names_pax_and_gnu_and_every_compression() {
    let long = format!("deep/{}/file", "d".repeat(120));
    for comp in [Comp::None, Comp::Gzip, Comp::GzipMulti, Comp::Zstd] {
        let (l, t) = merged(&one(Layer::new()
            .compression(comp)
            .file(&long, b"gnu")
            .file_pax("pax/name/with space", b"pax")
            .fifo("run/fifo")
            .char_dev("dev/null", 1, 3)));
        assert_eq!(text(&l, &t, &long), Some("gnu"), "{comp:?}");
        assert_eq!(text(&l, &t, "pax/name/with space"), Some("pax"), "{comp:?}");
        let want = match comp {
            Comp::None => "none",
            Comp::Gzip | Comp::GzipMulti => "gzip",
            Comp::Zstd => "zstd",
        };
        assert_eq!(serde_json::to_value(l[0].compression).unwrap(), want);
        assert!(matches!(
            MergedTree::entry(&l, t.nodes.get("dev/null").unwrap()).kind,
            EntryKind::Char { major: 1, minor: 3 }
        ));
    }
}

#[test]
fn config_fields_and_history_line_up_with_layers() {
    let img = two(Layer::new().file("a", b"a"), Layer::new().file("b", b"b"))
        .history("ARG X=1", true)
        .history("RUN one", false)
        .history("ENV Y=2", true)
        .history("RUN two", false)
        .env("A=1")
        .user("agent")
        .workdir("/home/agent")
        .label("k", "v")
        .entrypoint(&["/x1/bin/entrypoint"])
        .cmd(&["--serve"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = img.write_oci_dir(tmp.path());
    let o = open(&dir.display().to_string(), None).unwrap();
    let i = &o.images[0];
    assert_eq!(
        i.layers[0].history.as_ref().unwrap().created_by.as_deref(),
        Some("RUN one")
    );
    assert_eq!(
        i.layers[1].history.as_ref().unwrap().created_by.as_deref(),
        Some("RUN two")
    );
    assert_eq!(i.config.user, "agent");
    assert_eq!(i.config.env, ["A=1"]);
    assert_eq!(i.config.working_dir, "/home/agent");
    assert_eq!(i.config.labels["k"], "v");
    assert_eq!(i.config.entrypoint, ["/x1/bin/entrypoint"]);
    assert_eq!(i.config.cmd, ["--serve"]);
    assert_eq!(i.platform.to_string(), "linux/amd64");
}

#[test]
fn scanner_sees_every_file_including_deleted_and_overwritten_ones() {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    use x1_validate::image::{ContentScanner, Entry, LayerInfo};
    type Seen = Arc<Mutex<Vec<(usize, String, Vec<u8>)>>>;
    struct Collect(Seen);
    impl ContentScanner for Collect {
        fn scan(&mut self, l: &LayerInfo, e: &Entry, c: &mut dyn Read) -> std::io::Result<()> {
            let mut v = Vec::new();
            c.read_to_end(&mut v)?;
            assert_eq!(v.len() as u64, e.size);
            self.0
                .lock()
                .unwrap()
                .push((l.index, e.path.to_string(), v));
            Ok(())
        }
    }
    let img = two(
        Layer::new()
            .file("secret", b"s1")
            .file("dup", b"d1")
            .file("dup", b"d2")
            .raw("../esc", b"e"),
        Layer::new().whiteout("secret"),
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = img.write_oci_dir(tmp.path());
    let o = open(&dir.display().to_string(), None).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    read_layers(&o.source, &o.images[0], &CapturePolicy::none(), |_| {
        Collect(seen.clone())
    })
    .unwrap();
    let mut got: Vec<(usize, String, Vec<u8>)> = seen.lock().unwrap().clone();
    got.sort();
    assert_eq!(
        got,
        [
            (0, "dup".into(), b"d1".to_vec()),
            (0, "dup".into(), b"d2".to_vec()),
            (0, "esc".into(), b"e".to_vec()),
            (0, "secret".into(), b"s1".to_vec()),
        ]
    );
}

#[test]
fn directory_deleted_then_recreated_in_later_layers() {
    // ggcr PR #2191: state is tracked per layer, not in a global "visited" set
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("a").file("a/x", b"x"))
        .layer(Layer::new().whiteout("a"))
        .layer(Layer::new().dir("a").file("a/y", b"y"));
    let (l, t) = merged(&img);
    assert!(!t.nodes.contains_key("a/x"));
    assert_eq!(text(&l, &t, "a/y"), Some("y"));
    assert_eq!(fate_of(&l, &t, 0, "a"), [Fate::Deleted { by: 1 }]);
    assert_eq!(t.nodes.get("a").unwrap().layer, 2);
}

#[test]
fn replacing_a_hardlink_target_keeps_the_old_content_for_the_link() {
    // unlink + recreate gives the name a new inode; the other name keeps the old one
    let (l, t) = merged(&two(
        Layer::new().file("a", b"old").hardlink("b", "a"),
        Layer::new().file("a", b"new"),
    ));
    assert_eq!(text(&l, &t, "a"), Some("new"));
    assert_eq!(text(&l, &t, "b"), Some("old"));
}
