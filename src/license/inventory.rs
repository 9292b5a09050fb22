//! The package inventory: every npm package root and every Debian package of every layer, each with its
//! declared license, the SPDX expression it maps to (or why there is none), its path and the layer it
//! came from. Built only from captured file contents ([`CapturedFile`]) and final-tree lookups
//! ([`FinalFiles`]); no layer is read again.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::dpkg::{self, Copyright};
use super::expr::ExprError;
use super::expr::SpdxExpr;
use super::model::{
    CapturedFile, FinalFiles, Inventory, LicenseSource, Package, Unknown, UnknownKind,
};
use super::npm::{self, Declared, RootKind};
use super::runtime;
use super::textmatch::{self, Budget, Drawn, TextMatch, Unidentified};
use super::{Ecosystem, PresetLicense};
use crate::cache::LayerCache;

impl Inventory {
    /// Build the inventory. `preset` supplies clarifications for the runtime's packages.
    pub fn collect(
        files: &[CapturedFile<'_>],
        fin: &dyn FinalFiles,
        preset: Option<&PresetLicense>,
    ) -> Inventory {
        Inventory::collect_cached(files, fin, preset, None)
    }

    /// [`Inventory::collect`], with license text-match results kept in `cache`.
    pub fn collect_cached(
        files: &[CapturedFile<'_>],
        fin: &dyn FinalFiles,
        preset: Option<&PresetLicense>,
        cache: Option<&LayerCache>,
    ) -> Inventory {
        let (mut packages, mut texts, installed) = npm_packages(files);
        let (deb, deb_texts) = deb_packages(files, fin);
        texts.extend(deb_texts.into_iter().map(|(i, t)| (i + packages.len(), t)));
        packages.extend(deb);
        let (loose, loose_texts) = loose_files(files, &packages);
        texts.extend(
            loose_texts
                .into_iter()
                .map(|(i, t)| (i + packages.len(), t)),
        );
        packages.extend(loose);
        match_texts(&mut packages, &texts, cache);
        if let Some(pl) = preset {
            for (i, path) in installed {
                apply_clarification(&mut packages[i], &path, pl, fin);
            }
        }
        packages.sort_by(|a, b| {
            (a.ecosystem, &a.name, &a.version, &a.path, a.layer).cmp(&(
                b.ecosystem,
                &b.name,
                &b.version,
                &b.path,
                b.layer,
            ))
        });
        Inventory { packages }
    }
}

/// Package index → the license text to identify (a free-form copyright file, a `LICENSE` file).
type Texts<'a> = Vec<(usize, &'a [u8])>;

/// The npm packages, the license texts to identify for those whose declaration gives no SPDX
/// expression, and the installed roots (index, manifest path) a preset clarification may apply to.
fn npm_packages<'a>(files: &[CapturedFile<'a>]) -> (Vec<Package>, Texts<'a>, Vec<(usize, String)>) {
    // (path, name, version, declared) → index; a later layer re-adding the same manifest keeps the
    // first layer and takes the later fate.
    let mut seen: BTreeMap<(String, String, String, Option<String>), usize> = BTreeMap::new();
    let mut out: Vec<Package> = Vec::new();
    let mut texts = Vec::new();
    let mut installed = Vec::new();
    let licenses = license_files_by_dir(files);
    let mut ordered: Vec<&CapturedFile<'_>> = files.iter().collect();
    ordered.sort_by_key(|f| f.layer);
    for f in ordered {
        let Some(kind) = npm::package_root(f.path) else {
            continue;
        };
        let Some(bytes) = f.content else {
            out.push(uncaptured(f, "package.json larger than the capture limit"));
            continue;
        };
        let Some(m) = npm::parse_manifest(bytes) else {
            continue;
        };
        let declared = match &m.license {
            Declared::Text(t) => Some(t.clone()),
            Declared::Malformed(raw) => Some(raw.clone()),
            Declared::Missing => None,
        };
        let key = (
            f.path.to_string(),
            m.name.clone(),
            m.version.clone(),
            declared.clone(),
        );
        if let Some(&i) = seen.get(&key) {
            out[i].fate.clone_from(&f.fate);
            continue;
        }
        let mut pkg = Package {
            ecosystem: Ecosystem::Npm,
            name: m.name.clone(),
            version: m.version.clone(),
            declared,
            expression: None,
            parsed: None,
            source: LicenseSource::PackageJson,
            score: None,
            asserted_by: None,
            unknown: None,
            path: format!("/{}", f.path),
            license_path: None,
            layer: f.layer,
            fate: f.fate.clone(),
        };
        match &m.license {
            Declared::Text(t) => match SpdxExpr::declared(t) {
                Ok(e) => set_expr(&mut pkg, e),
                Err(why) => {
                    let kind = match why {
                        ExprError::NotSpdx { .. } => UnknownKind::NotSpdx,
                        ExprError::Empty | ExprError::Invalid { .. } => UnknownKind::Other,
                    };
                    pkg.unknown = Some(Unknown::new(kind, why.to_string()));
                }
            },
            Declared::Malformed(raw) => {
                pkg.unknown = Some(Unknown::new(
                    UnknownKind::Other,
                    format!("`license` has an unsupported shape: {raw}"),
                ));
            }
            Declared::Missing => {
                pkg.unknown = Some(Unknown::new(
                    UnknownKind::NoLicenseField,
                    "no `license` field",
                ));
            }
        }
        if pkg.parsed.is_none() {
            let dir = f.path.strip_suffix("package.json").unwrap_or("");
            let dir = dir.strip_suffix('/').unwrap_or(dir);
            if let Some((lpath, text)) = licenses.get(dir).and_then(|v| v.first()) {
                pkg.license_path = Some(format!("/{lpath}"));
                texts.push((out.len(), *text));
            }
        }
        if let RootKind::Installed { .. } = kind {
            installed.push((out.len(), f.path.to_string()));
        }
        seen.insert(key, out.len());
        out.push(pkg);
    }
    (out, texts, installed)
}

