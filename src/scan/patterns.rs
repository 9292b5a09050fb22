//! `rules/secrets.toml` → compiled [`Patterns`]: strict parsing, regex compilation, the keyword
//! searcher (exact-case keywords, minimised so that no keyword contains another), the placeholder
//! filter and the allowlist. Provider-credential variable names for the assignment pattern come from
//! `rules/credentials.toml` of the same rule set (passed to [`Patterns::load`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, Span, packed};
use globset::{Glob, GlobMatcher};
use regex::bytes::Regex;
use serde::Deserialize;

use crate::error::Result;
use crate::toml_file::SourceFile;

/// Bytes of look-behind context kept before a window so `\b` and prefix checks see real data.
pub(crate) const CONTEXT: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    schema_version: u32,
    #[serde(default)]
    placeholders: Vec<String>,
    #[serde(rename = "pattern")]
    patterns: Vec<RawPattern>,
    #[serde(default, rename = "allow")]
    allow: Vec<RawAllow>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    id: toml::Spanned<String>,
    description: String,
    regex: String,
    keywords: Vec<String>,
    #[serde(default)]
    before: usize,
    after: usize,
    min_entropy: Option<f64>,
    #[serde(default)]
    min_digits: usize,
    /// A regex on the value: a value it matches is not this pattern's (another provider's prefix).
    reject: Option<String>,
    tp: Vec<String>,
    fp: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    id: toml::Spanned<String>,
    description: String,
    path: String,
    pattern: String,
    fingerprint: Option<String>,
}

/// One compiled value pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub id: String,
    pub description: String,
    pub(crate) regex: Regex,
    /// Indices of the capture groups named `secret…` (`secret`, `secret_glued`, …), in order: the
    /// first one that participates in a match is the value. Empty: the whole match is the value.
    pub(crate) secret_groups: Vec<usize>,
    pub min_entropy: Option<f64>,
    pub min_digits: usize,
    /// Values matching this are rejected (they belong to another provider's format).
    pub(crate) reject: Option<Regex>,
    /// A cheap necessary condition checked on a window before the regex runs over it.
    pub(crate) gate: Option<super::gate::Gate>,
    /// The match may start this many bytes before the keyword…
    pub(crate) before: usize,
    /// …and end this many bytes after the keyword's start.
    pub(crate) after: usize,
    /// True-positive templates (see [`crate::scan::template`]) and literal false-positive examples.
    pub tp: Vec<String>,
    pub fp: Vec<String>,
}

/// One allowlist entry: suppresses `pattern` (or `*`) under `path` (glob), optionally only one
/// fingerprint. Every suppression is counted under `id`.
#[derive(Debug, Clone)]
pub struct AllowEntry {
    pub id: String,
    pub description: String,
    pub pattern: String,
    pub fingerprint: Option<String>,
    pub(crate) path: GlobMatcher,
}

/// For one (minimised) keyword: which patterns it triggers, with the window to search around a hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Trigger {
    pub pattern: usize,
    pub before: usize,
    pub after: usize,
}

/// The keyword searcher: SIMD packed (Teddy) searchers over groups of at most [`GROUP_MAX`] keywords
/// when the CPU allows it, else one leftmost-first Aho–Corasick automaton. Keywords are minimised (none
/// contains another), so no two keywords can start at the same offset.
#[derive(Debug)]
pub(crate) enum Keywords {
    /// Each searcher with the global index of each of its keywords.
    Packed(Vec<(packed::Searcher, Vec<usize>)>),
    Automaton(AhoCorasick),
}

/// Keywords per packed searcher. Past 32 keywords the packed searcher switches to its "fat" variant (16
/// buckets, 16 bytes a step). Three "slim" searchers of 20 keywords (8 buckets, 32 bytes a step, fewer
/// false candidates per bucket), run one after the other over the same cache-hot 256 KiB window, took
/// 0.6 × the CPU time of one fat searcher of all 60 on 300 MB of the corpus image.
pub(crate) const GROUP_MAX: usize = 20;

impl Keywords {
    /// The searcher for `minimal` (sorted; no keyword contains another).
    pub(super) fn new(minimal: &[&str]) -> Result<Keywords> {
        Ok(match packed_groups(minimal) {
            Some(groups) => Keywords::Packed(groups),
            None => Keywords::Automaton(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(minimal)
                    .map_err(|e| crate::Error::Usage(format!("secret keyword automaton: {e}")))?,
            ),
        })
    }

