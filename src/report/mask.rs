//! The one masking chokepoint for text that comes from an image.
//!
//! Every string read from an image (paths, link targets, history `created_by`, labels, annotations,
//! config values, file contents quoted in a finding, the healthcheck's output, error messages naming a
//! key of a hostile document) is written by some command in some format. Before any format writes it,
//! it passes through [`mask`] (one line) or [`mask_multiline`]:
//!
//! 1. **Secrets become redacted evidence.** Spans matched by the gate's own compiled secret patterns
//!    (`rules/secrets.toml` through [`crate::scan`]), values of credential variables (`KEY=VALUE` or
//!    `"KEY": "VALUE"` where `KEY` is in `rules/credentials.toml` or is named like a credential:
//!    `…_KEY`, `…TOKEN`, `…SECRET`, `…PASSWORD`, …; legacy `ENV KEY VALUE`; `ARG`; `BuildKit`
//!    `RUN |N K=V`) and URL user-info (`https://user:pass@host`) are replaced by
//!    `[<prefix>… (<n> chars, sha256:<12 hex>…, pattern <id>)]`: the same redacted-evidence form the
//!    findings use ([`super::Evidence`]), never the value.
//! 2. **Control and direction characters are neutralised**: C0, DEL, C1 (ESC, BEL, CR, LF, NUL, the
//!    8-bit CSI/OSC), the bidi embeddings/overrides/isolates/marks (U+202A–202E, U+2066–2069, U+200E,
//!    U+200F, U+061C) and the line/paragraph separators (U+2028, U+2029) become visible escapes
//!    (`\u{1b}`, `\u{202e}`), so image text cannot move a cursor, set a title, reorder a line or start
//!    a new one.
//!
//! Each format then applies its own escaping on top (JSON by serde, XML entities for `JUnit`, workflow
//! command escaping for `github`).
//!
//! The type-level part: format writers take a [`MaskedReport`], which only [`MaskedReport::new`] can make,
//! and which masks every string field of the [`Report`] (all of them: a field that holds no image
//! text is unchanged by masking). A format writer therefore cannot be handed an unmasked report, and
//! `report::write` is the only way into a format writer. The listing commands (`files`, `inspect`,
//! `licenses`) write image strings through [`ImageText`] (whose `Display` is the masked form) and
//! their JSON documents through [`mask_json`].

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;

use super::{Evidence, Finding, ImageReport, Location, Report, RuleResult};

/// The compiled patterns and credential variable names masking uses (the embedded rule set).
struct Masker {
    patterns: crate::scan::Patterns,
    names: BTreeSet<String>,
}

static MASKER: OnceLock<Masker> = OnceLock::new();

/// Mask with the patterns and credential names of `rules` (the rule set the gate runs with, e.g.
/// from `--rules DIR`) instead of the embedded ones. Only the first call before any masking counts:
/// one process masks with one rule set.
pub fn use_rules(rules: &crate::rules::RuleSet) {
    let _ = MASKER.set(Masker {
        patterns: rules.secrets.clone(),
        names: rules.credentials.env_names.clone(),
    });
}

fn masker() -> &'static Masker {
    MASKER.get_or_init(|| match crate::rules::RuleSet::embedded() {
        Ok(rules) => Masker {
            patterns: rules.secrets,
            names: rules.credentials.env_names,
        },
        // The embedded files are tested valid; should they ever not be, masking still neutralises
        // controls, credential-named values and URL user-info.
        Err(_) => Masker {
            patterns: crate::scan::Patterns::default(),
            names: BTreeSet::new(),
        },
    })
}

/// Mask one line of image text: secrets redacted, every control/bidi character (newline included)
/// written as a visible escape.
pub fn mask(s: &str) -> Cow<'_, str> {
    mask_with(s, false)
}

/// Like [`mask`] but keeps `\n` and `\t` (multi-line excerpts such as a command's output); each
/// format still escapes the newlines it cannot carry.
pub fn mask_multiline(s: &str) -> Cow<'_, str> {
    mask_with(s, true)
}

/// Image text whose `Display` is its masked form: `writeln!(out, "{}", ImageText(path))`.
#[derive(Debug, Clone, Copy)]
pub struct ImageText<'a>(pub &'a str);

impl fmt::Display for ImageText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(self.0))
    }
}

