//! `--rules DIR` replaces rule files one by one, and a replaced `credentials.toml` reaches every check
//! that uses credential names — the content scan's by-name pattern included.

use std::fs;
use std::path::Path;

use crate::common::{ImageBuilder, Layer, random_alnum, run_bin};

fn custom_rules(dir: &Path) {
    let original =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/credentials.toml"))
            .unwrap();
    assert!(
        original.contains("names = [\n"),
        "credentials.toml layout changed"
    );
    fs::create_dir_all(dir).unwrap();
    fs::write(
        dir.join("credentials.toml"),
        original.replacen("names = [\n", "names = [\n  \"X1_CUSTOM_TOKEN\",\n", 1),
    )
    .unwrap();
}

#[test]
fn a_custom_credential_name_is_found_in_files_and_env() {
    let t = tempfile::tempdir().unwrap();
    let value = format!("{}7", random_alnum(31));
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("app")
                .file("app/.env", format!("X1_CUSTOM_TOKEN={value}\n").as_bytes()),
        )
        .env(&format!("X1_CUSTOM_TOKEN={value}"))
        .label("org.x1agent.runtime", "opencode")
        .write_oci_archive(t.path());
    let rules = t.path().join("rules");
    custom_rules(&rules);
    let args = |rules: Option<&Path>| {
        let mut a = vec![
            img.to_str().unwrap().to_string(),
            "--exec".into(),
            "never".into(),
            "--format".into(),
            "json".into(),
        ];
        if let Some(r) = rules {
            a.extend(["--rules".into(), r.to_str().unwrap().into()]);
        }
        a
    };
    let ids = |args: Vec<String>| -> Vec<(String, String)> {
        let v: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = run_bin(&v);
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&value),
            "the value leaked"
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        r["images"][0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f.to_string().contains("X1_CUSTOM_TOKEN")
                    || f["evidence"]["pattern"] == "provider-credential-assignment"
            })
            .map(|f| {
                (
                    f["rule_id"].as_str().unwrap().to_string(),
                    f["location"]["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(ids(args(None)).is_empty(), "unknown to the built-in rules");
    let found = ids(args(Some(&rules)));
    assert!(
        found.contains(&("provider-env".into(), "config".into())),
        "{found:?}"
    );
    assert!(
        found.contains(&("secret-in-layer".into(), "entry".into())),
        "{found:?}"
    );
}
