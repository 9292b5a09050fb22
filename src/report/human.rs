//! `--format human`: a miette-style readable report (`×` error, `⚠` warning, `☞` note), hand-rolled so
//! that one secret found in several places reads as one finding with all its locations. Per image:
//! findings, every rule's status (not-run shown as such, never as passed), suppression counts and
//! notes; then one verdict line per platform. Colour only when [`WriteOptions::color`] is true (the
//! caller sets it false for `NO_COLOR` or a non-terminal); text from the image is neutralised so an
//! escape sequence in a path cannot reach the terminal.

use std::fmt::Write as _;
use std::io::Write;

use super::text::{Group, group_findings, neutralise, wrap};
use super::verdict::short_digest;
use super::{
    GateVerdict, ImageReport, Location, MaskedReport, RuleResult, RuleStatus, Severity,
    WriteOptions,
};

/// Longest `created_by` line shown before it is cut.
const MAX_CREATED_BY: usize = 160;

/// ANSI styling that collapses to plain text when colour is off.
struct Paint {
    on: bool,
}

impl Paint {
    fn style(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn severity(&self, sev: Severity, s: &str) -> String {
        match sev {
            Severity::Error => self.style("1;31", s),
            Severity::Warning => self.style("1;33", s),
            Severity::Note => self.style("1;36", s),
        }
    }
    fn dim(&self, s: &str) -> String {
        self.style("2", s)
    }
    fn bold(&self, s: &str) -> String {
        self.style("1", s)
    }
}

fn icon(sev: Severity) -> &'static str {
    match sev {
        Severity::Error => "×",
        Severity::Warning => "⚠",
        Severity::Note => "☞",
    }
}

pub(super) fn write(
    report: &MaskedReport,
    opts: &WriteOptions,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let p = Paint { on: opts.color };
    let n = report.images.len();
    writeln!(
        out,
        "{} {} · {n} image{} checked{}",
        p.bold("x1-validate"),
        neutralise(&report.tool_version, false),
        if n == 1 { "" } else { "s" },
        if report.error.is_some() {
            " · NOT CHECKED"
        } else {
            ""
        }
    )?;
    for img in &report.images {
        writeln!(out)?;
        image(img, opts, &p, out)?;
    }
    writeln!(out)?;
    writeln!(out, "{}", p.bold("Verdict"))?;
    if report.images.is_empty() && report.error.is_none() {
        writeln!(out, "  no image was checked")?;
    }
    let fail_on = opts.fail_on();
    for img in &report.images {
        let line = neutralise(&img.verdict_line(fail_on), false);
        let styled = match img.verdict(fail_on) {
            GateVerdict::Pass => p.style("1;32", &line),
            GateVerdict::Fail | GateVerdict::Error => p.style("1;31", &line),
            GateVerdict::Incomplete => p.style("1;33", &line),
        };
        writeln!(out, "  {styled}")?;
    }
    if let Some(e) = &report.error {
        let head = format!("× NOT CHECKED (exit {}, {})", e.exit_code, e.kind);
        writeln!(out, "  {}", p.style("1;31", &head))?;
        for l in wrap(&neutralise(&e.message, false), opts.width.saturating_sub(4)) {
            writeln!(out, "    {l}")?;
        }
        writeln!(
            out,
            "    The image was not (completely) checked: this is not a pass."
        )?;
    }
    Ok(())
}

fn image(
    img: &ImageReport,
    opts: &WriteOptions,
    p: &Paint,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let synthesised = if img.manifest_digest_source == Some(super::DigestSource::Synthesised) {
        "synthesised manifest "
    } else {
        ""
    };
    let mut head = format!(
        "━━ {} · {} · {synthesised}{}",
        neutralise(&img.input, false),
        neutralise(&img.platform, false),
        short_digest(&img.manifest_digest)
    );
    if let Some(preset) = &img.preset {
        let _ = write!(head, " · preset {}", neutralise(preset, false));
    }
    writeln!(out, "{}", p.bold(&head))?;
    writeln!(out)?;
    let groups = group_findings(&img.findings);
    if groups.is_empty() {
        writeln!(out, "  no findings")?;
        writeln!(out)?;
    }
    for g in &groups {
        group(g, opts, p, out)?;
        writeln!(out)?;
    }
    rules(img, opts, p, out)?;
    trailer(img, opts, p, out)
}

