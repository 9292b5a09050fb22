//! `render`: writes the `/x1` overlay of a preset plus its runtime config (opencode.json) from preset
//! defaults and values, refusing values that would break the contract.
//!
//! Values are layered: the preset's embedded defaults (`presets/opencode/render.toml`), then
//! `--values FILE` (TOML, or JSON when the file starts with `{`), then each `--set KEY=VALUE` (dotted
//! key, TOML value, bare words taken as strings). The merged table is validated strictly (unknown
//! keys are errors), turned into `opencode.json` with sorted keys, and that document is put through
//! the same policy as the `sidecar-config` rule; any problem refuses the render with exit 2 and the
//! rule's own explanation. Same inputs, same bytes.

pub mod overlay;
pub mod write;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{Error, Result};
use crate::rules::{RuleId, RuleSet};
use write::RenderedFile;

/// The render values (`render.toml` schema).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Values {
    /// opencode-ai version the image installs and the healthcheck expects.
    pub opencode_version: String,
    /// The sidecar's AI proxy (`http://localhost:11432`).
    pub sidecar_url: String,
    /// Key for providers that need one: the placeholder or an `{env:VAR}` reference.
    pub api_key: String,
    pub enabled_providers: Vec<String>,
    /// `provider/model`.
    pub model: String,
    /// `provider/model` for titles and summaries.
    pub small_model: String,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderValues>,
    #[serde(default)]
    pub permission: BTreeMap<String, Value>,
    #[serde(default)]
    pub mcp: BTreeMap<String, McpValues>,
}

/// `[providers.ID]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderValues {
    /// SDK package for a custom provider (`@ai-sdk/openai-compatible`); none for built-ins.
    pub npm: Option<String>,
    pub name: Option<String>,
    /// Defaults to `sidecar_url` + `/v1`.
    pub base_url: Option<String>,
    /// Defaults to the global `api_key` for built-in providers, none for custom ones.
    pub api_key: Option<String>,
    #[serde(default)]
    pub models: BTreeMap<String, Value>,
    pub whitelist: Option<Vec<String>>,
}

/// `[mcp.NAME]`: a stdio MCP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpValues {
    pub command: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    pub enabled: Option<bool>,
    pub timeout: Option<u64>,
    pub cwd: Option<String>,
}

/// The presets `render` knows, with their defaults and overlay.
fn preset_sources(name: &str) -> Result<(&'static str, &'static [overlay::OverlayFile])> {
    match name {
        "opencode" => Ok((overlay::OPENCODE_DEFAULTS, overlay::OPENCODE)),
        other => Err(Error::Usage(format!(
            "render has no overlay for preset `{other}` (renderable: opencode)"
        ))),
    }
}

/// Merge `top` into `base` (tables merge key by key; anything else replaces).
pub fn merge(base: &mut Value, top: Value) {
    match (base, top) {
        (Value::Object(b), Value::Object(t)) => {
            for (k, v) in t {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, t) => *b = t,
    }
}

/// Parse a values file: JSON when it starts with `{`, otherwise TOML.
pub fn parse_values(name: &str, text: &str) -> Result<Value> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text)
            .map_err(|e| Error::Usage(format!("{name}: not valid JSON: {e}")));
    }
    let table: toml::Table =
        toml::from_str(text).map_err(|e| Error::Usage(format!("{name}: not valid TOML: {e}")))?;
    serde_json::to_value(table).map_err(|e| Error::Usage(format!("{name}: {e}")))
}

/// Apply one `KEY=VALUE` (dotted key; the value is TOML, else a bare string).
pub fn apply_set(doc: &mut Value, set: &str) -> Result<()> {
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| Error::Usage(format!("--set `{set}`: expected KEY=VALUE")))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Usage(format!("--set `{set}`: bad key `{key}`")));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .map_or_else(|| Ok(Value::String(raw.to_string())), serde_json::to_value)
        .map_err(|e| Error::Usage(format!("--set `{set}`: {e}")))?;
    let mut nested = value;
    for p in parts.iter().rev() {
        let mut m = Map::new();
        m.insert((*p).to_string(), nested);
        nested = Value::Object(m);
    }
    merge(doc, nested);
    Ok(())
}

