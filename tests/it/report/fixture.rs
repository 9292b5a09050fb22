//! The shared report fixture: three platforms, every `Location` kind, one secret (built at test time)
//! found in two layers, not-run and skipped rules, suppressions, notes, and hostile characters.

use std::collections::BTreeMap;

use rand::Rng;
use sha2::{Digest as _, Sha256};
use x1_validate::report::{
    Evidence, Finding, Format, ImageReport, LayerRef, Location, Report, RuleMeta, RuleResult,
    RuleStatus, Severity, WriteOptions, write,
};

/// A provider-style key built at test time (real prefix, random body): never a literal in the repo.
pub(crate) struct TestSecret {
    pub value: String,
    pub evidence: Evidence,
}

pub(crate) fn test_secret() -> TestSecret {
    let prefix = ["sk", "ant", "api03"].join("-");
    let mut rng = rand::rng();
    let body: String = (0..93)
        .map(|_| {
            char::from(
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                    [rng.random_range(0..62)],
            )
        })
        .collect();
    let value = format!("{prefix}-{body}AA");
    let fingerprint = format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes())));
    let evidence = Evidence {
        prefix: value.chars().take(8).collect(),
        length: value.len(),
        fingerprint,
        pattern: "anthropic-api-key".into(),
    };
    TestSecret { value, evidence }
}

pub(crate) fn digest(seed: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(seed.as_bytes())))
}

pub(crate) fn layer(index: usize, created_by: Option<&str>) -> LayerRef {
    LayerRef {
        index,
        digest: digest(&format!("layer{index}")),
        diff_id: digest(&format!("diff{index}")),
        created_by: created_by.map(str::to_string),
    }
}

pub(crate) fn finding(rule: &str, sev: Severity, msg: &str, location: Location) -> Finding {
    Finding {
        rule_id: rule.parse().unwrap(),
        severity: sev,
        message: msg.into(),
        help: Some(format!("Fix {rule}: see `x1-validate explain {rule}`.")),
        location,
        evidence: None,
    }
}

pub(crate) fn rule(
    id: &str,
    sev: Severity,
    status: RuleStatus,
    detail: Option<&str>,
) -> RuleResult {
    RuleResult {
        rule_id: id.parse().unwrap(),
        severity: sev,
        status,
        detail: detail.map(str::to_string),
    }
}

/// Message with every character the formats must escape: markup, quotes, CR/LF, ESC, NUL, `%`, `:`, `,`.
pub(crate) const HOSTILE: &str =
    "setuid file <a&b> \"q\" 'a' 100%\r\n::error title=x::forged\u{1b}[31m\u{0},:";

/// One finding per `Location` kind (the secret twice), already in `sort_findings` order.
pub(crate) fn amd64_findings(secret_a: Finding, secret_b: Finding) -> Vec<Finding> {
    use Severity::{Error, Note, Warning};
    vec![
        finding(
            "entrypoint",
            Error,
            "/x1/bin/entrypoint is absent",
            Location::Path {
                path: "/x1/bin/entrypoint".into(),
            },
        ),
        finding(
            "provider-env",
            Error,
            "ANTHROPIC_API_KEY is set to a literal",
            Location::Config {
                pointer: "/config/Env/3".into(),
            },
        ),
        secret_a,
        secret_b,
        finding(
            "secret-in-metadata",
            Error,
            "in-toto attestation carries a provider assignment",
            Location::Blob {
                digest: digest("att"),
                media_type: "application/vnd.in-toto+json".into(),
            },
        ),
        finding(
            "tag-policy",
            Error,
            "annotation version disagrees with --ref",
            Location::Manifest {
                digest: digest("manifest-amd64"),
                pointer: "/annotations/org.opencontainers.image.version".into(),
            },
        ),
        finding(
            "license-label",
            Warning,
            "org.opencontainers.image.licenses is missing",
            Location::Image,
        ),
        finding(
            "layer-hygiene",
            Note,
            "duplicate path in layer 2",
            Location::Entry {
                layer: layer(2, None),
                path: "/etc/hosts".into(),
                fate: "overwritten by layer 4".into(),
                offset: None,
                line: None,
            },
        ),
    ]
}

