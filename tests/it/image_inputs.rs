//! Input shapes and bad input, through the built binary: every corruption kind in every writer gives
//! exit 3 with a message naming what differed; `PATH:TAG` / `PATH@digest` selection and the ambiguity
//! error; multi-platform indexes with attestations kept aside; stdin; docker-save layer symlinks;
//! identical `files` output across the three writers.

#![allow(clippy::many_single_char_names)]

use std::path::PathBuf;

use crate::common::{
    Comp, Corruption, ImageBuilder, Layer, Layout, Target, run_bin, run_bin_stdin,
    write_docker_archive,
};

fn base() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc")
                .file("etc/os-release", b"ID=debian\n"),
        )
        .layer(Layer::new().compression(Comp::Zstd).file("app", b"app"))
        .layer(Layer::new().compression(Comp::None).file("data", b"data"))
}

/// stderr with miette's wrapping undone (box characters dropped, lines joined; a line that ends in
/// `/` or `-` was broken inside a word and is joined without a space).
fn stderr(o: &std::process::Output) -> String {
    let raw = String::from_utf8_lossy(&o.stderr);
    let mut s = String::new();
    for line in raw.lines() {
        let t = line
            .trim_start()
            .trim_start_matches(['│', '×', '╰', '─'])
            .trim();
        if !s.is_empty() && !s.ends_with('/') && !s.ends_with('-') {
            s.push(' ');
        }
        s.push_str(t);
    }
    s
}

/// Each writer's path for `img`.
fn forms(img: &ImageBuilder, tmp: &std::path::Path) -> Vec<(&'static str, PathBuf)> {
    vec![
        ("oci-dir", img.write_oci_dir(tmp)),
        ("oci-archive", img.write_oci_archive(tmp)),
        ("docker-archive", img.write_docker_archive(tmp)),
    ]
}

#[test]
fn every_corruption_kind_exits_3_naming_what_differed() {
    use Corruption as C;
    // (corruption, words the message must contain, applies to docker-save archives)
    let cases: Vec<(Corruption, &str, bool)> = vec![
        (C::WrongDigest(Target::Layer(0)), "digest", false),
        (C::WrongDigest(Target::Layer(2)), "digest", false),
        (C::WrongDigest(Target::Config), "digest", false),
        (C::WrongDigest(Target::Manifest), "digest", false),
        (C::WrongSize(Target::Layer(1)), "size", false),
        (C::WrongSize(Target::Config), "size", false),
        (C::WrongSize(Target::Manifest), "size", false),
        (C::MissingBlob(Target::Layer(1)), "missing", true),
        (C::MissingBlob(Target::Config), "missing", true),
        (C::MissingBlob(Target::Manifest), "missing", false),
        (C::WrongDiffId(0), "diff_id", true),
        (C::WrongDiffId(2), "", true),
        (C::TruncatedLayer(0), "truncated", true),
        (C::TruncatedLayer(1), "", true),
        (C::MalformedConfig, "malformed JSON", true),
        (C::MalformedManifest, "malformed JSON", false),
        (C::MalformedIndex, "malformed JSON", true),
        (C::UnknownCompression(0), "bzip2", true),
        (C::TrailingGarbage(2), "ambiguous tar", true),
    ];
    for (c, word, docker) in cases {
        let img = base().corrupt(c.clone());
        let tmp = tempfile::tempdir().unwrap();
        for (form, path) in forms(&img, tmp.path()) {
            if form == "docker-archive" && !docker {
                continue;
            }
            let o = run_bin(&["files", &path.display().to_string()]);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(3), "{c:?} {form}: {err}");
            assert!(
                err.contains(word),
                "{c:?} {form}: message names {word:?}: {err}"
            );
            assert!(!err.contains("panicked"), "{c:?} {form}: {err}");
        }
    }
}

#[test]
fn the_three_writers_give_identical_files_output() {
    let img = base().layer(
        Layer::new()
            .whiteout("data")
            .hardlink("app2", "app")
            .symlink("lnk", "/app"),
    );
    let tmp = tempfile::tempdir().unwrap();
    let mut outs = Vec::new();
    for (form, path) in forms(&img, tmp.path()) {
        for fmt in ["human", "json"] {
            let o = run_bin(&[
                "files",
                &path.display().to_string(),
                "--all-layers",
                "--format",
                fmt,
            ]);
            assert_eq!(o.status.code(), Some(0), "{form}: {}", stderr(&o));
            outs.push((form, fmt, o.stdout));
        }
    }
    for (form, fmt, out) in &outs[2..] {
        let first = if *fmt == "human" {
            &outs[0].2
        } else {
            &outs[1].2
        };
        assert_eq!(out, first, "{form} {fmt} differs from oci-dir");
    }
    let human = String::from_utf8_lossy(&outs[0].2);
    assert!(
        human.contains("/data") && human.contains("deleted by layer 3"),
        "{human}"
    );
    assert!(human.contains("/app2 => /app"), "{human}");
}

