//! Unit tests of the scanner on in-memory streams: every pattern's examples from `rules/secrets.toml`,
//! window boundaries, odd read sizes, nested archives and bombs, the allowlist, line numbers.

#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::io::{Cursor, Read, Write};
use std::sync::Arc;

use rand::Rng;

use super::template::{expand, has_placeholder};
use super::{CHUNK, Patterns, ScanResult, SecretScanner, scan_value};

const RULES: &str = include_str!("../../rules/secrets.toml");

/// The credential names of the embedded `rules/credentials.toml`.
pub(super) fn names() -> std::collections::BTreeSet<String> {
    crate::rules::RuleSet::embedded()
        .unwrap()
        .credentials
        .env_names
}

/// The embedded `rules/secrets.toml`, compiled with [`names`].
pub(super) fn patterns() -> Patterns {
    Patterns::load(RULES, "rules/secrets.toml", &names()).unwrap()
}

fn random(template: &str) -> String {
    let mut rng = rand::rng();
    expand(template, &mut |a: &[u8]| a[rng.random_range(0..a.len())]).unwrap()
}

fn scan(p: &Patterns, path: &str, data: &[u8]) -> ScanResult {
    let mut s = SecretScanner::new(Arc::new(p.clone()));
    s.scan_stream(0, path, &mut Cursor::new(data.to_vec()))
        .unwrap();
    s.found
}

#[test]
fn every_pattern_has_examples_and_they_hold() {
    let p = patterns();
    assert!(p.patterns().len() >= 25, "catalogue shrank");
    for pat in p.patterns() {
        assert!(
            !pat.tp.is_empty() && !pat.fp.is_empty(),
            "{} lacks examples",
            pat.id
        );
        for t in &pat.tp {
            assert!(
                has_placeholder(t),
                "{}: tp `{t}` must be a template",
                pat.id
            );
            for _ in 0..5 {
                let ex = random(t);
                let ids: Vec<String> = scan_value(&p, ex.as_bytes())
                    .into_iter()
                    .map(|e| e.pattern)
                    .collect();
                assert!(
                    ids.contains(&pat.id),
                    "{}: tp `{t}` not found (got {ids:?})",
                    pat.id
                );
                let s = scan(&p, "/tp", ex.as_bytes());
                assert!(
                    s.hits.iter().any(|h| h.evidence.pattern == pat.id),
                    "{}: tp `{t}` not found by the streamer",
                    pat.id
                );
            }
        }
        for f in &pat.fp {
            let f = &random(f);
            let got = scan_value(&p, f.as_bytes());
            assert!(got.is_empty(), "{}: fp `{f}` matched {got:?}", pat.id);
        }
    }
}

#[test]
fn the_automaton_is_small_and_exact_case() {
    let p = patterns();
    // The packed (Teddy) searcher handles up to 64 literals.
    assert!(p.keyword_count() <= 64, "{} keywords", p.keyword_count());
}

#[test]
fn grouped_keyword_searchers_find_every_occurrence() {
    use super::patterns::{GROUP_MAX, Keywords};
    let mut rng = rand::rng();
    // A small alphabet, so keywords overlap and share prefixes; more keywords than one group holds.
    let alphabet = b"ab_K-";
    for round in 0..20 {
        let mut all = std::collections::BTreeSet::new();
        while all.len() < 3 * GROUP_MAX + round {
            let len = rng.random_range(3..8);
            let k: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
                .collect();
            all.insert(k);
        }
        let minimal: Vec<&str> = all
            .iter()
            .map(String::as_str)
            .filter(|k| !all.iter().any(|o| o != k && k.contains(o.as_str())))
            .collect();
        let hay: Vec<u8> = (0..4096)
            .map(|_| alphabet[rng.random_range(0..alphabet.len())])
            .collect();
        let (start, end) = (rng.random_range(0..64), rng.random_range(4000..4096));
        let mut want = Vec::new();
        for (i, k) in minimal.iter().enumerate() {
            for at in start..end {
                if hay[at..end].starts_with(k.as_bytes()) {
                    want.push((at, i));
                }
            }
        }
        let kw = Keywords::new(&minimal).unwrap();
        if let Keywords::Packed(groups) = &kw {
            assert!(groups.len() > 1 && groups.iter().all(|(_, ids)| ids.len() <= GROUP_MAX));
        }
        let mut got = Vec::new();
        kw.each(&hay, start, end, |i, at| got.push((at, i)));
        got.sort_unstable();
        want.sort_unstable();
        assert!(!want.is_empty());
        assert_eq!(got, want, "keywords {minimal:?}");
    }
}

