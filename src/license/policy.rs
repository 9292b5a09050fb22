//! The license policy as data: the deny list and per-package exceptions (`rules/licenses.toml`), and a
//! preset's `[license]` table (runtime package, expected expression, hash-pinned clarifications in the
//! cargo-deny `[[licenses.clarify]]` model). Parsed strictly: unknown keys, bad SPDX ids, bad hashes and
//! unsafe paths are errors that point at the offending span.

use serde::Deserialize;

use super::Ecosystem;
use super::expr::{LicensePattern, SpdxExpr};
use crate::error::{Error, Result};

/// The only `schema-version` this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The compiled `rules/licenses.toml`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub deny: Vec<DenyEntry>,
    pub allow: Vec<PackageException>,
}

/// One deny-list entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenyEntry {
    /// SPDX id, `LicenseRef-…`, or a family prefix `AGPL-*`.
    pub license: LicensePattern,
    /// Why it is denied (shown in the finding's help).
    pub reason: String,
    /// Case-insensitive phrases that mark a declaration that is *not* SPDX (`"Commons Clause"`) as this
    /// license. SPDX declarations are judged by their ids only.
    #[serde(default)]
    pub text: Vec<String>,
}

/// A package allowed to carry licenses the deny list would reject (cargo-deny `exceptions`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageException {
    pub ecosystem: Ecosystem,
    pub name: String,
    /// Exact version; absent = every version.
    #[serde(default)]
    pub version: Option<String>,
    pub licenses: Vec<LicensePattern>,
    pub reason: String,
}

impl PackageException {
    /// The key under which suppressions are counted (`ImageReport.suppressed`).
    pub fn id(&self) -> String {
        format!("licenses.allow:{}:{}", self.ecosystem.as_str(), self.name)
    }

    fn applies(&self, eco: Ecosystem, name: &str, version: &str) -> bool {
        self.ecosystem == eco
            && self.name == name
            && self.version.as_deref().is_none_or(|v| v == version)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    schema_version: toml::Spanned<u32>,
    #[serde(default)]
    deny: Vec<DenyEntry>,
    #[serde(default)]
    allow: Vec<PackageException>,
}

/// What the policy says about one declared expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `exception` names the package exception that was needed, if any.
    Allowed { exception: Option<String> },
    /// Denied: each denied requirement that made the expression fail, with the entry's reason.
    Denied { terms: Vec<(String, String)> },
}

impl Policy {
    /// Parse and validate `rules/licenses.toml`.
    pub fn load(text: &str, file_name: &str) -> Result<Policy> {
        let raw: RawPolicy =
            toml::from_str(text).map_err(|e| rule_file_error(text, file_name, &e))?;
        if *raw.schema_version.get_ref() != SCHEMA_VERSION {
            return Err(Error::RuleFile {
                message: format!(
                    "{file_name}: unsupported schema-version {} (this build reads {SCHEMA_VERSION})",
                    raw.schema_version.get_ref()
                ),
                src: miette::NamedSource::new(file_name, text.to_string()),
                span: Some(raw.schema_version.span().into()),
                label: "unsupported version".into(),
            });
        }
        Ok(Policy {
            deny: raw.deny,
            allow: raw.allow,
        })
    }

    /// The policy shipped in the binary (`rules/licenses.toml`).
    pub fn builtin() -> Result<Policy> {
        Policy::load(BUILTIN_POLICY, "rules/licenses.toml")
    }

    /// The deny entry matching one requirement, if any. A `LicenseRef-…` that no pattern names is also
    /// matched against the entries' `text` phrases (`LicenseRef-Debian-AGPL-3-with-x` is AGPL).
    pub fn denied_by(&self, req: &spdx::LicenseReq) -> Option<&DenyEntry> {
        self.deny
            .iter()
            .find(|d| d.license.matches(req))
            .or_else(|| match &req.license {
                spdx::LicenseItem::Other(r) => self.denied_by_text(&r.lic_ref).map(|(d, _)| d),
                spdx::LicenseItem::Spdx { .. } => None,
            })
    }

    /// The deny entry whose `text` phrases occur in a non-SPDX declaration, if any.
    pub fn denied_by_text(&self, declared: &str) -> Option<(&DenyEntry, &str)> {
        let lower = declared.to_lowercase();
        self.deny.iter().find_map(|d| {
            d.text
                .iter()
                .find(|t| lower.contains(&t.to_lowercase()))
                .map(|t| (d, t.as_str()))
        })
    }

