//! askalono's text normalisation, vendored: the `spdx` crate's `detection/preproc.rs` (spdx 0.13.6,
//! which inlines askalono; Copyright 2018-2019 Amazon.com, Inc. or its affiliates; Apache-2.0, the
//! license of this crate too). The crate keeps the module private, and the compact store
//! (`build.rs`, [`super::store`]) needs the exact bigrams askalono computes, from the same words.
//!
//! Changes from upstream, none of which changes a result that upstream computes deterministically:
//! - `remove_common_tokens` breaks a tie between equally common line prefixes by taking the
//!   shortest, then the smallest (upstream takes whichever a randomly seeded `HashMap` yields last);
//! - `expect` with a reason instead of `unwrap` on the constant regexes, which are module statics
//!   (the fast paths read their ASCII tables off them); lints;
//! - exact fast paths: a pure-ASCII line or text takes table look-ups for the one-class regexes,
//!   and a regex whose literal is absent is not run (see "Exact fast paths" below; the tests
//!   compare them with upstream's pipeline, kept as `reference_normalizers`/`reference_aggressive`);
//! - upstream's unit tests are not copied (the store's own tests check the result against the
//!   crate's matcher, see `textmatch::tests`).
//!
//! This file is also compiled into `build.rs` (`#[path]`), so it uses nothing from this crate.

// Upstream's shape is kept (the normalisers are `Cow -> Cow` steps of one pipeline), not the lints'.
#![allow(
    clippy::needless_pass_by_value,
    clippy::manual_let_else,
    clippy::cast_sign_loss
)]

use std::{borrow::Cow, collections::HashMap, sync::LazyLock};

use regex::{Regex, Replacer};
use unicode_normalization::UnicodeNormalization;

type PreprocFn = dyn Fn(Cow<'_, str>) -> Cow<'_, str>;

trait CowRegex {
    fn replace_all_cow<'a, R: Replacer>(&self, text: Cow<'a, str>, replace: R) -> Cow<'a, str>;
}

impl CowRegex for Regex {
    fn replace_all_cow<'a, R: Replacer>(&self, text: Cow<'a, str>, replace: R) -> Cow<'a, str> {
        match text {
            Cow::Borrowed(find) => self.replace_all(find, replace),
            Cow::Owned(find) => Cow::Owned(self.replace_all(&find, replace).into_owned()),
        }
    }
}

/// A list of preprocessors that normalize text without removing anything
/// substantial. These operate on one line at a time.
pub const PREPROC_NORMALIZE: [&PreprocFn; 6] = [
    &normalize_unicode,
    &remove_junk,
    &blackbox_urls,
    &normalize_horizontal_whitespace,
    &normalize_punctuation,
    &trim,
];

/// A list of preprocessors that more aggressively normalize/mangle text
/// to make for friendlier matching. May remove statements and lines, and
/// more heavily normalize punctuation.
#[cfg(test)] // run step by step by `aggressive_fast`
pub const PREPROC_AGGRESSIVE: [&PreprocFn; 8] = [
    &remove_common_tokens,
    &normalize_vertical_whitespace,
    &remove_punctuation,
    &lowercaseify,
    &remove_title_line,
    &remove_copyright_statements,
    &collapse_whitespace,
    &trim,
];

/// Each line of `text` normalised ([`PREPROC_NORMALIZE`]): a pure-ASCII line by
/// [`normalize_ascii_line`], any other by the regex pipeline.
pub fn apply_normalizers(text: &str) -> Vec<String> {
    text.split('\n').map(normalize_line).collect()
}

/// One line through [`PREPROC_NORMALIZE`] (the same result whichever path computes it).
pub fn normalize_line(line: &str) -> String {
    if line.is_ascii() {
        return normalize_ascii_line(line);
    }
    let mut out = Cow::from(line);
    for preproc in &PREPROC_NORMALIZE {
        out = preproc(out);
    }
    out.into()
}

/// `PREPROC_AGGRESSIVE` over `text`, with exact fast paths (see [`aggressive_fast`]).
pub fn apply_aggressive(text: &str) -> String {
    aggressive_fast(Cow::Borrowed(text)).into()
}

/// Upstream's per-line pipeline, every step by its regex: the oracle of the fast paths.
#[cfg(test)]
pub fn reference_normalizers(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for line in text.split('\n') {
        let mut out = Cow::from(line);
        for preproc in &PREPROC_NORMALIZE {
            out = preproc(out);
        }
        lines.push(out.into());
    }
    lines
}

/// Upstream's aggressive pipeline, every step by its regex: the oracle of the fast paths.
#[cfg(test)]
pub fn reference_aggressive(text: &str) -> String {
    let mut out = text.into();
    for preproc in &PREPROC_AGGRESSIVE {
        out = preproc(out);
    }
    out.into()
}

