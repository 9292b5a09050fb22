//! The provider coverage table (issue 16): `rules/coverage.toml` names every provider of opencode's
//! bundled catalogue (the credential variables of `rules/credentials.toml`) with how its credential is
//! caught; `docs/secret-coverage.md` is generated from it. Fails when a catalogue variable has no row,
//! a row names an unknown pattern, file or variable, or the doc is stale (`X1_BLESS=1` rewrites it).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Coverage {
    schema_version: u32,
    provider: Vec<Provider>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Provider {
    id: String,
    name: String,
    variables: Vec<String>,
    #[serde(default)]
    patterns: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    no_shape: Option<String>,
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn toml_table(rel: &str) -> toml::Table {
    read(rel).parse().unwrap()
}

/// `[[key]]` ids of a rules file.
fn ids(t: &toml::Table, key: &str) -> Vec<String> {
    t[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn render(cov: &Coverage, patterns: &[String], unowned: &[String]) -> String {
    let vars: usize = cov.provider.iter().map(|p| p.variables.len()).sum();
    let shaped = cov
        .provider
        .iter()
        .filter(|p| !p.patterns.is_empty())
        .count();
    let mut s = String::new();
    s.push_str("# Secret coverage by provider\n\n");
    s.push_str(
        "<!-- Generated from rules/coverage.toml by tests/it/secret_coverage.rs: do not edit by hand; \
         `X1_BLESS=1 cargo test --test it secret_coverage` rewrites it. -->\n\n",
    );
    let _ = writeln!(
        s,
        "Every provider of opencode's bundled catalogue ({} providers, {vars} credential variables in \
         `rules/credentials.toml`) and how a credential of it baked into an image is caught. {shaped} \
         providers have keys with a recognisable shape, found by a value pattern of \
         `rules/secrets.toml` wherever they are (any file, Env, history, labels, nested archives, \
         binaries, UTF-16 text); the others are caught by name only.\n",
        cov.provider.len()
    );
    s.push_str(
        "**By name, for every row:** a variable of the catalogue assigned a literal in the image \
         config's Env (`provider-env`), in build history or ARGs (`build-secret`), or in a `.env`, \
         shell, JSON or YAML file (pattern `provider-credential-assignment`, rule \
         `secret-in-layer`). An empty value or a reference (`${VAR}`, `{env:VAR}`) is not a key.\n\n",
    );
    s.push_str(
        "| provider | variables | value patterns (by shape) | credential files | not detectable by shape because |\n\
         |---|---|---|---|---|\n",
    );
    for p in &cov.provider {
        let code = |v: &[String]| {
            v.iter()
                .map(|x| format!("`{x}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "| {} (`{}`) | {} | {} | {} | {} |",
            p.name,
            p.id,
            code(&p.variables),
            code(&p.patterns),
            code(&p.files),
            p.no_shape.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        s,
        "\nValue patterns not tied to one provider of the catalogue: {}.\n\nAll {} value patterns: {}.",
        unowned
            .iter()
            .map(|x| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(", "),
        patterns.len(),
        patterns
            .iter()
            .map(|x| format!("`{x}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    s
}

#[test]
fn every_catalogue_provider_has_a_coverage_row_and_the_doc_matches() {
    let cov: Coverage = toml::from_str(&read("rules/coverage.toml")).unwrap();
    assert_eq!(cov.schema_version, 1);
    let creds = toml_table("rules/credentials.toml");
    let secrets = toml_table("rules/secrets.toml");
    let catalogue: BTreeSet<String> = creds["env"]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let patterns = ids(&secrets, "pattern");
    let files: BTreeSet<String> = ids(&creds, "file").into_iter().collect();

    let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
    let mut provider_ids = BTreeSet::new();
    let mut problems = Vec::new();
    for p in &cov.provider {
        if !provider_ids.insert(&p.id) {
            problems.push(format!("provider `{}` listed twice", p.id));
        }
        if p.variables.is_empty() {
            problems.push(format!("`{}` has no variables", p.id));
        }
        for v in &p.variables {
            if !catalogue.contains(v) {
                problems.push(format!(
                    "`{}`: `{v}` is not in rules/credentials.toml",
                    p.id
                ));
            }
            if let Some(o) = owner.insert(v, &p.id) {
                problems.push(format!("`{v}` belongs to both `{o}` and `{}`", p.id));
            }
        }
        for x in &p.patterns {
            if !patterns.contains(x) {
                problems.push(format!("`{}`: unknown pattern `{x}`", p.id));
            }
        }
        for f in &p.files {
            if !files.contains(f) {
                problems.push(format!("`{}`: unknown credential file `{f}`", p.id));
            }
        }
        match (&p.no_shape, p.patterns.is_empty()) {
            (None, true) => problems.push(format!(
                "`{}`: no value pattern and no `no_shape` reason",
                p.id
            )),
            (Some(r), _) if r.trim().is_empty() => {
                problems.push(format!("`{}`: empty `no_shape` reason", p.id));
            }
            (Some(_), false) => problems.push(format!(
                "`{}`: has value patterns, so `no_shape` is wrong",
                p.id
            )),
            _ => {}
        }
    }
    for v in &catalogue {
        if !owner.contains_key(v.as_str()) {
            problems.push(format!("catalogue variable `{v}` has no provider row"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(cov.provider.len() >= 150, "the catalogue shrank");

    let claimed: BTreeSet<&String> = cov.provider.iter().flat_map(|p| &p.patterns).collect();
    let unowned: Vec<String> = patterns
        .iter()
        .filter(|p| !claimed.contains(p))
        .cloned()
        .collect();
    // Only the shape-agnostic patterns may be without a provider.
    for u in &unowned {
        assert!(
            ["private-key", "provider-credential-assignment"].contains(&u.as_str()),
            "value pattern `{u}` belongs to no provider row of rules/coverage.toml"
        );
    }

    let doc = render(&cov, &patterns, &unowned);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/secret-coverage.md");
    if std::env::var_os("X1_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &doc).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == doc,
        "docs/secret-coverage.md is stale: X1_BLESS=1 cargo test --test it secret_coverage"
    );
}