    /// Evaluate a package's expression: `OR` passes when any side is allowed, `AND` fails when any side
    /// is denied. A package exception allows the licenses it lists for that package.
    pub fn evaluate(&self, eco: Ecosystem, name: &str, version: &str, expr: &SpdxExpr) -> Verdict {
        let exceptions: Vec<&PackageException> = self
            .allow
            .iter()
            .filter(|a| a.applies(eco, name, version))
            .collect();
        let plain = expr
            .expression()
            .evaluate(|req| self.denied_by(req).is_none());
        if plain {
            return Verdict::Allowed { exception: None };
        }
        let excepted = |req: &spdx::LicenseReq| {
            exceptions
                .iter()
                .find(|a| a.licenses.iter().any(|p| p.matches(req)))
        };
        let with_exceptions = expr
            .expression()
            .evaluate(|req| self.denied_by(req).is_none() || excepted(req).is_some());
        if with_exceptions {
            let used = expr
                .expression()
                .requirements()
                .find_map(|r| excepted(&r.req))
                .map(|a| a.id());
            return Verdict::Allowed { exception: used };
        }
        let terms = expr
            .expression()
            .requirements()
            .filter_map(|r| {
                self.denied_by(&r.req)
                    .map(|d| (r.req.to_string(), d.reason.clone()))
            })
            .collect();
        Verdict::Denied { terms }
    }
}

/// The shipped deny list.
pub const BUILTIN_POLICY: &str = include_str!("../../rules/licenses.toml");

/// A preset's `[license]` table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PresetLicense {
    /// The runtime's npm package (`opencode-ai`, `@anthropic-ai/claude-code`, `@openai/codex`).
    pub package: Option<String>,
    /// The SPDX expression the runtime package must declare (or be clarified to).
    pub expression: Option<SpdxExpr>,
    /// Hash-pinned clarifications for the runtime package or its platform packages.
    #[serde(default)]
    pub clarify: Vec<Clarification>,
}

/// A clarification: "package P is under expression E, as established by these files with these
/// hashes". A hash that no longer matches voids it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Clarification {
    /// The package name as its `package.json` declares it.
    pub package: String,
    pub expression: SpdxExpr,
    /// Files relative to the *runtime package's* directory (`README.md`,
    /// `node_modules/opencode-linux-x64/package.json`), each with its SHA-256 at the last review.
    pub license_files: Vec<PinnedFile>,
    /// What was reviewed and concluded.
    pub reason: String,
}

/// A file and its reviewed SHA-256.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinnedFile {
    pub path: RelPath,
    pub sha256: Sha256Hex,
}

/// A relative path with no `..`, `.` or empty components.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelPath(pub String);

impl<'de> Deserialize<'de> for RelPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = !s.is_empty()
            && !s.starts_with('/')
            && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if ok {
            Ok(RelPath(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "`{s}` must be a relative path inside the package directory (no `/` prefix, `.` or `..`)"
            )))
        }
    }
}

/// 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256Hex(pub String);

impl<'de> Deserialize<'de> for Sha256Hex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Sha256Hex(s))
        } else {
            Err(serde::de::Error::custom(format!(
                "`{s}` is not a SHA-256 (64 lower-case hex digits)"
            )))
        }
    }
}

impl PresetLicense {
    /// Parse a `[license]` table on its own (the preset loader normally deserializes it in place).
    pub fn load(text: &str, file_name: &str) -> Result<PresetLicense> {
        toml::from_str(text).map_err(|e| rule_file_error(text, file_name, &e))
    }

    /// The clarification for `package`, if the preset has one.
    pub fn clarification(&self, package: &str) -> Option<&Clarification> {
        self.clarify.iter().find(|c| c.package == package)
    }
}

