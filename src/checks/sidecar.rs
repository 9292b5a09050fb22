//! `sidecar-config`: the runtime config the preset names parses (JSON, JSONC or TOML), every configured
//! and enabled provider points at the sidecar, API keys are only the agreed placeholder or an env
//! reference, the preset's required settings hold (auto-update, sharing, …), and provider SDKs and
//! plugins are bundled or local. Where the preset names them (`[runtime_config.effective]`), the platform
//! file must also be the config in effect: installed as the highest-precedence (managed) config, the
//! `Env` switches set, and every other place the runtime reads config from absent, a copy, or harmless.

use crate::rules::RuleId;
use std::collections::BTreeMap;

use serde_json::Value;

use super::env::evidence;
use super::support::config_location;
use super::support::{finding, inode, node_location, resolve, skipped, unresolved_reason};
use super::{CheckInput, CheckOutcome, jsonc};
use crate::image::{EntryKind, Resolved};
use crate::report::{Finding, Location};
use crate::rules::preset::{ConfigFormat, EffectivePolicy, RuntimeConfig, SidecarPolicy};

const ID: RuleId = RuleId::SidecarConfig;

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
    let mut findings: Vec<Finding> = problems
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
    if let Some(eff) = &rc.effective {
        let platform = Platform {
            rc,
            bytes,
            doc: &doc,
        };
        effective(input, &platform, eff, &mut findings);
    }
    CheckOutcome::from_findings(ID, findings)
}

/// The platform's own config, as read from the image.
struct Platform<'a> {
    rc: &'a RuntimeConfig,
    bytes: &'a [u8],
    doc: &'a Value,
}

/// The image's `Env` as name → (index, value); a repeated name keeps its last value, as runtimes do.
fn env_map(env: &[String]) -> BTreeMap<&str, (usize, &str)> {
    env.iter()
        .enumerate()
        .filter_map(|(i, kv)| kv.split_once('=').map(|(k, v)| (k, (i, v))))
        .collect()
}

