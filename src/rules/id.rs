//! [`RuleId`]: the public rule ids of contract.md as one enum. The kebab-case spelling is public (reports,
//! `--deny/--warn/--allow`, `explain`, `rules/rules.toml`) and must never change; the declaration order is
//! the catalogue order (`x1-validate rules`, SARIF `tool.driver.rules`, `JUnit` testcases).
//!
//! Adding a rule: a variant here (the compiler then names every `match` that must decide about it), its
//! `[[rule]]` in `rules/rules.toml`, and the check that decides it (README, "Adding a rule").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A contract rule.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum RuleId {
    RuntimeLabel,
    Entrypoint,
    Healthcheck,
    ProviderEnv,
    BuildSecret,
    SecretInLayer,
    CredentialFile,
    SecretInMetadata,
    RuntimeLicense,
    DeniedLicense,
    LicenseLabel,
    PresetFiles,
    SidecarConfig,
    ImageUser,
    BaseOs,
    TagPolicy,
    LayerHygiene,
}

impl RuleId {
    /// Every rule, in catalogue order.
    pub const ALL: [RuleId; 17] = [
        RuleId::RuntimeLabel,
        RuleId::Entrypoint,
        RuleId::Healthcheck,
        RuleId::ProviderEnv,
        RuleId::BuildSecret,
        RuleId::SecretInLayer,
        RuleId::CredentialFile,
        RuleId::SecretInMetadata,
        RuleId::RuntimeLicense,
        RuleId::DeniedLicense,
        RuleId::LicenseLabel,
        RuleId::PresetFiles,
        RuleId::SidecarConfig,
        RuleId::ImageUser,
        RuleId::BaseOs,
        RuleId::TagPolicy,
        RuleId::LayerHygiene,
    ];

    /// The public id (`secret-in-layer`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleId::RuntimeLabel => "runtime-label",
            RuleId::Entrypoint => "entrypoint",
            RuleId::Healthcheck => "healthcheck",
            RuleId::ProviderEnv => "provider-env",
            RuleId::BuildSecret => "build-secret",
            RuleId::SecretInLayer => "secret-in-layer",
            RuleId::CredentialFile => "credential-file",
            RuleId::SecretInMetadata => "secret-in-metadata",
            RuleId::RuntimeLicense => "runtime-license",
            RuleId::DeniedLicense => "denied-license",
            RuleId::LicenseLabel => "license-label",
            RuleId::PresetFiles => "preset-files",
            RuleId::SidecarConfig => "sidecar-config",
            RuleId::ImageUser => "image-user",
            RuleId::BaseOs => "base-os",
            RuleId::TagPolicy => "tag-policy",
            RuleId::LayerHygiene => "layer-hygiene",
        }
    }

    /// Whether a check may pin a finding of this rule to `error` whatever the rule's configured
    /// severity (unless the user overrides the rule): `layer-hygiene` path escapes.
    pub const fn pins_errors(self) -> bool {
        match self {
            RuleId::LayerHygiene => true,
            RuleId::RuntimeLabel
            | RuleId::Entrypoint
            | RuleId::Healthcheck
            | RuleId::ProviderEnv
            | RuleId::BuildSecret
            | RuleId::SecretInLayer
            | RuleId::CredentialFile
            | RuleId::SecretInMetadata
            | RuleId::RuntimeLicense
            | RuleId::DeniedLicense
            | RuleId::LicenseLabel
            | RuleId::PresetFiles
            | RuleId::SidecarConfig
            | RuleId::ImageUser
            | RuleId::BaseOs
            | RuleId::TagPolicy => false,
        }
    }

    /// Whether a not-run of this rule is itself reported (a warning under `--exec auto`, exit 4 under
    /// `--exec always`): only the healthcheck can fail to run for want of a sandbox.
    pub const fn can_be_not_run(self) -> bool {
        match self {
            RuleId::Healthcheck => true,
            RuleId::RuntimeLabel
            | RuleId::Entrypoint
            | RuleId::ProviderEnv
            | RuleId::BuildSecret
            | RuleId::SecretInLayer
            | RuleId::CredentialFile
            | RuleId::SecretInMetadata
            | RuleId::RuntimeLicense
            | RuleId::DeniedLicense
            | RuleId::LicenseLabel
            | RuleId::PresetFiles
            | RuleId::SidecarConfig
            | RuleId::ImageUser
            | RuleId::BaseOs
            | RuleId::TagPolicy
            | RuleId::LayerHygiene => false,
        }
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// An id that is not a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown rule `{0}`")]
pub struct UnknownRule(pub String);

impl FromStr for RuleId {
    type Err = UnknownRule;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RuleId::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRule(s.to_string()))
    }
}

impl AsRef<str> for RuleId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum as _;

    #[test]
    fn the_spellings_agree() {
        assert_eq!(RuleId::value_variants(), RuleId::ALL.as_slice());
        for id in RuleId::ALL {
            let clap_name = id.to_possible_value().expect("not skipped");
            assert_eq!(clap_name.get_name(), id.as_str());
            assert_eq!(
                serde_json::to_value(id).expect("serialises"),
                serde_json::Value::String(id.as_str().into())
            );
            assert_eq!(id.as_str().parse::<RuleId>(), Ok(id));
        }
        assert!("Base-os".parse::<RuleId>().is_err());
        let mut sorted = RuleId::ALL;
        sorted.sort();
        assert_eq!(sorted, RuleId::ALL, "Ord is catalogue order");
    }
}
