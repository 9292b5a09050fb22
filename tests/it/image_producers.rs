//! Every producer's shape, made by the real tool where one runs here (issue 11): skopeo `dir:` and
//! podman `--format docker-dir` layouts (compressed or not, verified like every other shape), truncated
//! archives diagnosed as truncated, registry-looking references refused with exit 2, podman multi-image
//! tars selected by normalised/short names, synthesised manifest digests flagged (and crane-shaped gzip
//! layers typed as gzip), a layer media type that lies about compression (podman
//! `save --format oci-dir --uncompressed`), a CRLF `#!` entrypoint and a secret kept alive by a hard link
//! (buildah), and Docker 20.10 `docker save` / containerd `ctr images export` from a private vfs dockerd
//! started and stopped by the test. A missing tool is a SKIP through `common::skip` (a failure under `X1_REQUIRE_ALL=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::Rng as _;
use serde_json::{Value, json};

use crate::checks::{check_path, findings};
use crate::common::tarw::TarWriter;
use crate::common::{Comp, ImageBuilder, Layer, have_tool, run_bin, sh, sha256};
use x1_validate::report::{Location, RuleStatus};

/// Exit code, stdout, and stderr with miette's wrapping undone (one line, single spaces).
fn run(args: &[&str]) -> (i32, String, String) {
    let o = run_bin(args);
    let err = String::from_utf8_lossy(&o.stderr)
        .replace('│', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        err,
    )
}

fn files(spec: &str) -> String {
    let (code, out, err) = run(&["files", spec]);
    assert_eq!(code, 0, "files {spec}: {err}");
    out
}

fn inspect(spec: &str) -> Value {
    let (code, out, err) = run(&["inspect", spec, "--format", "json"]);
    assert_eq!(code, 0, "inspect {spec}: {err}");
    serde_json::from_str(&out).unwrap()
}

fn diff_ids(v: &Value) -> Vec<String> {
    v["images"][0]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect()
}

/// A two-layer umoci image (gzip layers) with a deleted file; returns `LAYOUT:t`.
fn umoci_image(dir: &Path) -> String {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("keep"), "keep").unwrap();
    std::fs::write(src.join("gone"), "gone").unwrap();
    std::fs::write(src.join("sub/deep"), "deep").unwrap();
    let lay = dir.join("L");
    let img = format!("{}:t", lay.display());
    sh(Command::new("umoci").args(["init", "--layout"]).arg(&lay));
    sh(Command::new("umoci").args(["new", "--image", &img]));
    sh(Command::new("umoci")
        .args(["insert", "--image", &img])
        .arg(&src)
        .arg("/data"));
    sh(Command::new("umoci").args(["insert", "--image", &img, "--whiteout", "/data/gone"]));
    img
}

