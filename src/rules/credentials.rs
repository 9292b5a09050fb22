//! `rules/credentials.toml`: provider-credential variable names and credential-file globs with optional
//! content conditions, parsed strictly and compiled once (one `GlobSet`, one regex per condition).

use std::collections::BTreeSet;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::error::Result;
use crate::toml_file::SourceFile;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredentials {
    schema_version: u32,
    env: RawEnv,
    #[serde(default, rename = "file")]
    files: Vec<RawFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnv {
    names: Vec<toml::Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    id: toml::Spanned<String>,
    description: String,
    globs: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    content: Option<String>,
}

/// One credential-file kind, compiled.
#[derive(Debug, Clone)]
pub struct CredentialFile {
    pub id: String,
    pub description: String,
    /// The globs as written (also captured during the layer pass when `content` is set).
    pub globs: Vec<String>,
    /// Paths that the globs match but that are not of this kind. (The globs themselves are matched
    /// through [`Credentials`]' one combined set.)
    except: GlobSet,
    /// The file is a credential only when its content matches.
    pub content: Option<regex::bytes::Regex>,
}

/// The compiled `rules/credentials.toml`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Provider-credential variable names, upper-cased.
    pub env_names: BTreeSet<String>,
    pub files: Vec<CredentialFile>,
    /// Every kind's globs in one set (one match per path instead of one per kind), and the kind
    /// (index in `files`) each of its globs belongs to.
    any: GlobSet,
    owner: Vec<usize>,
}

impl Credentials {
    /// Parse and compile the file.
    pub fn load(src: &SourceFile<'_>) -> Result<Credentials> {
        let raw: RawCredentials = src.parse()?;
        if raw.schema_version != 1 {
            return Err(src.error_at(
                "schema_version",
                0,
                format!("unsupported schema_version {}", raw.schema_version),
            ));
        }
        let mut env_names = BTreeSet::new();
        for spanned in &raw.env.names {
            let name = spanned.get_ref();
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(src.error_in(
                    spanned.span(),
                    &format!("`{name}` is not an environment variable name"),
                ));
            }
            if !env_names.insert(name.to_ascii_uppercase()) {
                return Err(src.error_in(spanned.span(), &format!("`{name}` is listed twice")));
            }
        }
        let mut files = Vec::new();
        let mut ids = BTreeSet::new();
        for f in raw.files {
            let id_span = f.id.span();
            let id = f.id.into_inner();
            if !ids.insert(id.clone()) {
                return Err(src.error_in(id_span, &format!("file id `{id}` is listed twice")));
            }
            let except = build_set(src, &f.except)?;
            let content = match &f.content {
                None => None,
                Some(re) => Some(regex::bytes::Regex::new(re).map_err(|e| {
                    src.error_at(re, 0, format!("invalid content regex for `{id}`: {e}"))
                })?),
            };
            if f.globs.is_empty() {
                return Err(src.error_in(id_span, &format!("`{id}` has no globs")));
            }
            files.push(CredentialFile {
                id,
                description: f.description,
                globs: f.globs,
                except,
                content,
            });
        }
        let mut any = GlobSetBuilder::new();
        let mut owner = Vec::new();
        for (i, f) in files.iter().enumerate() {
            for g in &f.globs {
                any.add(glob(g).map_err(|e| {
                    src.error_at(&format!("\"{g}\""), 0, format!("invalid glob `{g}`: {e}"))
                })?);
                owner.push(i);
            }
        }
        let any = any
            .build()
            .map_err(|e| src.error_at("globs", 0, format!("invalid globs: {e}")))?;
        Ok(Credentials {
            env_names,
            files,
            any,
            owner,
        })
    }

    /// The first credential-file kind (in file order) whose globs match the normalised path `path`
    /// (no leading `/`) and whose `except` globs do not: the same answer as trying each kind's globs
    /// and `except` in turn (the tests' oracle), with one glob match for most paths.
    pub fn file_kind(&self, path: &str) -> Option<&CredentialFile> {
        let candidate = globset::Candidate::new(path);
        if !self.any.is_match_candidate(&candidate) {
            return None;
        }
        let mut kinds: Vec<usize> = self
            .any
            .matches_candidate(&candidate)
            .into_iter()
            .filter_map(|g| self.owner.get(g).copied())
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds
            .into_iter()
            .filter_map(|k| self.files.get(k))
            .find(|f| !f.except.is_match_candidate(&candidate))
    }

    /// Whether `name` is a provider-credential variable (ASCII case-insensitive).
    pub fn is_credential_var(&self, name: &str) -> bool {
        self.env_names.contains(&name.to_ascii_uppercase())
    }

    /// Globs whose content the credential-file check needs captured.
    pub fn capture_globs(&self) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.content.is_some())
            .flat_map(|f| f.globs.iter().cloned())
            .collect()
    }
}

/// One glob as x1-validate matches paths: `/` is literal for `*`, `**/` also matches at the root.
pub fn glob(pattern: &str) -> std::result::Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

