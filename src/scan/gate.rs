//! Window gates: a cheap necessary condition, checked before a pattern's regex runs over a window,
//! that lets the engine skip the window (or the start of it) when no match can start there.
//!
//! The regex runs an unanchored forward search over each window; when the window holds no match, the
//! lazy DFA reads it to its end (an unanchored search cannot stop early). Most windows hold none (the
//! keyword was `_KEY` in `process.env.OPENAI_API_KEY`, not an assignment of a literal). A gate reads
//! the window with a plain byte loop (or `memchr`) instead and answers:
//! - `None`: no match of the pattern can start in `[ws, hi)` of `buf[..we]`: the regex is not run;
//! - `Some(s)`: no match starts in `[ws, s)`: the search starts at `s`. A leftmost-first search from
//!   `ws` finds the leftmost match starting at or after `ws`; when none starts before `s`, that is the
//!   match a search from `s` finds (the bytes before `s` stay look-behind context), so every match
//!   found is the same.
//!
//! A gate is exact only for the regex it was derived from, so each is keyed on the pattern's regex
//! text as written in `rules/secrets.toml`: a pattern whose regex differs in any byte gets no gate and
//! runs as before. The conditions hold for every match the regex can find in a window, whatever its
//! keywords (a case-insensitive name such as `Openai_Api_Key` carries no exact-case keyword, yet a
//! window opened by a nearby keyword finds it, and so must the gated window).

use std::collections::HashSet;

/// The gate of one pattern.
#[derive(Debug, Clone)]
pub(crate) enum Gate {
    /// `\b(?i:{credential_names})["']?[ \t]*(?::=|=>|=|:)…`: every match starts with a whole word
    /// (names are word characters, and the byte after one is a quote, blank or operator) equal, ASCII
    /// case aside, to a credential name, followed by an optional quote, blanks and `:` or `=`. So
    /// every match start is found from the `:`/`=` bytes of the window, looking back.
    Assignment(Box<Names>),
    /// Any of these must be present in the window.
    Any(Vec<Need>),
}

/// Credential names in ASCII lower case, with their length bounds.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    set: HashSet<Vec<u8>>,
    min: usize,
    max: usize,
    /// The lower-case last bytes of the names (a quick test before the set lookup).
    last: [bool; 256],
}

/// Longest name the assignment gate handles (a stack buffer); longer names: no gate.
const MAX_NAME: usize = 128;

/// One thing a window must contain for a match to be possible.
#[derive(Debug, Clone)]
pub(crate) enum Need {
    /// A literal anywhere in `buf[ws..we]`.
    Literal(&'static [u8]),
    /// A run of bytes of class `run` in `buf[ws..we]`, maximal within it (the bytes on each side, if
    /// any and inside the window, are outside `run`), of length in `min..=max`, every byte in class
    /// `all`.
    Run {
        class: &'static Classes,
        min: usize,
        max: usize,
    },
}

/// Per byte: [`RUN`] when in the run class, [`ALL`] when in the class every run byte must have.
pub(crate) type Classes = [u8; 256];
const RUN: u8 = 1;
const ALL: u8 = 2;

macro_rules! classes {
    ($run:ident, $all:ident) => {{
        let mut t = [0u8; 256];
        let mut i = 0;
        while i < 256 {
            #[allow(clippy::cast_possible_truncation)] // i < 256
            let b = i as u8;
            t[i] = if $run(b) { RUN } else { 0 } | if $all(b) { ALL } else { 0 };
            i += 1;
        }
        t
    }};
}

static HEX32: Classes = classes!(alnum, lower_hex);
static B32L52: Classes = classes!(alnum, base32_lower);
static B64: Classes = classes!(base64, base64);
static ALNUM: Classes = classes!(alnum, alnum);
static AWS_ID: Classes = classes!(word, upper_digit);

const fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}
const fn word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
const fn lower_hex(b: u8) -> bool {
    matches!(b, b'a'..=b'f' | b'0'..=b'9')
}
const fn base32_lower(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'2'..=b'7')
}
const fn upper_digit(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'0'..=b'9')
}
const fn base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'=')
}