/// Flip one byte in the middle of the first layer blob of the `dir:` layout `dir`.
fn tamper_layer(dir: &Path) -> PathBuf {
    let v = inspect(&dir.display().to_string());
    let d = v["images"][0]["layers"][0]["digest"].as_str().unwrap();
    let blob = dir.join(d.trim_start_matches("sha256:"));
    let mut b = std::fs::read(&blob).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x55;
    std::fs::write(&blob, b).unwrap();
    blob
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn skopeo_dir_layouts_read_and_verify_compressed_or_not() {
    if !have_tool("umoci") || !have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    let want = files(&img);
    let want_ids = diff_ids(&inspect(&img));
    assert!(
        want.contains("/data/keep") && !want.contains("/data/gone"),
        "{want}"
    );
    let cases: [(&str, &[&str]); 3] = [
        ("oci-gzip", &[]),
        ("oci-plain", &["--dest-decompress"]),
        ("v2s2-gzip", &["--format", "v2s2"]),
    ];
    for (name, flags) in cases {
        let d = tmp.path().join(name);
        sh(Command::new("skopeo")
            .arg("copy")
            .args(flags)
            .arg(format!("oci:{img}"))
            .arg(format!("dir:{}", d.display())));
        assert!(
            d.join("version").exists(),
            "{name}: skopeo wrote a version file"
        );
        let s = d.display().to_string();
        assert_eq!(files(&s), want, "{name}");
        let v = inspect(&s);
        assert_eq!(v["input_kind"], "dir", "{name}");
        assert_eq!(diff_ids(&v), want_ids, "{name}: diff_ids");
        // The manifest digest is the stored manifest's own digest, as a registry would show it.
        let m = std::fs::read(d.join("manifest.json")).unwrap();
        assert_eq!(v["images"][0]["manifest"]["digest"], sha256(&m), "{name}");
        assert_eq!(v["images"][0]["manifest"]["synthesised"], false, "{name}");
        let compression = v["images"][0]["layers"][0]["compression"].clone();
        let expect = if name == "oci-plain" { "none" } else { "gzip" };
        assert_eq!(compression, expect, "{name}");
        // Same verification as every other shape: a flipped byte in a blob is exit 3.
        let bad = tmp.path().join(format!("{name}-bad"));
        copy_dir(&d, &bad);
        let blob = tamper_layer(&bad);
        let (code, _, err) = run(&["files", &bad.display().to_string()]);
        assert_eq!(code, 3, "{name}: tampered {}: {err}", blob.display());
        assert!(err.contains("layer") || err.contains("blob"), "{err}");
    }
    // An extracted `docker save` directory (manifest.json is an array) is still a docker archive.
    let arch = tmp.path().join("d.tar");
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!("docker-archive:{}:x1/umoci:t", arch.display())));
    let ex = tmp.path().join("extracted");
    std::fs::create_dir(&ex).unwrap();
    sh(Command::new("tar").arg("-xf").arg(&arch).arg("-C").arg(&ex));
    let v = inspect(&ex.display().to_string());
    assert_eq!(v["input_kind"], "docker-archive");
    assert_eq!(files(&ex.display().to_string()), want);
    // The skopeo transport prefixes are aliases for local paths.
    assert_eq!(files(&format!("oci:{img}")), want);
    assert_eq!(
        files(&format!("dir:{}", tmp.path().join("oci-gzip").display())),
        want
    );
    assert_eq!(files(&format!("docker-archive:{}", arch.display())), want);
}

#[test]
fn truncated_archives_are_diagnosed_as_cut_short() {
    if !have_tool("umoci") || !have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    for transport in ["oci-archive", "docker-archive"] {
        let full = tmp.path().join(format!("{transport}.tar"));
        sh(Command::new("skopeo")
            .args(["copy", &format!("oci:{img}")])
            .arg(format!("{transport}:{}", full.display())));
        let bytes = std::fs::read(&full).unwrap();
        // Cut inside a member's data, inside a header, and exactly at a 512-byte boundary after the
        // first member (no header follows, no end-of-archive blocks).
        for cut in [bytes.len() / 2 + 100, 512 * 3 + 17, 1024] {
            let p = tmp.path().join(format!("{transport}-{cut}.tar"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            let (code, _, err) = run(&["files", &p.display().to_string()]);
            assert_eq!(code, 3, "{transport} cut at {cut}: {err}");
            assert!(
                err.contains(&format!("cut short at byte {cut}")),
                "{transport} cut at {cut}: {err}"
            );
            assert!(!err.contains("bare layer"), "{err}");
        }
    }
}

#[test]
fn registry_references_are_usage_errors_saying_what_is_read() {
    for r in [
        "registry.example.com:5000/x1agent/runtime-opencode:edge",
        "localhost:5000/runtime:edge",
        "containers-storage:localhost/x1agent/runtime-opencode:leaky",
    ] {
        let (code, _, err) = run(&["check", r, "--exec", "never"]);
        assert_eq!(code, 2, "{r}: {err}");
        assert!(err.contains("reads local images"), "{r}: {err}");
        assert!(err.contains("docker://HOST"), "{r}: {err}");
        assert!(err.contains("skopeo copy"), "{r}: {err}");
    }
    // `docker://` itself is read (tests/it/registry.rs); an unreachable registry is an unreadable
    // image (exit 3) that names the registry, not a usage error.
    let (code, _, err) = run(&[
        "check",
        "docker://127.0.0.1:9/x/y:z",
        "--exec",
        "never",
        "--insecure",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("127.0.0.1:9"), "{err}");
    // A missing local file is still an unreadable input (exit 3).
    let (code, _, err) = run(&["check", "/nonexistent/image.tar", "--exec", "never"]);
    assert_eq!(code, 3, "{err}");
}

/// A crane-shaped tarball (`crane pull --format tarball`): `<hex>.tar.gz` layers, `sha256:<hex>` config,
/// no manifest. Written in code (crane does not run here), byte-for-byte in crane's layout.
fn crane_tarball(dir: &Path) -> PathBuf {
    let raw = Layer::new()
        .dir("etc")
        .file("etc/hello", b"hello\n")
        .tar_bytes();
    let gz = Comp::Gzip.compress(&raw);
    let cfg = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&raw)]},
        "history": [{"created_by": "crane"}],
    }))
    .unwrap();
    let cfg_name = sha256(&cfg);
    let layer_name = format!("{}.tar.gz", &sha256(&gz)[7..]);
    let mut t = TarWriter::new();
    t.file(&cfg_name, &cfg);
    t.file(&layer_name, &gz);
    let m = json!([{"Config": cfg_name, "RepoTags": ["example.com/crane/img:v1"], "Layers": [layer_name]}]);
    t.file("manifest.json", &serde_json::to_vec(&m).unwrap());
    let p = dir.join("crane.tar");
    std::fs::write(&p, t.finish()).unwrap();
    p
}

