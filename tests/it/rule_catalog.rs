//! Every rule is complete (issue 15): each [`RuleId`] has its `[[rule]]` in `rules/rules.toml` with an
//! explain text in three parts, a registered check that decides it, a page in `docs/rules/`, and a
//! fixture here that triggers it. [`trigger`] is an exhaustive match: a new `RuleId` does not compile
//! until it has a fixture.

use std::collections::BTreeSet;

use x1_validate::checks::ExecMode;
use x1_validate::report::ImageReport;
use x1_validate::rules::{RuleId, RuleSet};

use crate::checks::{OPENCODE_JSON, base_layer, config, good, overlay_layer};
use rand::Rng;

use crate::common::{ImageBuilder, Layer};

#[test]
fn every_rule_has_its_toml_entry_explain_text_and_check() {
    let rules = RuleSet::embedded().unwrap();
    for id in RuleId::ALL {
        let def = rules
            .rule(id)
            .unwrap_or_else(|| panic!("{id}: no [[rule]] in rules/rules.toml"));
        assert!(!def.summary.trim().is_empty(), "{id}: empty summary");
        for part in ["What it checks", "Why it matters", "How to fix"] {
            assert!(def.explain.contains(part), "{id}: explain lacks `{part}`");
        }
    }
    let decided: BTreeSet<RuleId> = x1_validate::checks::all()
        .iter()
        .flat_map(|c| c.decides.iter().copied())
        .collect();
    let all: BTreeSet<RuleId> = RuleId::ALL.into_iter().collect();
    assert_eq!(
        decided, all,
        "every rule is decided by a check of checks::all()"
    );
}

/// `n` alphanumeric characters from `rng` (the tests' `rand::rng()`; a seeded one for the docs'
/// example findings, which must not change from run to run).
pub(crate) fn alnum(rng: &mut dyn rand::RngCore, n: usize) -> String {
    const CS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n)
        .map(|_| CS[rng.random_range(0..CS.len())] as char)
        .collect()
}

/// A provider-shaped key (real prefix, generated body): never a literal in the repository.
fn anthropic_key(rng: &mut dyn rand::RngCore) -> String {
    format!("{}-{}AA", ["sk", "ant", "api03"].join("-"), alnum(rng, 93))
}

/// How to run a fixture.
pub(crate) struct Trigger {
    pub image: ImageBuilder,
    pub reference: Option<&'static str>,
    pub exec: ExecMode,
}

fn plain(image: ImageBuilder) -> Trigger {
    Trigger {
        image,
        reference: None,
        exec: ExecMode::Never,
    }
}

fn npm_package(name: &str, license: &str) -> Layer {
    let dir = format!("usr/local/lib/node_modules/{name}");
    Layer::new().dir(&dir).file(
        &format!("{dir}/package.json"),
        format!(r#"{{"name": "{name}", "version": "1.0.0", "license": "{license}"}}"#).as_bytes(),
    )
}

/// An image (built from the passing one, `checks::good`) that fails `id`.
pub(crate) fn trigger(id: RuleId, rng: &mut dyn rand::RngCore) -> Trigger {
    match id {
        RuleId::RuntimeLabel => {
            let mut img = good();
            img.labels.remove("org.x1agent.runtime");
            plain(img)
        }
        RuleId::Entrypoint => plain(good().entrypoint(&["/bin/sh", "-c", "true"])),
        // The image's /bin/sh is a synthetic ELF that cannot run: the healthcheck fails.
        RuleId::Healthcheck => Trigger {
            image: good(),
            reference: None,
            exec: ExecMode::Auto,
        },
        RuleId::ProviderEnv => plain(good().env(&format!("ANTHROPIC_API_KEY={}", alnum(rng, 40)))),
        RuleId::BuildSecret => plain(
            good()
                .history("layer 0", false)
                .history("layer 1", false)
                .history(&format!("ARG GH_TOKEN={}", alnum(rng, 32)), true),
        ),
        RuleId::SecretInLayer => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            Layer::new().dir("srv").file(
                "srv/notes.txt",
                format!("key: {}\n", anthropic_key(rng)).as_bytes(),
            ),
        ])),
        RuleId::CredentialFile => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            Layer::new().dir("root").file(
                "root/.git-credentials",
                format!("https://agent:{}@example.com\n", alnum(rng, 20)).as_bytes(),
            ),
        ])),
        RuleId::SecretInMetadata => plain(good().label(
            "org.example.debug",
            &format!("token={}", anthropic_key(rng)),
        )),
        RuleId::RuntimeLicense => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            npm_package("opencode-ai", "Apache-2.0"),
        ])),
        RuleId::DeniedLicense => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            npm_package("left-pad-enterprise", "SSPL-1.0"),
        ])),
        RuleId::LicenseLabel => {
            plain(good().label("org.opencontainers.image.licenses", "Apache 2"))
        }
        RuleId::PresetFiles => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            Layer::new().whiteout("x1/etc/gitconfig"),
        ])),
        RuleId::SidecarConfig => plain(config(vec![base_layer(), overlay_layer("{}")])),
        RuleId::ImageUser => plain(good().user("root")),
        RuleId::BaseOs => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            Layer::new().whiteout("lib64/ld-linux-x86-64.so.2"),
        ])),
        RuleId::TagPolicy => Trigger {
            image: good(),
            reference: Some("x1agent/runtime-opencode:latest"),
            exec: ExecMode::Never,
        },
        RuleId::LayerHygiene => plain(config(vec![
            base_layer(),
            overlay_layer(OPENCODE_JSON),
            Layer::new().setuid("bin/su", b"x"),
        ])),
    }
}

pub(crate) fn run(t: &Trigger) -> ImageReport {
    let run = crate::checks::Run {
        reference: t.reference,
        exec: Some(t.exec),
        ..crate::checks::Run::default()
    };
    crate::checks::check(&t.image, &run)
}

#[test]
fn every_rule_has_a_fixture_that_triggers_it() {
    let mut missed = Vec::new();
    for id in RuleId::ALL {
        let t = trigger(id, &mut rand::rng());
        if t.exec != ExecMode::Never
            && let Err(why) = x1_validate::sandbox::available()
        {
            crate::common::skip(&format!("{id}: the bwrap sandbox is not available: {why}"));
            continue;
        }
        let report = run(&t);
        if !report.findings.iter().any(|f| f.rule_id == id) {
            missed.push(format!(
                "{id}: its fixture raised no finding of it ({:?})",
                report
                    .findings
                    .iter()
                    .map(|f| (f.rule_id, &f.message))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n"));
}
