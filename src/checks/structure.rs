//! `preset-files` (the files a preset requires, with their kind, after in-root symlink resolution) and
//! `base-os` (`/etc/os-release` and the glibc dynamic loader of the image's architecture).

use std::collections::BTreeMap;

use super::support::{finding, inode, node_location, resolve, skipped, unresolved_reason};
use super::{CheckInput, CheckOutcome};
use crate::image::{EntryKind, Resolved};
use crate::report::Location;
use crate::rules::{FileKind, RuleId};

/// `preset-files`.
pub fn preset_files(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::PresetFiles;
    let Some(preset) = input.preset else {
        return skipped(id, "no preset: the runtime label is missing or unknown");
    };
    let mut findings = Vec::new();
    for req in &preset.required {
        let help = (!req.purpose.is_empty()).then(|| format!("{}: {}", req.path, req.purpose));
        match resolve(input, &req.path) {
            Resolved::Found { node, .. } => {
                let e = inode(input, node);
                let ok = match req.kind {
                    FileKind::Dir => matches!(e.kind, EntryKind::Dir),
                    FileKind::File => matches!(e.kind, EntryKind::File),
                    FileKind::Executable => {
                        matches!(e.kind, EntryKind::File) && e.mode & 0o111 != 0
                    }
                };
                if !ok {
                    findings.push(finding(
                        id,
                        format!(
                            "{} is {}, not {}",
                            req.path,
                            describe(&e.kind, e.mode),
                            req.kind.describe()
                        ),
                        help,
                        node_location(input, node),
                    ));
                }
            }
            other => findings.push(finding(
                id,
                format!("{} is missing ({})", req.path, unresolved_reason(&other)),
                help,
                Location::Path {
                    path: req.path.clone(),
                },
            )),
        }
    }
    CheckOutcome::from_findings(id, findings)
}

fn describe(kind: &EntryKind, mode: u32) -> String {
    match kind {
        EntryKind::File if mode & 0o111 == 0 => {
            format!("a regular file without execute bits (mode {mode:04o})")
        }
        EntryKind::File => "a regular file".into(),
        EntryKind::Dir => "a directory".into(),
        EntryKind::Symlink { target } => format!("a symlink to {target}"),
        EntryKind::Hardlink { .. } => "a hardlink".into(),
        EntryKind::Char { .. } => "a character device".into(),
        EntryKind::Block { .. } => "a block device".into(),
        EntryKind::Fifo => "a FIFO".into(),
    }
}

/// Parse `os-release` (`KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.replace("\\\"", "\"")))
        })
        .collect()
}

/// `base-os`.
pub fn base_os(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::BaseOs;
    let Some(want) = input
        .preset
        .or_else(|| input.rules.presets.values().next())
        .map(|p| &p.base_os)
    else {
        return skipped(id, "no preset defines the base OS");
    };
    let help = Some("build FROM debian:bookworm-slim (or the platform base image)".to_string());
    let mut findings = Vec::new();
    let os = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| super::support::content(input, p).map(|b| (*p, b)));
    match os {
        None => findings.push(finding(
            id,
            "/etc/os-release (and /usr/lib/os-release) is missing: the base OS is unknown".into(),
            help.clone(),
            Location::Path {
                path: "/etc/os-release".into(),
            },
        )),
        Some((path, bytes)) => {
            let os = parse_os_release(&String::from_utf8_lossy(bytes));
            let get = |k: &str| os.get(k).map_or("", String::as_str);
            let codename_ok =
                get("VERSION_CODENAME").is_empty() || get("VERSION_CODENAME") == want.codename;
            if get("ID") != want.id || get("VERSION_ID") != want.version_id || !codename_ok {
                let pretty = os.get("PRETTY_NAME").cloned().unwrap_or_else(|| {
                    format!("ID={} VERSION_ID={}", get("ID"), get("VERSION_ID"))
                });
                findings.push(finding(
                    id,
                    format!(
                        "{path} says `{pretty}`, not {} {} ({})",
                        want.id, want.version_id, want.codename
                    ),
                    help.clone(),
                    Location::Path { path: path.into() },
                ));
            }
        }
    }
    let arch = &input.image.platform.architecture;
    match want.loaders.get(arch) {
        None => findings.push(finding(
            id,
            format!("no glibc loader is known for architecture `{arch}`"),
            None,
            Location::Image,
        )),
        Some(loaders) => {
            let found = loaders.iter().any(|l| {
                matches!(resolve(input, l), Resolved::Found { node, .. }
                    if matches!(inode(input, node).kind, EntryKind::File))
            });
            if !found {
                findings.push(finding(
                    id,
                    format!(
                        "the glibc dynamic loader ({}) is missing: not a glibc image",
                        loaders.join(" or ")
                    ),
                    help,
                    Location::Path {
                        path: loaders.first().cloned().unwrap_or_default(),
                    },
                ));
            }
        }
    }
    CheckOutcome::from_findings(id, findings)
}

#[cfg(test)]
mod tests {
    use super::parse_os_release;

    #[test]
    fn os_release_parses_quotes_and_comments() {
        let os = parse_os_release(
            "# c\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\nbad\n",
        );
        assert_eq!(os["PRETTY_NAME"], "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os["ID"], "debian");
        assert_eq!(os["VERSION_ID"], "12");
        assert_eq!(os.len(), 3);
    }
}