#[test]
fn synthesised_manifest_digests_are_flagged_and_typed_by_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let crane = crane_tarball(tmp.path()).display().to_string();
    let v = inspect(&crane);
    let i = &v["images"][0];
    assert_eq!(i["manifest"]["synthesised"], true);
    assert_eq!(
        i["layers"][0]["media_type"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    let (code, out, err) = run(&["check", &crane, "--exec", "never", "--format", "json"]);
    assert!(code <= 1, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    let img = &r["images"][0];
    assert_eq!(img["manifest_digest_source"], "synthesised");
    assert!(
        img["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("is synthesised")),
        "{img}"
    );
    let (_, human, _) = run(&["check", &crane, "--exec", "never"]);
    assert!(human.contains("synthesised manifest sha256:"), "{human}");
    // A layout with a real manifest says so.
    let oci = ImageBuilder::new()
        .layer(Layer::new().file("a", b"a"))
        .write_oci_archive(tmp.path());
    let (_, out, _) = run(&[
        "check",
        &oci.display().to_string(),
        "--exec",
        "never",
        "--format",
        "json",
    ]);
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["images"][0]["manifest_digest_source"], "input");
    let (_, human, _) = run(&["check", &oci.display().to_string(), "--exec", "never"]);
    assert!(!human.contains("synthesised"), "{human}");
}

#[test]
fn skopeo_docker_archive_manifest_is_synthesised() {
    if !have_tool("umoci") || !have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    let arch = tmp.path().join("d.tar");
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!("docker-archive:{}:x1/umoci:t", arch.display())));
    let v = inspect(&arch.display().to_string());
    assert_eq!(v["images"][0]["manifest"]["synthesised"], true);
    let v = inspect(&img);
    assert_eq!(v["images"][0]["manifest"]["synthesised"], false);
}

/// podman with a private vfs store under `root`.
struct Podman {
    root: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
            ])
            .env("XDG_RUNTIME_DIR", self.root.join("xdg"))
            .env("HOME", &self.root);
        c
    }
}

/// Load the umoci image into a private podman store as `localhost/x1agent/runtime-opencode:leaky` and
/// `localhost/x1agent/other:v1`.
fn podman_with_images(tmp: &Path) -> Podman {
    let img = umoci_image(tmp);
    let arch = tmp.join("src.oci.tar");
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!("oci-archive:{}", arch.display())));
    let p = Podman {
        root: tmp.join("podman"),
    };
    std::fs::create_dir_all(p.root.join("xdg")).unwrap();
    let out = sh(p.cmd().arg("load").arg("-i").arg(&arch));
    let loaded = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = loaded
        .lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .map_or_else(
            || panic!("podman load said: {loaded}"),
            |s| s.trim().to_string(),
        );
    sh(p.cmd()
        .args(["tag", &id, "localhost/x1agent/runtime-opencode:leaky"]));
    // A second, different image: same content plus a config change.
    let ctx = tmp.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        "FROM localhost/x1agent/runtime-opencode:leaky\nLABEL other=1\n",
    )
    .unwrap();
    sh(p.cmd()
        .args([
            "build",
            "--isolation",
            "chroot",
            "-t",
            "localhost/x1agent/other:v1",
        ])
        .arg(&ctx));
    p
}