/// Whether a file name is a license file: `LICENSE`, `LICENCE`, `COPYING` (any case), alone or with a
/// short suffix (`LICENSE.md`, `LICENSE-MIT`, `COPYING.LIB`, `license.txt`); not `license.js`,
/// `licenses.json`, `license-checker/`.
pub fn is_license_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.len() > 32 {
        return false;
    }
    let lower = name.to_ascii_lowercase();
    let Some(rest) = ["license", "licence", "copying"]
        .iter()
        .find_map(|s| lower.strip_prefix(s))
    else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    if !rest.starts_with(['.', '-', '_']) {
        return false;
    }
    match rest.rsplit_once('.') {
        None => true,
        Some((_, ext)) => matches!(
            ext,
            "md" | "txt"
                | "markdown"
                | "rst"
                | "lib"
                | "lgpl"
                | "gpl"
                | "mit"
                | "bsd"
                | "apache"
                | "apache2"
                | "isc"
                | "0bsd"
        ),
    }
}

/// Captured license files by directory (normalised), the last layer's copy first; each directory's
/// files sorted by name (`COPYING` before `LICENSE` before `LICENSE.md`).
fn license_files_by_dir<'a>(
    files: &[CapturedFile<'a>],
) -> BTreeMap<&'a str, Vec<(&'a str, &'a [u8])>> {
    let mut latest: BTreeMap<&'a str, (usize, &'a [u8])> = BTreeMap::new();
    for f in files {
        let Some(bytes) = f.content else { continue };
        if !is_license_file(f.path) {
            continue;
        }
        let e = latest.entry(f.path).or_insert((f.layer, bytes));
        if f.layer >= e.0 {
            *e = (f.layer, bytes);
        }
    }
    let mut by_dir: BTreeMap<&'a str, Vec<(&'a str, &'a [u8])>> = BTreeMap::new();
    for (path, (_, bytes)) in latest {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        by_dir.entry(dir).or_default().push((path, bytes));
    }
    by_dir
}

