//! `runtime-license`: find the preset's runtime package in the final filesystem (every npm root), check
//! its declared license and that of each installed platform package (`optionalDependencies` such as
//! `opencode-linux-x64`, which ship the actual binary) against the preset's expected expression, or
//! against a clarification whose pinned files still hash to the reviewed SHA-256.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::model::{FinalFiles, Inventory, LicenseSource, Package};
use super::policy::{Clarification, PresetLicense};
use super::{Ecosystem, npm};

/// One problem found; the check turns it into a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Absolute path of the manifest (or of the expected location when missing).
    pub path: String,
    /// The layer the manifest came from; `None` when the package is missing.
    pub layer: Option<usize>,
    pub message: String,
    pub help: String,
}

/// What `runtime-license` found (not a deny-list [`super::Verdict`]).
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    pub problems: Vec<Problem>,
    /// One line: package, version, path, license, platform packages.
    pub summary: String,
}

/// The runtime package's directory for a manifest at `path` (normalised): the enclosing
/// `…/node_modules/<runtime>` when the manifest is inside it, else the sibling in the same
/// `node_modules` (hoisted platform packages).
pub fn runtime_dir_for(path: &str, runtime: &str) -> Option<String> {
    let marker = format!("node_modules/{runtime}/");
    if let Some(i) = path
        .find(&marker)
        .filter(|&i| i == 0 || path[..i].ends_with('/'))
    {
        return Some(path[..i + marker.len() - 1].to_string());
    }
    let nm = path.rfind("node_modules/")?;
    Some(format!("{}node_modules/{runtime}", &path[..nm]))
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Check a clarification's pinned files under `dir` (the runtime package directory, normalised).
/// `Err` lists, per file, what differs and which sha to set after re-review.
pub fn verify_pins(dir: &str, c: &Clarification, fin: &dyn FinalFiles) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for pin in &c.license_files {
        let path = format!("{dir}/{}", pin.path.0);
        match fin.content(&path) {
            None => problems.push(format!(
                "pinned file /{path} is missing from the image (or larger than the capture limit)"
            )),
            Some(bytes) => {
                let got = sha256_hex(bytes);
                if got != pin.sha256.0 {
                    problems.push(format!(
                        "/{path} changed: sha256 is {got}, the clarification pins {}; re-review that \
                         file and, if `{}` still holds, set sha256 = \"{got}\" for path \"{}\"",
                        pin.sha256.0, c.expression, pin.path.0
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Evaluate `runtime-license`. `preset_file` names the preset for messages
/// (`presets/opencode/preset.toml`).
pub fn evaluate(
    inv: &Inventory,
    pl: &PresetLicense,
    fin: &dyn FinalFiles,
    preset_file: &str,
) -> Evaluation {
    let (Some(runtime), Some(expected)) = (pl.package.as_deref(), pl.expression.as_ref()) else {
        return Evaluation {
            problems: Vec::new(),
            summary: format!("{preset_file} names no runtime package/expression"),
        };
    };
    let suffix = format!("/node_modules/{runtime}/package.json");
    let roots: Vec<&Package> = inv
        .packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Npm && p.name == runtime && p.path.ends_with(&suffix))
        .collect();
    let visible: Vec<&Package> = roots
        .iter()
        .copied()
        .filter(|p| p.fate == "visible")
        .collect();
    if visible.is_empty() {
        let mut message = format!(
            "the runtime package `{runtime}` is not installed: no …/node_modules/{runtime}/package.json \
             in the final filesystem"
        );
        if let Some(p) = roots.first() {
            let _ = write!(message, " ({} in layer {} is {})", p.path, p.layer, p.fate);
        }
        return Evaluation {
            problems: vec![Problem {
                path: format!("/usr/local/lib/node_modules/{runtime}/package.json"),
                layer: None,
                message,
                help: format!(
                    "install it, e.g. `npm i -g {runtime}`; the preset expects `{expected}`"
                ),
            }],
            summary: format!("{runtime} not found"),
        };
    }
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    for root in visible {
        problems.extend(judge(root, pl, expected, fin, preset_file, runtime));
        let dir = root
            .path
            .trim_start_matches('/')
            .trim_end_matches("/package.json");
        let mut platform = Vec::new();
        for p in platform_packages(inv, dir, fin) {
            problems.extend(judge(p, pl, expected, fin, preset_file, runtime));
            platform.push(format!("{} {} {}", p.name, p.version, shown(p)));
        }
        let mut part = format!("{runtime} {} at /{dir}: {}", root.version, shown(root));
        if !platform.is_empty() {
            let _ = write!(part, " (platform: {})", platform.join(", "));
        }
        parts.push(part);
    }
    Evaluation {
        problems,
        summary: parts.join("; "),
    }
}

fn shown(p: &Package) -> String {
    match (&p.expression, p.source) {
        (Some(e), LicenseSource::Clarification) => format!("{e} (asserted by clarification)"),
        (Some(e), _) => e.clone(),
        (None, _) => format!("`{}`", p.declared.as_deref().unwrap_or("no license")),
    }
}

/// Installed platform packages of the runtime at `dir`: its `optionalDependencies` found nested
/// (`dir/node_modules/<name>`) or hoisted (a sibling), visible in the final filesystem.
fn platform_packages<'a>(inv: &'a Inventory, dir: &str, fin: &dyn FinalFiles) -> Vec<&'a Package> {
    let Some(m) = fin
        .content(&format!("{dir}/package.json"))
        .and_then(npm::parse_manifest)
    else {
        return Vec::new();
    };
    let parent = dir.rsplit_once("/node_modules/").map_or("", |(p, _)| p);
    let mut out = Vec::new();
    for dep in &m.optional_dependencies {
        let nested = format!("/{dir}/node_modules/{dep}/package.json");
        let hoisted = format!("/{parent}/node_modules/{dep}/package.json");
        out.extend(inv.packages.iter().filter(|p| {
            p.ecosystem == Ecosystem::Npm
                && p.fate == "visible"
                && (p.path == nested || p.path == hoisted)
        }));
    }
    out
}

fn judge(
    p: &Package,
    pl: &PresetLicense,
    expected: &super::SpdxExpr,
    fin: &dyn FinalFiles,
    preset_file: &str,
    runtime: &str,
) -> Option<Problem> {
    let problem = |message: String, help: String| Problem {
        path: p.path.clone(),
        layer: Some(p.layer),
        message,
        help,
    };
    let who = format!("`{}` {} ({})", p.name, p.version, p.path);
    if let Some(got) = &p.parsed {
        if got.same_as(expected) {
            return None;
        }
        let via = if p.source == LicenseSource::Clarification {
            format!("is clarified in {preset_file} as")
        } else {
            "declares".into()
        };
        return Some(problem(
            format!("{who} {via} `{got}`, but the preset expects `{expected}`"),
            format!(
                "a runtime under an unexpected license must not ship; if the change is intended, review \
                 it and update [license] expression in {preset_file}"
            ),
        ));
    }
    let why = p.unknown.as_ref().map_or("no license", |u| u.as_str());
    if pl.clarification(&p.name).is_some() {
        // The clarification exists but its pins no longer hold (the inventory says which and how).
        return Some(problem(
            format!("{who}: {why}"),
            format!(
                "re-review the changed file(s) named above, then update the [[license.clarify]] entry \
                 for `{}` in {preset_file}",
                p.name
            ),
        ));
    }
    let dir = p
        .path
        .trim_start_matches('/')
        .trim_end_matches("/package.json");
    let hint = p
        .declared
        .as_deref()
        .and_then(npm::see_license_in)
        .map(|f| {
            let path = format!("{dir}/{f}");
            match fin.content(&path) {
                Some(b) => format!(" (/{path} currently has sha256 {})", sha256_hex(b)),
                None => format!(" (/{path} is not in the image)"),
            }
        })
        .unwrap_or_default();
    Some(problem(
        format!("{who}: {why}; a runtime package passes only with `{expected}` or a clarification"),
        format!(
            "review the license text and add a [[license.clarify]] entry for `{}` to {preset_file}: \
             expression, license-files (paths relative to the `{runtime}` package directory) and \
             their sha256{hint}",
            p.name
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dirs() {
        assert_eq!(
            runtime_dir_for(
                "usr/local/lib/node_modules/opencode-ai/node_modules/opencode-linux-x64/package.json",
                "opencode-ai"
            )
            .as_deref(),
            Some("usr/local/lib/node_modules/opencode-ai")
        );
        assert_eq!(
            runtime_dir_for(
                "usr/lib/node_modules/opencode-linux-x64/package.json",
                "opencode-ai"
            )
            .as_deref(),
            Some("usr/lib/node_modules/opencode-ai")
        );
        assert_eq!(
            runtime_dir_for(
                "usr/lib/node_modules/@anthropic-ai/claude-code/package.json",
                "@anthropic-ai/claude-code"
            )
            .as_deref(),
            Some("usr/lib/node_modules/@anthropic-ai/claude-code")
        );
        assert_eq!(runtime_dir_for("x1/app/package.json", "opencode-ai"), None);
    }
}