fn join(dir: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

/// The config in effect: managed config, `Env` switches, every other config location.
fn effective(
    input: &CheckInput<'_>,
    platform: &Platform<'_>,
    eff: &EffectivePolicy,
    out: &mut Vec<Finding>,
) {
    managed(input, platform, eff, out);
    let env = env_map(&input.image.config.env);
    for name in &eff.forbidden_env {
        if let Some((i, _)) = env.get(name.as_str()) {
            out.push(finding(
                ID,
                format!(
                    "config Env sets {name}, which moves the managed config away from {}",
                    eff.managed.first().map_or("", String::as_str)
                ),
                Some(format!("remove `ENV {name}`")),
                config_location(format!("/config/Env/{i}")),
            ));
        }
    }
    env_switches(&env, eff, out);
    other_sources(input, platform, eff, &env, out);
}

/// The managed config: the first path a copy of or link to the platform file, the others absent or
/// copies too.
fn managed(
    input: &CheckInput<'_>,
    platform: &Platform<'_>,
    eff: &EffectivePolicy,
    out: &mut Vec<Finding>,
) {
    let rc = platform.rc;
    for (i, path) in eff.managed.iter().enumerate() {
        let resolved = resolve(input, path);
        let node = match &resolved {
            Resolved::Found { node, .. } if matches!(inode(input, *node).kind, EntryKind::File) => {
                *node
            }
            _ if i > 0 => continue,
            other => {
                out.push(finding(
                    ID,
                    format!(
                        "the managed config {path} is missing or not a file ({}): {} is not the config \
                         in effect, user or workspace config can override it",
                        unresolved_reason(other),
                        rc.path
                    ),
                    Some(format!(
                        "install it as a copy of or a symlink to {} (`x1-validate render` writes both)",
                        rc.path
                    )),
                    Location::Path { path: path.clone() },
                ));
                continue;
            }
        };
        match input.tree.content(input.listings, path) {
            Some(b) if b == platform.bytes => {}
            Some(_) => out.push(finding(
                ID,
                format!(
                    "the managed config {path} differs from the platform file {}: it overrides it",
                    rc.path
                ),
                Some(format!("make {path} a copy of or a symlink to {}", rc.path)),
                node_location(input, node),
            )),
            None => out.push(finding(
                ID,
                format!("the managed config {path} is too large to inspect"),
                None,
                node_location(input, node),
            )),
        }
    }
}

/// `Env` variables that must hold (`OPENCODE_DISABLE_PROJECT_CONFIG=1`).
fn env_switches(
    env: &BTreeMap<&str, (usize, &str)>,
    eff: &EffectivePolicy,
    out: &mut Vec<Finding>,
) {
    for (name, accepted) in &eff.env {
        let wanted = accepted.first().map_or("", String::as_str);
        match env.get(name.as_str()) {
            Some((_, v)) if accepted.iter().any(|a| a == v) => {}
            Some((i, _)) => out.push(finding(
                ID,
                format!(
                    "config Env sets {name} to a value other than {}",
                    accepted.join(" or ")
                ),
                Some(format!("set `ENV {name}={wanted}`")),
                config_location(format!("/config/Env/{i}")),
            )),
            None => out.push(finding(
                ID,
                format!(
                    "config Env does not set {name}={wanted}: a workspace's own config (project \
                     files, .opencode/) would be read"
                ),
                Some(format!("set `ENV {name}={wanted}`")),
                config_location("/config/Env"),
            )),
        }
    }
}

/// Every other place the runtime reads config from: user files, files and dirs named by `Env`, config
/// documents in `Env`.
fn other_sources(
    input: &CheckInput<'_>,
    platform: &Platform<'_>,
    eff: &EffectivePolicy,
    env: &BTreeMap<&str, (usize, &str)>,
    out: &mut Vec<Finding>,
) {
    let rc = platform.rc;
    let set = |name: &str| env.get(name).filter(|(_, v)| !v.is_empty()).copied();
    let home = set("HOME").map_or_else(
        || input.preset.map_or("/root", |p| p.user.home.as_str()),
        |(_, v)| v,
    );
    let config_home =
        set("XDG_CONFIG_HOME").map_or_else(|| join(home, ".config"), |(_, v)| v.to_string());
    let cwd = if input.image.config.working_dir.is_empty() {
        "/"
    } else {
        input.image.config.working_dir.as_str()
    };
    let absolute = |p: &str| {
        if p.starts_with('/') {
            p.to_string()
        } else {
            join(cwd, p)
        }
    };
    let mut files: Vec<(String, String)> = Vec::new();
    for f in &eff.config_home_files {
        files.push((join(&config_home, f), "user config".into()));
    }
    for f in &eff.home_files {
        files.push((join(home, f), "user config".into()));
    }
    for name in &eff.env_files {
        if let Some((_, v)) = set(name) {
            files.push((absolute(v), format!("named by {name} in Env")));
        }
    }
    for (name, names) in &eff.env_dirs {
        if let Some((_, v)) = set(name) {
            for f in names {
                files.push((join(&absolute(v), f), format!("in {name} of Env")));
            }
        }
    }
    for (path, why) in files {
        other_file(input, platform, &path, &why, out);
    }
    for name in &eff.env_content {
        if let Some((i, v)) = set(name) {
            let problems = match parse(ConfigFormat::Jsonc, v.as_bytes()) {
                Ok(doc) if doc.is_object() => {
                    let mut p = Vec::new();
                    evaluate_other(rc, &doc, platform.doc, &mut p);
                    p
                }
                _ => vec![problem(
                    "is not a JSON object: the runtime refuses to start".into(),
                    None,
                )],
            };
            push_other(
                out,
                &format!("{name} in Env"),
                problems,
                &config_location(format!("/config/Env/{i}")),
            );
        }
    }
    for (name, pointer) in &eff.env_json {
        if let Some((i, v)) = set(name) {
            let problems = match serde_json::from_str::<Value>(v) {
                Ok(value) => {
                    let doc = nest(pointer, value);
                    let mut p = Vec::new();
                    evaluate_other(rc, &doc, platform.doc, &mut p);
                    p
                }
                Err(e) => vec![problem(format!("is not valid JSON ({e})"), None)],
            };
            push_other(
                out,
                &format!("{name} in Env"),
                problems,
                &config_location(format!("/config/Env/{i}")),
            );
        }
    }
}

/// `{"a": {"b": value}}` for the JSON pointer `/a/b`.
fn nest(pointer: &str, value: Value) -> Value {
    pointer
        .rsplit('/')
        .filter(|k| !k.is_empty())
        .fold(value, |v, k| {
            let mut m = serde_json::Map::new();
            m.insert(k.replace("~1", "/").replace("~0", "~"), v);
            Value::Object(m)
        })
}

fn push_other(out: &mut Vec<Finding>, what: &str, problems: Vec<ConfigProblem>, loc: &Location) {
    for p in problems {
        let mut f = finding(ID, format!("{what}: {}", p.message), p.help, loc.clone());
        f.evidence = p.evidence;
        out.push(f);
    }
}

/// One more config file the runtime reads below the managed config: absent, a copy of the platform
/// file, or harmless.
fn other_file(
    input: &CheckInput<'_>,
    platform: &Platform<'_>,
    path: &str,
    why: &str,
    out: &mut Vec<Finding>,
) {
    let Resolved::Found { node, .. } = resolve(input, path) else {
        return;
    };
    if !matches!(inode(input, node).kind, EntryKind::File) {
        return;
    }
    let loc = node_location(input, node);
    let what = format!("{path} ({why})");
    let problems = match input.tree.content(input.listings, path) {
        Some(b) if b == platform.bytes => return,
        Some(b) => match parse(ConfigFormat::Jsonc, b) {
            Ok(doc) => {
                let mut p = Vec::new();
                evaluate_other(platform.rc, &doc, platform.doc, &mut p);
                p
            }
            Err((msg, _)) => vec![problem(
                format!("is not valid ({msg}): the runtime refuses to start"),
                None,
            )],
        },
        None => vec![problem(
            "was not read by the gate (too large, or not a known config file name): it cannot be \
             shown not to override the platform config"
                .into(),
            Some("remove it, or make it a copy of the platform config"),
        )],
    };
    push_other(out, &what, problems, &loc);
}

/// Policy for a config that sits below the platform's (merged under it): it may not point a provider
/// anywhere but the sidecar, carry a key, turn a required switch back on, or add an npm plugin.
pub fn evaluate_other(
    rc: &RuntimeConfig,
    doc: &Value,
    platform: &Value,
    out: &mut Vec<ConfigProblem>,
) {
    let sc = &rc.sidecar;
    api_keys(sc, doc, "", out);
    let help = Some("only the platform config may configure providers");
    let bound = |id: &str, d: &Value| {
        sc.providers
            .as_ref()
            .and_then(|p| d.pointer(p))
            .and_then(|m| m.get(id))
            .and_then(|c| sc.provider_base_url.as_ref().and_then(|p| c.pointer(p)))
            .and_then(Value::as_str)
            .is_some_and(|u| is_sidecar_url(sc, u))
    };
    if let Some(ptr) = &sc.providers
        && let Some(map) = doc.pointer(ptr).and_then(Value::as_object)
    {
        for (id, cfg) in map {
            let url = sc.provider_base_url.as_ref().and_then(|p| cfg.pointer(p));
            match url {
                Some(Value::String(u)) if is_sidecar_url(sc, u) => {}
                Some(u) => out.push(problem(
                    format!("provider `{id}` base URL {u} is not the sidecar ({})", sc.base_url),
                    help,
                )),
                None if bound(id, platform) => {}
                None => out.push(problem(
                    format!("provider `{id}` ({ptr}/{id}) has no sidecar base URL: it would call the provider directly"),
                    help,
                )),
            }
            if let Some(p) = npm_problem(sc, id, cfg) {
                out.push(p);
            }
        }
    }
    if let Some(en) = &sc.enabled
        && let Some(v) = doc.pointer(en)
    {
        let ids: Vec<&str> = match v {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for id in ids {
            if !bound(id, doc) && !bound(id, platform) {
                out.push(problem(
                    format!("enabled provider `{id}` is not bound to the sidecar"),
                    help,
                ));
            }
        }
    }
    for req in &rc.require {
        let Some(value) = doc.pointer(&req.pointer) else {
            continue;
        };
        let failed = req.absent
            || (req.sidecar_url && !value.as_str().is_some_and(|u| is_sidecar_url(sc, u)))
            || (!req.one_of.is_empty() && !req.one_of.contains(value));
        if failed {
            out.push(problem(
                format!("{} ({} is {value})", req.message, req.pointer),
                None,
            ));
        }
    }
    plugins(rc, doc, out);
}

/// One policy violation inside the document.
#[derive(Debug, Clone)]
pub struct ConfigProblem {
    pub message: String,
    pub help: Option<String>,
    pub evidence: Option<crate::report::Evidence>,
}

fn problem(message: String, help: Option<&str>) -> ConfigProblem {
    ConfigProblem {
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
pub fn evaluate(rc: &RuntimeConfig, doc: &Value, out: &mut Vec<ConfigProblem>) {
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
    plugins(rc, doc, out);
}

/// Plugin lists may only name local files.
fn plugins(rc: &RuntimeConfig, doc: &Value, out: &mut Vec<ConfigProblem>) {
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

/// Whether `url` is the sidecar's base URL with one of the accepted paths. Both are parsed as WHATWG
/// URLs (what the runtime's `fetch` does), then scheme, host and port must be equal, and there must be
/// no userinfo, query or fragment: `http://localhost:11432@evil`, `http://localhost:11432.evil`,
/// `https://…` or another port never pass. Host case is normalised by the parser (`LOCALHOST` is
/// `localhost` to the runtime too).
pub fn is_sidecar_url(sc: &SidecarPolicy, url: &str) -> bool {
    let (Ok(base), Ok(u)) = (url::Url::parse(&sc.base_url), url::Url::parse(url)) else {
        return false;
    };
    let same_origin = u.scheme() == base.scheme()
        && u.host_str().is_some()
        && u.host_str() == base.host_str()
        && u.port_or_known_default() == base.port_or_known_default();
    if !same_origin
        || !u.username().is_empty()
        || u.password().is_some()
        || u.query().is_some()
        || u.fragment().is_some()
    {
        return false;
    }
    let path = u.path().trim_end_matches('/');
    sc.paths.iter().any(|p| p.trim_end_matches('/') == path)
}

fn api_keys(sc: &SidecarPolicy, v: &Value, pointer: &str, out: &mut Vec<ConfigProblem>) {
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

fn providers(sc: &SidecarPolicy, doc: &Value, out: &mut Vec<ConfigProblem>) {
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
        if let Some(p) = npm_problem(sc, id, cfg) {
            out.push(p);
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

/// A provider whose SDK is not bundled (fetched from npm at run time).
fn npm_problem(sc: &SidecarPolicy, id: &str, cfg: &Value) -> Option<ConfigProblem> {
    let npm = sc
        .provider_npm
        .as_ref()
        .and_then(|p| cfg.pointer(p))
        .and_then(Value::as_str)?;
    if npm.starts_with("file://") || sc.bundled_npm.iter().any(|b| b == npm) {
        return None;
    }
    Some(problem(
        format!(
            "provider `{id}` uses npm package `{npm}`, which is not bundled: it is fetched \
             at run time"
        ),
        Some("use a bundled SDK such as @ai-sdk/openai-compatible"),
    ))
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
            "http://localhost:11432.evil.example",
            "http://localhost:11432.evil.example/v1",
            "http://localhost:11432@evil",
            "http://localhost:11432@evil.example/v1",
            "http://user:pw@localhost:11432/v1",
            "http://x1@localhost:11432/v1",
            "http://localhost:11432\\@evil/v1",
            "http://localhost:11432/v1?u=http://evil",
            "http://localhost:11432/v1#x",
            "http://127.0.0.1:11432/v1",
            "http://localhost.:11432/v1",
            "http://localhost/v1",
            "localhost:11432/v1",
            "//localhost:11432/v1",
            "{env:SIDECAR_URL}",
            "",
        ] {
            assert!(!is_sidecar_url(&sc, bad), "{bad}");
        }
        // the path is compared after WHATWG normalisation, like the runtime's fetch
        assert!(is_sidecar_url(&sc, "http://localhost:11432/x/../v1"));
        assert!(!is_sidecar_url(&sc, "http://localhost:11432/v1/../v2"));
    }

    fn other(text: &str) -> Vec<String> {
        let rc = policy("opencode");
        let platform = parse(
            rc.format,
            br#"{"provider": {"anthropic": {"options": {"baseURL": "http://localhost:11432/v1"}}}}"#,
        )
        .expect("parses");
        let doc = parse(rc.format, text.as_bytes()).expect("parses");
        let mut out = Vec::new();
        evaluate_other(&rc, &doc, &platform, &mut out);
        out.into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn configs_below_the_platform_one() {
        // what opencode writes itself, and settings that change nothing the platform owns
        for ok in [
            r#"{"$schema": "https://opencode.ai/config.json"}"#,
            r#"{"autoupdate": false, "share": "disabled", "permission": {"bash": "ask"}}"#,
            r#"{"provider": {"anthropic": {"models": {"m": {"name": "M"}}}}}"#,
            r#"{"provider": {"x": {"options": {"baseURL": "http://localhost:11432/v1"}}}, "enabled_providers": ["x", "anthropic"]}"#,
        ] {
            assert!(other(ok).is_empty(), "{ok}: {:?}", other(ok));
        }
        for (bad, needle) in [
            (
                r#"{"provider": {"anthropic": {"options": {"baseURL": "http://127.0.0.1:9/v1"}}}}"#,
                "is not the sidecar",
            ),
            (
                r#"{"provider": {"groq": {"options": {"apiKey": "{env:GROQ_API_KEY}"}}}}"#,
                "has no sidecar base URL",
            ),
            (
                r#"{"enabled_providers": ["groq"]}"#,
                "enabled provider `groq` is not bound",
            ),
            (r#"{"autoupdate": true}"#, "auto-update is not off"),
            (r#"{"share": "auto"}"#, "sharing is not off"),
            (r#"{"plugin": ["opencode-evil"]}"#, "plugin `opencode-evil`"),
            (
                r#"{"provider": {"anthropic": {"options": {"apiKey": "abc"}}}}"#,
                "neither the agreed placeholder",
            ),
        ] {
            let p = other(bad);
            assert!(p.iter().any(|m| m.contains(needle)), "{bad}: {p:?}");
        }
    }

    #[test]
    fn nest_builds_the_pointer() {
        assert_eq!(
            nest("/permission", serde_json::json!({"bash": "allow"})),
            serde_json::json!({"permission": {"bash": "allow"}})
        );
        assert_eq!(
            nest("/a~1b", Value::Bool(true)),
            serde_json::json!({"a/b": true})
        );
    }
}