// Exact fast paths. Every regex of the pipelines but three (`blackbox_urls`, `remove_title_line`,
// `remove_copyright_statements`) is one character class, `[…]+` (each maximal run of the class
// replaced) or `[…]` (each character replaced). On a pure-ASCII string such a replacement is a
// table look-up per byte, and the tables are read off the regexes themselves (which of the 128
// ASCII characters each one matches), so they cannot disagree with them. The replacements are
// ASCII, so an ASCII string stays ASCII through every step. The tests compare both paths.

/// Which ASCII characters each class regex matches.
struct AsciiClasses {
    junk: [bool; 128],
    horizontal: [bool; 128],
    quotes: [bool; 128],
    dash: [bool; 128],
    open: [bool; 128],
    close: [bool; 128],
    under: [bool; 128],
    copy: [bool; 128],
    vertical: [bool; 128],
    punctuation: [bool; 128],
    space: [bool; 128],
}

static ASCII: LazyLock<AsciiClasses> = LazyLock::new(|| {
    let of = |rx: &Regex| {
        let mut t = [false; 128];
        for (b, slot) in (0u8..128).zip(t.iter_mut()) {
            *slot = rx.is_match(char::from(b).encode_utf8(&mut [0; 4]));
        }
        t
    };
    let p = &*PUNCT;
    let v = &*VERTICAL;
    AsciiClasses {
        junk: of(&JUNK),
        horizontal: of(&HORIZONTAL),
        quotes: of(&p.quotes),
        dash: of(&p.dash),
        open: of(&p.open),
        close: of(&p.close),
        under: of(&p.under),
        copy: of(&p.copy),
        vertical: of(&v.misc),
        punctuation: of(&REMOVE_PUNCTUATION),
        space: of(&SPACES),
    }
});

/// `rx.replace_all(s, with)` for a class regex `rx` whose ASCII table is `class`, on an ASCII `s`:
/// each maximal run of class characters (`runs`, for `[…]+`) or each one (for `[…]`) becomes
/// `with`. Borrowed back when nothing changes.
fn replace_class_ascii<'a>(
    s: Cow<'a, str>,
    class: &[bool; 128],
    runs: bool,
    with: &str,
) -> Cow<'a, str> {
    let is = |c: u8| class.get(usize::from(c)).copied().unwrap_or(false);
    let b = s.as_bytes();
    let run_end = |i: usize| {
        let mut j = i + 1;
        if runs {
            while j < b.len() && is(b[j]) {
                j += 1;
            }
        }
        j
    };
    // The first run that is not already `with` (none: the string stays as it is).
    let mut i = 0;
    let first = loop {
        if i >= b.len() {
            return s;
        }
        if is(b[i]) {
            let j = run_end(i);
            if &b[i..j] != with.as_bytes() {
                break i;
            }
            i = j;
        } else {
            i += 1;
        }
    };
    let mut out = String::with_capacity(b.len() + with.len());
    out.push_str(&s[..first]);
    let mut i = first;
    while i < b.len() {
        if is(b[i]) {
            out.push_str(with);
            i = run_end(i);
        } else {
            let mut j = i + 1;
            while j < b.len() && !is(b[j]) {
                j += 1;
            }
            out.push_str(&s[i..j]);
            i = j;
        }
    }
    Cow::Owned(out)
}

/// [`PREPROC_NORMALIZE`] on a pure-ASCII line: NFC is the identity on ASCII, the URL regex runs
/// only where its literal `http` is, the class regexes by their tables, then `trim`.
pub fn normalize_ascii_line(line: &str) -> String {
    let t = &*ASCII;
    let mut out = replace_class_ascii(Cow::Borrowed(line), &t.junk, true, "");
    if out.contains("http") {
        out = blackbox_urls(out);
    }
    out = replace_class_ascii(out, &t.horizontal, true, " ");
    out = replace_class_ascii(out, &t.quotes, true, "'");
    out = replace_class_ascii(out, &t.dash, true, "-");
    out = replace_class_ascii(out, &t.open, true, "(");
    out = replace_class_ascii(out, &t.close, true, ")");
    out = replace_class_ascii(out, &t.under, true, "_");
    out = replace_class_ascii(out, &t.copy, false, "(c)");
    out.trim().to_owned()
}