/// Mask every string (and every object key) of a JSON document in place.
pub fn mask_json(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            if let Cow::Owned(m) = mask(s) {
                *s = m;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(mask_json),
        Value::Object(o) => {
            let needs_key_mask = o.keys().any(|k| matches!(mask(k), Cow::Owned(_)));
            if needs_key_mask {
                let old = std::mem::take(o);
                for (k, mut val) in old {
                    mask_json(&mut val);
                    o.insert(mask(&k).into_owned(), val);
                }
            } else {
                o.values_mut().for_each(mask_json);
            }
        }
        _ => {}
    }
}

fn mask_with(s: &str, keep_newlines: bool) -> Cow<'_, str> {
    let spans = secret_spans(s);
    if spans.is_empty() && !s.chars().any(|c| is_hostile(c, keep_newlines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    let mut at = 0;
    for (start, end, pattern) in spans {
        neutralise_into(&mut out, &s[at..start], keep_newlines);
        let ev = crate::scan::evidence(&pattern, &s.as_bytes()[start..end]);
        let _ = write!(out, "[{}]", neutralise_str(&ev.to_string()));
        at = end;
    }
    neutralise_into(&mut out, &s[at..], keep_newlines);
    Cow::Owned(out)
}

fn neutralise_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    neutralise_into(&mut out, s, false);
    out
}

/// Whether `c` must not reach an output raw.
pub(crate) fn is_hostile(c: char, keep_newlines: bool) -> bool {
    if keep_newlines && (c == '\n' || c == '\t') {
        return false;
    }
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

fn neutralise_into(out: &mut String, s: &str, keep_newlines: bool) {
    for c in s.chars() {
        if is_hostile(c, keep_newlines) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
}

/// Byte spans to redact, sorted, non-overlapping, each on char boundaries, with the name shown as
/// the evidence's pattern.
fn secret_spans(s: &str) -> Vec<(usize, usize, String)> {
    let m = masker();
    let mut spans: Vec<(usize, usize, String)> = Vec::new();
    let bytes = s.as_bytes();
    for hit in crate::scan::engine::scan_value(&m.patterns.inner, bytes) {
        let id = m
            .patterns
            .patterns()
            .get(hit.pattern)
            .map_or("secret", |p| p.id.as_str());
        spans.push((hit.start, hit.end, id.to_string()));
    }
    assignments(s, &m.names, &mut spans);
    userinfo(s, &mut spans);
    // Merge overlaps and widen to char boundaries (a pattern may match inside a multi-byte char).
    spans.retain(|(a, b, _)| a < b);
    spans.sort_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    let mut merged: Vec<(usize, usize, String)> = Vec::with_capacity(spans.len());
    for (mut a, mut b, p) in spans {
        while a > 0 && !s.is_char_boundary(a) {
            a -= 1;
        }
        while b < s.len() && !s.is_char_boundary(b) {
            b += 1;
        }
        match merged.last_mut() {
            Some(last) if a < last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b, p)),
        }
    }
    merged
}

/// Whether a variable name holds a credential: listed in `credentials.toml`, or named like one
/// (a name that ends in `KEY`, `TOKEN`, `SECRET`, `PASSWORD`, … after something else).
fn credential_name(name: &str, listed: &BTreeSet<String>) -> bool {
    const SUFFIXES: &[&str] = &[
        "KEY",
        "KEYS",
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "CREDENTIALS",
        "AUTH",
        "APIKEY",
        "PRIVATEKEY",
    ];
    let upper = name.to_ascii_uppercase();
    if listed.contains(&upper) {
        return true;
    }
    let squashed: String = upper
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .collect();
    // A bare `KEY`/`TOKEN` is prose or a placeholder (`KEY=VALUE`), not a variable of its own.
    SUFFIXES
        .iter()
        .any(|suf| squashed.len() > suf.len() && squashed.ends_with(suf))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `NAME=VALUE`, `NAME: VALUE`, `"NAME": "VALUE"`, `ENV NAME VALUE`, `ARG NAME=VALUE` where NAME is a
/// credential name: the value's span.
fn assignments(s: &str, names: &BTreeSet<String>, spans: &mut Vec<(usize, usize, String)>) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut prev_word: &str = "";
    while i < b.len() {
        if !is_ident_byte(b[i]) || (i > 0 && (is_ident_byte(b[i - 1]) || b[i - 1] == b'-')) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (is_ident_byte(b[i]) || b[i] == b'-' || b[i] == b'.') {
            i += 1;
        }
        let name = &s[start..i];
        let word_before = prev_word;
        prev_word = name;
        let mut j = i;
        if j < b.len() && (b[j] == b'"' || b[j] == b'\'') {
            j += 1; // the closing quote of a quoted JSON/YAML key
        }
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        let sep = b.get(j).copied();
        let legacy = sep.is_some_and(|c| c != b'=' && c != b':')
            && j > i
            && (word_before.eq_ignore_ascii_case("ENV") || word_before.eq_ignore_ascii_case("ARG"));
        if !(matches!(sep, Some(b'=' | b':')) || legacy) {
            continue;
        }
        if !credential_name(name, names) {
            continue;
        }
        if !legacy {
            j += 1;
            if sep == Some(b':') && b.get(j) == Some(&b'/') {
                continue; // a URL scheme (`token://`), not an assignment
            }
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
        }
        let (vs, ve) = value_span(b, j);
        if ve > vs && !not_a_value(&s[vs..ve]) {
            spans.push((vs, ve, name.to_string()));
            i = ve;
        }
    }
}

