//! The peers' own secret test vectors, re-run through the real binary: gitleaks' `tps`/`fps` and
//! trivy's `testdata/*.txt` (testdata/peer-vectors/, provenance and licences in its README). Each
//! vector is one file of one image (as a reviewer would try them); its expected result is the set of
//! pattern ids x1-validate reports for that file (empty: nothing). Key bodies are templates expanded
//! with random characters now: no live-looking literal is committed.
//!
//! `X1_PEER_VECTORS_KEEP=DIR` keeps the generated images under DIR (to run another build on them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rand::Rng;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{ImageBuilder, Layer, run_bin};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    schema_version: u32,
    peer: String,
    vector: Vec<Vector>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    n: usize,
    peer_rule: String,
    kind: String,
    text: String,
    expect: Vec<String>,
}

fn expand(template: &str) -> String {
    let mut rng = rand::rng();
    x1_validate::scan::template::expand(template, &mut |a: &[u8]| a[rng.random_range(0..a.len())])
        .expect("known template classes")
}

/// Run one peer's vectors; returns (peer tps found, peer tps, peer fps silent, peer fps).
#[allow(clippy::print_stderr)] // the counts are the report (issue 16 asks for them)
fn run(file: &str) -> (usize, usize, usize, usize) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/peer-vectors")
        .join(file);
    let vf: VectorFile = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(vf.schema_version, 1);
    let mut layer = Layer::new().dir("v");
    let mut texts = Vec::new();
    for v in &vf.vector {
        let text = expand(&v.text);
        layer = layer.file(&format!("v/{:03}.txt", v.n), text.as_bytes());
        texts.push(text);
    }
    let img = ImageBuilder::new().layer(layer);
    let keep = std::env::var_os("X1_PEER_VECTORS_KEEP");
    let tmp = tempfile::tempdir().unwrap();
    let dir = keep
        .as_ref()
        .map_or(tmp.path().to_path_buf(), |k| Path::new(k).join(&vf.peer));
    std::fs::create_dir_all(&dir).unwrap();
    let oci = img.write_oci_dir(&dir);
    let out = run_bin(&[
        "check",
        "--exec",
        "never",
        "--format",
        "json",
        oci.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for t in &texts {
        assert!(!stdout.contains(t.trim()), "a vector was printed");
    }
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in doc["images"][0]["findings"].as_array().unwrap() {
        if f["rule_id"] == "secret-in-layer" {
            found
                .entry(f["location"]["path"].as_str().unwrap().to_string())
                .or_default()
                .insert(f["evidence"]["pattern"].as_str().unwrap().to_string());
        }
    }
    let (mut tp_found, mut tps, mut fp_silent, mut fps) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    for v in &vf.vector {
        let got = found
            .remove(&format!("/v/{:03}.txt", v.n))
            .unwrap_or_default();
        let want: BTreeSet<String> = v.expect.iter().cloned().collect();
        if v.kind.starts_with("tp") {
            tps += 1;
            tp_found += usize::from(!got.is_empty());
        } else {
            fps += 1;
            fp_silent += usize::from(got.is_empty());
        }
        if got != want {
            wrong.push(format!(
                "{} #{} ({} {}): expected {want:?}, got {got:?}",
                vf.peer, v.n, v.peer_rule, v.kind
            ));
        }
    }
    eprintln!(
        "{}: {tp_found}/{tps} of its true positives found, {fp_silent}/{fps} of its false positives silent",
        vf.peer
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    (tp_found, tps, fp_silent, fps)
}

#[test]
fn gitleaks_vectors() {
    let (found, tps, _, fps) = run("gitleaks.toml");
    assert!(tps >= 50 && fps >= 20, "the vector set shrank");
    assert_eq!(found, tps, "every gitleaks true positive is found");
}

#[test]
fn trivy_vectors() {
    let (found, tps, _, fps) = run("trivy.toml");
    assert!(tps >= 18 && fps >= 8, "the vector set shrank");
    assert_eq!(found, tps, "every trivy true positive is found");
}