/// Loose license files: license files in no npm package directory (nor below one), not a Debian
/// package's documentation (`usr/share/doc/`) nor Debian's reference texts
/// (`usr/share/common-licenses/`). One entry per path: the last layer that has it.
fn loose_files<'a>(files: &[CapturedFile<'a>], packages: &[Package]) -> (Vec<Package>, Texts<'a>) {
    let package_dirs: Vec<String> = packages
        .iter()
        .filter(|p| p.ecosystem == Ecosystem::Npm)
        .filter_map(|p| p.path.strip_suffix("package.json").map(str::to_string))
        .collect();
    let mut latest: BTreeMap<&'a str, &CapturedFile<'a>> = BTreeMap::new();
    for f in files {
        if f.content.is_none()
            || !is_license_file(f.path)
            || f.path.starts_with("usr/share/doc/")
            || f.path.starts_with("usr/share/common-licenses/")
            || f.path.contains("node_modules/")
        {
            continue;
        }
        let abs = format!("/{}", f.path);
        if package_dirs.iter().any(|d| abs.starts_with(d.as_str())) {
            continue;
        }
        let e = latest.entry(f.path).or_insert(f);
        if f.layer >= e.layer {
            *e = f;
        }
    }
    let mut out = Vec::new();
    let mut texts = Vec::new();
    for (path, f) in latest {
        if let Some(bytes) = f.content {
            texts.push((out.len(), bytes));
        }
        out.push(Package {
            ecosystem: Ecosystem::File,
            name: format!("/{path}"),
            version: "-".into(),
            declared: None,
            expression: None,
            parsed: None,
            source: LicenseSource::TextMatch,
            score: None,
            asserted_by: None,
            unknown: Some(Unknown::new(
                UnknownKind::LooseText,
                "license text not identified",
            )),
            path: format!("/{path}"),
            license_path: None,
            layer: f.layer,
            fate: f.fate.clone(),
        });
    }
    (out, texts)
}

/// Identify every pending text (each distinct text once, in parallel, within one [`Budget`]; through
/// `cache` when given) and give the packages still without an expression what was found.
fn match_texts(packages: &mut [Package], texts: &[(usize, &[u8])], cache: Option<&LayerCache>) {
    match_within(packages, texts, cache, textmatch::BUDGET);
}

/// [`match_texts`] within a budget of `total` analyses.
fn match_within(
    packages: &mut [Package],
    texts: &[(usize, &[u8])],
    cache: Option<&LayerCache>,
    total: usize,
) {
    if texts.is_empty() {
        return;
    }
    let mut unique: Vec<&[u8]> = texts.iter().map(|(_, t)| *t).collect();
    unique.sort_unstable();
    unique.dedup();
    let budget = Budget::new(total);
    let drawn: Vec<(Result<TextMatch, Unidentified>, Drawn)> = unique
        .par_iter()
        .map(|t| textmatch::identify_drawn(t, &budget, cache))
        .collect();
    let results = if drawn.iter().any(|(_, d)| d.cut) {
        settle(&unique, drawn, cache, total)
    } else {
        drawn.into_iter().map(|(r, _)| r).collect()
    };
    for (i, text) in texts {
        let Ok(u) = unique.binary_search(text) else {
            continue;
        };
        let pkg = &mut packages[*i];
        if pkg.parsed.is_some() {
            continue;
        }
        match &results[u] {
            Ok(m) => {
                set_expr(pkg, m.expression.clone());
                pkg.source = LicenseSource::TextMatch;
                pkg.score = Some(f64::from((m.score * 100.0).round()) / 100.0);
            }
            Err(why) => {
                let evidence = pkg.license_path.as_deref().unwrap_or("the license text");
                pkg.unknown = Some(match pkg.unknown.take() {
                    None => Unknown::new(
                        after_text_match(UnknownKind::Other, why),
                        format!("{evidence}: {why}"),
                    ),
                    Some(before) => Unknown::new(
                        after_text_match(before.kind, why),
                        format!("{}; {evidence}: {why}", before.text),
                    ),
                });
            }
        }
    }
}

/// The budget ran out: which texts it covers is decided in text order, as one thread matching them
/// one after the other would (not by which thread got there first), so the result is the same on any
/// number of cores, warm or cold. A whole result the parallel pass found is kept when the budget left
/// covers its cost; the others are matched again with what is left (at most `total` more analyses
/// in all).
fn settle(
    unique: &[&[u8]],
    drawn: Vec<(Result<TextMatch, Unidentified>, Drawn)>,
    cache: Option<&LayerCache>,
    total: usize,
) -> Vec<Result<TextMatch, Unidentified>> {
    let mut left = total;
    unique
        .iter()
        .zip(drawn)
        .map(|(text, (result, d))| {
            if !d.cut && d.cost <= left {
                left -= d.cost;
                return result;
            }
            let (again, d) = textmatch::identify_drawn(text, &Budget::new(left), cache);
            left = left.saturating_sub(d.cost);
            again
        })
        .collect()
}

/// The kind of a package's unknown once its license text, too, was not identified: a spent budget is
/// what the notes name, unless the package already had a more specific reason.
fn after_text_match(before: UnknownKind, why: &Unidentified) -> UnknownKind {
    match (before, why) {
        (
            UnknownKind::NoLicenseField | UnknownKind::Other | UnknownKind::BudgetSpent,
            Unidentified::BudgetSpent,
        ) => UnknownKind::BudgetSpent,
        (before, _) => before,
    }
}