/// An elided value (`…`, `***`, `<redacted>`) or a reference to another variable (`${VAR}`, `$VAR`,
/// `{env:VAR}`): nothing to mask.
fn not_a_value(v: &str) -> bool {
    let ident =
        |x: &str| !x.is_empty() && x.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    v.chars().all(|c| matches!(c, '…' | '.' | '*'))
        || v == "<redacted>"
        // an already elided prefix (`sk-p…`, as `inspect` writes it): too short to be a secret
        || (v.ends_with('…') && v.chars().count() <= 9)
        || v.strip_prefix("${")
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(ident)
        || v.strip_prefix("{env:")
            .and_then(|r| r.strip_suffix('}'))
            .is_some_and(ident)
        || v.strip_prefix('$').is_some_and(ident)
}

/// The value starting at `j`: quoted (up to the matching quote) or bare (up to whitespace or a quote;
/// masking a little more than the value is the safe side).
fn value_span(b: &[u8], j: usize) -> (usize, usize) {
    if let Some(&q @ (b'"' | b'\'' | b'`')) = b.get(j) {
        let vs = j + 1;
        let mut ve = vs;
        while ve < b.len() && b[ve] != q {
            ve += 1;
        }
        return (vs, ve);
    }
    let mut ve = j;
    while ve < b.len() && !b[ve].is_ascii_whitespace() && !matches!(b[ve], b'"' | b'\'' | b'`') {
        ve += 1;
    }
    (j, ve)
}

/// `scheme://USERINFO@host`: the user-info's span.
fn userinfo(s: &str, spans: &mut Vec<(usize, usize, String)>) {
    let mut from = 0;
    while let Some(k) = s[from..].find("://") {
        let auth_start = from + k + 3;
        let rest = &s[auth_start..];
        let auth_len = rest
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || "\"'`<>".contains(c)
            })
            .unwrap_or(rest.len());
        if let Some(at) = rest[..auth_len].rfind('@')
            && at > 0
        {
            spans.push((auth_start, auth_start + at, "url-userinfo".into()));
        }
        from = auth_start;
    }
}

/// A [`Report`] whose every string has been through [`mask`]: what every format writer takes.
#[derive(Debug, Clone)]
pub struct MaskedReport(Report);

impl MaskedReport {
    /// Mask a copy of `report`.
    pub fn new(report: &Report) -> MaskedReport {
        let mut r = report.clone();
        m(&mut r.tool_version);
        for img in &mut r.images {
            mask_image(img);
        }
        if let Some(e) = &mut r.error {
            m(&mut e.message);
        }
        MaskedReport(r)
    }
}

impl std::ops::Deref for MaskedReport {
    type Target = Report;
    fn deref(&self) -> &Report {
        &self.0
    }
}

fn m(s: &mut String) {
    if let Cow::Owned(v) = mask(s) {
        *s = v;
    }
}

fn mask_image(img: &mut ImageReport) {
    m(&mut img.input);
    m(&mut img.platform);
    m(&mut img.manifest_digest);
    m(&mut img.config_digest);
    if let Some(p) = &mut img.preset {
        m(p);
    }
    // Rule ids are `RuleId`s: ours, nothing to mask.
    for RuleResult { detail, .. } in &mut img.rules {
        if let Some(d) = detail {
            m(d);
        }
    }
    for f in &mut img.findings {
        mask_finding(f);
    }
    let suppressed = std::mem::take(&mut img.suppressed);
    img.suppressed = suppressed
        .into_iter()
        .map(|(k, v)| (mask(&k).into_owned(), v))
        .collect();
    img.notes.iter_mut().for_each(m);
}

