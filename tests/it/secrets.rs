//! Secrets end to end: images built at test time with a key in each placement the contract names
//! (deleted by a whiteout, overwritten, hidden by an opaque dir, under `node_modules` and `/usr/lib`,
//! inside an ELF, inside a .tgz, in Env, only in history, in a label), checked with the real binary;
//! each must be found with the right rule, layer, path and fate, and the key must never be printed.
//! Plus zero findings on the corpus image.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;

use rand::Rng;
use serde_json::Value;

use crate::common::{ImageBuilder, Layer, corpus_dir, run_bin};

const SECRET_RULES: [&str; 4] = [
    "secret-in-layer",
    "secret-in-metadata",
    "provider-env",
    "build-secret",
];

/// A key built at test time: real prefix, random body.
fn key(template: &str) -> String {
    let mut rng = rand::rng();
    x1_validate::scan::template::expand(template, &mut |a: &[u8]| a[rng.random_range(0..a.len())])
        .expect("known template classes")
}

/// Run `check --format json` on the OCI layout of `img`; returns the secret findings. Asserts that no
/// output carries `secret`.
fn check(img: &ImageBuilder, secret: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let path = img.write_oci_dir(dir.path());
    check_path(&path, secret)
}

fn check_path(path: &Path, secret: &str) -> Vec<Value> {
    let out = run_bin(&[
        "check",
        "--exec",
        "never",
        "--format",
        "json",
        path.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stdout.contains(secret) && !stderr.contains(secret),
        "the secret was printed"
    );
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("json report: {e}\nstdout: {stdout}\nstderr: {stderr}"));
    doc["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| SECRET_RULES.contains(&f["rule_id"].as_str().unwrap_or("")))
        .cloned()
        .collect()
}

/// The one finding of `rule` whose evidence has `pattern`.
fn one<'a>(findings: &'a [Value], rule: &str, pattern: &str) -> &'a Value {
    let hits: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule_id"] == rule && f["evidence"]["pattern"] == pattern)
        .collect();
    assert_eq!(hits.len(), 1, "{rule}/{pattern}: {findings:#?}");
    hits[0]
}