/// `PREPROC_AGGRESSIVE`, each step on its fast path where that is exact: the class regexes by
/// their tables on an ASCII string, `to_ascii_lowercase` for `to_lowercase` on ASCII, the
/// copyright regex only where its literal `copyright` (in each of its three branches) is. A
/// string with other characters takes the regex of that step.
fn aggressive_fast(text: Cow<'_, str>) -> Cow<'_, str> {
    let t = &*ASCII;
    let mut out = remove_common_tokens(text);
    out = if out.is_ascii() {
        let o = replace_class_ascii(out, &t.vertical, false, "\n");
        collapse_newlines(o)
    } else {
        normalize_vertical_whitespace(out)
    };
    let ascii = out.is_ascii();
    out = if ascii {
        replace_class_ascii(out, &t.punctuation, true, "")
    } else {
        remove_punctuation(out)
    };
    let ascii = ascii || out.is_ascii();
    out = if ascii {
        let mut s = out.into_owned();
        s.make_ascii_lowercase();
        Cow::Owned(s)
    } else {
        lowercaseify(out)
    };
    out = remove_title_line(out);
    if out.contains("copyright") {
        out = remove_copyright_statements(out);
    }
    out = if out.is_ascii() {
        replace_class_ascii(out, &t.space, true, " ")
    } else {
        collapse_whitespace(out)
    };
    trim(out)
}

/// `\n{3,}` → `\n\n` (the second regex of `normalize_vertical_whitespace`), by hand.
fn collapse_newlines(s: Cow<'_, str>) -> Cow<'_, str> {
    if !s.contains("\n\n\n") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut newlines = 0;
    for c in s.chars() {
        if c == '\n' {
            newlines += 1;
            if newlines <= 2 {
                out.push(c);
            }
        } else {
            newlines = 0;
            out.push(c);
        }
    }
    Cow::Owned(out)
}

// Line-by-line normalizers

fn normalize_unicode(input: Cow<'_, str>) -> Cow<'_, str> {
    input.nfc().collect::<String>().into()
}

static JUNK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[^\w\s\pP]+").expect("a valid constant regex"));

fn remove_junk(input: Cow<'_, str>) -> Cow<'_, str> {
    JUNK.replace_all_cow(input, "")
}

fn blackbox_urls(input: Cow<'_, str>) -> Cow<'_, str> {
    static RX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"https?://\S+").expect("a valid constant regex"));

    RX.replace_all_cow(input, "http://blackboxed/url")
}

static HORIZONTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?x)[ \t\p{Zs} \\ / \| \x2044 ]+").expect("a valid constant regex")
});