fn build_set(src: &SourceFile<'_>, globs: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let compiled = glob(g).map_err(|e| {
            src.error_at(&format!("\"{g}\""), 0, format!("invalid glob `{g}`: {e}"))
        })?;
        b.add(compiled);
    }
    b.build()
        .map_err(|e| src.error_at("globs", 0, format!("invalid globs: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the normalised path is of kind `k` by its own globs and `except` alone (the oracle for
    /// [`Credentials::file_kind`]).
    fn matches_path(k: &CredentialFile, path: &str) -> bool {
        let src = SourceFile {
            name: "credentials.toml",
            text: "",
        };
        let globs = build_set(&src, &k.globs).expect("the kind's globs compiled at load");
        globs.is_match(path) && !k.except.is_match(path)
    }

    fn load(text: &str) -> Result<Credentials> {
        Credentials::load(&SourceFile {
            name: "credentials.toml",
            text,
        })
    }

    #[test]
    fn shipped_file_loads_and_matches() {
        let c = load(include_str!("../../rules/credentials.toml")).expect("shipped file loads");
        assert!(c.is_credential_var("ANTHROPIC_API_KEY"));
        assert!(c.is_credential_var("opencode_auth_content"));
        for name in [
            "AWS_REGION",
            "GOOGLE_VERTEX_PROJECT",
            "OPENAI_BASE_URL",
            "PATH",
        ] {
            assert!(!c.is_credential_var(name), "{name}");
        }
        let by_id = |id: &str| c.files.iter().find(|f| f.id == id).expect(id);
        assert!(matches_path(
            by_id("opencode-auth"),
            "home/agent/.local/share/opencode/auth.json"
        ));
        assert!(matches_path(by_id("git-credentials"), ".git-credentials"));
        assert!(matches_path(
            by_id("ssh-private-key"),
            "root/.ssh/id_ed25519"
        ));
        assert!(!matches_path(
            by_id("ssh-private-key"),
            "root/.ssh/id_ed25519.pub"
        ));
        assert!(!matches_path(
            by_id("npmrc-token"),
            "usr/lib/node_modules/x/npmrc.js"
        ));
        let npm = by_id("npmrc-token")
            .content
            .as_ref()
            .expect("has content rule");
        assert!(npm.is_match(b"//registry.npmjs.org/:_authToken=abc123\n"));
        assert!(!npm.is_match(b"//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n"));
    }

    /// The kind each kind's own matcher, tried in file order, gives.
    fn one_by_one<'c>(c: &'c Credentials, path: &str) -> Option<&'c str> {
        c.files
            .iter()
            .find(|k| matches_path(k, path))
            .map(|k| k.id.as_str())
    }

    #[test]
    fn one_glob_set_gives_the_first_kind_in_file_order() {
        let shipped = load(include_str!("../../rules/credentials.toml")).expect("shipped file");
        let own = load(concat!(
            "schema_version = 1\n[env]\nnames = [\"A_KEY\"]\n",
            "[[file]]\nid = \"a\"\ndescription = \"a\"\nglobs = [\"**/x/*\"]\nexcept = [\"**/*.pub\"]\n",
            "[[file]]\nid = \"b\"\ndescription = \"b\"\nglobs = [\"**/*.pub\", \"**/x/k*\"]\n",
        ))
        .expect("loads");
        let paths = [
            "",
            "home/agent/.local/share/opencode/auth.json",
            "home/agent/.local/share/opencode/log/x.txt",
            "root/.ssh/npmrc",
            "root/.ssh/id_ed25519",
            "root/.ssh/id_ed25519.pub",
            "root/.ssh/known_hosts",
            "etc/ssh/ssh_host_rsa_key",
            "etc/ssh/ssh_host_rsa_key.pub",
            "usr/lib/node_modules/x/npmrc.js",
            ".git-credentials",
            "srv/.docker/config.json",
            "x/k.pub",
            "x/kk",
            "x/m",
            "y/x/m.pub",
            "usr/bin/env",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for c in [&shipped, &own] {
            for p in paths {
                let got = c.file_kind(p).map(|k| k.id.as_str());
                assert_eq!(got, one_by_one(c, p), "{p}");
                seen.insert(got);
            }
        }
        // The overlaps above decide something: the earlier kind, and the next kind after an except.
        assert_eq!(
            shipped
                .file_kind("home/agent/.local/share/opencode/auth.json")
                .map(|k| k.id.as_str()),
            Some("opencode-auth")
        );
        assert_eq!(
            shipped.file_kind("root/.ssh/npmrc").map(|k| k.id.as_str()),
            Some("npmrc-token")
        );
        assert_eq!(own.file_kind("x/k.pub").map(|k| k.id.as_str()), Some("b"));
        assert_eq!(own.file_kind("x/kk").map(|k| k.id.as_str()), Some("a"));
        assert!(seen.contains(&None) && seen.len() > 6);
    }

    #[test]
    fn duplicate_name_is_an_error_on_its_second_line() {
        let text = "schema_version = 1\n[env]\nnames = [\n\"A_KEY\",\n\"A_KEY\",\n]\n";
        let Err(crate::Error::RuleFile { span, .. }) = load(text) else {
            panic!("expected error");
        };
        assert_eq!(
            span.expect("span").offset(),
            text.rfind("\"A_KEY\"").expect("present")
        );
    }
}
