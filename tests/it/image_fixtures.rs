//! Every third-party fixture in `testdata/third-party/` against its `expected/*.json`
//! (`x1-fixture-expectation/1`): load outcome, config `diff_ids`, per-layer compression, `diff_id` and raw
//! entries, and the merged filesystem (entries, types, modes, sizes, content hashes, absent paths,
//! hard-link groups).

#![allow(clippy::many_single_char_names)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use x1_validate::image::layer::NoScan;
use x1_validate::image::tree::{MergedTree, Resolved};
use x1_validate::image::{CapturePolicy, EntryKind, LayerListing, Opened, open, read_layers};

use crate::common::fixtures_dir;

fn capture_all() -> CapturePolicy {
    let mut b = globset::GlobSetBuilder::new();
    b.add(globset::Glob::new("**").unwrap());
    CapturePolicy {
        globs: b.build().unwrap(),
        max_size: 1 << 20,
        head_bytes: 0,
    }
}

/// Open and read every layer; the first error is returned.
fn load(spec: &str) -> Result<(Opened, Vec<Vec<LayerListing>>), x1_validate::Error> {
    let opened = open(spec, None)?;
    let mut all = Vec::new();
    for img in &opened.images {
        let outs = read_layers(&opened.source, img, &capture_all(), |_| NoScan)?;
        all.push(outs.into_iter().map(|o| o.listing).collect());
    }
    Ok((opened, all))
}

fn expected_files() -> Vec<(String, Value)> {
    let mut v = Vec::new();
    for group in ["go-containerregistry", "sylabs-oci-tools"] {
        let dir = fixtures_dir().join(group).join("expected");
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let doc: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            v.push((p.file_name().unwrap().to_string_lossy().into_owned(), doc));
        }
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn check_layers(name: &str, exp: &Value, l: &[LayerListing], diff_ids: &[String]) {
    let layers = exp["layers"].as_array().unwrap();
    assert_eq!(layers.len(), l.len(), "{name}: layer count");
    for (i, (el, got)) in layers.iter().zip(l).enumerate() {
        assert_eq!(
            el["diff_id"].as_str().unwrap(),
            diff_ids[i],
            "{name}: layer {i} diff_id"
        );
        let comp = serde_json::to_value(got.compression).unwrap();
        assert_eq!(el["compression"], comp, "{name}: layer {i} compression");
        // raw entries: markers become whiteouts/opaque dirs, everything else an entry, in order
        let mut paths = Vec::new();
        let mut markers = 0;
        for e in el["entries"].as_array().unwrap() {
            let p = e["path"].as_str().unwrap();
            if p.rsplit('/').next().unwrap().starts_with(".wh.") {
                markers += 1;
            } else {
                paths.push(p.to_string());
            }
        }
        let ours: Vec<String> = got.entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(ours, paths, "{name}: layer {i} entries");
        assert_eq!(
            got.whiteouts.len() + got.opaque_dirs.len(),
            markers,
            "{name}: layer {i} markers"
        );
    }
}

fn check_merged(name: &str, m: &Value, l: &[LayerListing]) {
    let tree = MergedTree::merge(l);
    let mut want = BTreeSet::new();
    for e in m["entries"].as_array().unwrap() {
        let p = e["path"].as_str().unwrap();
        want.insert(p.to_string());
        let n = tree
            .nodes
            .get(p)
            .unwrap_or_else(|| panic!("{name}: {p} missing"));
        let ent = MergedTree::entry(l, n);
        let ty = e["type"].as_str().unwrap();
        match (ty, ent.kind) {
            ("dir", EntryKind::Dir)
            | ("file" | "hardlink", EntryKind::File | EntryKind::Hardlink { .. }) => {}
            ("symlink", EntryKind::Symlink { target }) => {
                assert_eq!(e["target"].as_str().unwrap(), target, "{name}: {p} target");
            }
            _ => panic!("{name}: {p}: expected {ty}, got {:?}", ent.kind),
        }
        if let Some(mode) = e["mode"].as_str() {
            assert_eq!(format!("{:04o}", ent.mode), mode, "{name}: {p} mode");
        }
        if let Some(sha) = e["sha256"].as_str() {
            let o = tree.origin(n);
            assert_eq!(
                MergedTree::entry(l, o).size,
                e["size"].as_u64().unwrap(),
                "{name}: {p} size"
            );
            let content = tree
                .content(l, p)
                .unwrap_or_else(|| panic!("{name}: {p} content"));
            assert_eq!(
                hex::encode(Sha256::digest(content)),
                sha,
                "{name}: {p} sha256"
            );
        }
    }
    if m["complete"] == Value::Bool(true) {
        let ours: BTreeSet<String> = tree.nodes.keys().map(ToString::to_string).collect();
        assert_eq!(ours, want, "{name}: merged paths");
    }
    for a in m["absent"].as_array().into_iter().flatten() {
        let p = a.as_str().unwrap().trim_start_matches('/');
        assert!(!tree.nodes.contains_key(p), "{name}: {p} must be absent");
    }
    for g in m["hardlink_groups"].as_array().into_iter().flatten() {
        let origins: BTreeSet<_> = g
            .as_array()
            .unwrap()
            .iter()
            .map(|p| match tree.resolve(l, p.as_str().unwrap()) {
                Resolved::Found { node, .. } => tree.origin(node),
                other => panic!("{name}: {p} not found: {other:?}"),
            })
            .collect();
        assert_eq!(
            origins.len(),
            1,
            "{name}: hard-link group {g} shares one content"
        );
    }
}

/// The selector for one expected image.
fn spec_for(fixture: &Path, img: &Value, n_images: usize) -> String {
    let f = fixture.display().to_string();
    if let Some(d) = img["manifest_digest"].as_str() {
        return format!("{f}@{d}");
    }
    match img["repo_tags"].as_array().and_then(|t| t.first()) {
        Some(t) if n_images > 1 => format!("{f}:{}", t.as_str().unwrap()),
        _ => f,
    }
}

fn check_ok(name: &str, fixture: &Path, doc: &Value) {
    let images = doc["images"].as_array().unwrap();
    for img in images {
        if img["merged_fs"]["complete"].is_null() {
            // a non-filesystem artifact (cosign signature/attestation): kept aside, never an image
            let d = img["manifest_digest"].as_str().unwrap();
            let opened = open(&fixture.display().to_string(), None)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                opened
                    .attestations
                    .iter()
                    .any(|a| a.descriptor.digest.to_string() == d),
                "{name}: {d} kept aside as an artifact"
            );
            assert!(
                opened
                    .images
                    .iter()
                    .all(|i| i.manifest.digest.to_string() != d)
            );
            continue;
        }
        let spec = spec_for(fixture, img, images.len());
        let (opened, listings) = load(&spec).unwrap_or_else(|e| panic!("{name}: {spec}: {e}"));
        assert_eq!(opened.images.len(), 1, "{name}: {spec} selects one image");
        let got = &opened.images[0];
        let ids: Vec<String> = got
            .config
            .diff_ids
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(want) = img["config_diff_ids"].as_array() {
            let want: Vec<&str> = want.iter().map(|v| v.as_str().unwrap()).collect();
            assert_eq!(ids, want, "{name}: diff_ids");
        }
        if let Some(flags) = img["history_empty_layer_flags"].as_array() {
            // history lines up with layers by skipping empty_layer entries
            let non_empty = flags.iter().filter(|f| **f == Value::Bool(false)).count();
            assert_eq!(non_empty, got.layers.len(), "{name}");
            assert!(
                got.layers.iter().all(|l| l.history.is_some()),
                "{name}: history per layer"
            );
        }
        let problems = doc["structural_problems"].as_array().map_or(0, Vec::len);
        if problems > 0 {
            assert!(
                !opened.notes.is_empty(),
                "{name}: structural problems are noted"
            );
        }
        if let Some(c) = img["config_digest"]
            .as_str()
            .or(img["config_sha256"].as_str())
        {
            assert_eq!(
                got.config_descriptor.digest.to_string(),
                c,
                "{name}: config digest"
            );
        }
        if img["layers"].is_array() {
            check_layers(name, img, &listings[0], &ids);
        }
        if img["merged_fs"].is_object() && img["merged_fs"]["entries"].is_array() {
            check_merged(name, &img["merged_fs"], &listings[0]);
        }
    }
}