#[test]
fn search_literals_start_at_the_first_rare_byte() {
    use super::patterns::search_literal;
    assert_eq!(search_literal("service_account"), "_account");
    assert_eq!(search_literal("api-key"), "-key");
    assert_eq!(search_literal("ecretAccessKey"), "AccessKey");
    assert_eq!(search_literal("_content"), "_content");
    // fewer than 4 bytes would remain, or only lower case and dots: the whole keyword
    assert_eq!(search_literal("sig="), "sig=");
    assert_eq!(search_literal("nvapi-"), "nvapi-");
    assert_eq!(search_literal("azure.com"), "azure.com");
    assert_eq!(search_literal("sk-"), "sk-");
    // a cut only at an ASCII byte, never inside a multi-byte character
    assert_eq!(search_literal("clé_KEY"), "_KEY");
    assert_eq!(search_literal("éabc"), "éabc");
}

#[test]
fn a_match_starting_before_the_search_literal_is_found() {
    // `service_account` is searched as `_account`: the match starts 16 bytes before the literal. Put it
    // at every offset around a window boundary, after binary filler.
    let p = patterns();
    let key = random(
        r#"{"type":"service_account","project_id":"p-{num:6}","private_key_id":"{hex:40}"}"#,
    );
    let mut filler = vec![0u8; 2 * CHUNK];
    rand::rng().fill(&mut filler[..]);
    for back in [
        0,
        1,
        8,
        16,
        17,
        30,
        key.len() - 1,
        key.len(),
        key.len() + 40,
    ] {
        let at = CHUNK - back;
        let mut data = filler.clone();
        data[at - 1] = b'\n';
        data[at..at + key.len()].copy_from_slice(key.as_bytes());
        data[at + key.len()] = b'\n';
        let s = scan(&p, "/k.json", &data);
        let ids: Vec<&str> = s.hits.iter().map(|h| h.evidence.pattern.as_str()).collect();
        assert_eq!(ids, ["gcp-service-account"], "key at {at}");
        assert_eq!(
            s.hits[0].offset,
            (at + key.len() - 42) as u64,
            "key at {at}"
        );
    }
}

#[test]
fn secret_on_every_window_boundary_is_found_once() {
    let p = patterns();
    let key = random("sk-ant-api03-{b64u:93}AA");
    let mut filler = vec![0u8; 3 * CHUNK];
    rand::rng().fill(&mut filler[..]);
    for shift in [0, 1, 7, 50, key.len() - 1, key.len(), key.len() + 1] {
        let at = CHUNK - shift.min(CHUNK);
        let mut data = filler.clone();
        data[at - 1] = b' ';
        data[at..at + key.len()].copy_from_slice(key.as_bytes());
        data[at + key.len()] = b'\n';
        let s = scan(&p, "/bin/blob", &data);
        let hits: Vec<_> = s
            .hits
            .iter()
            .filter(|h| h.evidence.pattern == "anthropic-api-key")
            .collect();
        assert_eq!(hits.len(), 1, "shift {shift}: {:?}", s.hits);
        assert_eq!(hits[0].offset, at as u64);
        assert!(hits[0].line.is_none(), "binary content has no lines");
    }
}

/// Yields 1..=N bytes per read.
struct Dribble<R>(R, usize);

impl<R: Read> Read for Dribble<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.1 = self.1 % 4093 + 1;
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

