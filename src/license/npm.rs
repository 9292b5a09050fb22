//! npm `package.json`: which manifests are package roots (`…/node_modules/<name>/package.json`,
//! `…/node_modules/@scope/<name>/package.json`, or a project outside any `node_modules`), and what a
//! manifest declares in `license` (string or legacy `{type}` object) or the legacy `licenses` array.

use serde_json::Value;

/// Where a `package.json` sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootKind {
    /// Directly under a `node_modules` dir; carries the directory name (`opencode-ai`, `@scope/name`),
    /// which is the install name (it differs from `name` for npm aliases such as `@openai/codex-linux-x64`).
    Installed { dir_name: String },
    /// Not inside any `node_modules` package (an application such as `/x1/app/adapter`).
    Project,
}

/// Classify a normalised path (no leading `/`). `None`: not a package root — a sub-path helper manifest
/// such as `node_modules/rxjs/ajax/package.json`, or not a `package.json` at all.
pub fn package_root(path: &str) -> Option<RootKind> {
    let dir = path.strip_suffix("package.json")?;
    if !(dir.is_empty() || dir.ends_with('/')) {
        return None;
    }
    let comps: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    let Some(nm) = comps.iter().rposition(|c| *c == "node_modules") else {
        return Some(RootKind::Project);
    };
    match &comps[nm + 1..] {
        [name] if !name.starts_with(['.', '@']) => Some(RootKind::Installed {
            dir_name: (*name).to_string(),
        }),
        [scope, name] if scope.starts_with('@') && scope.len() > 1 && !name.starts_with('.') => {
            Some(RootKind::Installed {
                dir_name: format!("{scope}/{name}"),
            })
        }
        _ => None,
    }
}

/// The fields of a manifest the inventory uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub license: Declared,
    /// `optionalDependencies` names (platform packages of a runtime).
    pub optional_dependencies: Vec<String>,
}

/// What a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// No `license`/`licenses` field.
    Missing,
    /// The declaration as one string; the legacy array form is joined with ` OR `.
    Text(String),
    /// The field exists but has a shape npm does not define.
    Malformed(String),
}

impl Declared {
    /// The declaration text, if there is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            Declared::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Parse a manifest. `None` when it is not JSON or lacks a string `name` and `version` (then it is not a
/// package root, e.g. a `{"type":"module"}` helper).
pub fn parse_manifest(bytes: &[u8]) -> Option<Manifest> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let name = v.get("name")?.as_str()?.trim();
    let version = v.get("version")?.as_str()?.trim();
    if name.is_empty() || version.is_empty() {
        return None;
    }
    let license = match (v.get("license"), v.get("licenses")) {
        (Some(l), _) if !l.is_null() => declared_one(l),
        (_, Some(Value::Array(items))) if !items.is_empty() => {
            let parts: Option<Vec<String>> = items.iter().map(type_of).collect();
            match parts {
                Some(p) if p.len() == 1 => Declared::Text(p[0].clone()),
                Some(p) => Declared::Text(
                    p.iter()
                        .map(|s| format!("({s})"))
                        .collect::<Vec<_>>()
                        .join(" OR "),
                ),
                None => Declared::Malformed(compact(&Value::Array(items.clone()))),
            }
        }
        (_, Some(other)) if !other.is_null() => declared_one(other),
        _ => Declared::Missing,
    };
    let optional_dependencies = v
        .get("optionalDependencies")
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    Some(Manifest {
        name: name.to_string(),
        version: version.to_string(),
        license,
        optional_dependencies,
    })
}

fn declared_one(v: &Value) -> Declared {
    match type_of(v) {
        Some(t) if !t.trim().is_empty() => Declared::Text(t),
        _ => Declared::Malformed(compact(v)),
    }
}

/// `"MIT"` or `{"type": "MIT", "url": …}`.
fn type_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Object(o) => o.get("type")?.as_str().map(|s| s.trim().to_string()),
        _ => None,
    }
}

fn compact(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        let cut: String = s.chars().take(117).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// `SEE LICENSE IN <file>` → the file name.
pub fn see_license_in(declared: &str) -> Option<&str> {
    let rest = declared.trim();
    let prefix = "SEE LICENSE IN ";
    if rest.len() > prefix.len() && rest[..prefix.len()].eq_ignore_ascii_case(prefix) {
        Some(rest[prefix.len()..].trim())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_roots_and_helpers() {
        assert_eq!(
            package_root("usr/local/lib/node_modules/opencode-ai/package.json"),
            Some(RootKind::Installed {
                dir_name: "opencode-ai".into()
            })
        );
        assert_eq!(
            package_root("usr/lib/node_modules/@anthropic-ai/claude-code/package.json"),
            Some(RootKind::Installed {
                dir_name: "@anthropic-ai/claude-code".into()
            })
        );
        assert_eq!(
            package_root(
                "usr/local/lib/node_modules/opencode-ai/node_modules/opencode-linux-x64/package.json"
            ),
            Some(RootKind::Installed {
                dir_name: "opencode-linux-x64".into()
            })
        );
        assert_eq!(
            package_root("x1/app/adapter/package.json"),
            Some(RootKind::Project)
        );
        assert_eq!(package_root("node_modules/rxjs/ajax/package.json"), None);
        assert_eq!(package_root("a/node_modules/.cache/x/package.json"), None);
        assert_eq!(package_root("a/node_modules/@s/package.json"), None);
        assert_eq!(package_root("a/not-package.json"), None);
        assert_eq!(
            package_root("node_modules/.pnpm/left-pad@1.3.0/node_modules/left-pad/package.json"),
            Some(RootKind::Installed {
                dir_name: "left-pad".into()
            })
        );
    }

    #[test]
    fn license_shapes() {
        let m = parse_manifest(br#"{"name":"a","version":"1.0.0","license":"MIT"}"#).unwrap();
        assert_eq!(m.license, Declared::Text("MIT".into()));
        let m = parse_manifest(
            br#"{"name":"a","version":"1","license":{"type":"ISC","url":"http://x"}}"#,
        )
        .unwrap();
        assert_eq!(m.license, Declared::Text("ISC".into()));
        let m = parse_manifest(
            br#"{"name":"a","version":"1","licenses":[{"type":"MIT"},{"type":"Apache-2.0"}]}"#,
        )
        .unwrap();
        assert_eq!(m.license, Declared::Text("(MIT) OR (Apache-2.0)".into()));
        let m =
            parse_manifest(br#"{"name":"a","version":"1","licenses":["BSD-3-Clause"]}"#).unwrap();
        assert_eq!(m.license, Declared::Text("BSD-3-Clause".into()));
        let m = parse_manifest(br#"{"name":"a","version":"1","license":42}"#).unwrap();
        assert_eq!(m.license, Declared::Malformed("42".into()));
        let m = parse_manifest(br#"{"name":"a","version":"1"}"#).unwrap();
        assert_eq!(m.license, Declared::Missing);
        assert!(parse_manifest(br#"{"type":"module"}"#).is_none());
        assert!(parse_manifest(br#"{"name":"a"}"#).is_none());
        assert!(parse_manifest(b"not json").is_none());
        assert_eq!(
            see_license_in("SEE LICENSE IN README.md"),
            Some("README.md")
        );
        assert_eq!(
            see_license_in("see license in LICENSE.md "),
            Some("LICENSE.md")
        );
        assert_eq!(see_license_in("MIT"), None);
    }
}