fn normalize_horizontal_whitespace(input: Cow<'_, str>) -> Cow<'_, str> {
    HORIZONTAL.replace_all_cow(input, " ")
}

struct Punct {
    quotes: Regex,
    dash: Regex,
    open: Regex,
    close: Regex,
    under: Regex,
    copy: Regex,
}

static PUNCT: LazyLock<Punct> = LazyLock::new(|| Punct {
    quotes: Regex::new(r#"["'\p{Pi}\p{Pf}]+"#).expect("a valid constant regex"),
    dash: Regex::new(r"\p{Pd}+").expect("a valid constant regex"),
    open: Regex::new(r"\p{Ps}+").expect("a valid constant regex"),
    close: Regex::new(r"\p{Pe}+").expect("a valid constant regex"),
    under: Regex::new(r"\p{Pc}+").expect("a valid constant regex"),
    copy: Regex::new(r"[©Ⓒⓒ]").expect("a valid constant regex"),
});

fn normalize_punctuation(input: Cow<'_, str>) -> Cow<'_, str> {
    let mut out = input;
    let rx = &PUNCT;
    out = rx.quotes.replace_all_cow(out, "'");
    out = rx.dash.replace_all_cow(out, "-");
    out = rx.open.replace_all_cow(out, "(");
    out = rx.close.replace_all_cow(out, ")");
    out = rx.under.replace_all_cow(out, "_");
    rx.copy.replace_all_cow(out, "(c)")
}

fn trim(input: Cow<'_, str>) -> Cow<'_, str> {
    match input {
        Cow::Borrowed(text) => text.trim().into(),
        Cow::Owned(text) => Cow::Owned(text.trim().to_owned()),
    }
}

// Aggressive preprocessors

// Cut prefix of string near given byte index.
// If given index doesn't lie at char boundary,
// returns the biggest prefix with length not exceeding idx.
// If index is bigger than length or string, returns the whole string.
fn trim_byte_adjusted(s: &str, idx: usize) -> &str {
    if idx >= s.len() {
        return s;
    }

    if let Some(sub) = s.get(..idx) {
        sub
    } else {
        // Inspect bytes before index
        let trailing_continuation = s.as_bytes()[..idx]
            .iter()
            .rev()
            // Multibyte characters are encoded in UTF-8 in the following manner:
            //    first byte | rest of bytes
            //    1..10xxxxx   10xxxxxx
            //    ^^^^ number of ones is equal to number of bytes in codepoint
            // Number of 10xxxxxx bytes in codepoint is at most 3 in valid UTF-8-encoded string,
            // so this loop actually runs a little iterations
            .take_while(|&byte| byte & 0b1100_0000 == 0b1000_0000)
            .count();
        // Subtract 1 to take the first byte in codepoint into account
        &s[..idx - trailing_continuation - 1]
    }
}

fn lcs_substr<'a>(f_line: &'a str, s_line: &'a str) -> &'a str {
    // find the length of common prefix in byte representations of strings
    let prefix_len = f_line
        .as_bytes()
        .iter()
        .zip(s_line.as_bytes())
        .take_while(|&(&f, &s)| f == s)
        .count();

    trim_byte_adjusted(f_line, prefix_len).trim()
}

fn remove_common_tokens(input: Cow<'_, str>) -> Cow<'_, str> {
    let mut l_iter = input.split('\n');

    let mut prefix_counts = HashMap::<_, u32>::new();

    // pass 1: iterate through the text to record common prefixes
    if let Some(first) = l_iter.next() {
        let mut pair = ("", first);
        let line_pairs = std::iter::from_fn(|| {
            pair = (pair.1, l_iter.next()?);
            Some(pair)
        });
        for (a, b) in line_pairs {
            let common = lcs_substr(a, b);

            // why start at 1, then immediately add 1?
            // lcs_substr compares two lines!
            // this doesn't need to be exact, just consistent.
            if common.len() > 3 {
                *prefix_counts.entry(common).or_insert(1) += 1;
            }
        }
    }

    // look at the most common observed prefix
    let most_common = match prefix_counts.iter().max_by(|a, b| {
        a.1.cmp(b.1)
            .then_with(|| (b.0.len(), b.0).cmp(&(a.0.len(), a.0)))
    }) {
        Some((prefix, _count)) => prefix,
        None => return input,
    };

    // reconcile the count with other longer prefixes that may be stored
    let common_count = prefix_counts
        .iter()
        .filter_map(|(s, count)| s.starts_with(most_common).then_some(count))
        .sum::<u32>();

    let line_count = input.split('\n').count();

    // the common string must be at least 80% of the text
    let prefix_threshold = (0.8f32 * line_count as f32) as _;
    if common_count < prefix_threshold {
        return input;
    }

    // pass 2: remove that substring
    let mut rem = String::with_capacity(input.len());
    for line in input.split('\n') {
        rem.push_str(line.strip_prefix(most_common).unwrap_or(line).trim());
        rem.push('\n');
    }

    // pop trailing newline
    rem.pop();
    rem.into()
}

struct Vertical {
    misc: Regex,
    num: Regex,
}

static VERTICAL: LazyLock<Vertical> = LazyLock::new(|| Vertical {
    misc: Regex::new(r"[\r\n\v\f]").expect("a valid constant regex"),
    num: Regex::new(r"\n{3,}").expect("a valid constant regex"),
});

fn normalize_vertical_whitespace(input: Cow<'_, str>) -> Cow<'_, str> {
    let mut out = input;
    let rx = &VERTICAL;
    out = rx.misc.replace_all_cow(out, "\n");
    rx.num.replace_all_cow(out, "\n\n")
}

static REMOVE_PUNCTUATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[^\w\s]+").expect("a valid constant regex"));

fn remove_punctuation(input: Cow<'_, str>) -> Cow<'_, str> {
    REMOVE_PUNCTUATION.replace_all_cow(input, "")
}

fn lowercaseify(input: Cow<'_, str>) -> Cow<'_, str> {
    input.to_lowercase().into()
}

fn remove_title_line(input: Cow<'_, str>) -> Cow<'_, str> {
    static RX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^.*license( version \S+)?( copyright.*)?\n\n").expect("a valid constant regex")
    });

    RX.replace_all_cow(input, "")
}

fn remove_copyright_statements(input: Cow<'_, str>) -> Cow<'_, str> {
    static RX: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?mx)
            (
                # either a new paragraph, or the beginning of the text + empty lines
                (\n\n|\A\n*)
                # any number of lines starting with 'copyright' followed by a new paragraph
                (^\x20*copyright.*?$)+
                \n\n
            )
            |
            (
                # or the very first line if it has 'copyright' in it
                \A.*copyright.*$
            )
            |
            (
                # or any lines that really look like a copyright statement
                ^copyright (\s+(c|\d+))+ .*?$
            )
        ",
        )
        .expect("a valid constant regex")
    });

    RX.replace_all_cow(input, "\n\n")
}

static SPACES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s+").expect("a valid constant regex"));

fn collapse_whitespace(input: Cow<'_, str>) -> Cow<'_, str> {
    SPACES.replace_all_cow(input, " ")
}