#[test]
fn odd_read_sizes_and_line_numbers() {
    let p = patterns();
    let key = random("ghp_{alnum:36}");
    let mut text = String::new();
    for i in 0..40_000 {
        writeln!(text, "line {i} of some config text").unwrap();
    }
    let line_at = text.lines().count() + 1;
    writeln!(text, "token = {key}\nend").unwrap();
    let mut s = SecretScanner::new(Arc::new(p.clone()));
    let mut r = Dribble(Cursor::new(text.clone().into_bytes()), 0);
    s.scan_stream(3, "/etc/x.conf", &mut r).unwrap();
    let s = s.found;
    assert_eq!(s.hits.len(), 1, "{:?}", s.hits);
    assert_eq!(s.hits[0].line, Some(line_at as u64));
    assert_eq!(s.hits[0].ordinal, 3);
    assert_eq!(s.hits[0].offset, text.find(&key).unwrap() as u64);
    assert!(
        !format!("{:?}", s.hits).contains(&key),
        "a hit must not carry the key"
    );
}

fn tar_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn nested_archives_are_opened_and_named() {
    let p = patterns();
    let key = random("hf_{alnum:36}");
    let js = format!("module.exports = {{ token: '{key}' }};\n");
    let tgz = gzip(&tar_with("package/index.js", js.as_bytes()));
    // by name
    let s = scan(&p, "/usr/lib/node_modules/x/pkg.tgz", &tgz);
    assert_eq!(s.hits.len(), 1, "{:?} {:?}", s.hits, s.notes);
    assert_eq!(
        s.hits[0].path,
        "/usr/lib/node_modules/x/pkg.tgz!package/index.js"
    );
    assert_eq!(s.hits[0].line, Some(1));
    // by content (npm _cacache: no extension)
    let s = scan(&p, "/root/.npm/_cacache/content-v2/sha512/ab/cd", &tgz);
    assert_eq!(
        s.hits[0].path,
        "/root/.npm/_cacache/content-v2/sha512/ab/cd!package/index.js"
    );
    // tgz inside a tar inside a zip (a wheel/jar carrying an npm tarball)
    let outer = tar_with("vendored/pkg.tgz", &tgz);
    let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
    zw.start_file("lib/bundle.tar", zip::write::SimpleFileOptions::default())
        .unwrap();
    zw.write_all(&outer).unwrap();
    let zipped = zw.finish().unwrap().into_inner();
    let s = scan(&p, "/opt/app.whl", &zipped);
    assert_eq!(s.hits.len(), 1, "{:?} {:?}", s.hits, s.notes);
    assert_eq!(
        s.hits[0].path,
        "/opt/app.whl!lib/bundle.tar!vendored/pkg.tgz!package/index.js"
    );
    // zstd
    let zst = zstd::encode_all(Cursor::new(js.as_bytes()), 3).unwrap();
    let s = scan(&p, "/data/config.js.zst", &zst);
    assert_eq!(s.hits[0].path, "/data/config.js.zst!config.js");
}

#[test]
fn depth_limit_and_bomb_are_notes_not_silence() {
    let p = patterns();
    let key = random("gsk_{alnum:52}");
    // depth: tar in tar in tar in tar: the 4th container is scanned raw (the key is still found,
    // because tar stores members uncompressed) and the limit is noted.
    let mut t = tar_with("k.txt", format!("{key}\n").as_bytes());
    for i in 0..4 {
        t = tar_with(&format!("l{i}.tar"), &t);
    }
    let s = scan(&p, "/deep.tar", &t);
    assert!(
        s.notes.iter().any(|n| n.contains("nesting limit")),
        "{:?}",
        s.notes
    );
    assert_eq!(s.hits.len(), 1);
    // bomb: 40 MiB of zeros gzip to ~40 KiB: the ratio passes 200:1 after the 16 MiB grace.
    let zeros = vec![0u8; 40 << 20];
    let bomb = gzip(&zeros);
    let s = scan(&p, "/bomb.gz", &bomb);
    assert!(s.notes.iter().any(|n| n.contains("ratio")), "{:?}", s.notes);
    assert!(s.bytes_scanned < 40 << 20);
}

