//! Rules and presets as data: `rules/*.toml` and `presets/<runtime>/preset.toml`, parsed strictly
//! (unknown keys are errors with a miette label on the offending line), validated once, embedded in the
//! binary as defaults and overridable with `--rules`/`--presets`.

use std::collections::BTreeMap;

/// Everything loaded from `rules/` and `presets/`, validated and compiled once.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// The contract's rules with their default severity and explain text.
    pub rules: Vec<RuleDef>,
    /// Presets by runtime id (`opencode`, `claude-code`, `codex`).
    pub presets: BTreeMap<String, Preset>,
    /// Secret value patterns and the allowlist (`rules/secrets.toml`), compiled.
    pub secrets: crate::scan::Patterns,
    /// License deny list (`rules/licenses.toml`).
    pub licenses: crate::license::Policy,
}

/// One contract rule.
#[derive(Debug, Clone)]
pub struct RuleDef {
    pub id: String,
    pub default_severity: crate::report::Severity,
    /// One line: what fails it.
    pub summary: String,
}

/// A runtime preset (`presets/<runtime>/preset.toml`).
#[derive(Debug, Clone, Default)]
pub struct Preset {
    /// Runtime id, the value of the `org.x1agent.runtime` label.
    pub name: String,
    /// The preset's `[license]` table: runtime package, expected SPDX expression, clarifications.
    pub license: crate::license::PresetLicense,
}
