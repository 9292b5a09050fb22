//! `sidecar-config`: the runtime config the preset names parses (JSON, JSONC or TOML), every configured
//! and enabled provider points at the sidecar, API keys are only the agreed placeholder or an env
//! reference, the preset's required settings hold (auto-update, sharing, …), and provider SDKs and
//! plugins are bundled or local.

use serde_json::Value;

use super::env::evidence;
use super::support::{finding, inode, node_location, resolve, skipped, unresolved_reason};
use super::{CheckInput, CheckOutcome, jsonc};
use crate::image::{EntryKind, Resolved};
use crate::report::{Finding, Location};
use crate::rules::preset::{ConfigFormat, RuntimeConfig, SidecarPolicy};

const ID: &str = "sidecar-config";

/// `sidecar-config`.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    let Some(preset) = input.preset else {
        return skipped(ID, "no preset: the runtime label is missing or unknown");
    };
    let Some(rc) = &preset.runtime_config else {
        return skipped(
            ID,
            format!("preset `{}` names no runtime config", preset.name),
        );
    };
    let node = match resolve(input, &rc.path) {
        Resolved::Found { node, .. } if matches!(inode(input, node).kind, EntryKind::File) => node,
        other => {
            let f = finding(
                ID,
                format!(
                    "runtime config {} is missing or not a file ({})",
                    rc.path,
                    unresolved_reason(&other)
                ),
                Some("render it with `x1-validate render` and copy it into the image".into()),
                Location::Path {
                    path: rc.path.clone(),
                },
            );
            return CheckOutcome::from_findings(ID, vec![f]);
        }
    };
    let loc = node_location(input, node);
    let Some(bytes) = input.tree.content(input.listings, &rc.path) else {
        let f = finding(
            ID,
            format!("runtime config {} is too large to inspect", rc.path),
            None,
            loc,
        );
        return CheckOutcome::from_findings(ID, vec![f]);
    };
    let doc = match parse(rc.format, bytes) {
        Ok(v) => v,
        Err((msg, line)) => {
            let mut loc = loc;
            if let Location::Entry { line: l, .. } = &mut loc {
                *l = line;
            }
            let f = finding(
                ID,
                format!("runtime config {} is not valid: {msg}", rc.path),
                None,
                loc,
            );
            return CheckOutcome::from_findings(ID, vec![f]);
        }
    };
    let mut problems = Vec::new();
    evaluate(rc, &doc, &mut problems);
    let findings = problems
        .into_iter()
        .map(|p| {
            let mut f = finding(
                ID,
                format!("{}: {}", rc.path, p.message),
                p.help,
                loc.clone(),
            );
            f.evidence = p.evidence;
            f
        })
        .collect();
    CheckOutcome::from_findings(ID, findings)
}

/// One policy violation inside the document.
#[derive(Debug, Clone)]
pub struct Problem {
    pub message: String,
    pub help: Option<String>,
    pub evidence: Option<crate::report::Evidence>,
}

fn problem(message: String, help: Option<&str>) -> Problem {
    Problem {
        message,
        help: help.map(str::to_string),
        evidence: None,
    }
}

/// Parse the config; `Err((message, line))`.
pub fn parse(format: ConfigFormat, bytes: &[u8]) -> Result<Value, (String, Option<u64>)> {
    let text = std::str::from_utf8(bytes).map_err(|e| (format!("not UTF-8 ({e})"), None))?;
    match format {
        ConfigFormat::Json | ConfigFormat::Jsonc => {
            let text = if format == ConfigFormat::Jsonc {
                jsonc::to_json(text)
            } else {
                text.to_string()
            };
            serde_json::from_str(&text).map_err(|e| (e.to_string(), Some(e.line() as u64)))
        }
        ConfigFormat::Toml => {
            let v: toml::Value = toml::from_str(text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() as u64 + 1);
                (e.message().to_string(), line)
            })?;
            serde_json::to_value(v).map_err(|e| (e.to_string(), None))
        }
    }
}

