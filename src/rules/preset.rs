//! The preset model: `presets/<runtime>/preset.toml` deserialized strictly into [`Preset`] and
//! validated (regexes compiled, JSON pointers checked) once at load time.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::Result;
use crate::toml_file::SourceFile;

/// A runtime preset (`presets/<runtime>/preset.toml`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// Format version of the file (1).
    pub schema_version: u32,
    /// Runtime id, the value of the `org.x1agent.runtime` label.
    pub name: String,
    /// Image repository without registry or tag (`x1agent/runtime-opencode`).
    pub image: String,
    /// One line for `x1-validate rules --preset`.
    #[serde(default)]
    pub summary: String,
    /// The unprivileged user the image runs as.
    pub user: PresetUser,
    /// Absolute path of the platform entrypoint.
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    /// Files the contract requires, with their kind.
    #[serde(default, rename = "required")]
    pub required: Vec<RequiredFile>,
    /// The base OS the image must be built on.
    pub base_os: BaseOs,
    /// The runtime config the platform owns, and its sidecar policy.
    #[serde(default)]
    pub runtime_config: Option<RuntimeConfig>,
    /// Runtime descriptor facts (tools, MCP transports, hooks, state paths).
    #[serde(default)]
    pub descriptor: RuntimeDescriptor,
    /// The preset's `[license]` table: runtime package, expected SPDX expression, clarifications.
    #[serde(default)]
    pub license: crate::license::PresetLicense,
}

fn default_entrypoint() -> String {
    "/x1/bin/entrypoint".into()
}

/// `[user]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetUser {
    pub name: String,
    pub uid: u64,
    /// Primary group id, when the preset fixes it.
    #[serde(default)]
    pub gid: Option<u64>,
    pub home: String,
}

/// The kind a required path must have (after in-root symlink resolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A regular file with at least one execute bit.
    Executable,
    /// A directory.
    Dir,
}

impl FileKind {
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::File => "a regular file",
            FileKind::Executable => "an executable regular file",
            FileKind::Dir => "a directory",
        }
    }
}

/// `[[required]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredFile {
    pub path: String,
    pub kind: FileKind,
    /// What the file is for (shown in the finding's help).
    #[serde(default)]
    pub purpose: String,
}

/// `[base_os]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseOs {
    /// `/etc/os-release` `ID`.
    pub id: String,
    /// `/etc/os-release` `VERSION_ID`.
    pub version_id: String,
    /// `/etc/os-release` `VERSION_CODENAME`.
    pub codename: String,
    /// glibc dynamic loader path(s) by OCI architecture (`amd64`, `arm64`, …); one must exist.
    pub loaders: BTreeMap<String, Vec<String>>,
}

/// Format of the runtime config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConfigFormat {
    #[default]
    Json,
    /// JSON with `//` and `/* */` comments and trailing commas.
    Jsonc,
    Toml,
}

/// `[runtime_config]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Absolute path in the image.
    pub path: String,
    pub format: ConfigFormat,
    pub sidecar: SidecarPolicy,
    /// Settings that must hold (auto-update off, sharing off, …).
    #[serde(default)]
    pub require: Vec<Requirement>,
    /// Plugin lists that may only name local files.
    #[serde(default)]
    pub plugins: Vec<PluginPolicy>,
    /// Where else the runtime reads config, so that the platform file is the one in effect.
    #[serde(default)]
    pub effective: Option<EffectivePolicy>,
}

/// `[runtime_config.effective]`: the config in effect. The platform file must be installed where the
/// runtime gives it the highest precedence, the `Env` switches must hold, and every other place the
/// runtime reads config from must be absent, a copy of the platform file, or harmless (no provider
/// elsewhere, no key, no switch turned back on).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectivePolicy {
    /// Highest-precedence config paths; the first must be a copy of or a link to the platform file,
    /// the others absent or copies too.
    #[serde(default)]
    pub managed: Vec<String>,
    /// `Env` variables that must not be set (they move the managed config elsewhere).
    #[serde(default)]
    pub forbidden_env: Vec<String>,
    /// `Env` variables that must be set, with their accepted values.
    #[serde(default)]
    pub env: BTreeMap<String, Vec<String>>,
    /// Files under the config home (`$XDG_CONFIG_HOME`, else `$HOME/.config`).
    #[serde(default)]
    pub config_home_files: Vec<String>,
    /// Files under the user's home.
    #[serde(default)]
    pub home_files: Vec<String>,
    /// `Env` variables that name one more config file.
    #[serde(default)]
    pub env_files: Vec<String>,
    /// `Env` variables that name a config directory, with the files read from it.
    #[serde(default)]
    pub env_dirs: BTreeMap<String, Vec<String>>,
    /// `Env` variables whose value is a whole config document.
    #[serde(default)]
    pub env_content: Vec<String>,
    /// `Env` variables whose value is JSON merged into one key (`OPENCODE_PERMISSION` → `/permission`).
    #[serde(default)]
    pub env_json: BTreeMap<String, String>,
    /// Extra globs to capture during the layer pass (relative to `/`).
    #[serde(default)]
    pub capture: Vec<String>,
}