fn set_expr(pkg: &mut Package, e: SpdxExpr) {
    pkg.expression = Some(e.as_str().to_string());
    pkg.parsed = Some(e);
    pkg.unknown = None;
}

/// A clarification in force replaces an unknown declaration; a broken pin leaves it unknown and says so.
fn apply_clarification(pkg: &mut Package, path: &str, pl: &PresetLicense, fin: &dyn FinalFiles) {
    let (Some(runtime_pkg), Some(c)) = (pl.package.as_deref(), pl.clarification(&pkg.name)) else {
        return;
    };
    if pkg.parsed.is_some() {
        return;
    }
    let Some(dir) = runtime::runtime_dir_for(path, runtime_pkg) else {
        return;
    };
    match runtime::verify_pins(&dir, c, fin) {
        Ok(()) => {
            set_expr(pkg, c.expression.clone());
            pkg.source = LicenseSource::Clarification;
            let pins: Vec<String> = c
                .license_files
                .iter()
                .map(|f| format!("/{dir}/{} sha256 {}", f.path.0, f.sha256.0))
                .collect();
            pkg.asserted_by = Some(format!(
                "asserted by clarification, not read from the image (pins {})",
                pins.join(", ")
            ));
        }
        Err(problems) => {
            pkg.unknown = Some(Unknown::new(
                UnknownKind::PinBroken,
                format!(
                    "the preset's clarification no longer holds: {}",
                    problems.join("; ")
                ),
            ));
        }
    }
}

fn uncaptured(f: &CapturedFile<'_>, why: &str) -> Package {
    Package {
        ecosystem: Ecosystem::Npm,
        name: f.path.rsplit('/').nth(1).unwrap_or("?").to_string(),
        version: "?".into(),
        declared: None,
        expression: None,
        parsed: None,
        source: LicenseSource::PackageJson,
        score: None,
        asserted_by: None,
        unknown: Some(Unknown::new(UnknownKind::Other, why)),
        path: format!("/{}", f.path),
        license_path: None,
        layer: f.layer,
        fate: f.fate.clone(),
    }
}

fn is_status(path: &str) -> bool {
    path == "var/lib/dpkg/status"
        || path
            .strip_prefix("var/lib/dpkg/status.d/")
            .is_some_and(|n| !n.is_empty() && !n.contains('/') && !n.ends_with(".md5sums"))
}

/// (name, version, architecture) of a Debian package.
type DebKey = (String, String, Option<String>);

fn deb_packages<'a>(
    files: &[CapturedFile<'a>],
    fin: &'a dyn FinalFiles,
) -> (Vec<Package>, Texts<'a>) {
    // (name, version, arch) → (first layer, status path, listed by a visible status file)
    let mut found: BTreeMap<DebKey, (usize, String, bool)> = BTreeMap::new();
    let mut copyrights: BTreeMap<&str, &'a [u8]> = BTreeMap::new();
    let mut ordered: Vec<&CapturedFile<'_>> = files.iter().collect();
    ordered.sort_by_key(|f| f.layer);
    for f in &ordered {
        if is_status(f.path) {
            let Some(bytes) = f.content else { continue };
            let visible = f.fate == "visible";
            for p in dpkg::parse_status(&String::from_utf8_lossy(bytes)) {
                let e = found.entry((p.name, p.version, p.architecture)).or_insert((
                    f.layer,
                    format!("/{}", f.path),
                    false,
                ));
                e.2 |= visible;
            }
        } else if let (Some(name), Some(bytes)) = (copyright_pkg(f.path), f.content) {
            copyrights.insert(name, bytes); // later layers win
        }
    }
    let mut out = Vec::new();
    let mut texts = Vec::new();
    for ((name, version, _arch), (layer, status_path, visible)) in found {
        let cpath = format!("usr/share/doc/{name}/copyright");
        let text = fin
            .content(&cpath)
            .or_else(|| copyrights.get(name.as_str()).copied());
        let mut pkg = Package {
            ecosystem: Ecosystem::Deb,
            name,
            version,
            declared: None,
            expression: None,
            parsed: None,
            source: LicenseSource::Copyright,
            score: None,
            asserted_by: None,
            unknown: None,
            path: status_path,
            license_path: Some(format!("/{cpath}")),
            layer,
            fate: if visible {
                "visible".into()
            } else {
                "not in the final dpkg status (removed by a later layer)".into()
            },
        };
        match text.map(|b| dpkg::parse_copyright(&String::from_utf8_lossy(b))) {
            None => {
                pkg.license_path = None;
                pkg.unknown = Some(Unknown::new(
                    UnknownKind::NoCopyright,
                    format!("no /{cpath} (or larger than the capture limit)"),
                ));
            }
            Some(Copyright::FreeForm) => {
                pkg.unknown = Some(Unknown::new(
                    UnknownKind::FreeFormCopyright,
                    "copyright file is not machine-readable (DEP-5)",
                ));
                if let Some(t) = text {
                    texts.push((out.len(), t));
                }
            }
            Some(Copyright::Dep5 { licenses }) => {
                pkg.declared = Some(licenses.join(" | "));
                match dpkg::combined(&licenses) {
                    Ok(e) => set_expr(&mut pkg, e),
                    Err(why) => {
                        let kind = match why {
                            dpkg::CopyrightError::Unmapped(_) => UnknownKind::Dep5Unmapped,
                            dpkg::CopyrightError::NoLicense | dpkg::CopyrightError::Combined(_) => {
                                UnknownKind::Other
                            }
                        };
                        pkg.unknown = Some(Unknown::new(kind, why.to_string()));
                    }
                }
            }
        }
        out.push(pkg);
    }
    (out, texts)
}