#[test]
fn the_image_budget_for_nested_archives_is_shared_and_noted() {
    let p = patterns();
    let key = random("gsk_{alnum:52}");
    // 2 MiB of text per copy (ratio well under 200:1, so only the image budget can stop it).
    let mut text = String::new();
    let mut i = 0u64;
    while text.len() < 2 << 20 {
        let _ = writeln!(text, "line {i} {}", i.wrapping_mul(2_654_435_761));
        i += 1;
    }
    let tgz = gzip(&tar_with("package/data.txt", text.as_bytes()));
    let budget = Arc::new(super::archive::NestedBudget::with_limit(3 << 20));
    // Two layer scanners of one image share the budget.
    let mut a = SecretScanner::new(Arc::new(p.clone())).sharing(&budget);
    let mut b = SecretScanner::new(Arc::new(p.clone())).sharing(&budget);
    a.scan_stream(0, "/a/one.tgz", &mut Cursor::new(tgz.clone()))
        .unwrap();
    assert!(a.found.notes.is_empty(), "{:?}", a.found.notes);
    b.scan_stream(0, "/b/two.tgz", &mut Cursor::new(tgz.clone()))
        .unwrap();
    assert!(
        b.found
            .notes
            .iter()
            .any(|n| n.contains("nested-archive budget") && n.contains("/b/two.tgz")),
        "{:?}",
        b.found.notes
    );
    b.scan_stream(1, "/b/three.tgz", &mut Cursor::new(tgz))
        .unwrap();
    assert!(
        b.found
            .notes
            .iter()
            .any(|n| n.contains("/b/three.tgz was not opened")),
        "{:?}",
        b.found.notes
    );
    // Plain files are still scanned once the budget is spent.
    b.scan_stream(2, "/etc/env", &mut Cursor::new(format!("K={key}\n")))
        .unwrap();
    assert_eq!(b.found.hits.len(), 1, "{:?}", b.found.notes);
    assert!(budget.spent() >= budget.limit());
}

#[test]
fn allowlist_suppressions_are_counted() {
    let key = random("npm_{alnum:36}");
    let fp = super::fingerprint(key.as_bytes());
    let rules = format!(
        "{RULES}\n[[allow]]\nid = \"vendored-fixture\"\ndescription = \"test\"\npath = \"/opt/**\"\n\
         pattern = \"npm-access-token\"\nfingerprint = \"{fp}\"\n"
    );
    let p = Patterns::load(&rules, "secrets.toml", &names()).unwrap();
    let data = format!("a {key} b {key}\n");
    let s = scan(&p, "/opt/x/.npmrc", data.as_bytes());
    assert!(s.hits.is_empty());
    assert_eq!(s.suppressed.get("vendored-fixture"), Some(&2));
    let s = scan(&p, "/home/agent/.npmrc", data.as_bytes());
    assert_eq!(s.hits.len(), 2, "the glob does not cover /home");
    let bad = format!(
        "{RULES}\n[[allow]]\nid = \"x\"\ndescription = \"\"\npath = \"*\"\npattern = \"nope\"\n"
    );
    assert!(Patterns::load(&bad, "secrets.toml", &names()).is_err());
}

#[test]
fn custom_env_names_replace_the_embedded_list() {
    let names = ["MY_PROVIDER_SECRET_THING".to_string()].into();
    let p = Patterns::load(RULES, "rules/secrets.toml", &names).unwrap();
    let v = format!("MY_PROVIDER_SECRET_THING={}\n", random("{alnum:30}7"));
    assert!(
        scan_value(&p, v.as_bytes())
            .iter()
            .any(|e| e.pattern == "provider-credential-assignment")
    );
    let v = format!("ANTHROPIC_API_KEY={}\n", random("{alnum:30}7"));
    assert!(scan_value(&p, v.as_bytes()).is_empty());
}