fn mask_finding(f: &mut Finding) {
    m(&mut f.message);
    if let Some(h) = &mut f.help
        && let Cow::Owned(v) = mask_multiline(h)
    {
        *h = v;
    }
    match &mut f.location {
        Location::Image => {}
        Location::Config { pointer } => m(pointer),
        Location::Manifest { digest, pointer } => {
            m(digest);
            m(pointer);
        }
        Location::Entry {
            layer, path, fate, ..
        } => {
            m(&mut layer.digest);
            m(&mut layer.diff_id);
            if let Some(cb) = &mut layer.created_by {
                m(cb);
            }
            m(path);
            m(fate);
        }
        Location::Path { path } => m(path),
        Location::Blob { digest, media_type } => {
            m(digest);
            m(media_type);
        }
    }
    if let Some(Evidence {
        prefix, pattern, ..
    }) = &mut f.evidence
    {
        m(prefix);
        m(pattern);
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng as _;

    use super::*;

    fn body(n: usize) -> String {
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(n)
            .map(char::from)
            .collect()
    }

    #[test]
    fn redacts_pattern_matches_anywhere() {
        let key = format!("ghp_{}", body(36));
        let out = mask(&format!("RUN echo {key} > /x")).into_owned();
        assert!(!out.contains(&key) && !out.contains(&key[4..]), "{out}");
        assert!(
            out.contains("pattern github-pat") && out.contains("40 chars"),
            "{out}"
        );
        assert!(
            out.starts_with("RUN echo [") && out.ends_with("] > /x"),
            "{out}"
        );
    }

    #[test]
    fn redacts_credential_variables_in_every_form() {
        let v = body(20);
        for s in [
            format!("ENV ANTHROPIC_API_KEY={v}"),
            format!("/bin/sh -c #(nop) ENV OPENAI_API_KEY {v}"),
            format!("ARG GH_TOKEN=\"{v}\" x"),
            format!("RUN |2 FOO=1 NPM_TOKEN={v} /bin/sh -c make"),
            format!("{{\"apiKey\": \"{v}\"}}"),
            format!("db_password: {v}"),
            format!("https://user:{v}@example.com/x"),
            format!("https://{v}@example.com"),
        ] {
            let out = mask(&s);
            assert!(!out.contains(&v), "{s} -> {out}");
            assert!(out.contains("chars, sha256:"), "{s} -> {out}");
        }
        assert_eq!(mask("PATH=/usr/bin:/bin"), "PATH=/usr/bin:/bin");
        assert_eq!(mask("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(mask("KEY="), "KEY=");
        assert_eq!(
            mask("set `KEY=VALUE`; the key: it"),
            "set `KEY=VALUE`; the key: it"
        );
        // a value with … appended is still a value once it is longer than an elided prefix
        let out = mask(&format!("OPENAI_API_KEY={v}…")).into_owned();
        assert!(!out.contains(&v), "{out}");
        for kept in [
            "API_KEY=…",
            "OPENAI_API_KEY=sk-p… (redacted, 48 chars)",
            "T_TOKEN=${X}",
            "\"apiKey\": \"{env:X1_SIDECAR_TOKEN}\"",
            "K_KEY=$K",
        ] {
            assert_eq!(mask(kept), kept);
        }
    }

    #[test]
    fn neutralises_controls_and_bidi() {
        assert_eq!(mask("a\u{1b}]0;t\u{7}b"), "a\\u{1b}]0;t\\u{7}b");
        assert_eq!(mask("x\r\n::error::y"), "x\\u{d}\\u{a}::error::y");
        assert_eq!(mask("e\u{202e}xe.txt"), "e\\u{202e}xe.txt");
        assert_eq!(mask("\u{9b}31m\u{7f}"), "\\u{9b}31m\\u{7f}");
        assert_eq!(mask_multiline("a\nb\u{2066}"), "a\nb\\u{2066}");
        assert!(matches!(mask("plain ünï ✓"), Cow::Borrowed(_)));
        // masking is idempotent
        let key = format!("ghp_{}", body(36));
        let once = mask(&format!("T={key}\u{1b}")).into_owned();
        assert_eq!(mask(&once), once);
    }

    #[test]
    fn masks_json_keys_and_values() {
        let key = format!("ghp_{}", body(36));
        let mut v = serde_json::json!({"a\u{1b}": [key.clone()], "b": {"c": "ok"}});
        mask_json(&mut v);
        let s = v.to_string();
        assert!(!s.contains(&key) && !s.contains('\u{1b}'), "{s}");
        assert_eq!(v["b"]["c"], "ok");
    }
}