/// Defaults, then the values file, then the `--set`s, validated into [`Values`].
pub fn resolve_values(
    preset: &str,
    values_file: Option<(&str, &str)>,
    sets: &[String],
) -> Result<Values> {
    let (defaults, _) = preset_sources(preset)?;
    let mut doc = parse_values("render defaults", defaults)?;
    if let Some((name, text)) = values_file {
        merge(&mut doc, parse_values(name, text)?);
    }
    for s in sets {
        apply_set(&mut doc, s)?;
    }
    serde_json::from_value(doc).map_err(|e| Error::Usage(format!("render values: {e}")))
}

fn usage(msg: String) -> Error {
    Error::Usage(msg)
}

fn check_model(values: &Values, key: &str, model: &str) -> Result<()> {
    let provider = model.split_once('/').map(|(p, m)| (p, m.is_empty()));
    match provider {
        Some((p, false)) if values.enabled_providers.iter().any(|e| e == p) => Ok(()),
        Some((p, false)) => Err(usage(format!(
            "{key} `{model}` uses provider `{p}`, which is not in enabled_providers ({})",
            values.enabled_providers.join(", ")
        ))),
        _ => Err(usage(format!("{key} `{model}` is not `provider/model`"))),
    }
}

fn permission_json(values: &Values) -> Result<Value> {
    let action = |v: &Value, at: &str| match v.as_str() {
        Some("allow" | "ask" | "deny") => Ok(()),
        _ => Err(usage(format!(
            "permission {at} is {v}, expected \"allow\", \"ask\" or \"deny\""
        ))),
    };
    for (k, v) in &values.permission {
        match v {
            Value::Object(rules) => {
                for (glob, a) in rules {
                    action(a, &format!("{k}.\"{glob}\""))?;
                }
            }
            other => action(other, k)?,
        }
    }
    Ok(json!(values.permission))
}

fn provider_json(values: &Values, id: &str, p: &ProviderValues) -> Value {
    let mut options = Map::new();
    let base = p
        .base_url
        .clone()
        .unwrap_or_else(|| format!("{}/v1", values.sidecar_url.trim_end_matches('/')));
    options.insert("baseURL".into(), Value::String(base));
    let key = p
        .api_key
        .clone()
        .or_else(|| p.npm.is_none().then(|| values.api_key.clone()));
    if let Some(k) = key {
        options.insert("apiKey".into(), Value::String(k));
    }
    let mut out = Map::new();
    out.insert("options".into(), Value::Object(options));
    if let Some(npm) = &p.npm {
        out.insert("npm".into(), Value::String(npm.clone()));
        out.insert(
            "name".into(),
            Value::String(p.name.clone().unwrap_or_else(|| id.to_string())),
        );
    } else if let Some(name) = &p.name {
        out.insert("name".into(), Value::String(name.clone()));
    }
    if !p.models.is_empty() {
        out.insert("models".into(), json!(p.models));
    }
    if let Some(w) = &p.whitelist {
        out.insert("whitelist".into(), json!(w));
    }
    Value::Object(out)
}

fn mcp_json(rules: &RuleSet, values: &Values) -> Result<Value> {
    let mut out = Map::new();
    for (name, m) in &values.mcp {
        if m.command.is_empty() || m.command[0].is_empty() {
            return Err(usage(format!("mcp.{name}.command must name a program")));
        }
        for (k, v) in &m.environment {
            let is_ref = v.starts_with("{env:") && v.ends_with('}');
            if rules.credentials.is_credential_var(k) && !v.is_empty() && !is_ref {
                return Err(usage(format!(
                    "refused: mcp.{name}.environment.{k} holds a literal provider credential; \
                     no provider key may exist anywhere in an image (rule provider-env). \
                     Use an {{env:{k}}} reference that the platform fills at run time."
                )));
            }
        }
        let mut s = Map::new();
        s.insert("type".into(), json!("local"));
        s.insert("command".into(), json!(m.command));
        if !m.environment.is_empty() {
            s.insert("environment".into(), json!(m.environment));
        }
        s.insert("enabled".into(), json!(m.enabled.unwrap_or(true)));
        if let Some(t) = m.timeout {
            s.insert("timeout".into(), json!(t));
        }
        if let Some(c) = &m.cwd {
            s.insert("cwd".into(), json!(c));
        }
        out.insert(name.clone(), Value::Object(s));
    }
    Ok(Value::Object(out))
}

