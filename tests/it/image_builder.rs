//! Self-checks of the in-code `ImageBuilder`: what it writes is accepted by real tools (skopeo, tar), so
//! tests built on it exercise real formats.

use std::process::Command;

use crate::common::{Comp, ImageBuilder, Layer, sha256};

fn sample() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc")
                .file("etc/hostname", b"x1\n")
                .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
                .hardlink("etc/hostname2", "etc/hostname"),
        )
        .layer(
            Layer::new()
                .compression(Comp::Zstd)
                .whiteout("etc/hostname2"),
        )
        .layer(
            Layer::new()
                .compression(Comp::None)
                .opaque("etc")
                .file("etc/a", b"a"),
        )
        .env("PATH=/usr/bin")
        .user("1000")
        .label("org.x1agent.runtime", "opencode")
        .entrypoint(&["/x1/bin/entrypoint"])
}

#[test]
fn builder_diff_ids_are_sha256_of_uncompressed_tars() {
    let b = sample().build();
    assert_eq!(b.diff_ids.len(), 3);
    for (raw, id) in b.raw_layers.iter().zip(&b.diff_ids) {
        assert_eq!(&sha256(raw), id);
    }
    // compressed blobs differ from raw for gzip/zstd, equal for none
    assert_ne!(b.layers[0], b.raw_layers[0]);
    assert_ne!(b.layers[1], b.raw_layers[1]);
    assert_eq!(b.layers[2], b.raw_layers[2]);
    let cfg: serde_json::Value = serde_json::from_slice(&b.config).unwrap();
    assert_eq!(
        cfg["rootfs"]["diff_ids"][1],
        serde_json::json!(b.diff_ids[1])
    );
    assert_eq!(cfg["config"]["User"], "1000");
}

#[test]
fn builder_layer_tar_is_read_by_tar_crate() {
    let raw = Layer::new()
        .file(&format!("d/{}", "n".repeat(150)), b"long")
        .file_pax("p/pax-name", b"pax")
        .raw("../escape", b"x")
        .tar_bytes();
    let mut a = tar::Archive::new(&raw[..]);
    let names: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("d/{}", "n".repeat(150)),
            "p/pax-name".into(),
            "../escape".into()
        ]
    );
}

#[test]
fn builder_output_is_accepted_by_skopeo() {
    if !crate::common::have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = sample();
    let oci = img.write_oci_dir(tmp.path());
    let oci_tar = img.write_oci_archive(tmp.path());
    let docker = ImageBuilder::new()
        .layer(Layer::new().compression(Comp::None).file("a", b"a"))
        .layer(Layer::new().compression(Comp::None).file("b", b"b"))
        .write_docker_archive(tmp.path());
    for r in [
        format!("oci:{}:latest", oci.display()),
        format!("oci-archive:{}", oci_tar.display()),
        format!("docker-archive:{}", docker.display()),
    ] {
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", &r])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{r}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // skopeo verifies digests when copying
    let dst = tmp.path().join("copy");
    let out = Command::new("skopeo")
        .args([
            "copy",
            &format!("oci:{}:latest", oci.display()),
            &format!("oci:{}:x", dst.display()),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