#[test]
fn third_party_fixtures_match_expectations() {
    let base = fixtures_dir();
    if !base.is_dir() {
        crate::common::skip(&format!("{} is absent", base.display()));
        return;
    }
    let mut checked = 0;
    for (name, doc) in expected_files() {
        let fixture = base.join(doc["fixture"].as_str().unwrap());
        let expect = doc["load"]["expect"].as_str().unwrap();
        let spec = fixture.display().to_string();
        match expect {
            "ok" if doc["images"].as_array().is_some_and(|a| !a.is_empty()) => {
                check_ok(&name, &fixture, &doc);
            }
            "ok-with-image-selection" => {
                let e = load(&spec).expect_err("ambiguous without a tag");
                assert_eq!(e.exit_code(), 2, "{name}: {e}");
                let msg = e.to_string();
                for img in doc["images"].as_array().unwrap() {
                    let tag = img["repo_tags"][0].as_str().unwrap();
                    assert!(msg.contains(tag), "{name}: listing names {tag}: {msg}");
                }
                check_ok(&name, &fixture, &doc);
            }
            "error"
            | "error-if-verifying-digests"
            | "error-or-skip-unsupported-layer"
            | "not-an-image"
            | "artifact-not-image" => {
                let e = load(&spec).expect_err(&name);
                assert_eq!(e.exit_code(), 3, "{name}: {e}");
            }
            other => panic!("{name}: unknown expectation {other}"),
        }
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} fixtures checked");
}

#[test]
fn bundle_loads_by_every_tag_spelling() {
    let f = fixtures_dir().join("go-containerregistry/tarball/test_bundle.tar");
    if !f.exists() {
        crate::common::skip("fixtures absent");
        return;
    }
    for (tag, file) in [
        ("test_image_1", "foo"),
        ("test_image_2", "baz"),
        ("test_image_1:latest", "bar"),
        ("test_image_2:latest", "bat"),
        ("index.docker.io/library/test_image_1:latest", "foo"),
    ] {
        let (_, l) =
            load(&format!("{}:{tag}", f.display())).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let tree = MergedTree::merge(&l[0]);
        assert!(tree.nodes.contains_key(file), "{tag}: has {file}");
    }
}

#[test]
fn compression_fixtures_sniff_as_expected() {
    use x1_validate::image::stream::sniff;
    let dir = fixtures_dir().join("containers-image/compression");
    if !dir.is_dir() {
        crate::common::skip("fixtures absent");
        return;
    }
    let read = |n: &str| std::fs::read(dir.join(n)).unwrap();
    assert_eq!(
        sniff(&read("Hello.gz")),
        Ok(x1_validate::image::Compression::Gzip)
    );
    assert_eq!(
        sniff(&read("Hello.zst")),
        Ok(x1_validate::image::Compression::Zstd)
    );
    assert!(sniff(&read("Hello.bz2")).is_err());
    assert!(sniff(&read("Hello.xz")).is_err());
}