/// The opencode.json document for `values` (not yet policy-checked).
pub fn opencode_document(rules: &RuleSet, values: &Values) -> Result<Value> {
    check_model(values, "model", &values.model)?;
    check_model(values, "small_model", &values.small_model)?;
    let providers: Map<String, Value> = values
        .providers
        .iter()
        .map(|(id, p)| (id.clone(), provider_json(values, id, p)))
        .collect();
    let mut doc = json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "lsp": false,
        "formatter": false,
        "enabled_providers": values.enabled_providers,
        "model": values.model,
        "small_model": values.small_model,
        "provider": providers,
        "permission": permission_json(values)?,
    });
    let mcp = mcp_json(rules, values)?;
    if mcp.as_object().is_some_and(|m| !m.is_empty()) {
        doc["mcp"] = mcp;
    }
    Ok(doc)
}

/// Refuse a document the `sidecar-config` rule would fail, with that rule's explanation.
pub fn enforce_contract(rules: &RuleSet, preset: &str, doc: &Value) -> Result<()> {
    let preset = rules.preset(preset)?;
    let Some(rc) = &preset.runtime_config else {
        return Ok(());
    };
    let mut problems = Vec::new();
    crate::checks::sidecar::evaluate(rc, doc, &mut problems);
    if problems.is_empty() {
        return Ok(());
    }
    let mut msg = String::from(
        "refused: these values would break the runtime contract (rule `sidecar-config`):\n",
    );
    for p in &problems {
        let _ = writeln!(msg, "  - {}", p.message);
        if let Some(h) = &p.help {
            let _ = writeln!(msg, "    help: {h}");
        }
    }
    if let Some(rule) = rules.rule(RuleId::SidecarConfig) {
        let _ = write!(
            msg,
            "\nsidecar-config: {}\n{}",
            rule.summary,
            rule.explain.trim()
        );
    }
    Err(Error::Usage(msg))
}

/// Everything `render` writes, in a fixed order.
pub fn render_files(
    rules: &RuleSet,
    preset: &str,
    values_file: Option<(&str, &str)>,
    sets: &[String],
) -> Result<Vec<RenderedFile>> {
    let (_, files) = preset_sources(preset)?;
    let values = resolve_values(preset, values_file, sets)?;
    let doc = opencode_document(rules, &values)?;
    enforce_contract(rules, preset, &doc)?;
    let mut text = serde_json::to_string_pretty(&doc)
        .map_err(|e| Error::Usage(format!("cannot serialise opencode.json: {e}")))?;
    text.push('\n');
    if !values
        .opencode_version
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
        || values.opencode_version.is_empty()
    {
        return Err(usage(format!(
            "opencode_version `{}` is not a version",
            values.opencode_version
        )));
    }
    let mut out: Vec<RenderedFile> = files
        .iter()
        .map(|f| RenderedFile {
            path: f.path.to_string(),
            bytes: f.bytes.to_vec(),
            mode: f.mode,
        })
        .collect();
    out.push(RenderedFile {
        path: "app/config/opencode.json".into(),
        bytes: text.into_bytes(),
        mode: 0o644,
    });
    out.push(RenderedFile {
        path: "app/config/opencode-version".into(),
        bytes: format!("{}\n", values.opencode_version).into_bytes(),
        mode: 0o644,
    });
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_parses_toml_values_and_bare_strings() {
        let mut doc = json!({"a": {"b": 1}});
        apply_set(&mut doc, "a.c=true").expect("set");
        apply_set(&mut doc, "a.d=anthropic/claude").expect("set");
        apply_set(&mut doc, "e=[\"x\", \"y\"]").expect("set");
        assert_eq!(
            doc,
            json!({"a": {"b": 1, "c": true, "d": "anthropic/claude"}, "e": ["x", "y"]})
        );
        assert!(apply_set(&mut doc, "novalue").is_err());
        assert!(apply_set(&mut doc, "a..b=1").is_err());
    }

    #[test]
    fn defaults_render_and_pass_the_policy() {
        let rules = RuleSet::embedded().expect("rules");
        let files = render_files(&rules, "opencode", None, &[]).expect("render");
        let cfg = files
            .iter()
            .find(|f| f.path == "app/config/opencode.json")
            .expect("config");
        let doc: Value = serde_json::from_slice(&cfg.bytes).expect("json");
        assert_eq!(
            doc["provider"]["anthropic"]["options"]["baseURL"],
            "http://localhost:11432/v1"
        );
        assert_eq!(doc["autoupdate"], false);
    }
}
