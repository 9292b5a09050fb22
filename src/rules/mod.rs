//! Rules and presets as data: `rules/*.toml` and `presets/<runtime>/preset.toml`, parsed strictly
//! (unknown keys are errors with a miette label on the offending line), validated once, embedded in the
//! binary as defaults and overridable with `--rules`/`--presets`.

pub mod credentials;
pub mod id;
pub mod meta;
pub mod preset;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

pub use credentials::{CredentialFile, Credentials};
pub use id::RuleId;
pub use meta::{RuleMeta, Severity};
pub use preset::{FileKind, Preset};

use crate::error::{Error, Result};
use crate::toml_file::SourceFile;

/// The embedded defaults (so an installed binary works outside the repo); `verify` hashes the same
/// bytes for its rules-sha256 annotation.
pub(crate) mod embedded {
    pub const RULES: &str = include_str!("../../rules/rules.toml");
    pub const CREDENTIALS: &str = include_str!("../../rules/credentials.toml");
    pub const SECRETS: &str = include_str!("../../rules/secrets.toml");
    pub const LICENSES: &str = include_str!("../../rules/licenses.toml");
    /// The rule files by name.
    pub const FILES: &[(&str, &str)] = &[
        ("rules.toml", RULES),
        ("credentials.toml", CREDENTIALS),
        ("secrets.toml", SECRETS),
        ("licenses.toml", LICENSES),
    ];
    pub const PRESETS: &[(&str, &str)] = &[
        (
            "opencode",
            include_str!("../../presets/opencode/preset.toml"),
        ),
        (
            "claude-code",
            include_str!("../../presets/claude-code/preset.toml"),
        ),
        ("codex", include_str!("../../presets/codex/preset.toml")),
    ];
}

/// Everything loaded from `rules/` and `presets/`, validated and compiled once.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The contract's rules with their default severity and explain text, in catalogue order (`RuleId::ALL`).
    pub rules: Vec<RuleDef>,
    /// Presets by runtime id (`opencode`, `claude-code`, `codex`).
    pub presets: BTreeMap<String, Preset>,
    /// Secret value patterns and the allowlist (`rules/secrets.toml`), compiled.
    pub secrets: crate::scan::Patterns,
    /// License deny list (`rules/licenses.toml`).
    pub licenses: crate::license::Policy,
    /// Provider-credential variable names and credential-file kinds (`rules/credentials.toml`).
    pub credentials: Credentials,
    /// SHA-256 (hex) of every file this set was loaded from (rule files and presets, by name, as
    /// read): what a result derived from the whole rule set is keyed by (the image memo).
    pub digest: String,
}

/// One contract rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub id: RuleId,
    pub default_severity: Severity,
    /// One line: what fails it.
    pub summary: String,
    /// What it checks, why it matters, how to fix.
    pub explain: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRules {
    schema_version: u32,
    #[serde(rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: toml::Spanned<String>,
    severity: Severity,
    summary: String,
    explain: String,
}

/// Where to load from: `None` means the embedded defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    pub rules_dir: Option<&'a Path>,
    pub presets_dir: Option<&'a Path>,
}

impl RuleSet {
    /// The embedded defaults.
    pub fn embedded() -> Result<RuleSet> {
        RuleSet::load(Sources::default())
    }

    /// Load `rules/` and `presets/`. A file missing from `--rules DIR` falls back to the embedded one;
    /// `--presets DIR` replaces the embedded presets entirely (each subdirectory with a `preset.toml`).
    pub fn load(sources: Sources<'_>) -> Result<RuleSet> {
        let rules_file = rule_file(sources.rules_dir, "rules.toml", Some(embedded::RULES))?
            .expect("a built-in default exists");
        let cred_file = rule_file(
            sources.rules_dir,
            "credentials.toml",
            Some(embedded::CREDENTIALS),
        )?
        .expect("a built-in default exists");
        let secrets_file = rule_file(sources.rules_dir, "secrets.toml", Some(embedded::SECRETS))?;
        let licenses_file =
            rule_file(sources.rules_dir, "licenses.toml", Some(embedded::LICENSES))?;
        if let Some(dir) = sources.rules_dir {
            reject_unknown_files(dir)?;
        }
        let rules = parse_rules(&rules_file.source())?;
        let credentials = Credentials::load(&cred_file.source())?;
        let secrets = match &secrets_file {
            // The by-name secret pattern uses the credential names of the same rule set, so a
            // `--rules` dir with its own credentials.toml is honoured by the content scan too.
            Some(f) => crate::scan::Patterns::load(&f.text, &f.name, &credentials.env_names)?,
            None => crate::scan::Patterns::default(),
        };
        let licenses = match &licenses_file {
            Some(f) => load_license_policy(f)?,
            None => crate::license::Policy::default(),
        };
        let mut h = Sha256::new();
        for (label, file) in [
            ("rules.toml", Some(&rules_file)),
            ("credentials.toml", Some(&cred_file)),
            ("secrets.toml", secrets_file.as_ref()),
            ("licenses.toml", licenses_file.as_ref()),
        ] {
            digest_part(&mut h, label, file.map(|f| f.text.as_str()));
        }
        let presets = load_presets(sources.presets_dir, &mut h)?;
        Ok(RuleSet {
            rules,
            presets,
            secrets,
            licenses,
            credentials,
            digest: hex::encode(h.finalize()),
        })
    }