#[test]
fn podman_shapes_read_select_and_flag_lying_media_types() {
    if !have_tool("umoci") || !have_tool("skopeo") || !have_tool("podman") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let pm = podman_with_images(tmp.path());
    let want = files(&format!("{}:t", tmp.path().join("L").display()));
    // docker-dir, compressed and not.
    for (name, extra) in [
        ("docker-dir", &[][..]),
        ("docker-dir-gz", &["--compress"][..]),
    ] {
        let d = tmp.path().join(name);
        sh(pm
            .cmd()
            .args(["save", "--format", "docker-dir"])
            .args(extra)
            .arg("-o")
            .arg(&d)
            .arg("localhost/x1agent/runtime-opencode:leaky"));
        let s = d.display().to_string();
        assert_eq!(inspect(&s)["input_kind"], "dir", "{name}");
        assert_eq!(files(&s), want, "{name}");
        let bad = tmp.path().join(format!("{name}-bad"));
        copy_dir(&d, &bad);
        tamper_layer(&bad);
        assert_eq!(run(&["files", &bad.display().to_string()]).0, 3, "{name}");
    }
    // Multi-image tar: podman names images `localhost/…`; short names and a unique tag select.
    let multi = tmp.path().join("multi.tar");
    sh(pm.cmd().args(["save", "-m", "-o"]).arg(&multi).args([
        "localhost/x1agent/runtime-opencode:leaky",
        "localhost/x1agent/other:v1",
    ]));
    let mt = multi.display().to_string();
    let leaky = inspect(&format!("{mt}:localhost/x1agent/runtime-opencode:leaky"));
    for sel in [
        "x1agent/runtime-opencode:leaky",
        "runtime-opencode:leaky",
        "leaky",
    ] {
        let v = inspect(&format!("{mt}:{sel}"));
        assert_eq!(
            v["images"][0]["config"]["digest"], leaky["images"][0]["config"]["digest"],
            "{sel}"
        );
    }
    let other = inspect(&format!("{mt}:v1"));
    assert_ne!(
        other["images"][0]["config"]["digest"],
        leaky["images"][0]["config"]["digest"]
    );
    let (code, _, err) = run(&["files", &mt]);
    assert_eq!(code, 2, "two images, no selector: {err}");
    // (the message is wrapped at 100 columns, possibly inside a name: compare without spaces)
    let flat = err.replace(' ', "");
    assert!(
        flat.contains("runtime-opencode:leaky") && flat.contains("other:v1"),
        "{err}"
    );
    // oci-dir --uncompressed: plain tars labelled tar+gzip → a layer-hygiene warning naming the layer.
    let od = tmp.path().join("oci-dir");
    sh(pm
        .cmd()
        .args(["save", "--format", "oci-dir", "--uncompressed", "-o"])
        .arg(&od)
        .arg("localhost/x1agent/runtime-opencode:leaky"));
    let ods = od.display().to_string();
    assert_eq!(files(&ods), want, "read by magic");
    let v = inspect(&ods);
    let mislabelled = v["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["compression"] == "none" && l["media_type"].as_str().unwrap().ends_with("gzip"));
    let r = check_path(&od, &crate::checks::Run::default());
    let f = findings(&r, "layer-hygiene");
    if mislabelled {
        assert!(
            f.iter().any(|f| f.message.contains("layer 0:")
                && f.message.contains("media type")
                && f.message.contains("uncompressed tar")
                && matches!(&f.location, Location::Manifest { pointer, .. } if pointer == "/layers/0/mediaType")),
            "{f:#?}"
        );
    } else {
        panic!("podman wrote no mislabelled layer this time: {v}");
    }
    // Correctly labelled layouts raise no such warning.
    let r = check_path(&tmp.path().join("L"), &crate::checks::Run::default());
    assert!(
        !findings(&r, "layer-hygiene")
            .iter()
            .any(|f| f.message.contains("media type")),
        "{:#?}",
        r.findings
    );
}

/// A key built at test time: real prefix, random body.
fn key(template: &str) -> String {
    let mut rng = rand::rng();
    x1_validate::scan::template::expand(template, &mut |a: &[u8]| a[rng.random_range(0..a.len())])
        .expect("known template classes")
}

#[test]
fn buildah_crlf_entrypoint_fails_and_hardlinked_secret_ships() {
    if !have_tool("buildah") {
        return;
    }
    let Some(busybox) = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        crate::common::skip("busybox-static is not installed (apt-get install busybox-static)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::copy(busybox, ctx.join("busybox")).unwrap();
    // Saved by a Windows editor: CRLF line endings.
    std::fs::write(ctx.join("entrypoint.sh"), "#!/bin/sh\r\necho hi\r\n").unwrap();
    let k = key("sk-ant-api03-{b64u:93}AA");
    // A tar holding the key file and a hard link to it; `ADD` unpacks it, so the layer keeps the link.
    let stage = tmp.path().join("stage");
    std::fs::create_dir_all(stage.join("opt")).unwrap();
    std::fs::create_dir_all(stage.join("srv")).unwrap();
    std::fs::write(
        stage.join("opt/secret.env"),
        format!("ANTHROPIC_API_KEY={k}\n"),
    )
    .unwrap();
    std::fs::hard_link(stage.join("opt/secret.env"), stage.join("srv/app.env")).unwrap();
    sh(Command::new("tar")
        .arg("-C")
        .arg(&stage)
        .arg("-cf")
        .arg(ctx.join("secret.tar"))
        .args(["opt", "srv"]));
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"ln\", \"-s\", \"busybox\", \"/bin/sh\"]\n\
         COPY --chmod=0755 entrypoint.sh /x1/bin/entrypoint\n\
         ADD secret.tar /\n\
         RUN [\"/bin/busybox\", \"rm\", \"/opt/secret.env\"]\n\
         ENTRYPOINT [\"/x1/bin/entrypoint\"]\n",
    )
    .unwrap();
    let tag = format!("localhost/x1-h4-{}:latest", std::process::id());
    let buildah = crate::common::Buildah::new(tmp.path());
    buildah.bud(&ctx, &tag);
    let oci = tmp.path().join("img.oci.tar");
    buildah.push(&tag, &format!("oci-archive:{}", oci.display()));
    let r = check_path(&oci, &crate::checks::Run::default());
    // (a) the interpreter is `/bin/sh\r`: the kernel cannot run it.
    assert_eq!(
        crate::checks::status(&r, "entrypoint"),
        RuleStatus::Failed,
        "{:#?}",
        r.findings
    );
    crate::checks::assert_fails(&r, "entrypoint", "carriage return");
    crate::checks::assert_fails(&r, "entrypoint", "\"/bin/sh\\r\"");
    assert!(
        findings(&r, "entrypoint")
            .iter()
            .all(|f| f.message.contains("carriage return")),
        "only the CRLF line is wrong: {:#?}",
        findings(&r, "entrypoint")
    );
    // (b) /opt/secret.env is deleted, but its content ships as /srv/app.env.
    let f = findings(&r, "secret-in-layer");
    assert!(
        f.iter().any(|f| f
            .message
            .contains("ships in the final filesystem as /srv/app.env")),
        "{f:#?}"
    );
    assert!(
        !f.iter().any(|f| f.message.contains(&k)),
        "a secret is never printed in full"
    );
    let (code, all, err) = run(&["files", &oci.display().to_string(), "--all-layers"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        all.lines().any(|l| l.contains("/opt/secret.env")
            && l.contains("deleted by layer")
            && l.contains("ships in the final filesystem as /srv/app.env")),
        "{all}"
    );
}

#[test]
fn ambiguous_short_names_and_tags_list_the_candidates() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("two.tar");
    let a = ImageBuilder::new().layer(Layer::new().file("a", b"a"));
    let b = ImageBuilder::new().layer(Layer::new().file("b", b"b"));
    crate::common::write_docker_archive(
        &p,
        &[
            (vec!["localhost/team-a/tool:v1".into()], a),
            (vec!["localhost/team-b/tool:v1".into()], b),
        ],
    );
    let s = p.display().to_string();
    for sel in ["v1", "tool:v1"] {
        let (code, _, err) = run(&["files", &format!("{s}:{sel}")]);
        assert_eq!(code, 2, "{sel}: {err}");
        assert!(err.contains("names several images"), "{sel}: {err}");
        assert!(
            err.contains("team-a/tool:v1") && err.contains("team-b/tool:v1"),
            "{sel}: {err}"
        );
    }
    assert!(files(&format!("{s}:team-a/tool:v1")).contains("/a"));
    assert!(files(&format!("{s}:localhost/team-b/tool:v1")).contains("/b"));
    let (code, _, err) = run(&["files", &format!("{s}:v2")]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_layout_that_is_both_oci_and_dir_shaped_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let d = ImageBuilder::new()
        .layer(Layer::new().file("a", b"a"))
        .write_oci_dir(tmp.path());
    // Read as an OCI layout first…
    assert!(files(&d.display().to_string()).contains("/a"));
    // …then a `dir:`-style manifest.json appears beside index.json: which image is it? Refused.
    std::fs::write(
        d.join("manifest.json"),
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&["files", &d.display().to_string()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ambiguous input"), "{err}");
}

/// A private Docker daemon (vfs storage, own socket and data root, no networking changes), stopped and
/// removed on drop. `None` (a SKIP) when `dockerd` is absent or does not come up.
struct Dockerd {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        if !have_tool("dockerd") || !have_tool("docker") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .args(["--storage-driver", "vfs", "--data-root"])
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .args(["--iptables=false", "--bridge=none", "--ip-masq=false"])
            .args([
                "--containerd-namespace",
                "x1-test",
                "--containerd-plugins-namespace",
                "x1-test-p",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Dockerd { child, dir };
        for _ in 0..60 {
            if d.cmd()
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return Some(d);
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        let log = std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default();
        crate::common::skip(&format!("dockerd did not come up: {log}"));
        None
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H").arg(format!(
            "unix://{}",
            self.dir.path().join("docker.sock").display()
        ));
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM to the daemon we started (by its pid), then wait for it.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn docker_save_legacy_archive_has_a_synthesised_digest_and_ctr_export_reads() {
    if !have_tool("umoci") || !have_tool("skopeo") {
        return;
    }
    let Some(docker) = Dockerd::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    let want = files(&img);
    let src = tmp.path().join("src.tar");
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!(
            "docker-archive:{}:x1agent/runtime-opencode:leaky",
            src.display()
        )));
    sh(docker.cmd().arg("load").arg("-i").arg(&src));
    let saved = tmp.path().join("saved.tar");
    sh(docker
        .cmd()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("x1agent/runtime-opencode:leaky"));
    let s = saved.display().to_string();
    let v = inspect(&s);
    assert_eq!(
        v["input_kind"], "docker-archive",
        "Docker 20.10 writes the legacy shape"
    );
    assert_eq!(v["images"][0]["manifest"]["synthesised"], true);
    assert_eq!(files(&s), want);
    // Docker's own name forms select it.
    for sel in [
        "x1agent/runtime-opencode:leaky",
        "docker.io/x1agent/runtime-opencode:leaky",
        "leaky",
    ] {
        assert_eq!(files(&format!("{s}:{sel}")), want, "{sel}");
    }
    let (code, out, err) = run(&["check", &s, "--exec", "never", "--format", "json"]);
    assert!(code <= 1, "{err}");
    let r: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(r["images"][0]["manifest_digest_source"], "synthesised");
    let (_, human, _) = run(&["check", &s, "--exec", "never"]);
    assert!(human.contains("synthesised manifest sha256:"), "{human}");
    // containerd's `ctr` (the daemon's own containerd): import the archive, export it again — an OCI
    // layout tar with a Docker `manifest.json` beside `index.json`; the manifest is in the input.
    if have_tool("ctr") {
        let sock = docker.dir.path().join("exec/containerd/containerd.sock");
        let ctr = || {
            let mut c = Command::new("ctr");
            c.arg("-a").arg(&sock).args(["-n", "x1-test"]);
            c
        };
        sh(ctr().args(["images", "import"]).arg(&saved));
        let out = tmp.path().join("ctr.tar");
        sh(ctr()
            .args(["images", "export"])
            .arg(&out)
            .arg("docker.io/x1agent/runtime-opencode:leaky"));
        let o = out.display().to_string();
        let v = inspect(&o);
        assert_eq!(v["input_kind"], "docker-archive (OCI)");
        assert_eq!(v["images"][0]["manifest"]["synthesised"], false);
        assert_eq!(files(&format!("{o}:x1agent/runtime-opencode:leaky")), want);
        assert_eq!(files(&format!("{o}:leaky")), want);
    }
    // A `docker save` cut in transit.
    let bytes = std::fs::read(&saved).unwrap();
    let cut = bytes.len() * 2 / 3;
    let p = tmp.path().join("cut.tar");
    std::fs::write(&p, &bytes[..cut]).unwrap();
    let (code, _, err) = run(&["files", &p.display().to_string()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("cut short at byte {cut}")), "{err}");
}