/// The assignment regex of `provider-credential-assignment`, as written.
const ASSIGNMENT: &str = r#"\b(?i:{credential_names})["']?[ \t]*(?::=|=>|=|:)[ \t]*["']?(?P<secret>[A-Za-z0-9_\-./+=~]{16,512})(?:["'\s,;}\]\\]|$)"#;

/// The gate for a pattern whose regex, as written in the rules file (before `{credential_names}` is
/// filled in), is `regex`; `names` fill `{credential_names}`. `None`: no gate.
///
/// Why each condition holds for every match (the secret's neighbours are the proof):
/// - `azure-openai-key`: the secret `[a-f0-9]{32}` follows a quote, a `\s`, `=`, `>` or `:` and is
///   followed by `[^A-Za-z0-9]` or the end: a maximal alphanumeric run of exactly 32 lower-hex bytes.
/// - `azure-devops-pat`: the first branch holds `AZDO`; the other two end in `[a-z2-7]{52}` after a
///   quote, `\s`, `=`, `>` or `:` and before `[^A-Za-z0-9]`, the end, or `@`: a maximal alphanumeric
///   run of exactly 52 base32 bytes.
/// - `aws-secret-access-key`: `[A-Za-z0-9/+=]{40}` before `[^A-Za-z0-9/+=]` or the end: the tail of a
///   run of that class at least 40 long (on the left the run may go on: `=` is both operator and class).
/// - `alibaba-access-key-secret`: `[A-Za-z0-9]{30}` after a quote, `\s`, `=`, `>` or `:`, before
///   `[^A-Za-z0-9]` or the end: a maximal alphanumeric run of exactly 30.
/// - `aws-access-key-id`: `\b…[A-Z2-7]{16}\b`, 20 word bytes between word boundaries: a maximal word
///   run of exactly 20 bytes, all upper case or digits.
pub(crate) fn for_regex(regex: &str, names: &std::collections::BTreeSet<String>) -> Option<Gate> {
    let run = |class: &'static Classes, min: usize, max: usize| Need::Run { class, min, max };
    Some(match regex {
        ASSIGNMENT => Gate::Assignment(Box::new(Names::new(names)?)),
        r#"(?:(?i:azure[_\-.]?(?:openai|cognitive[_\-]?services|ai[_\-]?services|ai|search|speech)[_\-.]?(?:api[_\-.]?)?key|ocp-apim-subscription-key)|(?:^|[^A-Za-z0-9_\-])(?i:api-key))["']?\s*(?::=|=>|=|:)\s*["']?(?P<secret>[a-f0-9]{32})(?:[^A-Za-z0-9]|$)|\.(?:openai|cognitiveservices)\.azure\.com/?[^\s"']{0,60};\s*(?i:api_?key|key)\s*=\s*(?P<secret_conn>[a-f0-9]{32})(?:[^A-Za-z0-9]|$)"# => {
            Gate::Any(vec![run(&HEX32, 32, 32)])
        }
        r#"(?P<secret>[A-Za-z0-9]{76}AZDO[A-Za-z0-9]{4})|(?i:azure_?devops_?(?:ext_?)?(?:pat|token)|ado_?(?:pat|token)|system_?accesstoken)["']?\s*(?::=|=>|=|:)\s*["']?(?P<secret_named>[a-z2-7]{52})(?:[^A-Za-z0-9]|$)|https://[^\s:/@]{1,64}:(?P<secret_url>[a-z2-7]{52})@dev\.azure\.com"# => {
            Gate::Any(vec![Need::Literal(b"AZDO"), run(&B32L52, 52, 52)])
        }
        r#"(?i:aws_?secret_?access_?key|secret_?access_?key|aws_?secret_?key)["']?\s*(?::=|=>|=|:)\s*["']?(?P<secret>[A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"# => {
            Gate::Any(vec![run(&B64, 40, usize::MAX)])
        }
        r#"(?i:access_?key_?secret)["']?\s*(?::=|=>|=|:)\s*["']?(?P<secret>[A-Za-z0-9]{30})(?:[^A-Za-z0-9]|$)"# => {
            Gate::Any(vec![run(&ALNUM, 30, 30)])
        }
        r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b" => {
            Gate::Any(vec![run(&AWS_ID, 20, 20)])
        }
        _ => return None,
    })
}