fn assert_entry(f: &Value, layer: u64, path: &str, fate: &str) {
    let loc = &f["location"];
    assert_eq!(loc["kind"], "entry", "{f:#}");
    assert_eq!(loc["layer"]["index"], layer, "{f:#}");
    assert!(
        loc["layer"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{f:#}"
    );
    assert_eq!(loc["path"], path, "{f:#}");
    assert_eq!(loc["fate"], fate, "{f:#}");
}

fn base() -> Layer {
    Layer::new().dir("etc").file("etc/hostname", b"x1\n")
}

#[test]
fn deleted_by_whiteout_is_still_found_in_its_layer() {
    let k = key("sk-ant-api03-{b64u:93}AA");
    let img = ImageBuilder::new()
        .layer(
            base()
                .dir("app")
                .file("app/.env", format!("ANTHROPIC_API_KEY={k}\n").as_bytes()),
        )
        .layer(Layer::new().whiteout("app/.env"))
        .history("COPY .env /app/.env # buildkit", false)
        .history("RUN rm /app/.env # buildkit", false);
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-layer", "anthropic-api-key");
    assert_entry(
        hit,
        0,
        "/app/.env",
        "deleted by layer 1 — still shipped in layer 0's blob",
    );
    assert_eq!(
        hit["location"]["layer"]["created_by"],
        "COPY .env /app/.env # buildkit"
    );
    assert_eq!(hit["location"]["line"], 1);
    assert_eq!(hit["location"]["offset"], "ANTHROPIC_API_KEY=".len());
    assert_eq!(hit["evidence"]["length"], k.len());
    assert_eq!(hit["evidence"]["prefix"], "sk-ant-a");
}

#[test]
fn overwritten_without_whiteout_is_found() {
    let k = key("sk-proj-{b64u:156}");
    let img = ImageBuilder::new()
        .layer(
            base()
                .dir("app")
                .file("app/config.json", format!("{{\"key\":\"{k}\"}}").as_bytes()),
        )
        .layer(Layer::new().dir("app").file("app/config.json", b"{}"));
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-layer", "openai-project-key");
    assert_entry(
        hit,
        0,
        "/app/config.json",
        "overwritten by layer 1 — still shipped in layer 0's blob",
    );
}

#[test]
fn hidden_by_opaque_dir_is_found() {
    let k = key("ghp_{alnum:36}");
    let img = ImageBuilder::new()
        .layer(
            base()
                .dir("opt")
                .dir("opt/keys")
                .file("opt/keys/gh.txt", k.as_bytes()),
        )
        .layer(
            Layer::new()
                .dir("opt")
                .dir("opt/keys")
                .opaque("opt/keys")
                .file("opt/keys/readme", b"empty\n"),
        );
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-layer", "github-pat");
    assert_entry(
        hit,
        0,
        "/opt/keys/gh.txt",
        "hidden by an opaque directory in layer 1 — still shipped in layer 0's blob",
    );
}

#[test]
fn node_modules_usr_lib_and_markdown_are_not_skipped() {
    let k1 = key("hf_{alnum:36}");
    let k2 = key("AIza{b64u:35}");
    let k3 = key("gsk_{alnum:52}");
    let img = ImageBuilder::new().layer(
        base()
            .file(
                "usr/local/lib/node_modules/pkg/test/fixtures/index.js",
                format!("const t = '{k1}';\n").as_bytes(),
            )
            .file(
                "usr/lib/x86_64-linux-gnu/libfoo.so.1",
                format!("\0\0{k2}\0").as_bytes(),
            )
            .file(
                "usr/share/doc/pkg/README.md",
                format!("Use `{k3}`\n").as_bytes(),
            ),
    );
    let f = check(&img, &k1);
    assert_entry(
        one(&f, "secret-in-layer", "huggingface-token"),
        0,
        "/usr/local/lib/node_modules/pkg/test/fixtures/index.js",
        "visible",
    );
    let lib = one(&f, "secret-in-layer", "google-api-key");
    assert_entry(lib, 0, "/usr/lib/x86_64-linux-gnu/libfoo.so.1", "visible");
    assert!(lib["location"].get("line").is_none(), "binary: no line");
    assert_entry(
        one(&f, "secret-in-layer", "groq-api-key"),
        0,
        "/usr/share/doc/pkg/README.md",
        "visible",
    );
}

#[test]
fn key_inside_an_elf_binary_is_found() {
    let elf = std::fs::read("/bin/true").expect("/bin/true exists");
    assert!(elf.starts_with(b"\x7fELF"));
    let k = key("AKIA{b32:16}");
    let mut bin = elf.clone();
    let mid = bin.len() / 2;
    let mut embedded = b"\0".to_vec();
    embedded.extend_from_slice(k.as_bytes());
    embedded.push(0);
    bin.splice(mid..mid, embedded);
    let img = ImageBuilder::new().layer(base().dir("usr/local/bin").file_mode(
        "usr/local/bin/tool",
        &bin,
        0o755,
    ));
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-layer", "aws-access-key-id");
    assert_entry(hit, 0, "/usr/local/bin/tool", "visible");
    assert_eq!(hit["location"]["offset"], mid + 1);
}

#[test]
fn key_inside_a_tgz_is_found_with_a_nested_path() {
    let k = key("npm_{alnum:36}");
    let mut tar = tar::Builder::new(Vec::new());
    let js = format!("//registry.npmjs.org/:_authToken={k}\n");
    let mut h = tar::Header::new_gnu();
    h.set_size(js.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "package/.npmrc", js.as_bytes())
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    let tgz = gz.finish().unwrap();
    let img = ImageBuilder::new().layer(base().dir("srv").file("srv/pkg-1.0.0.tgz", &tgz));
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-layer", "npm-access-token");
    assert_entry(hit, 0, "/srv/pkg-1.0.0.tgz!package/.npmrc", "visible");
    assert_eq!(hit["location"]["line"], 1);
}

#[test]
fn key_in_env_is_provider_env_by_value() {
    let k = key("xai-{alnum:80}");
    let img = ImageBuilder::new()
        .layer(base())
        .env("PATH=/usr/bin")
        .env(&format!("SOME_SETTING={k}"));
    let f = check(&img, &k);
    let hit = one(&f, "provider-env", "xai-api-key");
    assert_eq!(hit["location"]["kind"], "config");
    assert_eq!(hit["location"]["pointer"], "/config/Env/1");
}

#[test]
fn key_only_in_history_is_build_secret() {
    let k = key("glpat-{b64u:20}");
    let img = ImageBuilder::new()
        .layer(base())
        .history("ADD rootfs.tar / # buildkit", false)
        .history(
            &format!("RUN |1 CI_JOB_TOKEN={k} /bin/sh -c make # buildkit"),
            true,
        );
    let f = check(&img, &k);
    let hit = one(&f, "build-secret", "gitlab-pat");
    assert_eq!(hit["location"]["pointer"], "/history/1/created_by");
    assert!(
        f.iter().all(|x| x["rule_id"] != "secret-in-layer"),
        "the key is in no layer: {f:#?}"
    );
}

#[test]
fn key_in_a_label_is_secret_in_metadata() {
    let k = key("pplx-{alnum:48}");
    let img = ImageBuilder::new()
        .layer(base())
        .label("org.example.debug", &format!("token={k}"));
    let f = check(&img, &k);
    let hit = one(&f, "secret-in-metadata", "perplexity-api-key");
    assert_eq!(
        hit["location"]["pointer"],
        "/config/Labels/org.example.debug"
    );
}

#[test]
fn corpus_image_has_no_secret_findings() {
    let Some(corpus) = corpus_dir() else {
        crate::common::skip("corpus image absent (set X1_CORPUS_DIR or run scripts/corpus.sh)");
        return;
    };
    let f = check_path(&corpus.join("oci"), "\u{0}never-printed\u{0}");
    assert!(f.is_empty(), "{f:#?}");
}

/// Store `bytes` as a blob of the layout at `dir`; returns its descriptor fields.
fn put_blob(dir: &Path, media_type: &str, bytes: &[u8]) -> Value {
    let digest = crate::common::sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).unwrap();
    serde_json::json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
}

#[test]
fn key_in_an_in_toto_attestation_and_an_index_annotation_is_secret_in_metadata() {
    use crate::common::Layout;
    let k = key("ghs_{alnum:36}");
    let k2 = key("sk-or-v1-{hex:64}");
    let dir = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new().layer(base());
    Layout::new()
        .multi_platform(Some("edge"), vec![img], true)
        .write_dir(dir.path());
    // Add a second attestation whose in-toto statement carries a key to the nested index, re-link the
    // top-level index and annotate its descriptor with another key.
    let top: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let nested_digest = top["manifests"][0]["digest"].as_str().unwrap();
    let nested_path = dir
        .path()
        .join("blobs/sha256")
        .join(nested_digest.trim_start_matches("sha256:"));
    let mut nested: Value = serde_json::from_slice(&std::fs::read(&nested_path).unwrap()).unwrap();
    let subject = nested["manifests"][0]["digest"].clone();
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v0.1","predicate":{{"buildArgs":{{"TOKEN":"{k}"}}}}}}"#
    );
    let layer = put_blob(
        dir.path(),
        "application/vnd.in-toto+json",
        statement.as_bytes(),
    );
    let config = put_blob(
        dir.path(),
        "application/vnd.oci.image.config.v1+json",
        br#"{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config, "layers": [layer]});
    let mut m = put_blob(
        dir.path(),
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    m["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
    m["annotations"] = serde_json::json!({"vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": subject});
    nested["manifests"].as_array_mut().unwrap().push(m);
    let new_nested = put_blob(
        dir.path(),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&nested).unwrap(),
    );
    let mut top = top;
    top["manifests"][0]["digest"] = new_nested["digest"].clone();
    top["manifests"][0]["size"] = new_nested["size"].clone();
    top["manifests"][0]["annotations"]["org.example.note"] = serde_json::json!(format!("key {k2}"));
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();

    let f = check_path(dir.path(), &k);
    let hit = one(&f, "secret-in-metadata", "github-app-token");
    assert_eq!(hit["location"]["kind"], "blob", "{hit:#}");
    assert_eq!(hit["location"]["digest"], layer["digest"], "{hit:#}");
    assert!(!serde_json::to_string(&f).unwrap().contains(&k2));
    let ann = one(&f, "secret-in-metadata", "openrouter-api-key");
    assert_eq!(ann["location"]["kind"], "manifest", "{ann:#}");
}

/// The top-level index's own `annotations` and a nested index's `annotations` ship with the image too.
#[test]
fn key_in_the_index_documents_own_annotations_is_secret_in_metadata() {
    use crate::common::Layout;
    let top_key = key("hf_{alnum:34}");
    let nested_key = key("glpat-{alnum:20}");
    let dir = tempfile::tempdir().unwrap();
    Layout::new()
        .multi_platform(Some("edge"), vec![ImageBuilder::new().layer(base())], false)
        .write_dir(dir.path());
    let mut top: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("index.json")).unwrap()).unwrap();
    let nested_digest = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let nested_path = dir
        .path()
        .join("blobs/sha256")
        .join(nested_digest.trim_start_matches("sha256:"));
    let mut nested: Value = serde_json::from_slice(&std::fs::read(&nested_path).unwrap()).unwrap();
    nested["annotations"] = serde_json::json!({"org.example.nested": nested_key});
    let new_nested = put_blob(
        dir.path(),
        "application/vnd.oci.image.index.v1+json",
        &serde_json::to_vec(&nested).unwrap(),
    );
    top["manifests"][0]["digest"] = new_nested["digest"].clone();
    top["manifests"][0]["size"] = new_nested["size"].clone();
    top["annotations"] = serde_json::json!({"org.example.top": format!("token {top_key}")});
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&top).unwrap(),
    )
    .unwrap();

    let f = check_path(dir.path(), &top_key);
    assert!(!serde_json::to_string(&f).unwrap().contains(&nested_key));
    one(&f, "secret-in-metadata", "huggingface-token");
    one(&f, "secret-in-metadata", "gitlab-pat");
}