pub(crate) fn image_amd64(secret: &Evidence) -> ImageReport {
    use Severity::{Error, Note, Warning};
    let mut secret_a = finding(
        "secret-in-layer",
        Error,
        "Anthropic API key in file content",
        Location::Entry {
            layer: layer(
                3,
                Some("/bin/sh -c echo \"KEY=…\" > /home/agent/.env # <&>"),
            ),
            path: "/home/agent/.env".into(),
            fate: "visible".into(),
            offset: Some(4),
            line: Some(1),
        },
    );
    secret_a.evidence = Some(secret.clone());
    let mut secret_b = secret_a.clone();
    secret_b.location = Location::Entry {
        layer: layer(5, None),
        path: "/usr/lib/node_modules/x.tgz!package/.env".into(),
        fate: "deleted by layer 7 — still shipped in layer 5's blob".into(),
        offset: None,
        line: Some(3),
    };
    let findings = amd64_findings(secret_a, secret_b);
    let mut suppressed = BTreeMap::new();
    suppressed.insert("test-fixtures".to_string(), 2);
    suppressed.insert("docs-examples".to_string(), 1);
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/amd64".into(),
        manifest_digest: digest("manifest-amd64"),
        manifest_digest_source: None,
        config_digest: digest("config-amd64"),
        preset: Some("opencode".into()),
        rules: vec![
            rule("runtime-label", Error, RuleStatus::Passed, None),
            rule("entrypoint", Error, RuleStatus::Failed, None),
            rule(
                "healthcheck",
                Error,
                RuleStatus::NotRun,
                Some("no sandbox: user namespaces are disabled"),
            ),
            rule("provider-env", Error, RuleStatus::Failed, None),
            rule("secret-in-layer", Error, RuleStatus::Failed, None),
            rule("secret-in-metadata", Error, RuleStatus::Failed, None),
            rule("tag-policy", Error, RuleStatus::Failed, None),
            rule("license-label", Warning, RuleStatus::Failed, None),
            rule("layer-hygiene", Note, RuleStatus::Failed, None),
            rule(
                "denied-license",
                Error,
                RuleStatus::Skipped,
                Some("--allow denied-license"),
            ),
        ],
        findings,
        suppressed,
        notes: vec!["nested archive depth limit (3) reached in /usr/lib/a.zip".into()],
    }
}

/// Only a warning (with hostile text) and a not-run healthcheck: INCOMPLETE, never PASS.
pub(crate) fn image_arm64() -> ImageReport {
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/arm64".into(),
        manifest_digest: digest("manifest-arm64"),
        manifest_digest_source: None,
        config_digest: digest("config-arm64"),
        preset: Some("opencode".into()),
        rules: vec![
            rule("runtime-label", Severity::Error, RuleStatus::Passed, None),
            rule(
                "healthcheck",
                Severity::Error,
                RuleStatus::NotRun,
                Some("--exec never"),
            ),
            rule("layer-hygiene", Severity::Warning, RuleStatus::Failed, None),
        ],
        findings: vec![finding(
            "layer-hygiene",
            Severity::Warning,
            HOSTILE,
            Location::Entry {
                layer: layer(1, None),
                path: "/usr/bin/evil\u{1b}]0;x\u{7}".into(),
                fate: "visible".into(),
                offset: None,
                line: None,
            },
        )],
        suppressed: BTreeMap::new(),
        notes: vec![],
    }
}

pub(crate) fn image_riscv() -> ImageReport {
    ImageReport {
        input: "build/runtime-opencode.oci.tar".into(),
        platform: "linux/riscv64".into(),
        manifest_digest: digest("manifest-riscv64"),
        manifest_digest_source: None,
        config_digest: digest("config-riscv64"),
        preset: None,
        rules: vec![
            rule("runtime-label", Severity::Error, RuleStatus::Passed, None),
            rule(
                "healthcheck",
                Severity::Error,
                RuleStatus::Passed,
                Some("exit 0 in 0.4 s"),
            ),
        ],
        findings: vec![],
        suppressed: BTreeMap::new(),
        notes: vec![],
    }
}

pub(crate) fn catalog() -> Vec<RuleMeta> {
    [
        ("runtime-label", Severity::Error),
        ("entrypoint", Severity::Error),
        ("healthcheck", Severity::Error),
        ("provider-env", Severity::Error),
        ("secret-in-layer", Severity::Error),
        ("secret-in-metadata", Severity::Error),
        ("tag-policy", Severity::Error),
        ("license-label", Severity::Warning),
        ("layer-hygiene", Severity::Warning),
        ("denied-license", Severity::Error),
    ]
    .into_iter()
    .map(|(id, sev)| RuleMeta {
        id: id.parse().unwrap(),
        default_severity: sev,
        summary: format!("The {id} rule of the preset contract."),
        help: format!(
            "**What it checks**: `{id}`.\n\n**How to fix**: follow `x1-validate explain {id}`."
        ),
    })
    .collect()
}

pub(crate) struct Fixture {
    pub report: Report,
    pub opts: WriteOptions,
    pub secret: TestSecret,
}

pub(crate) fn fixture() -> Fixture {
    let secret = test_secret();
    let report = Report::new(
        "0.1.0",
        vec![image_amd64(&secret.evidence), image_arm64(), image_riscv()],
    );
    let opts = WriteOptions {
        color: false,
        width: 100,
        catalog: catalog(),
        fail_on: None,
    };
    Fixture {
        report,
        opts,
        secret,
    }
}

pub(crate) fn rendered(fx: &Fixture, format: Format, opts: &WriteOptions) -> String {
    let mut out = Vec::new();
    write(&fx.report, format, opts, &mut out).expect("render");
    String::from_utf8(out).expect("utf-8 output")
}

pub(crate) const ALL: [Format; 5] = [
    Format::Human,
    Format::Json,
    Format::Sarif,
    Format::Junit,
    Format::Github,
];