impl Names {
    /// `None` when a name is empty, too long, or holds a non-word byte (the gate's reasoning needs
    /// names to be whole words).
    fn new(names: &std::collections::BTreeSet<String>) -> Option<Names> {
        let mut set = HashSet::new();
        let (mut min, mut max) = (usize::MAX, 0);
        let mut last = [false; 256];
        for n in names {
            if n.is_empty() || n.len() > MAX_NAME || !n.bytes().all(word) {
                return None;
            }
            min = min.min(n.len());
            max = max.max(n.len());
            let lower = n.to_ascii_lowercase().into_bytes();
            last[usize::from(lower[lower.len() - 1])] = true;
            set.insert(lower);
        }
        Some(Names {
            set,
            min,
            max,
            last,
        })
    }
}

impl Gate {
    /// Where the search over `buf[ws..we]` may start, keeping only matches that start before `hi`
    /// (see the module doc); `None`: no match starts in `[ws, hi)`.
    pub(crate) fn start(&self, buf: &[u8], ws: usize, we: usize, hi: usize) -> Option<usize> {
        let end = hi.min(we);
        if ws >= end {
            return None;
        }
        match self {
            Gate::Assignment(names) => names.first_start(buf, ws, we, end),
            Gate::Any(needs) => needs.iter().any(|n| n.present(&buf[ws..we])).then_some(ws),
        }
    }
}

impl Names {
    /// The first start in `[ws, end)` of a whole word that is a name followed by an optional quote,
    /// blanks and `:` or `=` inside `buf[..we]`.
    fn first_start(&self, buf: &[u8], ws: usize, we: usize, end: usize) -> Option<usize> {
        let mut lower = [0u8; MAX_NAME];
        // The operator follows the name: it lies after the earliest start and before `we`.
        let from = ws + self.min;
        if from >= we {
            return None;
        }
        for q in memchr::memchr2_iter(b':', b'=', &buf[from..we]) {
            let q = from + q;
            // Back over `[ \t]*`, then one optional quote: `ne` is where the name ends.
            let mut ne = q;
            while ne > ws && matches!(buf[ne - 1], b' ' | b'\t') {
                ne -= 1;
            }
            if ne > ws && matches!(buf[ne - 1], b'"' | b'\'') {
                ne -= 1;
            }
            if ne <= ws || !self.last[usize::from(buf[ne - 1].to_ascii_lowercase())] {
                continue;
            }
            // The whole word ending at `ne` (at most `max + 1` bytes back: longer is no name).
            let floor = ne.saturating_sub(self.max + 1);
            let mut s = ne;
            while s > floor && word(buf[s - 1]) {
                s -= 1;
            }
            if s >= end {
                // Every later operator gives a later start.
                break;
            }
            let len = ne - s;
            if s < ws || len < self.min || len > self.max || (s > 0 && word(buf[s - 1])) {
                continue;
            }
            for (d, &b) in lower.iter_mut().zip(&buf[s..ne]) {
                *d = b.to_ascii_lowercase();
            }
            if self.set.contains(&lower[..len]) {
                return Some(s);
            }
        }
        None
    }
}

impl Need {
    fn present(&self, w: &[u8]) -> bool {
        match *self {
            Need::Literal(l) => memchr::memmem::find(w, l).is_some(),
            Need::Run { class, min, max } => run_present(w, class, min, max),
        }
    }
}