/// Run `python3 -c script args…`; `None` (a skip) when python3 is absent.
fn python(script: &str, args: &[&str]) -> Option<()> {
    if !crate::common::have_tool("python3") {
        crate::common::skip("python3 absent (the producer of the SQLite and UTF-16 fixtures)");
        return None;
    }
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(())
}

#[test]
fn keys_in_an_sqlite_row_glued_to_their_columns_are_found() {
    // A real SQLite database, made by python3's sqlite3 module, shaped like opencode's account table:
    // the record stores text columns back to back, so the keys touch word characters on both sides.
    let anthropic = key("sk-ant-api03-{b64u:93}AA");
    let openai = key("sk-proj-{b64u:74}T3BlbkFJ{b64u:74}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let script = r"
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute('CREATE TABLE account (id TEXT PRIMARY KEY, provider TEXT, key TEXT, time_created TEXT)')
con.execute('INSERT INTO account VALUES (?, ?, ?, ?)', ('acct1', 'anthropic', sys.argv[2], '2026-01-01T00:00:00Z'))
con.execute('INSERT INTO account VALUES (?, ?, ?, ?)', ('acct2', 'openai', sys.argv[3], '2026a'))
con.commit()
con.close()
";
    let Some(()) = python(
        script,
        &[db.to_str().unwrap(), anthropic.as_str(), openai.as_str()],
    ) else {
        return;
    };
    let bytes = std::fs::read(&db).unwrap();
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    // The fixture really has word characters on both sides of each key.
    for (k, before) in [(&anthropic, b'c'), (&openai, b'i')] {
        let at = bytes
            .windows(k.len())
            .position(|w| w == k.as_bytes())
            .unwrap();
        assert_eq!(bytes[at - 1], before);
        assert!(bytes[at + k.len()].is_ascii_digit());
    }
    let img = ImageBuilder::new().layer(base().dir("srv").file("srv/state.db", &bytes));
    let f = check(&img, &anthropic);
    for (k, pattern) in [
        (&anthropic, "anthropic-api-key"),
        (&openai, "openai-project-key"),
    ] {
        let hit = one(&f, "secret-in-layer", pattern);
        assert_entry(hit, 0, "/srv/state.db", "visible");
        let at = bytes
            .windows(k.len())
            .position(|w| w == k.as_bytes())
            .unwrap();
        assert_eq!(hit["location"]["offset"], at);
        assert_eq!(
            hit["evidence"]["length"],
            k.len(),
            "the key's shape ends it"
        );
        assert!(hit["location"].get("line").is_none(), "binary: no line");
    }
    assert!(
        !String::from_utf8_lossy(&serde_json::to_vec(&f).unwrap()).contains(&openai),
        "never printed"
    );
}

#[test]
fn a_key_in_a_utf16_env_file_is_found() {
    // `.env` files saved by Windows editors: python3's `utf-16` codec writes a BOM (little-endian
    // here), `utf-16-be` with an explicit mark is the big-endian form.
    let k = key("sk-ant-api03-{b64u:93}AA");
    let dir = tempfile::tempdir().unwrap();
    let le = dir.path().join("le.env");
    let be = dir.path().join("be.env");
    let script = r"
import sys
text = '# réglages\r\nHOST=example.org\r\nANTHROPIC_API_KEY=' + sys.argv[3] + '\r\n'
with open(sys.argv[1], 'w', encoding='utf-16', newline='') as f:
    f.write(text)
with open(sys.argv[2], 'w', encoding='utf-16-be', newline='') as f:
    f.write('\ufeff' + text)
";
    let Some(()) = python(
        script,
        &[le.to_str().unwrap(), be.to_str().unwrap(), k.as_str()],
    ) else {
        return;
    };
    let le_bytes = std::fs::read(&le).unwrap();
    let be_bytes = std::fs::read(&be).unwrap();
    assert_eq!(&le_bytes[..2], &[0xff, 0xfe]);
    assert_eq!(&be_bytes[..2], &[0xfe, 0xff]);
    let img = ImageBuilder::new().layer(
        base()
            .dir("app")
            .file("app/.env", &le_bytes)
            .file("app/.env.be", &be_bytes),
    );
    let f = check(&img, &k);
    let hits: Vec<&Value> = f
        .iter()
        .filter(|x| x["evidence"]["pattern"] == "anthropic-api-key")
        .collect();
    assert_eq!(hits.len(), 2, "{f:#?}");
    let units_before = "# réglages\r\nHOST=example.org\r\nANTHROPIC_API_KEY="
        .encode_utf16()
        .count();
    for path in ["/app/.env", "/app/.env.be"] {
        let hit = hits
            .iter()
            .find(|h| h["location"]["path"] == path)
            .unwrap_or_else(|| panic!("{path}: {f:#?}"));
        assert_entry(hit, 0, path, "visible");
        // The offset is in the file's own bytes: the mark, then two bytes per code unit.
        assert_eq!(hit["location"]["offset"], 2 + 2 * units_before);
        assert_eq!(hit["location"]["line"], 3);
        assert_eq!(hit["evidence"]["length"], k.len());
    }
}

#[test]
fn a_byte_order_mark_in_front_of_plain_bytes_hides_no_key() {
    // Two bytes anyone can prepend: the file is also scanned as the raw bytes it is.
    let k = key("sk-ant-api03-{b64u:93}AA");
    for mark in [[0xffu8, 0xfe], [0xfe, 0xff]] {
        let mut bytes = mark.to_vec();
        bytes.extend_from_slice(format!("A\0B\0C\0D\0\nANTHROPIC_API_KEY={k}\n").as_bytes());
        let img = ImageBuilder::new().layer(base().dir("app").file("app/masked.bin", &bytes));
        let f = check(&img, &k);
        assert!(
            f.iter()
                .any(|x| x["evidence"]["pattern"] == "anthropic-api-key"
                    && x["location"]["path"] == "/app/masked.bin"),
            "{mark:?}: {f:#?}"
        );
    }
}
