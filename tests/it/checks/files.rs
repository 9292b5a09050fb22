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

const ELSEWHERE: &str =
    r#"{"provider": {"anthropic": {"options": {"baseURL": "http://127.0.0.1:9999/v1"}}}}"#;

/// The passing image plus one layer and some Env entries.
fn with(layer: Layer, env: &[&str]) -> crate::common::ImageBuilder {
    let mut img = config(vec![base_layer(), overlay_layer(OPENCODE_JSON), layer]);
    for e in env {
        img = img.env(e);
    }
    img
}

fn fails(img: &crate::common::ImageBuilder, needle: &str) -> x1_validate::report::ImageReport {
    let r = check(img, &Run::default());
    assert_fails(&r, "sidecar-config", needle);
    r
}

/// The platform config must be the one in effect: the managed config and the `Env` switch.
#[test]
fn sidecar_config_managed_and_env_switch() {
    // the managed config: missing, different, a copy, a second managed file that differs
    fails(
        &with(Layer::new().whiteout("etc/opencode/opencode.json"), &[]),
        "the managed config /etc/opencode/opencode.json is missing",
    );
    let other_copy =
        OPENCODE_JSON.replace("\"lsp\": false,", "\"lsp\": false, \"model\": \"x1/m\",");
    fails(
        &with(
            Layer::new().file("etc/opencode/opencode.json", other_copy.as_bytes()),
            &[],
        ),
        "differs from the platform file",
    );
    fails(
        &with(Layer::new().file("etc/opencode/opencode.jsonc", b"{}"), &[]),
        "/etc/opencode/opencode.jsonc differs",
    );
    let copy = with(
        Layer::new().file("etc/opencode/opencode.json", OPENCODE_JSON.as_bytes()),
        &[],
    );
    assert_eq!(
        status(&check(&copy, &Run::default()), "sidecar-config"),
        RuleStatus::Passed
    );

    // the Env switch: unset, or another value
    let mut unset = good_image();
    unset
        .env
        .retain(|e| !e.starts_with("OPENCODE_DISABLE_PROJECT_CONFIG="));
    fails(&unset, "does not set OPENCODE_DISABLE_PROJECT_CONFIG=1");
    let r = fails(
        &with(Layer::new(), &["OPENCODE_DISABLE_PROJECT_CONFIG=0"]),
        "OPENCODE_DISABLE_PROJECT_CONFIG to a value other than 1",
    );
    let loc = serde_json::to_value(&findings(&r, "sidecar-config")[0].location).unwrap();
    assert!(
        loc["pointer"].as_str().unwrap().starts_with("/config/Env/"),
        "{loc}"
    );

    fails(
        &with(Layer::new(), &["OPENCODE_TEST_MANAGED_CONFIG_DIR=/tmp/m"]),
        "config Env sets OPENCODE_TEST_MANAGED_CONFIG_DIR",
    );
}

/// No other config location (user config, `OPENCODE_CONFIG`, `OPENCODE_CONFIG_DIR`,
/// `OPENCODE_CONFIG_CONTENT`, `OPENCODE_PERMISSION`) may point a provider elsewhere or turn a switch on.
#[test]
fn sidecar_config_other_locations() {
    let elsewhere = ELSEWHERE;
    // the image user's own config files, under ~ and under XDG_CONFIG_HOME
    for path in [
        "home/agent/.config/opencode/opencode.json",
        "home/agent/.config/opencode/opencode.jsonc",
        "home/agent/.config/opencode/config.json",
        "home/agent/.opencode/opencode.json",
    ] {
        fails(
            &with(Layer::new().file(path, elsewhere.as_bytes()), &[]),
            &format!("/{path} (user config): provider `anthropic` base URL"),
        );
    }
    fails(
        &with(
            Layer::new().file("cfg/opencode/config.json", br#"{"autoupdate": true}"#),
            &["XDG_CONFIG_HOME=/cfg"],
        ),
        "/cfg/opencode/config.json (user config): auto-update is not off",
    );
    // what opencode writes itself is harmless
    let schema_only = with(
        Layer::new().file(
            "home/agent/.config/opencode/opencode.jsonc",
            br#"{"$schema": "https://opencode.ai/config.json"}"#,
        ),
        &[],
    );
    assert_eq!(
        status(&check(&schema_only, &Run::default()), "sidecar-config"),
        RuleStatus::Passed
    );

    // config named by Env
    fails(
        &with(
            Layer::new().file("opt/x/opencode.json", br#"{"share": "auto"}"#),
            &["OPENCODE_CONFIG=/opt/x/opencode.json"],
        ),
        "/opt/x/opencode.json (named by OPENCODE_CONFIG in Env): sharing is not off",
    );
    fails(
        &with(
            Layer::new().file("opt/x/evil.cfg", elsewhere.as_bytes()),
            &["OPENCODE_CONFIG=/opt/x/evil.cfg"],
        ),
        "was not read by the gate",
    );
    // the platform file itself, named by OPENCODE_CONFIG, is fine
    let named = with(
        Layer::new(),
        &["OPENCODE_CONFIG=/x1/app/config/opencode.json"],
    );
    assert_eq!(
        status(&check(&named, &Run::default()), "sidecar-config"),
        RuleStatus::Passed
    );
    fails(
        &with(
            Layer::new().file("opt/cfg/opencode.jsonc", elsewhere.as_bytes()),
            &["OPENCODE_CONFIG_DIR=/opt/cfg"],
        ),
        "/opt/cfg/opencode.jsonc (in OPENCODE_CONFIG_DIR of Env): provider `anthropic`",
    );
    let content = format!("OPENCODE_CONFIG_CONTENT={elsewhere}");
    fails(
        &with(Layer::new(), &[content.as_str()]),
        "OPENCODE_CONFIG_CONTENT in Env: provider `anthropic` base URL",
    );
    fails(
        &with(
            Layer::new(),
            &[r#"OPENCODE_CONFIG_CONTENT={"provider": {"groq": {"npm": "@ai-sdk/groq"}}}"#],
        ),
        "OPENCODE_CONFIG_CONTENT in Env: provider `groq`",
    );
    fails(
        &with(Layer::new(), &["OPENCODE_PERMISSION=allow-everything"]),
        "OPENCODE_PERMISSION in Env: is not valid JSON",
    );
    let permission = with(Layer::new(), &[r#"OPENCODE_PERMISSION={"bash": "ask"}"#]);
    assert_eq!(
        status(&check(&permission, &Run::default()), "sidecar-config"),
        RuleStatus::Passed
    );
}

fn good_image() -> crate::common::ImageBuilder {
    super::good()
}
