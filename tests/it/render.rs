//! `x1-validate render`: deterministic output, contract-breaking values refused with exit 2 and the
//! `sidecar-config` explanation, no write outside `--out`, and the embedded overlay in sync with
//! `presets/opencode/overlay/`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_x1-validate"));
    c.env("NO_COLOR", "1").env_remove("SOURCE_DATE_EPOCH");
    c
}

fn render(out: &Path, extra: &[&str]) -> Output {
    bin()
        .args(["render", "--preset", "opencode", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run x1-validate")
}

/// Every file under `dir`: relative path → (mode, bytes, mtime seconds).
fn snapshot(dir: &Path) -> BTreeMap<String, (u32, Vec<u8>, u64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let mtime = md
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                out.insert(
                    rel,
                    (
                        md.permissions().mode() & 0o7777,
                        fs::read(e.path()).unwrap(),
                        mtime,
                    ),
                );
            }
        }
    }
    out
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn render_is_deterministic_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b/nested"));
    for out in [&a, &b] {
        let o = render(out, &["--set", "permission.bash=ask"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (sa, sb) = (snapshot(&a), snapshot(&b));
    assert_eq!(sa, sb, "two renders differ");
    for (path, mode) in [
        ("bin/entrypoint", 0o755),
        ("bin/gh", 0o755),
        ("bin/git-credential-x1", 0o755),
        ("app/run.sh", 0o755),
        ("app/adapter/main.mjs", 0o644),
        ("app/config/opencode.json", 0o644),
        ("app/config/opencode-version", 0o644),
        ("etc/gitconfig", 0o644),
    ] {
        let (m, bytes, mtime) = sa.get(path).unwrap_or_else(|| panic!("{path} missing"));
        assert_eq!(*m, mode, "{path} mode");
        assert!(!bytes.is_empty(), "{path} empty");
        assert_eq!(*mtime, 0, "{path} mtime is not fixed");
    }
    assert!(
        !sa.keys().any(|k| k.contains("/test/")),
        "adapter tests are not shipped"
    );
    let cfg: serde_json::Value = serde_json::from_slice(&sa["app/config/opencode.json"].1).unwrap();
    assert_eq!(cfg["permission"]["bash"], "ask");
    assert_eq!(cfg["share"], "disabled");
    assert_eq!(cfg["autoupdate"], false);
    assert_eq!(
        cfg["enabled_providers"],
        serde_json::json!(["anthropic", "openai"])
    );
    for p in ["anthropic", "openai"] {
        assert_eq!(
            cfg["provider"][p]["options"]["baseURL"],
            "http://localhost:11432/v1"
        );
        assert_eq!(
            cfg["provider"][p]["options"]["apiKey"],
            "sidecar-placeholder"
        );
    }
    assert_eq!(sa["app/config/opencode-version"].1, b"1.18.33\n");
}

#[test]
fn values_file_adds_a_sidecar_provider_and_mcp_server() {
    let tmp = tempfile::tempdir().unwrap();
    let values = tmp.path().join("values.toml");
    fs::write(
        &values,
        r#"
enabled_providers = ["sidecar"]
model = "sidecar/m1"
small_model = "sidecar/m1"
api_key = "{env:X1_SIDECAR_TOKEN}"
[providers.sidecar]
npm = "@ai-sdk/openai-compatible"
models = { m1 = { name = "M1", tool_call = true } }
[mcp.files]
command = ["node", "/opt/mcp/files.js"]
environment = { ROOT = "/home/agent/workspace" }
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = render(&out, &["--values", values.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("app/config/opencode.json")).unwrap()).unwrap();
    assert_eq!(cfg["model"], "sidecar/m1");
    assert_eq!(
        cfg["provider"]["sidecar"]["npm"],
        "@ai-sdk/openai-compatible"
    );
    assert_eq!(
        cfg["provider"]["sidecar"]["options"]["baseURL"],
        "http://localhost:11432/v1"
    );
    assert!(
        cfg["provider"]["sidecar"]["options"]
            .get("apiKey")
            .is_none(),
        "custom providers need no key"
    );
    assert_eq!(
        cfg["provider"]["anthropic"]["options"]["apiKey"],
        "{env:X1_SIDECAR_TOKEN}"
    );
    assert_eq!(cfg["mcp"]["files"]["type"], "local");
    assert_eq!(
        cfg["mcp"]["files"]["command"],
        serde_json::json!(["node", "/opt/mcp/files.js"])
    );
    // The same values as JSON give the same bytes.
    let json_values = tmp.path().join("values.json");
    fs::write(
        &json_values,
        r#"{"enabled_providers":["sidecar"],"model":"sidecar/m1","small_model":"sidecar/m1",
            "api_key":"{env:X1_SIDECAR_TOKEN}",
            "providers":{"sidecar":{"npm":"@ai-sdk/openai-compatible","models":{"m1":{"name":"M1","tool_call":true}}}},
            "mcp":{"files":{"command":["node","/opt/mcp/files.js"],"environment":{"ROOT":"/home/agent/workspace"}}}}"#,
    )
    .unwrap();
    let out2 = tmp.path().join("out2");
    let o = render(&out2, &["--values", json_values.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(snapshot(&out), snapshot(&out2));
}

#[test]
fn contract_breaking_values_are_refused_with_the_rule_explanation() {
    let tmp = tempfile::tempdir().unwrap();
    // A literal key-shaped value, built at run time (never a literal in the repo).
    let literal_key = format!("sk-ant-api03-{}", "Zq7".repeat(30));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["providers.anthropic.base_url=https://api.anthropic.com/v1".into()],
            "is not the sidecar",
        ),
        (
            vec!["sidecar_url=http://evil.example:11432".into()],
            "is not the sidecar",
        ),
        (
            vec![format!("api_key={literal_key}")],
            "neither the agreed placeholder nor an env reference",
        ),
        (
            vec![
                "providers.x.npm=left-pad-provider".into(),
                "enabled_providers=[\"x\"]".into(),
                "model=x/m".into(),
                "small_model=x/m".into(),
            ],
            "not bundled",
        ),
    ];
    for (i, (sets, needle)) in cases.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let mut args = Vec::new();
        for s in sets {
            args.push("--set");
            args.push(s.as_str());
        }
        let o = render(&out, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "case {i}: {err}");
        assert!(err.contains(needle), "case {i}: {err}");
        assert!(
            err.contains("sidecar-config"),
            "case {i}: names the rule: {err}"
        );
        assert!(
            err.contains("What it checks"),
            "case {i}: carries the rule's explanation: {err}"
        );
        assert!(
            !err.contains(&literal_key),
            "case {i}: the key is echoed in full"
        );
        assert!(!out.exists(), "case {i}: nothing written on refusal");
    }
    // A literal provider credential in an MCP server's environment.
    let out = tmp.path().join("mcp");
    let o = render(
        &out,
        &[
            "--set",
            "mcp.m.command=[\"x\"]",
            "--set",
            &format!("mcp.m.environment.ANTHROPIC_API_KEY={literal_key}"),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("provider-env"));
    // Plain usage errors are exit 2 too: unknown key, unknown preset, bad model.
    for args in [
        vec!["--set", "bogus=1"],
        vec!["--set", "model=nope/x"],
        vec!["--set", "permission.bash=sometimes"],
    ] {
        let o = render(&tmp.path().join("u"), &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = bin()
        .args(["render", "--preset", "nope", "--out"])
        .arg(tmp.path().join("n"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn never_writes_outside_out() {
    let tmp = tempfile::tempdir().unwrap();
    let victim = tmp.path().join("victim");
    fs::create_dir(&victim).unwrap();
    // --out as a symlink to another directory: refused, the target stays empty.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = render(&link, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("symlink"));
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 0);
    // --out non-empty: refused, nothing added.
    fs::write(victim.join("keep"), b"x").unwrap();
    let o = render(&victim, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 1);
    // --out a file: refused.
    let o = render(&victim.join("keep"), &[]);
    assert_eq!(o.status.code(), Some(2));
    // A path with `..` still lands where it says, inside its own new directory.
    let out = tmp.path().join("x/../y");
    let o = render(&out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tmp.path().join("y/bin/entrypoint").is_file());
    assert_eq!(fs::read_dir(&victim).unwrap().count(), 1);
}

/// Every overlay file on disk (outside the adapter's tests) is embedded, and vice versa.
#[test]
fn embedded_overlay_matches_the_preset_directory() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets/opencode/overlay");
    let mut on_disk = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if x1_validate::render::overlay::NOT_RENDERED
                .iter()
                .any(|n| rel.starts_with(n.trim_end_matches('/')))
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                on_disk.push(rel);
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = x1_validate::render::overlay::OPENCODE
        .iter()
        .map(|f| f.path.to_string())
        .collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
    for f in x1_validate::render::overlay::OPENCODE {
        let disk = fs::metadata(root.join(f.path))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            disk & 0o111 != 0,
            f.mode & 0o111 != 0,
            "{} executable bit",
            f.path
        );
    }
}
