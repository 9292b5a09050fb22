//! Check dispatch. Every check kind gets the same [`CheckInput`] (one image, its layer listings, the merged
//! tree, the loaded rules and preset) and returns [`CheckOutcome`]s, one per rule id it decides. The
//! orchestrator (`crate::app`) applies severities and overrides in one place and merges outcomes that
//! share a rule id (e.g. `provider-env` by name and by value).

pub mod credentials;
pub mod entrypoint;
pub mod env;
pub mod healthcheck;
pub mod hygiene;
pub mod jsonc;
pub mod labels;
pub mod licenses;
pub mod secrets;
pub mod sidecar;
pub mod structure;
pub mod support;
pub mod user;

use std::time::Duration;

use crate::image::{Image, LayerListing, MergedTree, Opened};
use crate::report::{Finding, RuleStatus};
use crate::rules::{Preset, RuleId, RuleSet};
use crate::scan::SecretScanner;

/// `--exec`: whether the healthcheck runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ExecMode {
    /// Run it; if it cannot run, report not-run as a warning.
    #[default]
    Auto,
    /// Run it; if it cannot run, exit 4.
    Always,
    /// Do not run it (status skipped).
    Never,
}

/// Options of a `check` run that checks read.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// `--ref NAME:TAG`
    pub reference: Option<String>,
    /// `--preset` as given (None: taken from the label).
    pub preset_flag: Option<String>,
    pub exec: ExecMode,
    pub healthcheck_timeout: Duration,
    /// `--no-cache`: the healthcheck writes every file instead of linking from the layer store.
    pub no_layer_store: bool,
}

/// What every check kind receives.
#[derive(Debug, Clone, Copy)]
pub struct CheckInput<'a> {
    pub opened: &'a Opened,
    pub image: &'a Image,
    pub listings: &'a [LayerListing],
    /// `scans[i]` is the secret scanner that read layer `i` (empty when contents were not scanned).
    pub scans: &'a [SecretScanner],
    pub tree: &'a MergedTree,
    pub rules: &'a RuleSet,
    /// The preset in force (from `--preset`, else the label), if known.
    pub preset: Option<&'a Preset>,
    pub opts: &'a CheckOptions,
    /// The result cache, for results derived from more than one layer (license text matches).
    pub cache: Option<&'a crate::cache::LayerCache>,
}

/// The decision of one check kind about one rule id. (Serde: the image memo stores them, see
/// `crate::cache`.)
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckOutcome {
    pub rule_id: RuleId,
    pub status: RuleStatus,
    /// Why not-run/skipped, or a short summary.
    pub detail: Option<String>,
    /// Severity inside is a placeholder; the orchestrator sets the rule's effective severity.
    pub findings: Vec<Finding>,
    /// Notes that are not findings (limits hit, unknown licenses, …); copied into the image report.
    pub notes: Vec<String>,
    /// Allowlist suppressions per allowlist entry id; summed into the image report.
    pub suppressed: std::collections::BTreeMap<String, u64>,
}

impl CheckOutcome {
    /// Passed when there are no findings, failed otherwise.
    pub fn from_findings(rule_id: RuleId, findings: Vec<Finding>) -> Self {
        let status = if findings.is_empty() {
            RuleStatus::Passed
        } else {
            RuleStatus::Failed
        };
        CheckOutcome {
            rule_id,
            status,
            detail: None,
            findings,
            notes: Vec::new(),
            suppressed: std::collections::BTreeMap::new(),
        }
    }
}

/// One check kind: the rules it decides and the function that decides them.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Every rule id its outcomes carry (a rule may be decided by several kinds: `provider-env` by
    /// name here and by value in `secrets`; the orchestrator merges them).
    pub decides: &'static [RuleId],
    pub run: fn(&CheckInput<'_>) -> Vec<CheckOutcome>,
}