/// Whether `w` holds a run as [`Need::Run`] describes. Probes the last byte of the shortest run that
/// could start at `i` (`i` is 0 or follows a byte outside the class): outside the class, no such run
/// starts in `i..=j`, so `i` jumps past it; inside, the run around it is measured and `i` jumps past
/// that. Runs in text are short, so most probes skip `min` bytes having read a few; every byte is read
/// at most twice.
fn run_present(w: &[u8], class: &Classes, min: usize, max: usize) -> bool {
    let min = min.max(1);
    let in_run = |b: u8| class[usize::from(b)] & RUN != 0;
    let mut i = 0;
    while i + min <= w.len() {
        let j = i + min - 1;
        if !in_run(w[j]) {
            i = j + 1;
            continue;
        }
        let mut from = j;
        while from > i && in_run(w[from - 1]) {
            from -= 1;
        }
        let mut to = j + 1;
        while to < w.len() && in_run(w[to]) {
            to += 1;
        }
        let len = to - from;
        if len >= min
            && len <= max
            && w[from..to]
                .iter()
                .all(|&x| class[usize::from(x)] & ALL != 0)
        {
            return true;
        }
        i = to + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::scan::Patterns;
    use crate::scan::engine::{RawMatch, Scratch, scan_region_gated};
    use crate::scan::template::{alphabet, expand};
    use crate::scan::tests::{names, patterns};

    const GATED: [&str; 6] = [
        "provider-credential-assignment",
        "azure-openai-key",
        "azure-devops-pat",
        "aws-secret-access-key",
        "alibaba-access-key-secret",
        "aws-access-key-id",
    ];

    #[test]
    fn the_gated_patterns_keep_their_gates() {
        // A gate is keyed on its regex as written: an edited regex silently loses its gate (still
        // exact, only slower). Update `for_regex` with the new regex, and its proof, when this fails.
        let p = patterns();
        for id in GATED {
            let pat = p.patterns().iter().find(|x| x.id == id).unwrap();
            assert!(pat.gate.is_some(), "{id} lost its window gate");
        }
        let other = p.patterns().iter().filter(|x| x.gate.is_some()).count();
        assert_eq!(other, GATED.len());
    }

    fn naive_run(w: &[u8], class: &Classes, min: usize, max: usize) -> bool {
        let mut i = 0;
        while i < w.len() {
            if class[usize::from(w[i])] & RUN == 0 {
                i += 1;
                continue;
            }
            let s = i;
            while i < w.len() && class[usize::from(w[i])] & RUN != 0 {
                i += 1;
            }
            let len = i - s;
            if len >= min && len <= max && w[s..i].iter().all(|&b| class[usize::from(b)] & ALL != 0)
            {
                return true;
            }
        }
        false
    }

    #[test]
    fn run_probe_agrees_with_a_plain_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut found = 0;
        for _ in 0..20_000 {
            let len = rng.random_range(0..80);
            // Mostly lower hex with some upper case and separators: runs of every length.
            let w: Vec<u8> = (0..len)
                .map(|_| {
                    *b"abcdef0123456789abcdef0123456789Gz-= "
                        .get(rng.random_range(0..37))
                        .unwrap()
                })
                .collect();
            let min = rng.random_range(1..12);
            let max = if rng.random_bool(0.3) {
                usize::MAX
            } else {
                min + rng.random_range(0..3)
            };
            let want = naive_run(&w, &HEX32, min, max);
            found += usize::from(want);
            assert_eq!(run_present(&w, &HEX32, min, max), want, "{w:?} {min} {max}");
        }
        assert!(found > 1000, "the cases must include present runs: {found}");
    }

    const LABELS: &[&str] = &[
        "AZURE_OPENAI_API_KEY",
        "azure-openai-key",
        "Azure.Search.Key",
        "api-key",
        "Api-Key",
        "API-KEY",
        "Ocp-Apim-Subscription-Key",
        "ocp-apim-subscription-key",
        "AZURE_DEVOPS_EXT_PAT",
        "azure_devops_token",
        "AdoPat",
        "SYSTEM_ACCESSTOKEN",
        "aws_secret_access_key",
        "SecretAccessKey",
        "AWS_SECRET_KEY",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "AccessKeySecret",
        "access_key_secret",
    ];

    /// Fragments that make and nearly make matches of the gated patterns.
    #[allow(clippy::too_many_lines)] // one arm per kind of fragment
    fn fragment(rng: &mut impl Rng, names: &[String]) -> String {
        let mut pick = |a: &[u8]| a[rand::random_range(0..a.len())];
        let cls = |rng: &mut dyn FnMut(&[u8]) -> u8, c: &str, n: usize| {
            expand(&format!("{{{c}:{n}}}"), rng).unwrap()
        };
        let near = |n: usize, up: bool| if up { n + 1 } else { n - 1 };
        match rng.random_range(0..24) {
            0..=3 => {
                // A credential name in some case, maybe glued to a word.
                let n = &names[rng.random_range(0..names.len())];
                let n: String = match rng.random_range(0..4) {
                    0 => n.clone(),
                    1 => n.to_ascii_lowercase(),
                    _ => n
                        .chars()
                        .map(|c| {
                            if rng.random_bool(0.5) {
                                c.to_ascii_lowercase()
                            } else {
                                c
                            }
                        })
                        .collect(),
                };
                let glue = ["", "", "", "x", "_", ".", "$", "-"][rng.random_range(0..8)];
                if rng.random_bool(0.5) {
                    format!("{glue}{n}")
                } else {
                    format!("{n}{glue}")
                }
            }
            4..=6 => [
                "=", ":", ":=", "=>", " = ", "\"", "'", "\t", " ", "  :  ", "\"=\"", "': '",
            ][rng.random_range(0..12)]
            .to_string(),
            7 => ["\n", ",", ";", "}", "]", "\\", "@", "/", "\0", "\r\n"][rng.random_range(0..10)]
                .to_string(),
            8 => {
                let n = [16, 20, 30, 32, 40, 52, 60][rng.random_range(0..7)];
                let n = if rng.random_bool(0.5) {
                    n
                } else {
                    near(n, rng.random_bool(0.5))
                };
                let c =
                    ["hex", "b32l", "alnum", "b64", "b32", "upnum", "b64u"][rng.random_range(0..7)];
                cls(&mut pick, c, n)
            }
            9 => format!(
                "{}{}",
                ["AKIA", "ASIA", "ABIA", "ACCA", "AKIB"][rng.random_range(0..5)],
                cls(
                    &mut pick,
                    "b32",
                    near(16, rng.random_bool(0.5)) + usize::from(rng.random_bool(0.5))
                )
            ),
            10 => format!(
                "{}AZDO{}",
                cls(&mut pick, "alnum", [76, 75, 77, 90][rng.random_range(0..4)]),
                cls(&mut pick, "alnum", [4, 3, 5][rng.random_range(0..3)])
            ),
            11 => format!(
                "https://{}:{}@dev.azure.com/o/p",
                cls(&mut pick, "lower", rng.random_range(0..70)),
                cls(
                    &mut pick,
                    "b32l",
                    near(52, rng.random_bool(0.5)) + usize::from(rng.random_bool(0.5))
                )
            ),
            12 => format!(
                "Endpoint=https://r.{}.azure.com/;{}={}",
                ["openai", "cognitiveservices", "other"][rng.random_range(0..3)],
                ["Key", "api_key", "ApiKey", "KEY"][rng.random_range(0..4)],
                cls(&mut pick, "hex", [32, 31, 33][rng.random_range(0..3)])
            ),
            13 => LABELS[rng.random_range(0..LABELS.len())].to_string(),
            18..=19 => {
                // A whole assignment: a label, an operator, a value of some class and length.
                let label = if rng.random_bool(0.5) {
                    LABELS[rng.random_range(0..LABELS.len())]
                } else {
                    &names[rng.random_range(0..names.len())]
                };
                let op =
                    ["=", ": ", ":=", "=>", " = ", "\"=\"", "': '", "=="][rng.random_range(0..8)];
                let n = [16, 20, 30, 32, 40, 52, 60][rng.random_range(0..7)];
                let n = if rng.random_bool(0.7) {
                    n
                } else {
                    near(n, rng.random_bool(0.5))
                };
                let c = ["hex", "b32l", "alnum", "b64"][rng.random_range(0..4)];
                format!("{label}{op}{}", cls(&mut pick, c, n))
            }
            14 => [
                "_KEY",
                "_key",
                "_TOKEN",
                "_token",
                "_PAT",
                "_pat",
                "ACCESSTOKEN",
                "azure.com",
            ][rng.random_range(0..8)]
            .to_string(),
            15 => format!(
                "{}{}",
                cls(&mut pick, "alnum", rng.random_range(10..40)),
                cls(&mut pick, "num", 1)
            ),
            16 => "process.env.OPENAI_API_KEY".to_string(),
            17 => " ".repeat(rng.random_range(1..6)),
            _ => {
                let n = rng.random_range(1..12);
                (0..n)
                    .map(|_| char::from(rng.random_range(0x20u8..0x7f)))
                    .collect()
            }
        }
    }

    /// The embedded rule set's credential names (what `{credential_names}` is filled from).
    fn credential_names() -> Vec<String> {
        names().into_iter().collect()
    }

    /// Each gated pattern has matches counted in `seen` (by pattern index); else fail with `why`.
    fn assert_every_gated_pattern_matched(p: &Patterns, seen: &[usize], why: &str) {
        for id in GATED {
            let i = p.patterns().iter().position(|x| x.id == id).unwrap();
            assert!(seen[i] > 0, "{id}: {why}");
        }
    }

    fn compare(p: &Patterns, buf: &[u8], lo: usize, hi: usize, seen: &mut [usize]) {
        let c = &p.inner;
        let (mut a, mut b) = (Vec::<RawMatch>::new(), Vec::<RawMatch>::new());
        scan_region_gated(c, buf, (lo, hi), &mut Scratch::default(), &mut a, false);
        scan_region_gated(c, buf, (lo, hi), &mut Scratch::default(), &mut b, true);
        assert_eq!(
            a,
            b,
            "gated scan differs on {:?} ({lo}..{hi})",
            String::from_utf8_lossy(buf)
        );
        for m in &a {
            seen[m.pattern] += 1;
        }
    }

    /// The gated engine finds exactly what the ungated one finds, over random buffers with planted
    /// keys, near misses, names in every case, and random scan regions.
    #[test]
    fn gated_windows_find_exactly_the_same_matches() {
        let p = patterns();
        let names = credential_names();
        let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
        let mut seen = vec![0usize; p.patterns().len()];
        for _ in 0..1500 {
            let n = rng.random_range(1..120);
            let buf: String = (0..n).map(|_| fragment(&mut rng, &names)).collect();
            let buf = buf.as_bytes();
            compare(&p, buf, 0, buf.len(), &mut seen);
            for _ in 0..3 {
                let lo = rng.random_range(0..=buf.len());
                let hi = rng.random_range(lo..=buf.len());
                compare(&p, buf, lo, hi, &mut seen);
            }
        }
        // Every gated pattern matched somewhere: the comparison covered its matches, not only misses.
        assert_every_gated_pattern_matched(&p, &seen, "no match of it was planted");
    }

    /// The same over every pattern's examples (true positives with random bodies, false positives),
    /// alone and between random fragments.
    #[test]
    fn gated_windows_agree_on_the_rule_examples() {
        let p = patterns();
        let names = credential_names();
        let mut rng = rand::rngs::StdRng::seed_from_u64(rand::random());
        let mut pick = |a: &[u8]| a[rand::random_range(0..a.len())];
        let mut seen = vec![0usize; p.patterns().len()];
        for pat in p.patterns() {
            for t in pat.tp.iter().chain(&pat.fp) {
                for _ in 0..4 {
                    let ex = expand(t, &mut pick).unwrap();
                    compare(&p, ex.as_bytes(), 0, ex.len(), &mut seen);
                    let around = format!(
                        "{}{ex}{}",
                        fragment(&mut rng, &names),
                        fragment(&mut rng, &names)
                    );
                    compare(&p, around.as_bytes(), 0, around.len(), &mut seen);
                }
            }
        }
        assert!(alphabet("hex").is_some());
        assert_every_gated_pattern_matched(&p, &seen, "its examples were not found");
    }
}