fn group(
    g: &Group<'_>,
    opts: &WriteOptions,
    p: &Paint,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let f = g.head;
    let title = format!(
        "{} {}",
        icon(f.severity),
        neutralise(f.rule_id.as_str(), false)
    );
    writeln!(
        out,
        "  {}: {}",
        p.severity(f.severity, &title),
        neutralise(&f.message, false)
    )?;
    if let Some(ev) = &f.evidence {
        writeln!(out, "  │ secret: {}", neutralise(&ev.to_string(), false))?;
    }
    if g.members.len() > 1 {
        writeln!(out, "  │ found in {} places:", g.members.len())?;
    }
    for (i, m) in g.members.iter().enumerate() {
        let branch = if i + 1 == g.members.len() {
            "╰─"
        } else {
            "├─"
        };
        let mut line = neutralise(&m.location.to_string(), false);
        if m.message != f.message {
            let _ = write!(line, " — {}", neutralise(&m.message, false));
        }
        writeln!(out, "  {branch} {}", p.dim(&line))?;
        if let Location::Entry { layer, .. } = &m.location
            && let Some(cb) = &layer.created_by
        {
            let bar = if i + 1 == g.members.len() { " " } else { "│" };
            writeln!(out, "  {bar}    created by: {}", p.dim(&cut(cb)))?;
        }
    }
    if let Some(help) = &f.help {
        let width = opts.width.saturating_sub(11);
        for (i, l) in wrap(&neutralise(help, true), width).iter().enumerate() {
            let lead = if i == 0 { "help:" } else { "     " };
            writeln!(out, "     {} {l}", p.style("36", lead))?;
        }
    }
    Ok(())
}

fn cut(s: &str) -> String {
    let clean = neutralise(s.trim(), false);
    if clean.chars().count() > MAX_CREATED_BY {
        let mut c: String = clean.chars().take(MAX_CREATED_BY).collect();
        c.push('…');
        c
    } else {
        clean
    }
}

fn rules(
    img: &ImageReport,
    opts: &WriteOptions,
    p: &Paint,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "  {}", p.bold("Rules"))?;
    if img.rules.is_empty() {
        writeln!(out, "    (no rule results recorded)")?;
    }
    let id_width = img
        .rules
        .iter()
        .map(|r| r.rule_id.as_str().chars().count())
        .max()
        .unwrap_or(0);
    for r in &img.rules {
        let (label, head) = rule_head(r, img, id_width, p);
        let Some(detail) = r.detail.as_deref().map(|d| neutralise(d, false)) else {
            writeln!(out, "    {label} {}", head.trim_end())?;
            continue;
        };
        // "    " + 10-column label + " " before the head; the detail wraps under the id column.
        let used = 15 + head.chars().count() + 3;
        if opts.width == 0 || used + detail.chars().count() <= opts.width {
            writeln!(out, "    {label} {head} — {detail}")?;
        } else {
            writeln!(out, "    {label} {}", head.trim_end())?;
            for l in wrap(&detail, opts.width.saturating_sub(17).max(20)) {
                writeln!(out, "{:17}{}", "", p.dim(&l))?;
            }
        }
    }
    Ok(())
}

/// The styled status label (10 columns) and the rest of a rule's line, without its detail.
fn rule_head(r: &RuleResult, img: &ImageReport, width: usize, p: &Paint) -> (String, String) {
    let id = neutralise(r.rule_id.as_str(), false);
    match r.status {
        RuleStatus::Passed => (p.style("32", "✓ passed  "), format!("{id:<width$}")),
        RuleStatus::Failed => {
            let n = img
                .findings
                .iter()
                .filter(|f| f.rule_id == r.rule_id)
                .count();
            let s = if n == 1 { "" } else { "s" };
            (
                p.severity(r.severity, "✗ failed  "),
                format!("{id:<width$} ({n} finding{s})"),
            )
        }
        RuleStatus::NotRun => (
            p.style("1;35", "? NOT RUN "),
            format!("{id:<width$} (not counted as passed)"),
        ),
        RuleStatus::Skipped => (p.dim("- skipped "), format!("{id:<width$}")),
    }
}

fn trailer(
    img: &ImageReport,
    opts: &WriteOptions,
    p: &Paint,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let total: u64 = img.suppressed.values().sum();
    if total > 0 {
        let per: Vec<String> = img
            .suppressed
            .iter()
            .map(|(id, n)| format!("{} ×{n}", neutralise(id, false)))
            .collect();
        let s = if total == 1 { "" } else { "s" };
        writeln!(
            out,
            "  {} {total} finding{s} by allowlist: {}",
            p.bold("Suppressed"),
            per.join(", ")
        )?;
    }
    for note in &img.notes {
        let lines = wrap(&neutralise(note, false), opts.width.saturating_sub(8));
        for (i, l) in lines.iter().enumerate() {
            let lead = if i == 0 { "Note:" } else { "     " };
            writeln!(out, "  {} {l}", p.style("36", lead))?;
        }
    }
    Ok(())
}