/// The pattern ids found in `value`, in order.
fn ids(p: &Patterns, value: &str) -> Vec<String> {
    scan_value(p, value.as_bytes())
        .into_iter()
        .map(|e| e.pattern)
        .collect()
}

#[test]
fn overlapping_formats_are_labelled_by_their_provider() {
    let p = patterns();
    // An `sk-ant-` key carrying OpenAI's watermark is Anthropic's; OpenRouter's likewise.
    for _ in 0..20 {
        let k = random("sk-ant-{alnum:20}T3BlbkFJ{alnum:20}");
        assert_eq!(ids(&p, &k), ["anthropic-key"], "{k}");
        let k = random("sk-ant-api03-{b64u:40}T3BlbkFJ{b64u:45}AA");
        assert_eq!(ids(&p, &k), ["anthropic-api-key"]);
        let k = random("sk-or-v1-{alnum:20}T3BlbkFJ{alnum:20}");
        assert_eq!(ids(&p, &k), ["openrouter-api-key"]);
        // sk- + 32 hex: DashScope or DeepSeek by the name next to it, never OpenAI.
        let k = random("sk-{hex:32}");
        assert_eq!(
            ids(&p, &format!("DASHSCOPE_API_KEY={k}\n")),
            ["dashscope-api-key"]
        );
        assert_eq!(
            ids(&p, &format!("DEEPSEEK_API_KEY={k}\n")),
            ["deepseek-api-key"]
        );
        assert_eq!(
            ids(&p, &format!("key: {k}\n")),
            ["dashscope-or-deepseek-api-key"]
        );
        // Azure's 84-character keys: the service tag decides.
        let body = random("{alnum:52}JQQJ99{alnum:18}");
        let tail = random("{alnum:4}");
        assert_eq!(
            ids(&p, &format!("{body}ACOG{tail}")),
            ["azure-ai-services-key"]
        );
        assert_eq!(
            ids(&p, &format!("{body}AZCR{tail}")),
            ["azure-container-registry-key"]
        );
        // A named Azure OpenAI key is Azure's, not the generic assignment.
        let k = random("{hex:31}{num:1}");
        assert_eq!(
            ids(&p, &format!("AZURE_OPENAI_API_KEY={k}\n")),
            ["azure-openai-key"]
        );
    }
}

/// An SQLite-like record: a header of serial-type bytes, then text columns back to back.
fn record(cols: &[&str]) -> Vec<u8> {
    let mut v = vec![0x0d, 0x00, 0x07, 0x17, 0x81, 0x53, 0x2d];
    for c in cols {
        v.extend_from_slice(c.as_bytes());
    }
    v
}

#[test]
fn keys_glued_to_word_characters_are_found_by_their_shape() {
    let p = patterns();
    for (template, id) in [
        ("sk-ant-api03-{b64u:93}AA", "anthropic-api-key"),
        ("sk-ant-admin01-{b64u:93}AA", "anthropic-admin-key"),
        ("sk-proj-{b64u:74}T3BlbkFJ{b64u:74}", "openai-project-key"),
        ("sk-{alnum:20}T3BlbkFJ{alnum:20}", "openai-api-key"),
        (
            "github_pat_{alnum:22}_{alnum:59}",
            "github-fine-grained-pat",
        ),
        ("ghp_{alnum:36}", "github-pat"),
    ] {
        for _ in 0..10 {
            let key = random(template);
            let before = random("anthropic{alnum:6}");
            let row = record(&[&before, &key, "2026a01b01T00z", "rowid9"]);
            let mut data = vec![0u8; 4096];
            let at = data.len() + 7 + before.len();
            data.extend_from_slice(&row);
            data.extend_from_slice(&[0u8; 100]);
            let s = scan(&p, "/root/.local/share/x/app.db", &data);
            let hits: Vec<_> = s.hits.iter().filter(|h| h.evidence.pattern == id).collect();
            assert_eq!(hits.len(), 1, "{id}: {:?}", s.hits);
            assert_eq!(hits[0].offset, at as u64, "{id}");
            assert_eq!(
                hits[0].evidence.length,
                key.len(),
                "{id}: the shape decides the end"
            );
            assert_eq!(
                hits[0].evidence.fingerprint,
                super::fingerprint(key.as_bytes())
            );
        }
    }
}

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let units = bom.then_some(0xfeff).into_iter().chain(text.encode_utf16());
    for u in units {
        out.extend_from_slice(&if big_endian {
            u.to_be_bytes()
        } else {
            u.to_le_bytes()
        });
    }
    out
}