    /// The rule with this id (a loaded set has every id: a rules file lacking one is refused).
    pub fn rule(&self, id: RuleId) -> Option<&RuleDef> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The catalogue as reports describe it.
    pub fn catalog(&self) -> Vec<RuleMeta> {
        self.rules
            .iter()
            .map(|r| RuleMeta {
                id: r.id,
                default_severity: r.default_severity,
                summary: r.summary.clone(),
                help: r.explain.trim().to_string(),
            })
            .collect()
    }

    /// The preset named `name`, or a usage error listing the known ones.
    pub fn preset(&self, name: &str) -> Result<&Preset> {
        self.presets.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.presets.keys().map(String::as_str).collect();
            Error::Usage(format!(
                "unknown preset `{name}` (known: {})",
                known.join(", ")
            ))
        })
    }
}

/// A loaded file's text and its display name.
struct LoadedFile {
    name: String,
    text: String,
}

impl LoadedFile {
    fn source(&self) -> SourceFile<'_> {
        SourceFile {
            name: &self.name,
            text: &self.text,
        }
    }
}

fn rule_file(dir: Option<&Path>, file: &str, default: Option<&str>) -> Result<Option<LoadedFile>> {
    if let Some(dir) = dir {
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return Ok(Some(LoadedFile {
                    name: path.display().to_string(),
                    text,
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(config_io(&path, &e)),
        }
    }
    Ok(default.map(|text| LoadedFile {
        name: format!("rules/{file} (built in)"),
        text: text.to_string(),
    }))
}

fn config_io(path: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!("cannot read {}: {e}", path.display()))
}

fn reject_unknown_files(dir: &Path) -> Result<()> {
    const KNOWN: &[&str] = &[
        "rules.toml",
        "credentials.toml",
        "secrets.toml",
        "licenses.toml",
        // Documentation data (provider coverage, docs/secret-coverage.md), not read by the binary.
        "coverage.toml",
    ];
    let entries = std::fs::read_dir(dir).map_err(|e| config_io(dir, &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| config_io(dir, &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_toml = std::path::Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        if is_toml && !KNOWN.contains(&name.as_str()) {
            return Err(Error::Usage(format!(
                "{}: unknown rule file `{name}` (known: {})",
                dir.display(),
                KNOWN.join(", ")
            )));
        }
    }
    Ok(())
}

fn parse_rules(src: &SourceFile<'_>) -> Result<Vec<RuleDef>> {
    let raw: RawRules = src.parse()?;
    if raw.schema_version != 1 {
        return Err(src.error_at(
            "schema_version",
            0,
            format!("unsupported schema_version {}", raw.schema_version),
        ));
    }
    let mut by_id = BTreeMap::new();
    for r in raw.rules {
        let span = r.id.span();
        let Ok(id) = r.id.get_ref().parse::<RuleId>() else {
            return Err(src.error_in(
                span,
                &format!(
                    "unknown rule id `{}` (no check implements it)",
                    r.id.get_ref()
                ),
            ));
        };
        if by_id.contains_key(&id) {
            return Err(src.error_in(span, &format!("rule `{id}` is listed twice")));
        }
        by_id.insert(
            id,
            RuleDef {
                id,
                default_severity: r.severity,
                summary: r.summary,
                explain: r.explain,
            },
        );
    }
    let mut rules = Vec::new();
    for id in RuleId::ALL {
        match by_id.remove(&id) {
            Some(r) => rules.push(r),
            None => {
                return Err(src.error(
                    format!("{}: rule `{id}` is missing", src.name),
                    Some(0..0),
                    format!("add a [[rule]] with id = \"{id}\""),
                ));
            }
        }
    }
    Ok(rules)
}

/// Feed one loaded file (or its absence) to a [`RuleSet::digest`], length-prefixed.
fn digest_part(h: &mut Sha256, label: &str, text: Option<&str>) {
    for part in [Some(label), text] {
        match part {
            Some(p) => {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update(u64::MAX.to_le_bytes()),
        }
    }
}

fn load_presets(dir: Option<&Path>, h: &mut Sha256) -> Result<BTreeMap<String, Preset>> {
    let mut presets = BTreeMap::new();
    let Some(dir) = dir else {
        for (name, text) in embedded::PRESETS {
            digest_part(h, &format!("presets/{name}"), Some(text));
            let file_name = format!("presets/{name}/preset.toml (built in)");
            let src = SourceFile {
                name: &file_name,
                text,
            };
            presets.insert((*name).to_string(), Preset::load(&src, name)?);
        }
        return Ok(presets);
    };
    let entries = std::fs::read_dir(dir).map_err(|e| config_io(dir, &e))?;
    let mut texts = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|e| config_io(dir, &e))?;
        let path = entry.path().join("preset.toml");
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).map_err(|e| config_io(&path, &e))?;
        // read_dir's order is the file system's: the digest takes the presets by name below.
        let file_name = path.display().to_string();
        let src = SourceFile {
            name: &file_name,
            text: &text,
        };
        presets.insert(name.clone(), Preset::load(&src, &name)?);
        texts.insert(name, text);
    }
    if presets.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no presets (expected <runtime>/preset.toml)",
            dir.display()
        )));
    }
    for (name, text) in &texts {
        digest_part(h, &format!("presets/{name}"), Some(text));
    }
    Ok(presets)
}

