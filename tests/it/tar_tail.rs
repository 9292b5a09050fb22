//! Layers that end right after the last file's content (no padding, no end-of-archive blocks), as umoci
//! 0.4.7 `insert` writes them, are read; a stream cut inside content is still corrupt (exit 3).

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::common::{have_tool, run_bin, sha256};

/// A minimal OCI layout whose only layer is `layer` (uncompressed), with a matching `diff_id`.
fn layout_with_raw_layer(dir: &Path, layer: &[u8]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = sha256(bytes);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), bytes).unwrap();
        (d, bytes.len())
    };
    let (ld, ls) = put(layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [ld]}
    }))
    .unwrap();
    let (cd, cs) = put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": ls}]
    }))
    .unwrap();
    let (md, ms) = put(&manifest);
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms}]}))
        .unwrap(),
    )
    .unwrap();
}

/// A tar of `etc/` and `etc/x` (content `hi\n`) with nothing after the content: 1027 bytes.
fn unterminated_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "etc/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "etc/x", &b"hi\n"[..]).unwrap();
    let mut full = b.into_inner().unwrap();
    full.truncate(512 + 512 + 3);
    full
}

#[test]
fn a_layer_without_trailing_padding_is_read() {
    let t = tempfile::tempdir().unwrap();
    layout_with_raw_layer(t.path(), &unterminated_tar());
    let o = run_bin(&["files", t.path().to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("/etc/x"), "{out}");
}

#[test]
fn a_layer_cut_inside_content_is_corrupt() {
    let t = tempfile::tempdir().unwrap();
    let mut tar = unterminated_tar();
    tar.truncate(tar.len() - 1); // `hi` of `hi\n`
    layout_with_raw_layer(t.path(), &tar);
    let o = run_bin(&["files", t.path().to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("truncated"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn umoci_insert_layers_are_read() {
    if !have_tool("umoci") {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let layout = t.path().join("img");
    let run = |args: &[&str]| {
        let o = Command::new("umoci").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&["init", "--layout", layout.to_str().unwrap()]);
    run(&["new", "--image", &format!("{}:t", layout.display())]);
    let src = t.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("x"), "hi\n").unwrap();
    run(&[
        "insert",
        "--image",
        &format!("{}:t", layout.display()),
        src.to_str().unwrap(),
        "/etc",
    ]);
    let o = run_bin(&["files", &format!("{}:t", layout.display())]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("/etc/x"));
}
