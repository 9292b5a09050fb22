//! `entrypoint` (static part): `/x1/bin/entrypoint` exists in the final tree, is a regular file after
//! in-root symlink resolution, is executable (and, for scripts, readable) by the config `User`, its `#!`
//! or ELF `PT_INTERP` interpreter exists, and an ELF is built for the image platform's machine.

use super::support::{config_location, finding, inode, node_location, resolve, unresolved_reason};
use super::user::{Identity, config_identity};
use super::{CheckInput, CheckOutcome};
use crate::elf;
use crate::image::{EntryKind, Resolved};
use crate::report::{Finding, Location};
use crate::rules::RuleId;

const ID: RuleId = RuleId::Entrypoint;

/// `entrypoint`.
pub fn check(input: &CheckInput<'_>) -> CheckOutcome {
    let path = input
        .preset
        .map_or("/x1/bin/entrypoint", |p| p.entrypoint.as_str());
    let mut findings = Vec::new();
    let configured = input.image.config.entrypoint.first().map(String::as_str);
    if configured != Some(path) {
        findings.push(finding(
            ID,
            match configured {
                None => format!("config Entrypoint is empty; it must be [\"{path}\"]"),
                Some(other) => format!("config Entrypoint starts with `{other}`, not `{path}`"),
            },
            Some(format!("ENTRYPOINT [\"{path}\"]")),
            config_location("/config/Entrypoint"),
        ));
    }
    let node = match resolve(input, path) {
        Resolved::Found { node, .. } => node,
        other => {
            findings.push(finding(
                ID,
                format!(
                    "{path} is missing from the final filesystem ({})",
                    unresolved_reason(&other)
                ),
                Some(
                    "copy the overlay's bin/entrypoint to /x1/bin/entrypoint with mode 0755".into(),
                ),
                Location::Path { path: path.into() },
            ));
            return CheckOutcome::from_findings(ID, findings);
        }
    };
    let entry = inode(input, node);
    let loc = node_location(input, node);
    if !matches!(entry.kind, EntryKind::File) {
        findings.push(finding(
            ID,
            format!("{path} is not a regular file after resolving symlinks in the image root"),
            None,
            loc,
        ));
        return CheckOutcome::from_findings(ID, findings);
    }
    let ident = match config_identity(input) {
        Ok(i) => i,
        Err(why) => {
            findings.push(finding(
                ID,
                format!("cannot tell whether the User may execute {path}: {why}"),
                None,
                config_location("/config/User"),
            ));
            return CheckOutcome::from_findings(ID, findings);
        }
    };
    if !ident.may_execute(entry.mode, entry.uid, entry.gid) {
        findings.push(finding(
            ID,
            format!(
                "{path} (mode {:04o}, owner {}:{}) is not executable by uid {} gid {}",
                entry.mode, entry.uid, entry.gid, ident.uid, ident.gid
            ),
            Some(format!("chmod 0755 {path}")),
            loc.clone(),
        ));
    }
    let head = input.tree.head(input.listings, path);
    findings.extend(content_findings(
        input, path, head, entry.size, &ident, &loc,
    ));
    CheckOutcome::from_findings(ID, findings)
}

fn content_findings(
    input: &CheckInput<'_>,
    path: &str,
    head: Option<&[u8]>,
    size: u64,
    ident: &Identity,
    loc: &Location,
) -> Vec<Finding> {
    let head = match head {
        Some(h) if !h.is_empty() => h,
        _ if size == 0 => {
            return vec![finding(ID, format!("{path} is empty"), None, loc.clone())];
        }
        // Not executable at all: already reported; nothing captured to look at.
        _ => return Vec::new(),
    };
    if let Some(rest) = head.strip_prefix(b"#!") {
        return shebang_findings(input, path, rest, ident, loc);
    }
    if elf::is_elf(head) {
        return elf_findings(input, path, head, loc);
    }
    vec![finding(
        ID,
        format!("{path} is neither a `#!` script nor an ELF binary: exec fails with ENOEXEC"),
        Some("start the script with `#!/bin/sh`".into()),
        loc.clone(),
    )]
}

