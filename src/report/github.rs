//! `--format github`: GitHub Actions workflow commands. One `::error`/`::warning`/`::notice`
//! annotation per finding (one per secret value, listing every place it was found), titled with the
//! rule id; a `::warning` per rule that could not run; one verdict annotation per image; and a plain
//! summary line last. Data is escaped as the Actions runner expects (`%` `\r` `\n` → `%25` `%0D`
//! `%0A`; property values also `:` `,` → `%3A` `%2C`), so nothing from an image can end a command
//! early or forge another one.

use std::fmt::Write as _;
use std::io::Write;

use super::text::group_findings;
use super::{GateVerdict, ImageReport, MaskedReport, RuleStatus, Severity, WriteOptions};

/// Locations listed in one annotation for a secret found in many places.
const MAX_LISTED: usize = 20;

pub(super) fn write(
    report: &MaskedReport,
    opts: &WriteOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let fail_on = opts.fail_on();
    let (mut errors, mut warnings, mut notes) = (0, 0, 0);
    for img in &report.images {
        image(img, out)?;
        let t = img.tally();
        errors += t.errors;
        warnings += t.warnings;
        notes += t.notes;
        let cmd = match img.verdict(fail_on) {
            GateVerdict::Fail | GateVerdict::Error => "error",
            GateVerdict::Incomplete => "warning",
            GateVerdict::Pass => "notice",
        };
        command(
            out,
            cmd,
            "x1-validate verdict",
            &format!("{} {}", img.input, img.verdict_line(fail_on)),
        )?;
    }
    if let Some(e) = &report.error {
        command(
            out,
            "error",
            "x1-validate NOT CHECKED",
            &format!(
                "NOT CHECKED (exit {}, {}): {} — the image was not checked; this is not a pass.",
                e.exit_code, e.kind, e.message
            ),
        )?;
    }
    let n = report.images.len();
    writeln!(
        out,
        "x1-validate {}: {} — {n} image{}, {errors} error{}, {warnings} warning{}, {notes} note{}",
        escape_data(&report.tool_version),
        report.verdict(fail_on).as_str(),
        plural(n),
        plural(errors),
        plural(warnings),
        plural(notes),
    )
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn image(img: &ImageReport, out: &mut dyn Write) -> std::io::Result<()> {
    for g in group_findings(&img.findings) {
        let f = g.head;
        let mut msg = format!("[{} {}] {}", img.input, img.platform, f.message);
        if let Some(ev) = &f.evidence {
            let _ = write!(msg, " (secret {ev})");
        }
        if g.members.len() == 1 {
            let _ = write!(msg, "\nat {}", f.location);
        } else {
            let _ = write!(msg, "\nfound in {} places:", g.members.len());
            for m in g.members.iter().take(MAX_LISTED) {
                let _ = write!(msg, "\n- {}", m.location);
            }
            if g.members.len() > MAX_LISTED {
                let more = g.members.len() - MAX_LISTED;
                let _ = write!(
                    msg,
                    "\n- … and {more} more (the json or sarif report lists all)"
                );
            }
        }
        if let Some(help) = &f.help {
            let _ = write!(msg, "\nhelp: {help}");
        }
        let cmd = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        command(out, cmd, f.rule_id.as_str(), &msg)?;
    }
    for r in img.rules.iter().filter(|r| r.status == RuleStatus::NotRun) {
        let why = r.detail.as_deref().unwrap_or("no reason recorded");
        let msg = format!(
            "[{} {}] not run: {why} (not counted as passed)",
            img.input, img.platform
        );
        command(out, "warning", r.rule_id.as_str(), &msg)?;
    }
    let total: u64 = img.suppressed.values().sum();
    if total > 0 {
        let per: Vec<String> = img
            .suppressed
            .iter()
            .map(|(id, n)| format!("{id}={n}"))
            .collect();
        writeln!(
            out,
            "{}",
            escape_data(&format!(
                "[{} {}] suppressed by allowlist: {total} ({})",
                img.input,
                img.platform,
                per.join(", ")
            ))
        )?;
    }
    for note in &img.notes {
        command(
            out,
            "notice",
            "x1-validate note",
            &format!("[{} {}] {note}", img.input, img.platform),
        )?;
    }
    Ok(())
}

fn command(out: &mut dyn Write, cmd: &str, title: &str, msg: &str) -> std::io::Result<()> {
    writeln!(
        out,
        "::{cmd} title={}::{}",
        escape_property(title),
        escape_data(msg)
    )
}

/// Escape a workflow command's message (data): `%` `\r` `\n` as the runner expects, and any other
/// control character (ESC, NUL, BEL, …) written visibly as `\u{..}` so image text cannot colour or
/// rewrite the log.
pub(crate) fn escape_data(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c if super::mask::is_hostile(c, false) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

/// Escape a workflow command's property value.
pub(crate) fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_the_runner_expects() {
        assert_eq!(escape_data("100%\r\nx::y,z"), "100%25%0D%0Ax::y,z");
        assert_eq!(escape_property("a:b,c%\n"), "a%3Ab%2Cc%25%0A");
        assert_eq!(escape_data("x\u{1b}[31m\u{0}"), "x\\u{1b}[31m\\u{0}");
    }
}
