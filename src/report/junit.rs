//! `--format junit`: `JUnit` XML for CI test tabs. One `<testsuite>` per image/platform, one `<testcase>`
//! per rule result (plus one for any rule that has findings but no result), a `<failure>` per finding
//! with the message and the location, `<skipped>` with the reason for skipped and not-run rules. The
//! suite's `failures` counts failed testcases; `skipped` counts skipped and not-run ones. Suppression
//! counts and notes go to the suite's `<system-out>`. The XML escaping is written here: `& < > " '`
//! become entities, tab/CR/LF inside attributes become character references, and characters XML 1.0
//! cannot carry (other C0 controls, U+FFFE, U+FFFF) are written visibly as `\u{..}`.

use std::fmt::Write as _;
use std::io::Write;

use super::{Finding, ImageReport, MaskedReport, RuleResult, RuleStatus, Severity, WriteOptions};
use crate::rules::RuleId;

pub(super) fn write(
    report: &MaskedReport,
    opts: &WriteOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let cases: Vec<Vec<Case<'_>>> = report.images.iter().map(cases).collect();
    let total: usize = cases.iter().map(Vec::len).sum();
    let failed: usize = cases.iter().flatten().filter(|c| c.is_failed()).count();
    let skipped: usize = cases.iter().flatten().filter(|c| c.is_skipped()).count();
    let errors = usize::from(report.error.is_some());
    let _ = writeln!(
        xml,
        "<testsuites name=\"x1-validate\" tests=\"{}\" failures=\"{failed}\" errors=\"{errors}\" skipped=\"{skipped}\">",
        total + errors
    );
    for (img, cases) in report.images.iter().zip(&cases) {
        suite(&mut xml, img, cases, opts);
    }
    if let Some(e) = &report.error {
        // One errored testcase: the image was NOT checked (exit 2 or 3), never 0 tests 0 errors.
        let message = format!(
            "NOT CHECKED (exit {}, {}): {}",
            e.exit_code, e.kind, e.message
        );
        let _ = writeln!(
            xml,
            "  <testsuite name=\"x1-validate\" tests=\"1\" failures=\"0\" errors=\"1\" skipped=\"0\">"
        );
        let _ = writeln!(
            xml,
            "    <testcase name=\"image checked\" classname=\"x1-validate\">\n      <error message=\"{}\" type=\"{}\">{}</error>\n    </testcase>",
            attr(&message),
            attr(e.kind.as_str()),
            text(&format!(
                "{message}\nThe image was not checked: this is not a pass."
            ))
        );
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    out.write_all(xml.as_bytes())
}

/// One testcase: a rule and the image's findings for it.
struct Case<'a> {
    rule_id: RuleId,
    status: RuleStatus,
    detail: Option<&'a str>,
    findings: Vec<&'a Finding>,
}

impl Case<'_> {
    fn is_failed(&self) -> bool {
        !self.findings.is_empty() || self.status == RuleStatus::Failed
    }
    fn is_skipped(&self) -> bool {
        !self.is_failed() && matches!(self.status, RuleStatus::Skipped | RuleStatus::NotRun)
    }
}

fn cases(img: &ImageReport) -> Vec<Case<'_>> {
    let mut cases: Vec<Case<'_>> = img.rules.iter().map(|r| case(img, r)).collect();
    for f in &img.findings {
        if !cases.iter().any(|c| c.rule_id == f.rule_id) {
            cases.push(Case {
                rule_id: f.rule_id,
                status: RuleStatus::Failed,
                detail: None,
                findings: img
                    .findings
                    .iter()
                    .filter(|g| g.rule_id == f.rule_id)
                    .collect(),
            });
        }
    }
    cases
}

fn case<'a>(img: &'a ImageReport, r: &'a RuleResult) -> Case<'a> {
    Case {
        rule_id: r.rule_id,
        status: r.status,
        detail: r.detail.as_deref(),
        findings: img
            .findings
            .iter()
            .filter(|f| f.rule_id == r.rule_id)
            .collect(),
    }
}