/// Apply the runtime-config policy to a parsed document.
pub fn evaluate(rc: &RuntimeConfig, doc: &Value, out: &mut Vec<Problem>) {
    let sc = &rc.sidecar;
    api_keys(sc, doc, "", out);
    providers(sc, doc, out);
    for req in &rc.require {
        let value = doc.pointer(&req.pointer);
        let failed = if req.absent {
            value.is_some()
        } else if req.sidecar_url {
            !value
                .and_then(Value::as_str)
                .is_some_and(|u| is_sidecar_url(sc, u))
        } else {
            match value {
                None => !req.optional,
                Some(v) => !req.one_of.is_empty() && !req.one_of.contains(v),
            }
        };
        if failed {
            let shown = value.map_or_else(|| "unset".to_string(), Value::to_string);
            out.push(problem(
                format!("{} ({} is {shown})", req.message, req.pointer),
                None,
            ));
        }
    }
    for pol in &rc.plugins {
        let Some(list) = doc.pointer(&pol.pointer).and_then(Value::as_array) else {
            continue;
        };
        for (i, item) in list.iter().enumerate() {
            let spec = item
                .as_str()
                .or_else(|| item.get(0).and_then(Value::as_str))
                .unwrap_or("");
            if !pol
                .local_prefixes
                .iter()
                .any(|p| spec.starts_with(p.as_str()))
            {
                out.push(problem(
                    format!(
                        "plugin `{spec}` ({}/{i}) is fetched from npm at run time",
                        pol.pointer
                    ),
                    Some("bundle the plugin as a local file in the image and reference it by path"),
                ));
            }
        }
    }
}

/// Whether `url` is the sidecar's base URL with one of the accepted paths.
pub fn is_sidecar_url(sc: &SidecarPolicy, url: &str) -> bool {
    let url = url.trim().trim_end_matches('/');
    let base = sc.base_url.trim_end_matches('/');
    let Some(rest) = url
        .get(..base.len())
        .filter(|p| p.eq_ignore_ascii_case(base))
        .map(|_| &url[base.len()..])
    else {
        return false;
    };
    sc.paths.iter().any(|p| p.trim_end_matches('/') == rest)
}

fn api_keys(sc: &SidecarPolicy, v: &Value, pointer: &str, out: &mut Vec<Problem>) {
    let env_ref = sc
        .env_ref
        .as_deref()
        .and_then(|r| regex::Regex::new(r).ok());
    let mut stack = vec![(pointer.to_string(), v)];
    while let Some((ptr, v)) = stack.pop() {
        match v {
            Value::Object(map) => {
                for (k, child) in map {
                    let p = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                    if sc.api_key_names.iter().any(|n| n == k) {
                        let ok = child.as_str().is_some_and(|s| {
                            sc.placeholders.iter().any(|p| p == s)
                                || env_ref.as_ref().is_some_and(|r| r.is_match(s))
                        });
                        if !ok {
                            let mut pr = problem(
                                format!(
                                    "{p} is neither the agreed placeholder nor an env reference"
                                ),
                                Some(
                                    "the sidecar authenticates; use the placeholder or an {env:…} reference",
                                ),
                            );
                            pr.evidence = child.as_str().map(|s| evidence(s, k));
                            out.push(pr);
                        }
                    } else {
                        stack.push((p, child));
                    }
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    stack.push((format!("{ptr}/{i}"), child));
                }
            }
            _ => {}
        }
    }
}

fn providers(sc: &SidecarPolicy, doc: &Value, out: &mut Vec<Problem>) {
    let Some(ptr) = &sc.providers else { return };
    let empty = serde_json::Map::new();
    let map = doc
        .pointer(ptr)
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let help = Some("point the provider's base URL at the sidecar, http://localhost:11432/v1");
    for (id, cfg) in map {
        let url = sc
            .provider_base_url
            .as_ref()
            .and_then(|p| cfg.pointer(p))
            .and_then(Value::as_str);
        match url {
            None => out.push(problem(
                format!("provider `{id}` ({ptr}/{id}) has no base URL: it would call the provider directly"),
                help,
            )),
            Some(u) if !is_sidecar_url(sc, u) => out.push(problem(
                format!("provider `{id}` base URL `{u}` is not the sidecar ({})", sc.base_url),
                help,
            )),
            Some(_) => {}
        }
        if let Some(npm) = sc
            .provider_npm
            .as_ref()
            .and_then(|p| cfg.pointer(p))
            .and_then(Value::as_str)
            && !npm.starts_with("file://")
            && !sc.bundled_npm.iter().any(|b| b == npm)
        {
            out.push(problem(
                format!(
                    "provider `{id}` uses npm package `{npm}`, which is not bundled: it is fetched \
                     at run time"
                ),
                Some("use a bundled SDK such as @ai-sdk/openai-compatible"),
            ));
        }
    }
    let Some(en) = &sc.enabled else { return };
    let enabled: Vec<&str> = match doc.pointer(en) {
        None => {
            out.push(problem(
                format!("{en} is unset: the runtime enables providers on its own (hosted defaults, env keys)"),
                Some("list exactly the sidecar-bound providers"),
            ));
            return;
        }
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        Some(other) => {
            out.push(problem(
                format!("{en} is `{other}`, not a provider list"),
                None,
            ));
            return;
        }
    };
    for id in enabled {
        if !map.contains_key(id) {
            out.push(problem(
                format!("enabled provider `{id}` is not configured under {ptr}: it uses its default endpoint"),
                help,
            ));
        }
    }
}

