//! The README's sample image (`testdata/sample-leaky.oci.tar`, made by umoci through
//! `testdata/make-sample.sh`): the gate must stop it, for exactly the mistakes it was built with.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::run_bin;

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/sample-leaky.oci.tar")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_gate_stops_the_sample_for_each_planted_mistake() {
    let o = run_bin(&[&sample(), "--exec", "never", "--format", "json"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let failed: BTreeSet<&str> = report["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = [
        "base-os",
        "credential-file",
        "denied-license",
        "entrypoint",
        "image-user",
        "preset-files",
        "provider-env",
        "runtime-license",
        "sidecar-config",
    ]
    .into();
    assert_eq!(failed, want);
    // the deleted credential is still reported, with its fate
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("deleted by layer 2"), "{text}");
    // the placeholder value is never printed in full
    assert!(
        !text.contains("changeme"),
        "a credential value leaked into the report"
    );
}

#[test]
fn the_human_report_ends_with_a_verdict_per_platform() {
    let o = run_bin(&[&sample(), "--exec", "never"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let last = out.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
    assert!(
        last.contains("linux/amd64") && last.contains("FAIL"),
        "{last}"
    );
    assert!(!out.contains("changeme"));
}