/// The one registry of check kinds, in the order their outcomes are merged. Adding a check: one entry
/// here (README, "Adding a rule").
pub fn all() -> &'static [Check] {
    use RuleId as R;
    const ALL: &[Check] = &[
        Check {
            decides: &[R::RuntimeLabel],
            run: |i| vec![labels::runtime_label(i)],
        },
        Check {
            decides: &[R::Entrypoint],
            run: |i| vec![entrypoint::check(i)],
        },
        Check {
            decides: &[R::ProviderEnv],
            run: |i| vec![env::provider_env(i)],
        },
        Check {
            decides: &[R::BuildSecret],
            run: |i| vec![env::build_secret(i)],
        },
        Check {
            decides: &[R::CredentialFile],
            run: |i| vec![credentials::check(i)],
        },
        Check {
            decides: &[R::PresetFiles],
            run: |i| vec![structure::preset_files(i)],
        },
        Check {
            decides: &[R::SidecarConfig],
            run: |i| vec![sidecar::check(i)],
        },
        Check {
            decides: &[R::ImageUser],
            run: |i| vec![user::image_user(i)],
        },
        Check {
            decides: &[R::BaseOs],
            run: |i| vec![structure::base_os(i)],
        },
        Check {
            decides: &[R::TagPolicy],
            run: |i| vec![labels::tag_policy(i)],
        },
        Check {
            decides: &[R::LayerHygiene],
            run: |i| vec![hygiene::check(i)],
        },
        Check {
            decides: &[
                R::SecretInLayer,
                R::ProviderEnv,
                R::BuildSecret,
                R::SecretInMetadata,
            ],
            run: secrets::check,
        },
        Check {
            decides: &[R::RuntimeLicense, R::DeniedLicense, R::LicenseLabel],
            run: licenses::check,
        },
        Check {
            decides: &[R::Healthcheck],
            run: |i| vec![healthcheck::check(i)],
        },
    ];
    ALL
}

/// Run every registered check kind on `input`.
pub fn run_all(input: &CheckInput<'_>) -> Vec<CheckOutcome> {
    all().iter().flat_map(|c| (c.run)(input)).collect()
}

impl Check {
    /// Whether its outcomes are a function of the image's metadata, its layers' contents and the
    /// configuration alone, so that the image memo may store them: every kind but the healthcheck,
    /// which runs the image on this machine.
    pub fn memoisable(&self) -> bool {
        !self.decides.contains(&RuleId::Healthcheck)
    }
}

/// Run the registered check kinds for which `memoisable() == memoisable`, in registry order.
/// `run_some(i, true)` followed by `run_some(i, false)` is [`run_all`] (the healthcheck is last).
pub fn run_some(input: &CheckInput<'_>, memoisable: bool) -> Vec<CheckOutcome> {
    all()
        .iter()
        .filter(|c| c.memoisable() == memoisable)
        .flat_map(|c| (c.run)(input))
        .collect()
}

/// Paths (globs, no leading `/`) whose content the structural checks read.
pub fn capture_globs(rules: &RuleSet, preset: Option<&Preset>) -> Vec<String> {
    let mut globs: Vec<String> = [
        "etc/passwd",
        "etc/group",
        "etc/os-release",
        "usr/lib/os-release",
        "lib/os-release",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect();
    globs.extend(rules.credentials.capture_globs());
    let presets: Vec<&Preset> = match preset {
        Some(p) => vec![p],
        None => rules.presets.values().collect(),
    };
    for p in presets {
        if let Some(rc) = &p.runtime_config {
            globs.push(rc.path.trim_start_matches('/').to_string());
            if let Some(eff) = &rc.effective {
                globs.extend(eff.capture.iter().cloned());
            }
        }
    }
    globs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_healthcheck_is_not_memoised_and_it_runs_last() {
        let kinds = all();
        let not: Vec<usize> = (0..kinds.len())
            .filter(|&i| !kinds[i].memoisable())
            .collect();
        // run_some(true) then run_some(false) must be run_all's order.
        assert_eq!(not, [kinds.len() - 1]);
        assert_eq!(kinds[kinds.len() - 1].decides, [RuleId::Healthcheck]);
        assert!(
            kinds[..kinds.len() - 1]
                .iter()
                .all(|c| !c.decides.contains(&RuleId::Healthcheck))
        );
    }
}