/// Findings for a document outside an image (used by tests and `render` self-checks).
pub fn evaluate_document(rc: &RuntimeConfig, doc: &Value) -> Vec<Finding> {
    let mut problems = Vec::new();
    evaluate(rc, doc, &mut problems);
    problems
        .into_iter()
        .map(|p| {
            finding(
                ID,
                p.message,
                p.help,
                Location::Path {
                    path: rc.path.clone(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSet;

    fn policy(preset: &str) -> RuntimeConfig {
        let rs = RuleSet::embedded().expect("shipped presets load");
        rs.presets[preset]
            .runtime_config
            .clone()
            .expect("has a runtime config")
    }

    fn problems(preset: &str, text: &str) -> Vec<String> {
        let rc = policy(preset);
        let doc = parse(rc.format, text.as_bytes()).expect("parses");
        let mut out = Vec::new();
        evaluate(&rc, &doc, &mut out);
        out.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn codex_toml_policy() {
        let ok = "model_provider = \"x1\"\ncheck_for_update_on_startup = false\n[model_providers.x1]\nname = \"x1\"\nbase_url = \"http://localhost:11432/v1\"\n";
        assert!(
            problems("codex", ok).is_empty(),
            "{:?}",
            problems("codex", ok)
        );
        let builtin = ok.replace("model_provider = \"x1\"", "model_provider = \"openai\"");
        let p = problems("codex", &builtin);
        assert!(
            p.iter().any(|m| m.contains("enabled provider `openai`")),
            "{p:?}"
        );
        let bearer = ok.replace(
            "[model_providers.x1]",
            "[model_providers.x1]\nexperimental_bearer_token = \"abc\"",
        );
        let p = problems("codex", &bearer);
        assert!(
            p.iter().any(|m| m.contains("experimental_bearer_token")),
            "{p:?}"
        );
    }

    #[test]
    fn claude_code_json_policy() {
        let ok = r#"{"env": {"ANTHROPIC_BASE_URL": "http://localhost:11432", "ANTHROPIC_AUTH_TOKEN": "sidecar-placeholder", "DISABLE_AUTOUPDATER": "1"}}"#;
        assert!(
            problems("claude-code", ok).is_empty(),
            "{:?}",
            problems("claude-code", ok)
        );
        let direct = ok.replace("http://localhost:11432", "https://api.anthropic.com");
        assert!(
            problems("claude-code", &direct)
                .iter()
                .any(|m| m.contains("ANTHROPIC_BASE_URL"))
        );
        let helper = ok.replace("{\"env\"", "{\"apiKeyHelper\": \"/bin/key\", \"env\"");
        assert!(
            problems("claude-code", &helper)
                .iter()
                .any(|m| m.contains("apiKeyHelper"))
        );
    }

    #[test]
    fn sidecar_urls() {
        let sc = policy("opencode").sidecar;
        for ok in [
            "http://localhost:11432",
            "http://localhost:11432/",
            "http://LOCALHOST:11432/v1",
            "http://localhost:11432/v1/",
        ] {
            assert!(is_sidecar_url(&sc, ok), "{ok}");
        }
        for bad in [
            "http://localhost:11433/v1",
            "https://localhost:11432",
            "http://localhost:11432/v2",
            "http://localhost:114320",
            "http://evil/localhost:11432",
        ] {
            assert!(!is_sidecar_url(&sc, bad), "{bad}");
        }
    }
}