fn load_license_policy(file: &LoadedFile) -> Result<crate::license::Policy> {
    crate::license::Policy::load(&file.text, &file.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_rules_and_presets_load() {
        let rs = RuleSet::embedded().expect("the shipped files load");
        let ids: Vec<RuleId> = rs.rules.iter().map(|r| r.id).collect();
        assert_eq!(ids, RuleId::ALL);
        for r in &rs.rules {
            for part in ["What it checks", "Why it matters", "How to fix"] {
                assert!(r.explain.contains(part), "{}: no `{part}`", r.id);
            }
        }
        assert_eq!(
            rs.presets.keys().map(String::as_str).collect::<Vec<_>>(),
            ["claude-code", "codex", "opencode"]
        );
        let oc = &rs.presets["opencode"];
        assert_eq!((oc.user.uid, oc.user.home.as_str()), (1000, "/home/agent"));
        assert!(
            oc.descriptor
                .state_paths
                .contains(&"~/.local/share/opencode/opencode.db".to_string())
        );
        assert_eq!(
            oc.runtime_config.as_ref().map(|c| c.path.as_str()),
            Some("/x1/app/config/opencode.json")
        );
        assert_eq!(oc.license.package.as_deref(), Some("opencode-ai"));
        assert!(rs.preset("nope").is_err());
    }

    fn parse(text: &str) -> Result<Vec<RuleDef>> {
        parse_rules(&SourceFile {
            name: "rules.toml",
            text,
        })
    }

    #[test]
    fn rules_file_must_list_exactly_the_known_ids() {
        let full = embedded::RULES;
        let unknown = full.replacen("id = \"base-os\"", "id = \"base-oss\"", 1);
        let Err(Error::RuleFile { span, message, .. }) = parse(&unknown) else {
            panic!("an unknown id is an error");
        };
        assert!(message.contains("base-oss"), "{message}");
        let at = span.expect("span").offset();
        assert_eq!(&unknown[at..at + 10], "\"base-oss\"");
        // the span comes from the parser (`toml::Spanned`), not a text search: any spelling is labelled
        let tight = full.replacen("id = \"base-os\"", "id=\"base-oss\"", 1);
        let Err(Error::RuleFile { span, .. }) = parse(&tight) else {
            panic!("an unknown id is an error");
        };
        let at = span.expect("span").offset();
        assert_eq!(&tight[at..at + 10], "\"base-oss\"");
        let dup = format!(
            "{full}\n[[rule]]\nid = \"base-os\"\nseverity = \"note\"\nsummary = \"x\"\nexplain = \"x\"\n"
        );
        let Err(Error::RuleFile { message, .. }) = parse(&dup) else {
            panic!("a duplicate is an error");
        };
        assert!(message.contains("listed twice"), "{message}");
        let bad_sev = full.replacen("severity = \"warning\"", "severity = \"fatal\"", 1);
        assert!(matches!(parse(&bad_sev), Err(Error::RuleFile { .. })));
    }
}
