//! Images made at test time by real tools — umoci (incl. a deleted file and an opaque dir), skopeo
//! (`oci-archive:`, `docker-archive:`), buildah (`bud` of a FROM-scratch Dockerfile with a static
//! busybox, pushed to `oci-archive:` and `docker-archive:`) — and the corpus image in its three forms.
//! A missing tool or corpus is a printed SKIP, never a silent pass.

use std::path::Path;
use std::process::Command;

use crate::common::{corpus_dir, have_tool, run_bin, sh};

fn files(spec: &str, extra: &[&str]) -> String {
    let mut args = vec!["files", spec];
    args.extend_from_slice(extra);
    let o = run_bin(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "files {spec}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn inspect_json(spec: &str) -> serde_json::Value {
    let o = run_bin(&["inspect", spec, "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Config digest and `diff_ids` of the only image.
fn identity(spec: &str) -> (String, Vec<String>) {
    let v = inspect_json(spec);
    let i = &v["images"][0];
    let ids = i["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_string())
        .collect();
    (i["config"]["digest"].as_str().unwrap().to_string(), ids)
}

fn umoci_image(dir: &Path) -> String {
    let src1 = dir.join("src1");
    std::fs::create_dir_all(src1.join("sub")).unwrap();
    std::fs::write(src1.join("keep"), "keep").unwrap();
    std::fs::write(src1.join("gone"), "gone").unwrap();
    std::fs::write(src1.join("sub/deep"), "deep").unwrap();
    let src2 = dir.join("src2");
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join("new"), "new").unwrap();
    let lay = dir.join("L");
    let img = format!("{}:t", lay.display());
    sh(Command::new("umoci").args(["init", "--layout"]).arg(&lay));
    sh(Command::new("umoci").args(["new", "--image", &img]));
    sh(Command::new("umoci")
        .args(["insert", "--image", &img])
        .arg(&src1)
        .arg("/data"));
    sh(Command::new("umoci").args(["insert", "--image", &img, "--whiteout", "/data/gone"]));
    sh(Command::new("umoci")
        .args(["insert", "--image", &img, "--opaque"])
        .arg(&src2)
        .arg("/data/sub"));
    img
}

#[test]
fn umoci_whiteout_and_opaque_dir_merge_correctly() {
    if !have_tool("umoci") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    let out = files(&img, &[]);
    let paths: Vec<&str> = out.lines().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(
        paths,
        ["/data", "/data/keep", "/data/sub", "/data/sub/new"],
        "{out}"
    );
    let all = files(&img, &["--all-layers"]);
    assert!(all.contains("/data/gone  [deleted by layer 1]"), "{all}");
    assert!(
        all.contains("/data/sub/deep  [hidden by an opaque directory in layer 2]"),
        "{all}"
    );
}

#[test]
fn skopeo_archives_of_an_umoci_image_read_identically() {
    if !have_tool("umoci") || !have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = umoci_image(tmp.path());
    let oci_tar = tmp.path().join("a.oci.tar");
    let dock_tar = tmp.path().join("a.docker.tar");
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!("oci-archive:{}", oci_tar.display())));
    sh(Command::new("skopeo")
        .args(["copy", &format!("oci:{img}")])
        .arg(format!("docker-archive:{}:x1/umoci:t", dock_tar.display())));
    let want = files(&img, &[]);
    let want_id = identity(&img);
    for p in [&oci_tar, &dock_tar] {
        let s = p.display().to_string();
        assert_eq!(files(&s, &[]), want, "{s}");
        assert_eq!(identity(&s).1, want_id.1, "{s}: diff_ids");
    }
    // skopeo's docker-archive rewrites the config (Docker format), the OCI archive keeps it
    assert_eq!(identity(&oci_tar.display().to_string()).0, want_id.0);
    let v = inspect_json(&dock_tar.display().to_string());
    assert_eq!(v["input_kind"], "docker-archive");
    assert_eq!(v["images"][0]["ref_names"][0], "docker.io/x1/umoci:t");
    // and it is selectable by the short Docker spelling
    assert!(files(&format!("{}:x1/umoci:t", dock_tar.display()), &[]) == want);
}

#[test]
fn buildah_bud_from_scratch_busybox_in_both_archive_forms() {
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
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox mkdir -p /data && echo one > /data/a && echo two > /data/b\"]\n\
         RUN [\"/bin/busybox\", \"rm\", \"/data/a\"]\n\
         ENV GREETING=hello\nUSER 1000\nENTRYPOINT [\"/bin/busybox\"]\n",
    )
    .unwrap();
    let tag = format!("localhost/x1-test-{}:latest", std::process::id());
    let buildah = crate::common::Buildah::new(tmp.path());
    buildah.bud(&ctx, &tag);
    let oci = tmp.path().join("b.oci.tar");
    let dock = tmp.path().join("b.docker.tar");
    buildah.push(&tag, &format!("oci-archive:{}", oci.display()));
    buildah.push(&tag, &format!("docker-archive:{}", dock.display()));
    let a = files(&oci.display().to_string(), &[]);
    let b = files(&dock.display().to_string(), &[]);
    assert_eq!(a, b);
    assert!(a.contains("/bin/busybox") && a.contains("/data/b"), "{a}");
    assert!(!a.contains("/data/a"), "deleted in a later layer: {a}");
    let all = files(&oci.display().to_string(), &["--all-layers"]);
    assert!(all.contains("whiteout /data/a"), "{all}");
    let v = inspect_json(&oci.display().to_string());
    let i = &v["images"][0];
    assert_eq!(i["user"], "1000");
    assert_eq!(i["entrypoint"][0], "/bin/busybox");
    assert!(
        i["env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "GREETING=hello")
    );
    assert_eq!(i["layers"].as_array().unwrap().len(), 3);
    assert_eq!(
        identity(&dock.display().to_string()).1,
        identity(&oci.display().to_string()).1
    );
}

#[test]
fn corpus_image_reads_identically_in_its_three_forms() {
    use x1_validate::commands::files::render;
    use x1_validate::commands::inspect::{ListFormat, load};
    let Some(c) = corpus_dir() else {
        crate::common::skip("corpus absent (set X1_CORPUS_DIR or run scripts/corpus.sh)");
        return;
    };
    let forms = [
        c.join("oci"),
        c.join("image.oci.tar"),
        c.join("image.docker.tar"),
    ];
    let mut first: Option<(String, Vec<String>, Vec<u8>)> = None;
    for f in &forms {
        if !f.exists() {
            crate::common::skip(&format!("{} absent", f.display()));
            continue;
        }
        // one verified pass per form; `files` output rendered from the same listings
        let s = f.display().to_string();
        let (opened, listings) = load(&s, &x1_validate::image::PlatformChoice::All)
            .unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(opened.images.len(), 1, "{s}");
        let img = &opened.images[0];
        let cfg = img.config_descriptor.digest.to_string();
        let ids: Vec<String> = img
            .config
            .diff_ids
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ids.len(), 5, "{s}: five layers");
        let mut out = Vec::new();
        render(&opened, &listings, false, ListFormat::Human, &mut out).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("/x1/bin/entrypoint"),
            "{s}: the overlay is present"
        );
        assert!(text.lines().count() > 10_000, "{s}: a full Debian tree");
        match &first {
            None => first = Some((cfg, ids, out)),
            Some((cfg0, ids0, out0)) => {
                assert_eq!(&cfg, cfg0, "{s}: config digest");
                assert_eq!(&ids, ids0, "{s}: diff_ids");
                assert!(
                    out == *out0,
                    "{s}: files output differs from {}",
                    forms[0].display()
                );
            }
        }
    }
}