/// A toml error as a [`Error::RuleFile`] with its span.
fn rule_file_error(text: &str, file_name: &str, e: &toml::de::Error) -> Error {
    Error::RuleFile {
        message: format!("{file_name}: {}", e.message()),
        src: miette::NamedSource::new(file_name, text.to_string()),
        span: e.span().map(Into::into),
        label: e.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expr(s: &str) -> SpdxExpr {
        SpdxExpr::declared(s).unwrap()
    }

    #[test]
    fn builtin_policy_loads_and_denies_the_contract_families() {
        let p = Policy::builtin().unwrap();
        for denied in [
            "AGPL-3.0-only",
            "AGPL-3.0-or-later",
            "SSPL-1.0",
            "BUSL-1.1",
            "LicenseRef-Commons-Clause",
            "CC-BY-NC-4.0",
            "CC-BY-NC-SA-4.0",
        ] {
            assert!(
                matches!(
                    p.evaluate(Ecosystem::Npm, "x", "1", &expr(denied)),
                    Verdict::Denied { .. }
                ),
                "{denied} should be denied"
            );
        }
        for allowed in [
            "MIT",
            "Apache-2.0",
            "GPL-2.0-or-later",
            "(MIT OR AGPL-3.0-only)",
        ] {
            assert_eq!(
                p.evaluate(Ecosystem::Npm, "x", "1", &expr(allowed)),
                Verdict::Allowed { exception: None },
                "{allowed} should be allowed"
            );
        }
        let Verdict::Denied { terms } =
            p.evaluate(Ecosystem::Npm, "x", "1", &expr("MIT AND AGPL-3.0-only"))
        else {
            panic!("AND with a denied side must be denied")
        };
        assert_eq!(terms.len(), 1);
        assert_eq!(terms[0].0, "AGPL-3.0-only");
        assert!(p.denied_by_text("Apache-2.0 with Commons Clause").is_some());
        assert!(p.denied_by_text("SEE LICENSE IN README.md").is_none());
    }

    #[test]
    fn exceptions_allow_only_their_package() {
        let text = r#"
schema-version = 1
[[deny]]
license = "AGPL-*"
reason = "network copyleft"
[[allow]]
ecosystem = "deb"
name = "libfoo1"
licenses = ["AGPL-3.0-or-later"]
reason = "reviewed: only a test file"
"#;
        let p = Policy::load(text, "t.toml").unwrap();
        let e = expr("GPL-2.0-or-later AND AGPL-3.0-or-later");
        assert_eq!(
            p.evaluate(Ecosystem::Deb, "libfoo1", "1.0", &e),
            Verdict::Allowed {
                exception: Some("licenses.allow:deb:libfoo1".into())
            }
        );
        assert!(matches!(
            p.evaluate(Ecosystem::Deb, "libbar1", "1.0", &e),
            Verdict::Denied { .. }
        ));
        assert!(matches!(
            p.evaluate(Ecosystem::Npm, "libfoo1", "1.0", &e),
            Verdict::Denied { .. }
        ));
    }

    #[test]
    fn errors_carry_spans() {
        let bad_key =
            "schema-version = 1\n[[deny]]\nlicense = \"BUSL-1.1\"\nreason = \"x\"\ncolour = 1\n";
        let Err(Error::RuleFile { span, message, .. }) = Policy::load(bad_key, "t.toml") else {
            panic!("unknown key must fail")
        };
        assert!(message.contains("colour"), "{message}");
        let span = span.unwrap();
        assert_eq!(&bad_key[span.offset()..span.offset() + 6], "colour");

        let bad_id = "schema-version = 1\n[[deny]]\nlicense = \"BUSL-9\"\nreason = \"x\"\n";
        let Err(Error::RuleFile { span, message, .. }) = Policy::load(bad_id, "t.toml") else {
            panic!("bad id must fail")
        };
        assert!(message.contains("BUSL-9"), "{message}");
        assert!(bad_id[span.unwrap().offset()..].starts_with("\"BUSL-9\""));

        let bad_ver = "schema-version = 2\n";
        assert!(matches!(
            Policy::load(bad_ver, "t.toml"),
            Err(Error::RuleFile { span: Some(_), .. })
        ));
    }

    #[test]
    fn preset_tables_validate_hashes_paths_and_expressions() {
        let good = r#"
package = "opencode-ai"
expression = "MIT"
[[clarify]]
package = "opencode-linux-x64"
expression = "MIT"
license-files = [{ path = "LICENSE", sha256 = "0000000000000000000000000000000000000000000000000000000000000000" }]
reason = "r"
"#;
        let l = PresetLicense::load(good, "p.toml").unwrap();
        assert_eq!(l.package.as_deref(), Some("opencode-ai"));
        assert!(l.clarification("opencode-linux-x64").is_some());
        for (bad, needle) in [
            (good.replace("\"MIT\"\n[[", "\"Apache 2\"\n[["), "Apache 2"),
            (
                good.replace("0000000000000000", "ABCDEF0000000000"),
                "SHA-256",
            ),
            (
                good.replace("\"LICENSE\"", "\"../LICENSE\""),
                "relative path",
            ),
            (
                good.replace("reason = \"r\"", "reason = \"r\"\nsha = 1"),
                "sha",
            ),
        ] {
            let Err(Error::RuleFile { message, span, .. }) = PresetLicense::load(&bad, "p.toml")
            else {
                panic!("must fail: {bad}")
            };
            assert!(message.contains(needle), "{message}");
            assert!(span.is_some());
        }
    }
}