/// `usr/share/doc/<pkg>/copyright` → `<pkg>`.
fn copyright_pkg(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("usr/share/doc/")?;
    let name = rest.strip_suffix("/copyright")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RT: &str = "usr/lib/node_modules/rt";
    const RT_PATH: &str = "usr/lib/node_modules/rt/package.json";
    const PLAT_PATH: &str = "usr/lib/node_modules/rt/node_modules/rt-linux-x64/package.json";
    const LICENSE: &[u8] = b"MIT License\n";
    const RT_JSON: &[u8] = br#"{"name":"rt","version":"1.0.0","license":"MIT","optionalDependencies":{"rt-linux-x64":"1.0.0"}}"#;
    const COPYRIGHT_A: &[u8] = b"Format: x\n\nFiles: *\nLicense: GPL-2+\n";

    fn preset(sha: &str) -> PresetLicense {
        let text = format!(
            "package = \"rt\"\nexpression = \"MIT\"\n[[clarify]]\npackage = \"rt-linux-x64\"\n\
             expression = \"MIT\"\nlicense-files = [{{ path = \"LICENSE\", sha256 = \"{sha}\" }}]\n\
             reason = \"r\"\n"
        );
        PresetLicense::load(&text, "p.toml").unwrap()
    }

    fn file(
        layer: usize,
        path: &'static str,
        content: &'static [u8],
        fate: &str,
    ) -> CapturedFile<'static> {
        CapturedFile {
            layer,
            path,
            content: Some(content),
            fate: fate.into(),
        }
    }

    fn fixture() -> (Vec<CapturedFile<'static>>, BTreeMap<String, Vec<u8>>) {
        let status0 = b"Package: a\nStatus: install ok installed\nVersion: 1\n\n";
        let status1 = b"Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: b\nStatus: install ok installed\nVersion: 2\n";
        let mut files = vec![
            file(0, "var/lib/dpkg/status", status0, "overwritten by layer 1"),
            file(0, "usr/share/doc/a/copyright", COPYRIGHT_A, "visible"),
            file(1, "var/lib/dpkg/status", status1, "visible"),
            file(2, RT_PATH, RT_JSON, "overwritten by layer 3"),
            file(3, RT_PATH, RT_JSON, "visible"),
            file(
                2,
                PLAT_PATH,
                br#"{"name":"rt-linux-x64","version":"1.0.0"}"#,
                "visible",
            ),
            file(
                2,
                "usr/lib/node_modules/rt/lib/package.json",
                br#"{"name":"h","version":"1"}"#,
                "visible",
            ),
        ];
        files.push(CapturedFile {
            layer: 2,
            path: "usr/lib/node_modules/big/package.json",
            content: None,
            fate: "deleted by layer 3".into(),
        });
        let mut fin: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        fin.insert(format!("{RT}/LICENSE"), LICENSE.to_vec());
        fin.insert(RT_PATH.into(), RT_JSON.to_vec());
        fin.insert("usr/share/doc/a/copyright".into(), COPYRIGHT_A.to_vec());
        (files, fin)
    }

    #[test]
    fn layers_fates_clarifications_and_dpkg_attribution() {
        let (files, fin) = fixture();
        let good = preset(&runtime::sha256_hex(LICENSE));
        let inv = Inventory::collect(&files, &fin, Some(&good));
        let names: Vec<(&str, usize, &str)> = inv
            .packages
            .iter()
            .map(|p| (p.name.as_str(), p.layer, p.fate.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("big", 2, "deleted by layer 3"),
                ("rt", 2, "visible"),
                ("rt-linux-x64", 2, "visible"),
                ("a", 0, "visible"),
                ("b", 1, "visible"),
            ]
        );
        let plat = &inv.packages[2];
        assert_eq!(plat.expression.as_deref(), Some("MIT"));
        assert_eq!(plat.source, LicenseSource::Clarification);
        assert_eq!(
            inv.packages[3].expression.as_deref(),
            Some("GPL-2.0-or-later")
        );
        let unknown = |i: usize| inv.packages[i].unknown.clone().expect("unknown");
        assert_eq!(unknown(4).kind, UnknownKind::NoCopyright);
        assert!(unknown(4).text.contains("no /usr/share/doc/b/copyright"));
        assert_eq!(unknown(0).kind, UnknownKind::Other);
        assert!(unknown(0).text.contains("capture limit"));
        let v = runtime::evaluate(&inv, &good, &fin, "p.toml");
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert!(
            v.summary
                .contains("rt-linux-x64 1.0.0 MIT (asserted by clarification)"),
            "{}",
            v.summary
        );
    }

    /// Loose license files: MIT texts (one analysis each) and a two-notice text (several).
    fn many_texts() -> Vec<CapturedFile<'static>> {
        let (_, mit) = spdx::text::LICENSE_TEXTS
            .iter()
            .find(|(n, _)| *n == "MIT")
            .expect("MIT");
        let (_, isc) = spdx::text::LICENSE_TEXTS
            .iter()
            .find(|(n, _)| *n == "ISC")
            .expect("ISC");
        let mut files: Vec<CapturedFile<'static>> = (0..9)
            .map(|i| {
                let path: &'static str = format!("opt/p{i}/LICENSE").leak();
                let text: &'static [u8] = format!("Copyright (c) {i} Someone\n\n{mit}")
                    .leak()
                    .as_bytes();
                file(i % 3, path, text, "visible")
            })
            .collect();
        let two: &'static [u8] = format!(
            "Upstream notes.\n\nThe parser:\n\n{mit}\n\nThe rest:\n\n{isc}\n\nChangelog follows."
        )
        .leak()
        .as_bytes();
        files.push(file(1, "opt/q/LICENSE", two, "visible"));
        files
    }

    /// The packages of [`many_texts`], matched within `total` analyses on `threads` threads.
    fn matched(total: usize, threads: usize) -> String {
        let files = many_texts();
        let (mut packages, texts) = loose_files(&files, &[]);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("pool")
            .install(|| match_within(&mut packages, &texts, None, total));
        serde_json::to_string_pretty(&packages).expect("json")
    }

    #[test]
    fn a_spent_budget_covers_the_same_texts_on_any_number_of_cores() {
        let whole = matched(textmatch::BUDGET, 2);
        assert!(!whole.contains("budget"), "{whole}");
        for total in [0, 1, 4, 9, 11, 14] {
            let one = matched(total, 1);
            let spent = one.matches("budget").count();
            assert!(total >= 10 || spent > 0, "{total}: {one}");
            for _ in 0..4 {
                assert_eq!(matched(total, 2), one, "{total}");
            }
        }
    }

    #[test]
    fn a_changed_pinned_file_voids_the_clarification() {
        let (files, fin) = fixture();
        let stale = preset(&"0".repeat(64));
        let inv = Inventory::collect(&files, &fin, Some(&stale));
        let v = runtime::evaluate(&inv, &stale, &fin, "p.toml");
        assert_eq!(v.problems.len(), 1);
        let msg = &v.problems[0].message;
        assert!(msg.contains(&format!("/{RT}/LICENSE changed")), "{msg}");
        let sha = runtime::sha256_hex(LICENSE);
        assert!(msg.contains(&format!("set sha256 = \"{sha}\"")), "{msg}");
    }
}