#[test]
fn inspect_reports_layers_config_and_history() {
    let img = base()
        .env("PATH=/usr/bin")
        .env(&format!(
            "OPENAI_API_KEY=sk-proj-{}",
            crate::common::random_alnum(40)
        ))
        .user("agent")
        .label("org.x1agent.runtime", "opencode")
        .entrypoint(&["/x1/bin/entrypoint"]);
    let b = img.build();
    let tmp = tempfile::tempdir().unwrap();
    let dir = img.write_oci_dir(tmp.path());
    let o = run_bin(&["inspect", &dir.display().to_string(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let i = &v["images"][0];
    assert_eq!(i["config"]["digest"], b.config_digest.as_str());
    assert_eq!(i["manifest"]["digest"], b.manifest_digest.as_str());
    assert_eq!(i["user"], "agent");
    assert_eq!(i["entrypoint"][0], "/x1/bin/entrypoint");
    assert_eq!(i["labels"]["org.x1agent.runtime"], "opencode");
    let layers = i["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (n, (l, comp)) in layers.iter().zip(["gzip", "zstd", "none"]).enumerate() {
        assert_eq!(l["compression"], comp);
        assert_eq!(l["diff_id"], b.diff_ids[n].as_str());
        assert_eq!(l["digest"], b.layer_digests[n].as_str());
        assert_eq!(l["uncompressed_size"], b.raw_layers[n].len());
        assert_eq!(l["compressed_size"], b.layers[n].len());
    }
    assert_eq!(layers[0]["entries"], 2);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("OPENAI_API_KEY=sk-p") && text.contains("redacted"),
        "{text}"
    );
    let key_body: Vec<&str> = img.env[1].splitn(2, "sk-proj-").collect();
    assert!(
        !text.contains(key_body[1]),
        "the key is never printed in full"
    );
    let h = run_bin(&["inspect", &dir.display().to_string()]);
    let human = String::from_utf8_lossy(&h.stdout);
    assert!(
        human.contains(&b.config_digest) && human.contains("zstd"),
        "{human}"
    );
}

#[test]
fn several_images_need_a_selector_that_works_by_tag_and_digest() {
    let a = ImageBuilder::new().layer(Layer::new().file("a", b"a"));
    let b = ImageBuilder::new().layer(Layer::new().file("b", b"b"));
    let bd = b.build().manifest_digest;
    let tmp = tempfile::tempdir().unwrap();
    // a path with ':' in it must still work
    let dir = tmp.path().join("lay:out");
    Layout::new()
        .image(Some("v1"), a.clone())
        .image(Some("edge"), b.clone())
        .write_dir(&dir);
    let d = dir.display().to_string();
    let o = run_bin(&["files", &d]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("v1") && e.contains("edge") && e.contains(&bd),
        "{e}"
    );
    let o = run_bin(&["files", &format!("{d}:v1")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("/a"));
    let o = run_bin(&["files", &format!("{d}@{bd}")]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("/b"),
        "{}",
        stderr(&o)
    );
    let o = run_bin(&["files", &format!("{d}:nope")]);
    assert_eq!(o.status.code(), Some(2));
    // docker-save with two images: by RepoTags, with Docker's reference normalisation
    let t = tmp.path().join("two.tar");
    write_docker_archive(
        &t,
        &[
            (vec!["one:latest".into()], a),
            (vec!["library/two:v2".into()], b),
        ],
    );
    let o = run_bin(&[
        "files",
        &format!("{}:docker.io/library/two:v2", t.display()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("/b"));
    assert_eq!(
        run_bin(&["files", &t.display().to_string()]).status.code(),
        Some(2)
    );
}

#[test]
fn multi_platform_index_gives_one_image_per_platform_and_keeps_attestations_aside() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("multi");
    crate::common::layout::amd64_arm64(&dir, true);
    let d = dir.display().to_string();
    let o = run_bin(&["inspect", &d, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let plats: Vec<&str> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["platform"].as_str().unwrap())
        .collect();
    assert_eq!(plats, ["linux/amd64", "linux/arm64/v8"]);
    assert_eq!(v["attestations"].as_array().unwrap().len(), 1);
    let o = run_bin(&["files", &d, "--platform", "linux/arm64"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    let o = run_bin(&["files", &d, "--platform", "linux/s390x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("linux/arm64/v8"), "{}", stderr(&o));
}

#[test]
fn stdin_is_read_for_archives() {
    let img = base();
    let tmp = tempfile::tempdir().unwrap();
    for p in [
        img.write_oci_archive(tmp.path()),
        img.write_docker_archive(tmp.path()),
    ] {
        let bytes = std::fs::read(&p).unwrap();
        let o = run_bin_stdin(&["files", "-"], &bytes);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(String::from_utf8_lossy(&o.stdout).contains("/etc/os-release"));
    }
    let o = run_bin_stdin(&["files", "-"], b"not a tar at all, just text");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

#[test]
fn docker_save_deduplicated_layer_symlink_is_followed() {
    let shared = Layer::new().compression(Comp::None).file("shared", b"s");
    let a = ImageBuilder::new().layer(shared.clone());
    let b = ImageBuilder::new()
        .layer(Layer::new().compression(Comp::None).file("first", b"f"))
        .layer(shared);
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("dedup.tar");
    write_docker_archive(&t, &[(vec!["a:1".into()], a), (vec!["b:1".into()], b)]);
    let listing = std::process::Command::new("tar")
        .arg("tvf")
        .arg(&t)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("-> ../"),
        "a symlinked layer.tar"
    );
    let o = run_bin(&["files", &format!("{}:b:1", t.display())]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/shared") && out.contains("/first"), "{out}");
}

#[test]
fn not_an_image_inputs_exit_3_with_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = Layer::new().file("x", b"x");
    let bare = tmp.path().join("layer.tar");
    std::fs::write(&bare, layer.tar_bytes()).unwrap();
    let gz = tmp.path().join("layer.tar.gz");
    std::fs::write(&gz, Comp::Gzip.compress(&layer.tar_bytes())).unwrap();
    let empty_dir = tmp.path().join("empty");
    std::fs::create_dir(&empty_dir).unwrap();
    for (p, word) in [
        (&bare, "bare layer"),
        (&gz, "gzip"),
        (&empty_dir, "index.json"),
    ] {
        let o = run_bin(&["files", &p.display().to_string()]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        assert!(stderr(&o).contains(word), "{}", stderr(&o));
    }
    let o = run_bin(&["files", "/definitely/not/here"]);
    assert_eq!(o.status.code(), Some(3));
}

#[test]
fn pax_size_that_disagrees_with_the_header_is_an_ambiguous_tar() {
    use crate::common::tarw::{Hdr, TarWriter};
    let mut t = TarWriter::new();
    t.pax(&[("size", "3")]);
    let mut h = Hdr::simple("smuggle", b'0', 0o644, "");
    h.size = 512;
    t.entry(&h, &[b'A'; 512]);
    let img = ImageBuilder::new().layer(Layer::new().file("ok", b"ok").raw_bytes(t.into_bytes()));
    let tmp = tempfile::tempdir().unwrap();
    let o = run_bin(&[
        "files",
        &img.write_oci_dir(tmp.path()).display().to_string(),
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("ambiguous tar"), "{}", stderr(&o));
}

#[test]
fn docker25_null_manifests_and_containerd_compressed_blobs_via_manifest_json() {
    use crate::common::tarw::TarWriter;
    let img = base().label("x", "y");
    let b = img.build();
    let mut t = TarWriter::new();
    t.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    // moby #47210: saved by digest, index.json has "manifests": null
    t.file("index.json", br#"{"schemaVersion":2,"manifests":null}"#);
    t.dir("blobs/");
    t.dir("blobs/sha256/");
    for (d, bytes) in &b.blobs {
        t.file(&format!("blobs/sha256/{}", &d[7..]), bytes);
    }
    // containerd store: manifest.json Layers point at the compressed registry blobs; RepoTags null
    let mj = serde_json::json!([{
        "Config": format!("blobs/sha256/{}", &b.config_digest[7..]),
        "RepoTags": null,
        "Layers": b.layer_digests.iter().map(|d| format!("blobs/sha256/{}", &d[7..])).collect::<Vec<_>>(),
    }]);
    t.file("manifest.json", &serde_json::to_vec(&mj).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("d25.tar");
    std::fs::write(&p, t.finish()).unwrap();
    let o = run_bin(&["inspect", &p.display().to_string(), "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["input_kind"], "docker-archive");
    let i = &v["images"][0];
    assert_eq!(i["config"]["digest"], b.config_digest.as_str());
    let comps: Vec<&str> = i["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["compression"].as_str().unwrap())
        .collect();
    assert_eq!(comps, ["gzip", "zstd", "none"]);
    for (n, l) in i["layers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(
            l["digest"],
            b.layer_digests[n].as_str(),
            "stored blob digest verified"
        );
    }
}