/// `[runtime_config.sidecar]`: where providers are and what a sidecar-bound provider looks like.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SidecarPolicy {
    /// Scheme, host and port of the sidecar's AI proxy (`http://localhost:11432`).
    pub base_url: String,
    /// Paths accepted after `base_url` (`""`, `"/v1"`); a trailing `/` is ignored.
    pub paths: Vec<String>,
    /// The agreed placeholder API key values.
    #[serde(default)]
    pub placeholders: Vec<String>,
    /// A regex for values that reference an environment variable instead of holding a key.
    #[serde(default)]
    pub env_ref: Option<String>,
    /// Object keys (anywhere in the document) whose values are API keys.
    #[serde(default)]
    pub api_key_names: Vec<String>,
    /// JSON pointer to the object of providers (`/provider`).
    #[serde(default)]
    pub providers: Option<String>,
    /// JSON pointer, inside one provider, to its base URL (`/options/baseURL`).
    #[serde(default)]
    pub provider_base_url: Option<String>,
    /// JSON pointer, inside one provider, to its SDK package (`/npm`).
    #[serde(default)]
    pub provider_npm: Option<String>,
    /// SDK packages compiled into the runtime (anything else is fetched at run time).
    #[serde(default)]
    pub bundled_npm: Vec<String>,
    /// JSON pointer to the list of enabled providers; when set it must exist, and every provider
    /// in it must be configured with a sidecar base URL.
    #[serde(default)]
    pub enabled: Option<String>,
}

/// `[[runtime_config.require]]`: one setting that must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requirement {
    /// JSON pointer into the config.
    pub pointer: String,
    /// The value must be one of these (TOML values compared as JSON).
    #[serde(default)]
    pub one_of: Vec<serde_json::Value>,
    /// The value must be a sidecar URL.
    #[serde(default)]
    pub sidecar_url: bool,
    /// The key must not exist.
    #[serde(default)]
    pub absent: bool,
    /// With `one_of`: a missing key passes (the runtime default is safe).
    #[serde(default)]
    pub optional: bool,
    /// What is wrong when the requirement fails.
    pub message: String,
}

/// `[[runtime_config.plugins]]`: a list of plugin specs that may only name local files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginPolicy {
    pub pointer: String,
    /// Spec prefixes that are local (`./`, `/`, `file://`).
    pub local_prefixes: Vec<String>,
}

/// `[descriptor]`: facts about the runtime that the platform and reports use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeDescriptor {
    /// The runtime's own command (`opencode`).
    #[serde(default)]
    pub command: String,
    /// How the image starts it headless.
    #[serde(default)]
    pub headless: String,
    #[serde(default)]
    pub builtin_tools: Vec<String>,
    #[serde(default)]
    pub mcp_transports: Vec<String>,
    #[serde(default)]
    pub hook_surfaces: Vec<String>,
    /// Where the runtime keeps state (sessions, credentials), `~` = the user's home.
    #[serde(default)]
    pub state_paths: Vec<String>,
    /// Config files the runtime reads.
    #[serde(default)]
    pub config_paths: Vec<String>,
}

impl Preset {
    /// Parse and validate one preset file; `dir_name` is the directory it was found in.
    pub fn load(src: &SourceFile<'_>, dir_name: &str) -> Result<Preset> {
        let preset: Preset = src.parse()?;
        if preset.schema_version != 1 {
            return Err(src.error_at(
                "schema_version",
                0,
                format!("unsupported schema_version {}", preset.schema_version),
            ));
        }
        if preset.name != dir_name {
            return Err(src.error_at(
                "name",
                0,
                format!(
                    "preset name `{}` differs from its directory `{dir_name}`",
                    preset.name
                ),
            ));
        }
        for (i, f) in preset.required.iter().enumerate() {
            if !f.path.starts_with('/') {
                return Err(src.error_at("path", i, format!("`{}` is not absolute", f.path)));
            }
        }
        if let Some(rc) = &preset.runtime_config {
            rc.validate(src)?;
        }
        Ok(preset)
    }
}

impl RuntimeConfig {
    fn validate(&self, src: &SourceFile<'_>) -> Result<()> {
        if let Some(re) = &self.sidecar.env_ref
            && let Err(e) = regex::Regex::new(re)
        {
            return Err(src.error_at("env_ref", 0, format!("invalid regex: {e}")));
        }
        let pointers = [
            &self.sidecar.providers,
            &self.sidecar.provider_base_url,
            &self.sidecar.provider_npm,
            &self.sidecar.enabled,
        ];
        let all = pointers
            .into_iter()
            .flatten()
            .chain(self.require.iter().map(|r| &r.pointer))
            .chain(self.plugins.iter().map(|p| &p.pointer));
        for p in all {
            if !p.starts_with('/') {
                return Err(src.error_at(
                    &format!("\"{p}\""),
                    0,
                    format!("`{p}` is not a JSON pointer (must start with `/`)"),
                ));
            }
        }
        if !self.sidecar.base_url.starts_with("http://")
            && !self.sidecar.base_url.starts_with("https://")
        {
            return Err(src.error_at("base_url", 0, "base_url must be an http(s) URL".into()));
        }
        Ok(())
    }
}