fn suite(xml: &mut String, img: &ImageReport, cases: &[Case<'_>], opts: &WriteOptions) {
    let failed = cases.iter().filter(|c| c.is_failed()).count();
    let skipped = cases.iter().filter(|c| c.is_skipped()).count();
    let name = format!("{} [{}]", img.input, img.platform);
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\">",
        attr(&name),
        cases.len()
    );
    xml.push_str("    <properties>\n");
    let props = [
        ("platform", Some(img.platform.as_str())),
        ("manifest_digest", Some(img.manifest_digest.as_str())),
        ("config_digest", Some(img.config_digest.as_str())),
        ("preset", img.preset.as_deref()),
    ];
    for (k, v) in props {
        if let Some(v) = v {
            let _ = writeln!(xml, "      <property name=\"{k}\" value=\"{}\"/>", attr(v));
        }
    }
    xml.push_str("    </properties>\n");
    let classname = format!("x1-validate.{}", img.platform);
    for c in cases {
        testcase(xml, c, &classname);
    }
    let mut sys = String::new();
    let _ = writeln!(sys, "{}", img.verdict_line(opts.fail_on()));
    for (id, n) in &img.suppressed {
        let _ = writeln!(sys, "suppressed by allowlist {id}: {n}");
    }
    for note in &img.notes {
        let _ = writeln!(sys, "note: {note}");
    }
    let _ = writeln!(xml, "    <system-out>{}</system-out>", text(&sys));
    xml.push_str("  </testsuite>\n");
}

fn testcase(xml: &mut String, c: &Case<'_>, classname: &str) {
    let _ = write!(
        xml,
        "    <testcase name=\"{}\" classname=\"{}\"",
        attr(c.rule_id.as_str()),
        attr(classname)
    );
    if c.is_failed() {
        xml.push_str(">\n");
        for f in &c.findings {
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"{}\">{}</failure>",
                attr(&f.message),
                severity_type(f.severity),
                text(&failure_body(f))
            );
        }
        if c.findings.is_empty() {
            let why = c.detail.unwrap_or("rule failed without findings");
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"error\"/>",
                attr(why)
            );
        }
        xml.push_str("    </testcase>\n");
    } else if c.is_skipped() {
        let why = match (c.status, c.detail) {
            (RuleStatus::NotRun, Some(d)) => format!("not run: {d}"),
            (RuleStatus::NotRun, None) => "not run".to_string(),
            (_, Some(d)) => format!("skipped: {d}"),
            (_, None) => "skipped".to_string(),
        };
        let _ = writeln!(
            xml,
            ">\n      <skipped message=\"{}\"/>\n    </testcase>",
            attr(&why)
        );
    } else {
        xml.push_str("/>\n");
    }
}

fn severity_type(s: Severity) -> &'static str {
    s.as_str()
}

fn failure_body(f: &Finding) -> String {
    let mut body = format!("{}\nat {}", f.message, f.location);
    if let Some(ev) = &f.evidence {
        let _ = write!(body, "\nsecret: {ev}");
    }
    if let super::Location::Entry { layer, .. } = &f.location
        && let Some(cb) = &layer.created_by
    {
        let _ = write!(body, "\ncreated by: {cb}");
    }
    if let Some(help) = &f.help {
        let _ = write!(body, "\nhelp: {help}");
    }
    body
}

/// Escape for an attribute value (double-quoted).
pub(crate) fn attr(s: &str) -> String {
    escape(s, true)
}

/// Escape for element text.
pub(crate) fn text(s: &str) -> String {
    escape(s, false)
}

fn escape(s: &str, in_attr: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' if in_attr => out.push_str("&#10;"),
            '\t' if in_attr => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            c if u32::from(c) < 0x20
                || c == '\u{FFFE}'
                || c == '\u{FFFF}'
                || super::mask::is_hostile(c, true) =>
            {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_controls() {
        assert_eq!(attr("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(attr("l1\nl2\tx\r"), "l1&#10;l2&#9;x&#13;");
        assert_eq!(text("l1\nl2\r"), "l1\nl2&#13;");
        assert_eq!(text("esc\u{1b}nul\u{0}"), "esc\\u{1b}nul\\u{0}");
        assert_eq!(text("\u{FFFF}"), "\\u{ffff}");
        assert_eq!(text("ünï ✓"), "ünï ✓");
    }
}
