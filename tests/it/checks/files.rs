//! `credential-file`, `preset-files` and `sidecar-config` on in-code images: the rules that read files.

use x1_validate::report::RuleStatus;

use super::{
    OPENCODE_JSON, Run, assert_fails, base_layer, check, config, findings, overlay_layer, status,
    with_overlay,
};
use crate::common::{Layer, random_alnum};

#[test]
fn credential_files_in_any_layer() {
    let token = random_alnum(36);
    let added_then_deleted = vec![
        Layer::new().dir("root").file(
            "root/.git-credentials",
            format!("https://x:{token}@github.com\n").as_bytes(),
        ),
        Layer::new().whiteout("root/.git-credentials"),
    ];
    let mut layers = vec![base_layer(), overlay_layer(OPENCODE_JSON)];
    layers.extend(added_then_deleted);
    let r = check(&config(layers), &Run::default());
    assert_fails(&r, "credential-file", "/root/.git-credentials");
    let f = findings(&r, "credential-file");
    let loc = serde_json::to_value(&f[0].location).unwrap();
    assert_eq!(loc["layer"]["index"], 2);
    assert!(
        loc["fate"].as_str().unwrap().contains("deleted by layer 3"),
        "{loc}"
    );

    let cases = [
        (
            "home/agent/.npmrc",
            format!("//registry.npmjs.org/:_authToken={token}\n"),
            true,
        ),
        (
            "home/agent/.npmrc",
            "//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n".to_string(),
            false,
        ),
        (
            "home/agent/.config/gh/hosts.yml",
            format!("github.com:\n    oauth_token: {token}\n"),
            true,
        ),
        (
            "home/agent/.config/gh/hosts.yml",
            "github.com:\n    git_protocol: https\n".into(),
            false,
        ),
        (
            "home/agent/.local/share/opencode/auth.json",
            "{}".into(),
            true,
        ),
        (
            "home/agent/.local/share/opencode/opencode.db-wal",
            "x".into(),
            true,
        ),
        (
            "home/agent/.docker/config.json",
            format!("{{\"auths\": {{\"r\": {{\"auth\": \"{token}\"}}}}}}"),
            true,
        ),
        (
            "home/agent/.docker/config.json",
            "{\"credsStore\": \"pass\"}".into(),
            false,
        ),
        (
            "home/agent/.ssh/id_ed25519.pub",
            "ssh-ed25519 AAAA x".into(),
            false,
        ),
    ];
    for (path, content, bad) in cases {
        let extra = Layer::new().file_full(path, content.as_bytes(), 0o600, 1000, 1000);
        let r = check(
            &config(vec![base_layer(), overlay_layer(OPENCODE_JSON), extra]),
            &Run::default(),
        );
        if bad {
            assert_fails(&r, "credential-file", path);
        } else {
            assert_eq!(
                status(&r, "credential-file"),
                RuleStatus::Passed,
                "{path}: {:#?}",
                r.findings
            );
        }
    }
}

#[test]
fn preset_files_fail() {
    let cases: Vec<(Layer, &str)> = vec![
        (Layer::new().whiteout("x1/bin/gh"), "/x1/bin/gh is missing"),
        (
            Layer::new().file("x1/app/run.sh", b"#!/bin/sh\n"),
            "/x1/app/run.sh is a regular file without execute bits",
        ),
        (
            Layer::new().dir("x1/etc/gitconfig"),
            "/x1/etc/gitconfig is a directory, not a regular file",
        ),
        (Layer::new().opaque("x1/app"), "/x1/app/adapter is missing"),
    ];
    for (layer, needle) in cases {
        let r = check(
            &config(vec![base_layer(), overlay_layer(OPENCODE_JSON), layer]),
            &Run::default(),
        );
        assert_fails(&r, "preset-files", needle);
    }
}

#[test]
fn sidecar_config_fails() {
    let key = format!("sk-{}", random_alnum(24));
    let cases = [
        (
            OPENCODE_JSON.replace(
                "http://localhost:11432/v1\", \"apiKey\": \"{env",
                "https://api.anthropic.com/v1\", \"apiKey\": \"{env",
            ),
            "is not the sidecar",
        ),
        (
            OPENCODE_JSON.replace("sidecar-placeholder", &key),
            "neither the agreed placeholder",
        ),
        (
            OPENCODE_JSON.replace("\"autoupdate\": false", "\"autoupdate\": true"),
            "auto-update is not off",
        ),
        (
            OPENCODE_JSON.replace("\"share\": \"disabled\"", "\"share\": \"auto\""),
            "sharing is not off",
        ),
        (
            OPENCODE_JSON.replace(
                "\"enabled_providers\": [\"anthropic\", \"openai\", \"x1\"],",
                "",
            ),
            "/enabled_providers is unset",
        ),
        (
            OPENCODE_JSON.replace("\"x1\"]", "\"x1\", \"groq\"]"),
            "enabled provider `groq` is not configured",
        ),
        (
            OPENCODE_JSON.replace("@ai-sdk/openai-compatible", "some-provider-sdk"),
            "not bundled",
        ),
        (
            OPENCODE_JSON.replace(
                "\"lsp\": false,",
                "\"lsp\": false, \"plugin\": [\"opencode-evil@1.0\"],",
            ),
            "plugin `opencode-evil@1.0`",
        ),
        (
            OPENCODE_JSON.replace("\"share\"", "\"share\" \"oops\""),
            "is not valid",
        ),
        (
            OPENCODE_JSON.replace(
                "\"apiKey\": \"{env:X1_SIDECAR_TOKEN}\"",
                "\"apiKey\": \"${X1_SIDECAR_TOKEN}\"",
            ),
            "neither the agreed placeholder",
        ),
    ];
    for (json, needle) in &cases {
        let r = check(&with_overlay(json), &Run::default());
        assert_fails(&r, "sidecar-config", needle);
        assert!(!format!("{:?}", r.findings).contains(&key));
    }
    let plugin_local = OPENCODE_JSON.replace(
        "\"lsp\": false,",
        "\"lsp\": false, \"plugin\": [\"file:///x1/app/plugin.js\"],",
    );
    assert_eq!(
        status(
            &check(&with_overlay(&plugin_local), &Run::default()),
            "sidecar-config"
        ),
        RuleStatus::Passed
    );
    // a parse error names its line
    let r = check(&with_overlay(&cases[8].0), &Run::default());
    let loc = serde_json::to_value(&findings(&r, "sidecar-config")[0].location).unwrap();
    assert_eq!(loc["line"], 5, "{loc}");
}
