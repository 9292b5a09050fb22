//! Hostile inputs against the reader (issue 10, points 2, 3 and their part of 7): ambiguous JSON in every
//! image document, index fan-out, depth and document-count limits, a 5,000-component path, a nested
//! archive bomb copied ten times, the stdin spill limit. Each asserts the exit code, the message or note,
//! bounded memory (peak RSS from `/usr/bin/time -v` where it exists) and that no temp file is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{Layer, sha256};

/// A layer with one small file, as an uncompressed tar.
fn layer() -> Vec<u8> {
    Layer::new().file("etc/hello", b"hi\n").tar_bytes()
}

/// The default config JSON text (keys spelled as docker writes them).
fn config_text(diff_id: &str) -> String {
    format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"User":"agent","Env":["PATH=/usr/bin"],"Entrypoint":["/x1/bin/entrypoint"],"Cmd":["serve"],"WorkingDir":"/home/agent","Labels":{{"a":"1"}}}},"rootfs":{{"type":"layers","diff_ids":["{diff_id}"]}}}}"#
    )
}

fn desc(media: &str, bytes: &[u8]) -> String {
    format!(
        r#"{{"mediaType":"{media}","digest":"{}","size":{}}}"#,
        sha256(bytes),
        bytes.len()
    )
}

const MANIFEST_MT: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_MT: &str = "application/vnd.oci.image.index.v1+json";

fn manifest_text(config: &[u8], layer: &[u8]) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MT}","config":{},"layers":[{}],"annotations":{{"k":"v"}}}}"#,
        desc("application/vnd.oci.image.config.v1+json", config),
        desc("application/vnd.oci.image.layer.v1.tar", layer)
    )
}

fn index_text(manifest: &[u8]) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{INDEX_MT}","manifests":[{}],"annotations":{{"k":"v"}}}}"#,
        desc(MANIFEST_MT, manifest)
    )
}

/// Write an OCI layout from raw document texts; `blobs` are stored by digest.
fn write_layout(dir: &Path, index: &str, blobs: &[&[u8]]) -> PathBuf {
    let out = dir.join("oci");
    std::fs::create_dir_all(out.join("blobs/sha256")).unwrap();
    std::fs::write(out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(out.join("index.json"), index).unwrap();
    for b in blobs {
        let d = sha256(b);
        std::fs::write(
            out.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            b,
        )
        .unwrap();
    }
    out
}

/// Insert `"variant":value,` right before the first `"key":` of `text`.
fn inject(text: &str, key: &str, variant: &str, value: &str) -> String {
    let needle = format!("\"{key}\":");
    let at = text
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} in {text}"));
    format!("{}\"{variant}\":{value},{}", &text[..at], &text[at..])
}

/// Which document a case patches.
#[derive(Clone, Copy, Debug)]
enum DocKind {
    Config,
    Manifest,
    Index,
}

/// An OCI layout whose `doc` text went through `patch`.
fn layout_with(dir: &Path, doc: DocKind, patch: &dyn Fn(&str) -> String) -> PathBuf {
    let l = layer();
    let mut config = config_text(&sha256(&l));
    if matches!(doc, DocKind::Config) {
        config = patch(&config);
    }
    let mut manifest = manifest_text(config.as_bytes(), &l);
    if matches!(doc, DocKind::Manifest) {
        manifest = patch(&manifest);
    }
    let mut index = index_text(manifest.as_bytes());
    if matches!(doc, DocKind::Index) {
        index = patch(&index);
    }
    write_layout(dir, &index, &[&l, config.as_bytes(), manifest.as_bytes()])
}