fn shebang_findings(
    input: &CheckInput<'_>,
    path: &str,
    rest: &[u8],
    ident: &Identity,
    loc: &Location,
) -> Vec<Finding> {
    let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    // The kernel (binfmt_script) splits the `#!` line on spaces and tabs only: a `\r` left by CRLF
    // line endings is part of the interpreter's name (or of its argument).
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    if line.contains('\r') {
        let interp = words.next().unwrap_or_default();
        let culprit = if interp.contains('\r') {
            format!("the kernel looks for interpreter {interp:?}")
        } else {
            let arg = words.find(|w| w.contains('\r')).unwrap_or_default();
            format!("{interp} is given the argument {arg:?}")
        };
        return vec![finding(
            ID,
            format!(
                "{path}: the `#!` line ends with a carriage return (CRLF line endings): {culprit}, \
                 which does not exist, so exec fails"
            ),
            Some(format!(
                "convert the script to LF line endings (`sed -i 's/\\r$//' {path}` or dos2unix), \
                 and add `*.sh text eol=lf` to .gitattributes"
            )),
            loc.clone(),
        )];
    }
    let Some(interp) = words.next() else {
        return vec![finding(
            ID,
            format!("{path} has an empty `#!` line"),
            None,
            loc.clone(),
        )];
    };
    let mut out = Vec::new();
    let entry = match resolve(input, path) {
        Resolved::Found { node, .. } => Some(inode(input, node)),
        _ => None,
    };
    if let Some(e) = entry.filter(|e| !ident.may_read(e.mode, e.uid, e.gid)) {
        out.push(finding(
            ID,
            format!(
                "{path} is a script but not readable by uid {} (mode {:04o})",
                ident.uid, e.mode
            ),
            Some(format!("chmod 0755 {path}")),
            loc.clone(),
        ));
    }
    out.extend(interpreter_findings(
        input,
        path,
        interp,
        "`#!` interpreter",
        loc,
    ));
    if interp.ends_with("/env") {
        let program = words.find(|w| !w.starts_with('-'));
        if let Some(program) = program.filter(|p| !p.contains('='))
            && !on_path(input, program)
        {
            out.push(finding(
                ID,
                format!(
                    "{path} runs `{interp} {program}` but `{program}` is on no directory of the \
                     image PATH"
                ),
                None,
                loc.clone(),
            ));
        }
    }
    out
}

fn interpreter_findings(
    input: &CheckInput<'_>,
    path: &str,
    interp: &str,
    what: &str,
    loc: &Location,
) -> Vec<Finding> {
    if !interp.starts_with('/') {
        return vec![finding(
            ID,
            format!("{path}: {what} `{interp}` is not an absolute path"),
            None,
            loc.clone(),
        )];
    }
    match resolve(input, interp) {
        Resolved::Found { node, .. } if matches!(inode(input, node).kind, EntryKind::File) => {
            Vec::new()
        }
        Resolved::Found { .. } => vec![finding(
            ID,
            format!("{path}: {what} {interp} is not a regular file"),
            None,
            loc.clone(),
        )],
        other => vec![finding(
            ID,
            format!(
                "{path}: {what} {interp} is missing from the image ({})",
                unresolved_reason(&other)
            ),
            Some(
                "install it in the image, or use an interpreter the image has (`#!/bin/sh`)".into(),
            ),
            loc.clone(),
        )],
    }
}

fn elf_findings(input: &CheckInput<'_>, path: &str, head: &[u8], loc: &Location) -> Vec<Finding> {
    let info = match elf::parse(head) {
        Ok(i) => i,
        Err(why) => {
            return vec![finding(
                ID,
                format!("{path}: malformed ELF ({why})"),
                None,
                loc.clone(),
            )];
        }
    };
    let mut out = Vec::new();
    let arch = &input.image.platform.architecture;
    match elf::machine_for_arch(arch) {
        Some(m) if m != info.machine => out.push(finding(
            ID,
            format!(
                "{path} is an ELF for {}, but the image platform is {}",
                elf::machine_name(info.machine),
                input.image.platform
            ),
            Some("build the entrypoint for the image's architecture".into()),
            loc.clone(),
        )),
        Some(_) => {}
        None => out.push(finding(
            ID,
            format!("{path}: cannot match ELF machine against unknown architecture `{arch}`"),
            None,
            loc.clone(),
        )),
    }
    match info.interp {
        None => {}
        Some(Ok(interp)) => out.extend(interpreter_findings(
            input,
            path,
            &interp,
            "ELF interpreter (PT_INTERP)",
            loc,
        )),
        Some(Err(why)) => out.push(finding(
            ID,
            format!("{path}: cannot read PT_INTERP ({why})"),
            None,
            loc.clone(),
        )),
    }
    out
}

/// Whether `program` exists in a directory of the config `PATH` (default Debian path when unset).
fn on_path(input: &CheckInput<'_>, program: &str) -> bool {
    let path = input
        .image
        .config
        .env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':').filter(|d| d.starts_with('/')).any(|d| {
        let candidate = format!("{}/{program}", d.trim_end_matches('/'));
        matches!(resolve(input, &candidate), Resolved::Found { node, .. }
            if matches!(inode(input, node).kind, EntryKind::File))
    })
}
