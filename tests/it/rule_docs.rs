//! `docs/rules/<id>.md`, one page per rule (issue 15): what it checks, why, how to fix (from the same
//! `rules/rules.toml` text `x1-validate explain` prints) and an example finding (the human report of the
//! rule's fixture in `rule_catalog`, generated with a seeded RNG so it is the same on every run). SARIF
//! links each rule to its page (`helpUri`). Fails when a page is stale or a page exists for no rule;
//! `X1_BLESS=1 cargo test --test it rule_docs` rewrites them.

use std::fmt::Write as _;
use std::path::Path;

use rand::SeedableRng as _;
use x1_validate::report::{Format, Report, WriteOptions, write};
use x1_validate::rules::{RuleDef, RuleId, RuleSet};

use crate::rule_catalog::{run, trigger};

const PARTS: [&str; 3] = ["What it checks:", "Why it matters:", "How to fix:"];

/// The explain text cut at its three headings.
fn sections(def: &RuleDef) -> [String; 3] {
    let text = def.explain.trim();
    let at: Vec<usize> = PARTS
        .iter()
        .map(|p| {
            text.find(p)
                .unwrap_or_else(|| panic!("{}: no `{p}`", def.id))
        })
        .collect();
    assert!(at.is_sorted(), "{}: the three parts out of order", def.id);
    std::array::from_fn(|i| {
        let end = at.get(i + 1).copied().unwrap_or(text.len());
        capitalise(text[at[i] + PARTS[i].len()..end].trim())
    })
}

/// The human report's block for the first finding of `id` in its fixture's report.
fn example(rules: &RuleSet, id: RuleId, seed: u64) -> Option<String> {
    let t = trigger(id, &mut rand::rngs::StdRng::seed_from_u64(seed));
    if t.exec != x1_validate::checks::ExecMode::Never && x1_validate::sandbox::available().is_err()
    {
        return None;
    }
    let report = Report {
        schema_version: 1,
        tool_version: String::new(),
        images: vec![run(&t)],
        error: None,
    };
    let opts = WriteOptions {
        color: false,
        width: 100,
        catalog: rules.catalog(),
        fail_on: None,
    };
    let mut out = Vec::new();
    write(&report, Format::Human, &opts, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let heads = ["×", "⚠", "☞"].map(|icon| format!("  {icon} {id}:"));
    let is_head = |l: &str| ["  × ", "  ⚠ ", "  ☞ "].iter().any(|h| l.starts_with(h));
    let mut block = Vec::new();
    for line in text.lines() {
        if block.is_empty() {
            if heads.iter().any(|h| line.starts_with(h.as_str())) {
                block.push(line);
            }
        } else if line.trim().is_empty() || !line.starts_with("  ") || is_head(line) {
            break;
        } else {
            block.push(line);
        }
    }
    (!block.is_empty()).then(|| block.join("\n"))
}

fn page(def: &RuleDef, example: &str) -> String {
    let [what, why, fix] = sections(def);
    let mut s = String::new();
    let _ = writeln!(s, "# `{}`\n", def.id);
    let _ = writeln!(
        s,
        "<!-- Generated from rules/rules.toml by tests/it/rule_docs.rs: do not edit by hand; \
         `X1_BLESS=1 cargo test --test it rule_docs` rewrites it. -->\n"
    );
    let _ = writeln!(
        s,
        "{} (default severity: **{}**; `x1-validate explain {}` prints this text)\n",
        capitalise(&def.summary),
        def.default_severity.as_str(),
        def.id
    );
    let _ = writeln!(s, "## What it checks\n\n{what}\n");
    let _ = writeln!(s, "## Why it matters\n\n{why}\n");
    let _ = writeln!(s, "## How to fix\n\n{fix}\n");
    let _ = writeln!(
        s,
        "## Example finding\n\nFrom the rule's fixture in `tests/it/rule_catalog.rs` (human format):\n\n\
         ```text\n{example}\n```"
    );
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[test]
fn every_rule_has_its_page_and_the_pages_are_current() {
    let rules = RuleSet::embedded().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/rules");
    let bless = std::env::var_os("X1_BLESS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (seed, id) in (0u64..).zip(RuleId::ALL) {
        let def = rules.rule(id).unwrap();
        let file = dir.join(format!("{id}.md"));
        let current = std::fs::read_to_string(&file).unwrap_or_default();
        let Some(example) = example(&rules, id, seed) else {
            // The healthcheck's example needs the sandbox: keep the page's, check the rest.
            crate::common::skip(&format!(
                "{id}: no sandbox here to make the example finding"
            ));
            let [what, ..] = sections(def);
            assert!(current.contains(&what), "{}: stale", file.display());
            continue;
        };
        let want = page(def, &example);
        if bless {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&file, &want).unwrap();
        } else if current != want {
            stale.push(file.display().to_string());
        }
    }
    let known: Vec<String> = RuleId::ALL.iter().map(|id| format!("{id}.md")).collect();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(known.contains(&name), "docs/rules/{name} documents no rule");
    }
    assert!(
        stale.is_empty(),
        "stale (X1_BLESS=1 cargo test --test it rule_docs rewrites them): {stale:?}"
    );
}