/// Run the binary with a private `TMPDIR`, returning its output and whether that dir was left empty.
fn run_clean(args: &[&str], stdin: Option<&[u8]>) -> (Output, bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(crate::common::bin());
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env("COLUMNS", "200")
        .env("TMPDIR", tmp.path())
        .env("X1_VALIDATE_TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        use std::io::Write as _;
        let mut sin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let w = std::thread::spawn(move || {
            let _ = sin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        w.join().unwrap();
        let empty = std::fs::read_dir(tmp.path()).unwrap().next().is_none();
        return (out, empty);
    }
    let out = child.wait_with_output().unwrap();
    let empty = std::fs::read_dir(tmp.path()).unwrap().next().is_none();
    (out, empty)
}

/// Run under `/usr/bin/time -v` (when present) and return (output, peak RSS in KiB).
fn run_measured(args: &[&str]) -> (Output, Option<u64>) {
    if !Path::new("/usr/bin/time").exists() {
        crate::common::skip("/usr/bin/time is not installed: peak RSS not measured");
        return (crate::common::run_bin(args), None);
    }
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(crate::common::bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let rss = err
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok());
    (out, rss)
}

/// stderr on one line, without miette's `│` frame (long messages wrap).
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ")
}

/// Assert exit 3 with both keys and the document named.
fn assert_ambiguous(o: &Output, keys: (&str, &str), document: &str) {
    let flat = stderr(o);
    assert_eq!(o.status.code(), Some(3), "{flat}");
    assert!(flat.contains("ambiguous JSON"), "{flat}");
    assert!(
        flat.contains(&format!("\"{}\"", keys.0)) && flat.contains(&format!("\"{}\"", keys.1)),
        "both keys {keys:?} named: {flat}"
    );
    assert!(flat.contains(document), "{document} named: {flat}");
}

#[test]
fn case_variant_and_duplicate_keys_are_refused_in_every_document() {
    // (document, key present, variant injected before it, a value, name of the document in the error)
    let cases: &[(DocKind, &str, &str, &str, &str)] = &[
        (DocKind::Config, "User", "user", r#""0""#, "config sha256:"),
        (DocKind::Config, "User", "User", r#""0""#, "config sha256:"),
        (
            DocKind::Config,
            "User",
            "U\u{17F}er",
            r#""0""#,
            "config sha256:",
        ),
        (
            DocKind::Config,
            "Env",
            "env",
            r#"["LD_PRELOAD=/x.so"]"#,
            "config sha256:",
        ),
        (
            DocKind::Config,
            "Entrypoint",
            "entrypoint",
            r#"["/bin/sh"]"#,
            "config sha256:",
        ),
        (DocKind::Config, "Cmd", "CMD", r#"["sh"]"#, "config sha256:"),
        (
            DocKind::Config,
            "WorkingDir",
            "workingdir",
            r#""/root""#,
            "config sha256:",
        ),
        (DocKind::Config, "Labels", "labels", "{}", "config sha256:"),
        (DocKind::Config, "rootfs", "RootFS", "{}", "config sha256:"),
        (
            DocKind::Config,
            "diff_ids",
            "Diff_IDs",
            "[]",
            "config sha256:",
        ),
        (DocKind::Config, "config", "Config", "{}", "config sha256:"),
        // an exact duplicate inside a map (Labels): Go keeps the last
        (DocKind::Config, "a", "a", r#""2""#, "config sha256:"),
        (
            DocKind::Manifest,
            "layers",
            "Layers",
            "[]",
            "manifest sha256:",
        ),
        (
            DocKind::Manifest,
            "mediaType",
            "mediatype",
            r#""x""#,
            "manifest sha256:",
        ),
        (
            DocKind::Manifest,
            "digest",
            "Digest",
            r#""x""#,
            "manifest sha256:",
        ),
        (DocKind::Manifest, "size", "SIZE", "1", "manifest sha256:"),
        (
            DocKind::Manifest,
            "annotations",
            "Annotations",
            "{}",
            "manifest sha256:",
        ),
        (DocKind::Index, "manifests", "Manifests", "[]", "index.json"),
        (DocKind::Index, "digest", "DIGEST", r#""x""#, "index.json"),
        (DocKind::Index, "size", "Size", "1", "index.json"),
        (
            DocKind::Index,
            "mediaType",
            "MediaType",
            r#""x""#,
            "index.json",
        ),
        (
            DocKind::Index,
            "annotations",
            "annotations",
            "{}",
            "index.json",
        ),
    ];
    for (doc, key, variant, value, name) in cases {
        let dir = tempfile::tempdir().unwrap();
        let p = layout_with(dir.path(), *doc, &|t| inject(t, key, variant, value));
        let (o, clean) = run_clean(&["inspect", p.to_str().unwrap()], None);
        assert_ambiguous(&o, (key, variant), name);
        assert!(clean, "temp files left behind");
    }
}

#[test]
fn map_keys_differing_in_case_are_two_keys_and_lone_variants_are_read_as_the_runtime_does() {
    // Labels {"a", "A"}: a Go map keeps both; not ambiguous.
    let dir = tempfile::tempdir().unwrap();
    let p = layout_with(dir.path(), DocKind::Config, &|t| {
        t.replace(r#""a":"1""#, r#""a":"1","A":"2""#)
    });
    let o = crate::common::run_bin(&["inspect", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // A lone `user` is the runtime's `User`: the gate must see user 0, not the absent `User`.
    let dir = tempfile::tempdir().unwrap();
    let p = layout_with(dir.path(), DocKind::Config, &|t| {
        t.replace(r#""User":"agent""#, r#""user":"0""#)
    });
    let o = crate::common::run_bin(&["inspect", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    assert!(
        text.contains(r#""user":"0""#) || text.contains(r#""User":"0""#),
        "the lone `user` key is read as User: {text}"
    );
}

#[test]
fn docker_manifest_json_and_repositories_are_read_strictly() {
    let l = layer();
    let config = config_text(&sha256(&l));
    let write = |dir: &Path, manifest: &str, repositories: Option<&str>| -> PathBuf {
        let out = dir.join("save");
        std::fs::create_dir_all(out.join("abc")).unwrap();
        std::fs::write(out.join("abc/layer.tar"), &l).unwrap();
        std::fs::write(out.join("config.json"), &config).unwrap();
        std::fs::write(out.join("manifest.json"), manifest).unwrap();
        if let Some(r) = repositories {
            std::fs::write(out.join("repositories"), r).unwrap();
        }
        out
    };
    let good = r#"[{"Config":"config.json","RepoTags":["t/i:1"],"Layers":["abc/layer.tar"]}]"#;
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), good, Some(r#"{"t/i":{"1":"abc"}}"#));
    let o = crate::common::run_bin(&["inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for (key, variant, value) in [
        ("Config", "config", r#""other.json""#),
        ("Layers", "layers", "[]"),
        ("RepoTags", "repotags", "[]"),
        ("Layers", "Layers", "[]"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), &inject(good, key, variant, value), None);
        let o = crate::common::run_bin(&["inspect", p.to_str().unwrap()]);
        assert_ambiguous(&o, (key, variant), "manifest.json");
    }
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), good, Some(r#"{"t/i":{"1":"abc","1":"def"}}"#));
    let o = crate::common::run_bin(&["inspect", p.to_str().unwrap()]);
    assert_ambiguous(&o, ("1", "1"), "repositories");
}

#[test]
fn deeply_nested_json_is_a_clean_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let p = layout_with(dir.path(), DocKind::Config, &|t| {
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        inject(t, "User", "Deep", &deep)
    });
    let (o, clean) = run_clean(&["inspect", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("deeper than 128"), "{}", stderr(&o));
    assert!(clean);
}

/// `index.json` → `depth` nested indexes → manifest, each index listing its child `fan` times.
fn fan_out(dir: &Path, depth: usize, fan: usize) -> PathBuf {
    let l = layer();
    let config = config_text(&sha256(&l));
    let manifest = manifest_text(config.as_bytes(), &l);
    let mut blobs: Vec<Vec<u8>> = vec![l.clone(), config.into_bytes(), manifest.into_bytes()];
    let mut child = desc(MANIFEST_MT, &blobs[2]);
    for _ in 0..depth {
        let list = vec![child.as_str(); fan].join(",");
        let idx = format!(r#"{{"schemaVersion":2,"mediaType":"{INDEX_MT}","manifests":[{list}]}}"#);
        child = desc(INDEX_MT, idx.as_bytes());
        blobs.push(idx.into_bytes());
    }
    let index = format!(r#"{{"schemaVersion":2,"manifests":[{child}]}}"#);
    let refs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    write_layout(dir, &index, &refs)
}

#[test]
fn an_index_repeating_its_child_at_depth_7_is_read_once_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // ~40 KB per index (400 × ~100-byte descriptors), 7 deep: 400^7 paths without deduplication.
    let p = fan_out(dir.path(), 7, 400);
    let start = std::time::Instant::now();
    let (o, rss) = run_measured(&["inspect", "--format", "json", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let images = v["images"].as_array().map_or(0, Vec::len);
    assert_eq!(images, 1, "one image, read once: {v}");
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
    if let Some(kib) = rss {
        assert!(kib < 256 * 1024, "peak RSS {kib} KiB");
    }
}

#[test]
fn index_depth_and_document_count_limits_are_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let p = fan_out(dir.path(), 9, 1);
    let (o, clean) = run_clean(&["inspect", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nest deeper than 8 levels"),
        "{}",
        stderr(&o)
    );
    assert!(clean);
    // The same manifest listed 2,100 times at the top: each top-level entry is its own image
    // (tags), so deduplication does not apply, but the document limit does.
    let l = layer();
    let config = config_text(&sha256(&l));
    let manifest = manifest_text(config.as_bytes(), &l);
    let d = desc(MANIFEST_MT, manifest.as_bytes());
    let list = vec![d.as_str(); 2100].join(",");
    let index = format!(r#"{{"schemaVersion":2,"manifests":[{list}]}}"#);
    let dir = tempfile::tempdir().unwrap();
    let p = write_layout(
        dir.path(),
        &index,
        &[&l, config.as_bytes(), manifest.as_bytes()],
    );
    let o = crate::common::run_bin(&["inspect", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("more than 4096 documents"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_5000_component_path_is_listed_and_checked_without_recursion() {
    let deep = vec!["a"; 5000].join("/");
    let l = Layer::new()
        .file_pax(&format!("{deep}/f"), b"x")
        .tar_bytes();
    let config = config_text(&sha256(&l));
    let manifest = manifest_text(config.as_bytes(), &l);
    let dir = tempfile::tempdir().unwrap();
    let p = write_layout(
        dir.path(),
        &index_text(manifest.as_bytes()),
        &[&l, config.as_bytes(), manifest.as_bytes()],
    );
    let (o, clean) = run_clean(&["files", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a/a/a/f"));
    assert!(clean);
    let (o, clean) = run_clean(&["check", "--exec", "never", p.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(clean);
}

#[test]
fn ten_copies_of_a_nested_bomb_spend_one_image_budget_and_the_rest_is_scanned() {
    use std::io::Write as _;
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    // 15 MiB of zeros gzipped stays under the ratio limit's 16 MiB grace; 72 of them in a tar → one
    // .tgz expands to ~1.05 GiB; ten copies would be ~10 GiB without an image budget.
    let zeros = gz(&vec![0u8; 15 << 20]);
    let mut inner = Layer::new();
    for i in 0..72 {
        inner = inner.file(&format!("z{i}.gz"), &zeros);
    }
    let bomb = gz(&inner.tar_bytes());
    let key = format!("gsk_{}", crate::common::random_alnum(52));
    let mut l = Layer::new();
    for i in 0..10 {
        l = l.file(&format!("opt/bomb{i}.tgz"), &bomb);
    }
    let l = l
        .file("zz/after.env", format!("GROQ_API_KEY={key}\n").as_bytes())
        .tar_bytes();
    let config = config_text(&sha256(&l));
    let manifest = manifest_text(config.as_bytes(), &l);
    let dir = tempfile::tempdir().unwrap();
    let p = write_layout(
        dir.path(),
        &index_text(manifest.as_bytes()),
        &[&l, config.as_bytes(), manifest.as_bytes()],
    );
    let start = std::time::Instant::now();
    let (o, rss) = run_measured(&[
        "check",
        "--exec",
        "never",
        "--format",
        "json",
        p.to_str().unwrap(),
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        out.contains("nested-archive budget") && out.contains("/opt/bomb"),
        "a note names the file: {out}"
    );
    assert!(out.contains("/zz/after.env"), "the rest is scanned: {out}");
    assert!(!out.contains(&key), "the key is never printed in full");
    assert!(
        start.elapsed().as_secs() < 120,
        "took {:?}",
        start.elapsed()
    );
    if let Some(kib) = rss {
        assert!(kib < 256 * 1024, "peak RSS {kib} KiB");
    }
}

#[test]
fn stdin_beyond_max_input_size_is_exit_3_and_the_spill_is_removed() {
    let data = vec![7u8; 3 << 20];
    let (o, clean) = run_clean(&["check", "--max-input-size", "1MiB", "-"], Some(&data));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-input-size"), "{}", stderr(&o));
    assert!(clean, "spill file left behind");
    // under the limit: read (and refused as not an image, still exit 3, still removed)
    let (o, clean) = run_clean(
        &["inspect", "--max-input-size", "1MiB", "-"],
        Some(&data[..4096]),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stderr(&o).contains("--max-input-size"), "{}", stderr(&o));
    assert!(clean, "spill file left behind");
    let o = crate::common::run_bin(&["inspect", "--max-input-size", "lots", "-"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