#[test]
fn utf16_text_is_decoded_and_offsets_map_back() {
    let p = patterns();
    let key = random("sk-ant-api03-{b64u:93}AA");
    // With a mark any text (non-ASCII too); without one, ASCII text (NUL-interleaved).
    let marked = format!("# café ✓ settings\r\nHOST=x\r\nANTHROPIC_API_KEY={key}\r\n");
    let ascii = format!("# settings file\r\nHOST=x\r\nANTHROPIC_API_KEY={key}\r\n");
    for (be, bom) in [(false, true), (true, true), (false, false), (true, false)] {
        let text = if bom { &marked } else { &ascii };
        let unit_index = text.encode_utf16().count() - key.encode_utf16().count() - 2;
        let data = utf16(text, be, bom);
        let s = scan(&p, "/app/.env", &data);
        let hit = s
            .hits
            .iter()
            .find(|h| h.evidence.pattern == "anthropic-api-key")
            .unwrap_or_else(|| panic!("be={be} bom={bom}: {:?}", s.hits));
        assert_eq!(hit.offset, (2 * usize::from(bom) + 2 * unit_index) as u64);
        assert_eq!(hit.line, Some(3));
        assert_eq!(hit.evidence.fingerprint, super::fingerprint(key.as_bytes()));
    }
    // ASCII-only UTF-16 without a mark is found too; a binary file of zeros is not UTF-16.
    let plain = utf16(
        &format!("token = {key} and some more text here\n"),
        false,
        false,
    );
    assert_eq!(scan(&p, "/x", &plain).hits.len(), 1);
    assert!(super::archive::sniff_utf16(&[0u8; 512]).is_none());
    // Read in odd-sized pieces, the narrowing stays aligned.
    let data = utf16(&marked, false, true);
    let mut s = SecretScanner::new(Arc::new(p.clone()));
    let mut r = Dribble(Cursor::new(data), 0);
    s.scan_stream(0, "/app/.env", &mut r).unwrap();
    assert_eq!(s.found.hits.len(), 1, "{:?}", s.found.hits);
}

#[test]
fn a_short_placeholder_word_counts_only_when_it_stands_as_a_word() {
    let p = patterns();
    let found = |v: &str| {
        scan_value(&p, v.as_bytes())
            .iter()
            .any(|e| e.pattern == "anthropic-api-key")
    };
    // Inside a random body, in any case and between letters of its own class: a real key's chance
    // spelling, never a placeholder.
    for word in ["qfakeq", "QFAKEQ", "zfAkEz", "AdummyB", "7fAKe7"] {
        let key = random(&format!(
            "sk-ant-api03-{{b64u:40}}{word}{{b64u:{}}}AA",
            53 - word.len()
        ));
        assert!(
            found(&key),
            "{word}: a key with it by chance was taken as a placeholder"
        );
    }
    // Set apart (edge, punctuation, camel case): written by a person as a placeholder.
    for word in ["-fake-", "_FAKE_", "xFakeKey", "-dummy-"] {
        let key = random(&format!(
            "sk-ant-api03-{{b64u:40}}{word}{{b64u:{}}}AA",
            53 - word.len()
        ));
        assert!(
            !found(&key),
            "{word}: a placeholder word set apart must count"
        );
    }
    // Long placeholders count wherever they sit.
    let key = random("sk-ant-api03-{b64u:40}qexampleq{b64u:45}AA");
    assert!(!found(&key));
}
