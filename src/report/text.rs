//! Plain-text pieces shared by the format writers: how a location and redacted evidence read, the
//! grouping of one secret found in several places, and the neutralising of control characters that
//! come from untrusted image content (paths, history lines) before they reach a terminal or a log.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use super::verdict::short_digest;
use super::{Evidence, Finding, Location, Severity};

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Image => f.write_str("image"),
            Location::Config { pointer } => write!(f, "config {}", pointer_or_root(pointer)),
            Location::Manifest { digest, pointer } => write!(
                f,
                "manifest {} {}",
                short_digest(digest),
                pointer_or_root(pointer)
            ),
            Location::Entry {
                layer,
                path,
                fate,
                offset,
                line,
            } => {
                write!(
                    f,
                    "layer {} ({}) {path}",
                    layer.index,
                    short_digest(&layer.digest)
                )?;
                if let Some(line) = line {
                    write!(f, ", line {line}")?;
                }
                if let Some(offset) = offset {
                    write!(f, ", byte {offset}")?;
                }
                if !fate.is_empty() {
                    write!(f, " [{fate}]")?;
                }
                Ok(())
            }
            Location::Path { path } => write!(f, "{path} (final filesystem)"),
            Location::Blob { digest, media_type } => {
                write!(f, "blob {} ({media_type})", short_digest(digest))
            }
        }
    }
}

fn pointer_or_root(p: &str) -> &str {
    if p.is_empty() { "(whole document)" } else { p }
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}… ({} chars, {}, pattern {})",
            self.prefix,
            self.length,
            short_digest(&self.fingerprint),
            self.pattern
        )
    }
}

/// Findings of one rule that carry the same secret (same evidence fingerprint), in report order.
/// Findings without evidence form groups of one.
pub(crate) struct Group<'a> {
    pub head: &'a Finding,
    pub members: Vec<&'a Finding>,
}

/// Group `findings` by (rule id, severity, evidence fingerprint), keeping the order of first
/// occurrence. Linear in the number of findings.
pub(crate) fn group_findings(findings: &[Finding]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut index: HashMap<(&str, Severity, &str), usize> = HashMap::new();
    for f in findings {
        let Some(ev) = &f.evidence else {
            groups.push(Group {
                head: f,
                members: vec![f],
            });
            continue;
        };
        let key = (f.rule_id.as_str(), f.severity, ev.fingerprint.as_str());
        if let Some(&i) = index.get(&key) {
            groups[i].members.push(f);
        } else {
            index.insert(key, groups.len());
            groups.push(Group {
                head: f,
                members: vec![f],
            });
        }
    }
    groups
}

/// Replace control and bidi characters (ESC, CR, NUL, U+202E, …; tab and newline too when
/// `keep_newlines` is false) with a visible `\u{..}` form, so text cannot move a terminal cursor,
/// reorder a line or forge one. The same set as [`super::mask`] neutralises.
pub(crate) fn neutralise(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\t' || super::mask::is_hostile(c, keep_newlines) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// Greedy word wrap of one paragraph to `width` columns (no wrap when `width` is 0). Counts chars.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        if width == 0 {
            lines.push(para.to_string());
            continue;
        }
        let mut line = String::new();
        for word in para.split(' ') {
            let len = line.chars().count();
            if len > 0 && len + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neutralise_escapes_terminal_controls() {
        assert_eq!(neutralise("a\u{1b}[31mb", false), "a\\u{1b}[31mb");
        assert_eq!(neutralise("a\nb\r", true), "a\nb\\u{d}");
        assert_eq!(neutralise("a\nb", false), "a\\u{a}b");
    }

    #[test]
    fn wrap_breaks_on_words() {
        assert_eq!(wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(wrap("aa bb\ncc", 0), vec!["aa bb", "cc"]);
        assert_eq!(
            wrap("averyverylongword x", 4),
            vec!["averyverylongword", "x"]
        );
    }
}
