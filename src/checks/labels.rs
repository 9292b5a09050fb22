//! `runtime-label` and `tag-policy`: the runtime label against the known presets, `--preset` and
//! `--ref`, and the reference's repository name and tag against the promotion policy.

use super::support::{config_location, finding, skipped};
use super::{CheckInput, CheckOutcome};
use crate::report::Finding;
use crate::rules::RuleId;

/// The label that names the runtime.
pub const RUNTIME_LABEL: &str = "org.x1agent.runtime";
/// The OCI version label.
pub const VERSION_LABEL: &str = "org.opencontainers.image.version";
const REPO_PREFIX: &str = "x1agent/runtime-";

fn label_pointer(key: &str) -> String {
    format!(
        "/config/Labels/{}",
        key.replace('~', "~0").replace('/', "~1")
    )
}

/// A parsed `--ref`: repository path without registry host, tag, digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: Option<String>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    /// Parse `[registry/]path[:tag][@digest]`.
    pub fn parse(s: &str) -> Reference {
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (s, None),
        };
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[slash..].rfind(':') {
            Some(i) => (&rest[..slash + i], Some(rest[slash + i + 1..].to_string())),
            None => (rest, None),
        };
        let mut parts: Vec<&str> = name.split('/').collect();
        let registry = if parts.len() > 1
            && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost")
        {
            Some(parts.remove(0).to_string())
        } else {
            None
        };
        Reference {
            registry,
            repository: parts.join("/"),
            tag,
            digest,
        }
    }

    /// The runtime named by `x1agent/runtime-<runtime>`, if the repository has that shape.
    pub fn runtime(&self) -> Option<&str> {
        let repo = self
            .repository
            .strip_prefix("docker.io/")
            .unwrap_or(&self.repository);
        repo.strip_prefix(REPO_PREFIX).filter(|r| !r.is_empty())
    }
}

/// `runtime-label`.
pub fn runtime_label(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::RuntimeLabel;
    let labels = &input.image.config.labels;
    let loc = || config_location(label_pointer(RUNTIME_LABEL));
    let mut findings = Vec::new();
    let known: Vec<&str> = input.rules.presets.keys().map(String::as_str).collect();
    match labels.get(RUNTIME_LABEL) {
        None => findings.push(finding(
            id,
            format!("label `{RUNTIME_LABEL}` is missing"),
            Some(format!(
                "add `LABEL {RUNTIME_LABEL}=<runtime>` (one of: {})",
                known.join(", ")
            )),
            loc(),
        )),
        Some(value) => {
            if !input.rules.presets.contains_key(value) {
                findings.push(finding(
                    id,
                    format!("label `{RUNTIME_LABEL}` is `{value}`, which no preset knows"),
                    Some(format!("known runtimes: {}", known.join(", "))),
                    loc(),
                ));
            }
            if let Some(flag) = &input.opts.preset_flag
                && flag != value
            {
                findings.push(finding(
                    id,
                    format!("label `{RUNTIME_LABEL}` is `{value}` but --preset is `{flag}`"),
                    Some("check the image with its own preset, or fix the label".into()),
                    loc(),
                ));
            }
            let parsed = input.opts.reference.as_deref().map(Reference::parse);
            if let Some(rt) = parsed.as_ref().and_then(Reference::runtime)
                && rt != value
            {
                findings.push(finding(
                    id,
                    format!("label `{RUNTIME_LABEL}` is `{value}` but --ref names runtime `{rt}`"),
                    Some(format!("push it as {REPO_PREFIX}{value}, or fix the label")),
                    loc(),
                ));
            }
        }
    }
    CheckOutcome::from_findings(id, findings)
}

/// `tag-policy` (skipped without `--ref`).
pub fn tag_policy(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::TagPolicy;
    let Some(r) = &input.opts.reference else {
        return skipped(id, "no --ref given");
    };
    let parsed = Reference::parse(r);
    let mut findings = Vec::new();
    let expected_repo = input.preset.map(|p| p.image.as_str());
    let repo_ok = match (expected_repo, parsed.runtime()) {
        (Some(want), _) => {
            parsed
                .repository
                .strip_prefix("docker.io/")
                .unwrap_or(&parsed.repository)
                == want
        }
        (None, Some(rt)) => input.rules.presets.contains_key(rt),
        (None, None) => false,
    };
    if !repo_ok {
        let want = expected_repo.map_or_else(|| format!("{REPO_PREFIX}<runtime>"), str::to_string);
        findings.push(finding(
            id,
            format!(
                "--ref `{r}`: repository `{}` is not `{want}`",
                parsed.repository
            ),
            Some("runtime images are pushed as x1agent/runtime-<runtime>:edge or :v<N>".into()),
            crate::report::Location::Image,
        ));
    }
    findings.extend(tag_findings(input, r, &parsed));
    CheckOutcome::from_findings(id, findings)
}

fn tag_findings(input: &CheckInput<'_>, r: &str, parsed: &Reference) -> Vec<Finding> {
    let id = RuleId::TagPolicy;
    let Some(tag) = &parsed.tag else {
        return vec![finding(
            id,
            format!("--ref `{r}` has no tag"),
            Some("use :edge, or :v<N> for a promoted image".into()),
            crate::report::Location::Image,
        )];
    };
    if tag == "edge" {
        return Vec::new();
    }
    let Some(n) = tag
        .strip_prefix('v')
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    else {
        return vec![finding(
            id,
            format!("--ref `{r}`: tag `{tag}` is neither `edge` nor `v<N>`"),
            Some("`latest`, dates and full semvers are not promotion tags here".into()),
            crate::report::Location::Image,
        )];
    };
    let major = input.image.config.labels.get(VERSION_LABEL).map(|v| {
        let v = v.strip_prefix('v').unwrap_or(v);
        v.split(['.', '-', '+'])
            .next()
            .unwrap_or_default()
            .to_string()
    });
    let n = n.trim_start_matches('0');
    let n = if n.is_empty() { "0" } else { n };
    match major {
        None => vec![finding(
            id,
            format!("--ref tag `{tag}` needs label `{VERSION_LABEL}`, which is missing"),
            Some(format!("set `LABEL {VERSION_LABEL}={n}.x.y`")),
            config_location(label_pointer(VERSION_LABEL)),
        )],
        Some(m) if m.trim_start_matches('0').is_empty() && n == "0" => Vec::new(),
        Some(m) if m.trim_start_matches('0') == n => Vec::new(),
        Some(_) => vec![finding(
            id,
            format!(
                "--ref tag `{tag}` disagrees with label `{VERSION_LABEL}={}`",
                input
                    .image
                    .config
                    .labels
                    .get(VERSION_LABEL)
                    .map_or("", String::as_str)
            ),
            Some("promote to the :v<N> whose N is the version label's major".into()),
            config_location(label_pointer(VERSION_LABEL)),
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::Reference;

    #[test]
    fn references_parse() {
        let r = Reference::parse("registry.local:5000/x1agent/runtime-opencode:v2");
        assert_eq!(r.registry.as_deref(), Some("registry.local:5000"));
        assert_eq!(r.repository, "x1agent/runtime-opencode");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.runtime(), Some("opencode"));
        let r = Reference::parse("x1agent/runtime-codex@sha256:abc");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some("sha256:abc"));
        let r = Reference::parse("localhost/x1agent/runtime-claude-code:edge");
        assert_eq!(r.runtime(), Some("claude-code"));
        assert_eq!(Reference::parse("other/thing:edge").runtime(), None);
    }
}