    /// Call `hit(keyword, offset)` for every keyword occurrence starting in `start..end` (and ending by
    /// `end`). Occurrences come grouped by searcher, each group in offset order.
    #[inline]
    pub fn each(&self, hay: &[u8], start: usize, end: usize, mut hit: impl FnMut(usize, usize)) {
        match self {
            Keywords::Packed(groups) => {
                for (s, ids) in groups {
                    let mut at = start;
                    // Restart one byte after each hit (not after its end) so overlapping keywords are
                    // all seen.
                    while let Some(m) = s.find_in(hay, Span { start: at, end }) {
                        hit(ids[m.pattern().as_usize()], m.start());
                        at = m.start() + 1;
                    }
                }
            }
            Keywords::Automaton(a) => {
                let mut at = start;
                while let Some(m) = a.find(aho_corasick::Input::new(hay).span(at..end)) {
                    hit(m.pattern().as_usize(), m.start());
                    at = m.start() + 1;
                }
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct Compiled {
    pub patterns: Vec<Pattern>,
    pub ac: Keywords,
    pub triggers: Vec<Vec<Trigger>>,
    pub placeholders: Option<Regex>,
    pub allow: Vec<AllowEntry>,
    /// Longest span a match can cover around its keyword: the stream overlap.
    pub max_extent: usize,
}

/// The compiled secret patterns and allowlist. Cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Patterns {
    pub(crate) inner: Arc<Compiled>,
    /// SHA-256 of what was compiled: the file's text and the credential names (see `fingerprint`).
    source: Arc<str>,
}

impl Default for Patterns {
    /// No patterns at all (nothing is ever found).
    fn default() -> Self {
        let inner = compile(
            &[],
            &[],
            &[],
            &BTreeSet::new(),
            &SourceFile { name: "", text: "" },
        )
        .expect("an empty pattern set always compiles");
        Patterns {
            inner: Arc::new(inner),
            source: Arc::from(""),
        }
    }
}

impl Patterns {
    /// Parse and compile `rules/secrets.toml` (strict; errors carry a span into `text`), once. The
    /// `{credential_names}` macro is filled from `env_names` (upper case): the `[env] names` of the
    /// same rule set's `credentials.toml` (`rules::Credentials::env_names`).
    pub fn load(text: &str, file_name: &str, env_names: &BTreeSet<String>) -> Result<Patterns> {
        let src = SourceFile {
            name: file_name,
            text,
        };
        let raw: RawFile = src.parse()?;
        if raw.schema_version != 1 {
            return Err(src.error_at(
                "schema_version",
                0,
                format!("unsupported schema_version {}", raw.schema_version),
            ));
        }
        let inner = compile(
            &raw.patterns,
            &raw.placeholders,
            &raw.allow,
            env_names,
            &src,
        )?;
        let source = {
            use sha2::{Digest as _, Sha256};
            let mut h = Sha256::new();
            h.update(text.as_bytes());
            for n in env_names {
                h.update([0]);
                h.update(n.as_bytes());
            }
            hex::encode(h.finalize())
        };
        Ok(Patterns {
            inner: Arc::new(inner),
            source: Arc::from(source),
        })
    }

    /// A digest of everything that decides what a scan finds: the patterns file as written (keywords,
    /// regexes, limits, placeholders, allowlist), the credential names, and the compiled regexes
    /// (which carry those names filled in). The layer result cache keys on it.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        let mut put = |s: &str| {
            h.update((s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        };
        put(&self.source);
        for p in &self.inner.patterns {
            put(p.regex.as_str());
        }
        put(&self.inner.max_extent.to_string());
        hex::encode(h.finalize())
    }

    /// All patterns, in file order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.inner.patterns
    }

    /// The allowlist.
    pub fn allowlist(&self) -> &[AllowEntry] {
        &self.inner.allow
    }

    /// The distinct keywords of the prefilter automaton (after minimisation).
    pub fn keyword_count(&self) -> usize {
        self.inner.triggers.len()
    }

    /// The allowlist entry that suppresses a hit of `pattern` at `path` with `fingerprint`, if any.
    pub fn allowed(&self, path: &str, pattern: &str, fingerprint: &str) -> Option<&AllowEntry> {
        self.inner.allow.iter().find(|a| {
            (a.pattern == "*" || a.pattern == pattern)
                && a.fingerprint.as_deref().is_none_or(|f| f == fingerprint)
                && a.path.is_match(path)
        })
    }
}

/// `{credential_names}` → a regex alternation of the names (longest first);
/// `{credential_suffixes}` (as a keyword) → the names' distinctive `_SUFFIX`es in upper and lower case.
fn credential_suffixes(names: &BTreeSet<String>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for n in names {
        let segs: Vec<&str> = n.split('_').collect();
        // The last segment with its `_`, or the last two when that is too short to be selective.
        let take = if segs.len() >= 3 && segs[segs.len() - 1].len() <= 2 {
            2
        } else {
            1
        };
        let suffix = if segs.len() > take {
            format!("_{}", segs[segs.len() - take..].join("_"))
        } else {
            n.clone()
        };
        out.insert(suffix.clone());
        out.insert(suffix.to_ascii_lowercase());
    }
    out.into_iter().collect()
}

fn names_alternation(names: &BTreeSet<String>) -> String {
    let mut v: Vec<&String> = names.iter().collect();
    v.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let alts: Vec<String> = v.iter().map(|n| regex::escape(n)).collect();
    if alts.is_empty() {
        // Matches nothing.
        "[^\\x00-\\xff]".into()
    } else {
        alts.join("|")
    }
}

fn compile(
    raw: &[RawPattern],
    placeholders: &[String],
    allow: &[RawAllow],
    names: &BTreeSet<String>,
    src: &SourceFile<'_>,
) -> Result<Compiled> {
    let mut patterns = Vec::new();
    let mut keyed: Vec<(String, usize)> = Vec::new();
    let mut ids = BTreeSet::new();
    let max_name = names.iter().map(String::len).max().unwrap_or(0);
    for (i, r) in raw.iter().enumerate() {
        let (id, id_span) = (r.id.get_ref(), r.id.span());
        if !ids.insert(id.clone()) {
            return Err(src.error_in(id_span, &format!("pattern `{id}` is listed twice")));
        }
        let uses_names = r.regex.contains("{credential_names}");
        let text = format!(
            "(?-u){}",
            r.regex
                .replace("{credential_names}", &names_alternation(names))
        );
        let regex = Regex::new(&text)
            .map_err(|e| src.error_at(&r.regex, 0, format!("invalid regex for `{id}`: {e}")))?;
        let secret_groups: Vec<usize> = regex
            .capture_names()
            .enumerate()
            .filter(|(_, n)| n.is_some_and(|n| n.starts_with("secret")))
            .map(|(i, _)| i)
            .collect();
        let reject = r
            .reject
            .as_deref()
            .map(|re| {
                Regex::new(&format!("(?-u){re}")).map_err(|e| {
                    src.error_at(re, 0, format!("invalid reject regex for `{id}`: {e}"))
                })
            })
            .transpose()?;
        let mut kws = Vec::new();
        for k in &r.keywords {
            if k == "{credential_suffixes}" {
                kws.extend(credential_suffixes(names));
            } else if k.len() < 3 {
                // A shorter keyword shortens the packed searcher's fingerprint for all of them.
                return Err(src.error_in(
                    id_span.clone(),
                    &format!("keyword `{k}` of `{id}` is shorter than 3 bytes"),
                ));
            } else {
                kws.push(k.clone());
            }
        }
        if r.keywords.is_empty() {
            return Err(src.error_in(id_span, &format!("`{id}` has no keywords")));
        }
        let extra = if uses_names { max_name } else { 0 };
        let longest_kw = kws.iter().map(String::len).max().unwrap_or(0);
        patterns.push(Pattern {
            id: id.clone(),
            description: r.description.clone(),
            regex,
            secret_groups,
            min_entropy: r.min_entropy,
            min_digits: r.min_digits,
            reject,
            gate: super::gate::for_regex(&r.regex, names),
            before: r.before + extra + longest_kw,
            after: r.after + longest_kw,
            tp: r.tp.clone(),
            fp: r.fp.clone(),
        });
        keyed.extend(kws.into_iter().map(|k| (k, i)));
    }
    let (ac, triggers) = build_automaton(&keyed, &patterns)?;
    let max_extent = patterns
        .iter()
        .map(|p| p.before + p.after)
        .max()
        .unwrap_or(0)
        + 2 * CONTEXT;
    let placeholders = if placeholders.is_empty() {
        None
    } else {
        let alt = placeholders
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        Some(Regex::new(&alt).map_err(|e| {
            src.error_at("placeholders", 0, format!("invalid placeholder regex: {e}"))
        })?)
    };
    let allow = compile_allow(allow, &ids, src)?;
    Ok(Compiled {
        patterns,
        ac,
        triggers,
        placeholders,
        allow,
        max_extent,
    })
}

/// Minimise the keyword set (a keyword that contains another is served by the shorter one, whose
/// hits then also trigger the longer one's patterns) and build one exact-case automaton.
///
/// Each keyword is first cut to its [`search_literal`]: the packed searcher's candidates come from the
/// first bytes of each literal, and literals that start with lower-case letters fire on every line of
/// prose and code (about half the scan time on text, before this cut).
fn build_automaton(
    keyed: &[(String, usize)],
    patterns: &[Pattern],
) -> Result<(Keywords, Vec<Vec<Trigger>>)> {
    let keyed: Vec<(&str, usize)> = keyed.iter().map(|(k, p)| (search_literal(k), *p)).collect();
    let all: BTreeSet<&str> = keyed.iter().map(|(k, _)| *k).collect();
    let minimal: Vec<&str> = all
        .iter()
        .copied()
        .filter(|k| !all.iter().any(|o| o != k && k.contains(o)))
        .collect();
    let mut triggers: Vec<Vec<Trigger>> = vec![Vec::new(); minimal.len()];
    for &(kw, p) in &keyed {
        for (mi, m) in minimal.iter().enumerate() {
            if kw.contains(m) && !triggers[mi].iter().any(|t| t.pattern == p) {
                let pat = &patterns[p];
                triggers[mi].push(Trigger {
                    pattern: p,
                    before: pat.before,
                    after: pat.after,
                });
            }
        }
    }
    let ac = Keywords::new(&minimal)?;
    Ok((ac, triggers))
}

/// Packed searchers over `minimal` (sorted) cut into runs of near-equal size, at most [`GROUP_MAX`]
/// each (neighbours in sorted order share leading bytes, which suits the searcher's buckets). `None`
/// when there are no keywords or the CPU has no packed searcher.
fn packed_groups(minimal: &[&str]) -> Option<Vec<(packed::Searcher, Vec<usize>)>> {
    if minimal.is_empty() {
        return None;
    }
    let n = minimal.len();
    let count = n.div_ceil(GROUP_MAX);
    let mut groups = Vec::with_capacity(count);
    let mut from = 0;
    for g in 0..count {
        let len = n / count + usize::from(g < n % count);
        let ids: Vec<usize> = (from..from + len).collect();
        let searcher = packed::Config::new()
            .match_kind(packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&minimal[from..from + len])
            .build()?;
        groups.push((searcher, ids));
        from += len;
    }
    Some(groups)
}

/// The part of keyword `k` the prefilter searches for: `k` from its first byte that is neither an ASCII
/// lower-case letter nor `.`, when at least 4 bytes remain (`_content` stays, `service_account` →
/// `_account`, `api-key` → `-key`, `ecretAccessKey` → `AccessKey`), else all of `k`.
///
/// Sound because every match contains `k`, so it contains any part of it; and the windows still cover
/// the match: a pattern's `before` and `after` already include its longest keyword (see `compile`), so a
/// literal starting up to `k.len()` bytes into `k` is covered just as a shorter keyword contained in a
/// longer one is by the minimisation.
pub(super) fn search_literal(k: &str) -> &str {
    // ASCII only: a cut inside a multi-byte character would not be a `str`.
    k.bytes()
        .enumerate()
        .take(k.len().saturating_sub(3))
        .find(|&(_, b)| b.is_ascii() && !b.is_ascii_lowercase() && b != b'.')
        .map_or(k, |(i, _)| &k[i..])
}

fn compile_allow(
    allow: &[RawAllow],
    ids: &BTreeSet<String>,
    src: &SourceFile<'_>,
) -> Result<Vec<AllowEntry>> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for a in allow {
        let (id, id_span) = (a.id.get_ref(), a.id.span());
        if !seen.insert(id.clone()) {
            return Err(src.error_in(id_span, &format!("allow entry `{id}` is listed twice")));
        }
        if a.pattern != "*" && !ids.contains(&a.pattern) {
            return Err(src.error_in(
                id_span,
                &format!("allow entry `{id}` names unknown pattern `{}`", a.pattern),
            ));
        }
        if let Some(f) = &a.fingerprint {
            let ok = f.strip_prefix("sha256:").is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            });
            if !ok {
                return Err(src.error_at(
                    f,
                    0,
                    format!("fingerprint of `{id}` is not sha256:<64 lowercase hex>"),
                ));
            }
        }
        let path = Glob::new(&a.path)
            .map_err(|e| src.error_at(&a.path, 0, format!("bad path glob of `{id}`: {e}")))?
            .compile_matcher();
        out.push(AllowEntry {
            id: id.clone(),
            description: a.description.clone(),
            pattern: a.pattern.clone(),
            fingerprint: a.fingerprint.clone(),
            path,
        });
    }
    Ok(out)
}
