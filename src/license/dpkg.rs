//! Debian packages: the dpkg status database (`/var/lib/dpkg/status`, distroless `status.d/*`) and DEP-5
//! machine-readable copyright files (`/usr/share/doc/<pkg>/copyright`), whose `License:` short names are
//! mapped onto SPDX (`GPL-2+` → `GPL-2.0-or-later`, `Expat` → `MIT`, …). Names with no SPDX equivalent
//! become `LicenseRef-Debian-<name>`: defined in the file itself, so known, but not on the SPDX list.

use super::expr::{ExprError, SpdxExpr};

/// One installed package from a status database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebPackage {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
}

/// Deb822 paragraphs: (field, value) lists; continuation lines are joined with `\n`.
fn paragraphs(text: &str) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut cur: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = cur.last_mut() {
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            cur.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn field<'a>(p: &'a [(String, String)], name: &str) -> Option<&'a str> {
    p.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Installed packages of a status file (`Status: … installed`; `status.d` files have no `Status` and
/// count as installed).
pub fn parse_status(text: &str) -> Vec<DebPackage> {
    paragraphs(text)
        .iter()
        .filter(|p| {
            field(p, "Status").is_none_or(|s| s.split_whitespace().last() == Some("installed"))
        })
        .filter_map(|p| {
            Some(DebPackage {
                name: field(p, "Package")?.to_string(),
                version: field(p, "Version")?.to_string(),
                architecture: field(p, "Architecture").map(ToString::to_string),
            })
        })
        .collect()
}

/// What a copyright file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copyright {
    /// DEP-5: the distinct `License:` short-name lines of the header and `Files` paragraphs, in order.
    Dep5 { licenses: Vec<String> },
    /// Free-form text (not DEP-5): licenses cannot be read reliably.
    FreeForm,
}

/// Parse a copyright file.
pub fn parse_copyright(text: &str) -> Copyright {
    let paras = paragraphs(text);
    let is_dep5 = paras.first().is_some_and(|p| field(p, "Format").is_some());
    if !is_dep5 {
        return Copyright::FreeForm;
    }
    let mut licenses: Vec<String> = Vec::new();
    for (i, p) in paras.iter().enumerate() {
        // Standalone `License:` paragraphs only hold texts of names used elsewhere.
        if i > 0 && field(p, "Files").is_none() {
            continue;
        }
        if let Some(l) = field(p, "License") {
            let short = l.lines().next().unwrap_or("").trim().to_string();
            if !short.is_empty() && !licenses.contains(&short) {
                licenses.push(short);
            }
        }
    }
    Copyright::Dep5 { licenses }
}

/// A DEP-5 `License:` short name that maps to no SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DEP-5 `{short}`: {error}")]
pub struct Unmapped {
    pub short: String,
    pub error: ExprError,
}

/// Why a DEP-5 copyright file gives no expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyrightError {
    #[error("the copyright file names no license")]
    NoLicense,
    /// These `License:` lines could not be mapped.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unmapped(Vec<Unmapped>),
    /// The lines mapped, but their combination did not parse.
    #[error("{0}")]
    Combined(ExprError),
}

/// Map one DEP-5 `License:` short line (`GPL-2+ or Artistic`, `GPL-2+ with OpenSSL exception`) onto an
/// SPDX expression. Commas are grouping hints only and are ignored.
pub fn dep5_to_spdx(short: &str) -> Result<SpdxExpr, Unmapped> {
    let cleaned = short.replace(',', " ");
    let toks: Vec<&str> = cleaned.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        match t.to_ascii_lowercase().as_str() {
            // `and/or` lets the licensee pick: an `OR` for the deny evaluation.
            "or" | "and/or" => out.push("OR".into()),
            "and" => out.push("AND".into()),
            "with" => {
                let start = i + 1;
                let mut end = start;
                while end < toks.len() && !toks[end].to_ascii_lowercase().ends_with("exception") {
                    end += 1;
                }
                let words = &toks[start..toks.len().min(end + 1)];
                out.push("WITH".into());
                out.push(exception_name(words));
                i = end;
            }
            _ => out.push(license_name(t)),
        }
        i += 1;
    }
    SpdxExpr::strict(&out.join(" ")).map_err(|error| Unmapped {
        short: short.to_string(),
        error,
    })
}

/// `OpenSSL exception` → an SPDX exception id when one matches, else `AdditionRef-Debian-…`.
fn exception_name(words: &[&str]) -> String {
    let joined = words.join("-");
    for cand in [
        joined.clone(),
        format!("{joined}-2.0"),
        format!("{joined}-3.0"),
    ] {
        if let Some(id) = spdx::identifiers::EXCEPTIONS
            .iter()
            .find(|e| e.name.eq_ignore_ascii_case(&cand))
        {
            return id.name.to_string();
        }
    }
    format!("AdditionRef-Debian-{}", sanitize(&joined))
}

/// One DEP-5 license short name → an SPDX id (with `+`/`-or-later`) or `LicenseRef-Debian-…`.
fn license_name(name: &str) -> String {
    let (base, plus) = match name.strip_suffix('+') {
        Some(b) => (b, true),
        None => (name, false),
    };
    let lower = base.to_ascii_lowercase();
    if let Some(gnu) = gnu_name(&lower, plus) {
        return gnu;
    }
    let table = [
        ("expat", "MIT"),
        ("mit", "MIT"),
        ("x11", "X11"),
        ("zlib", "Zlib"),
        ("isc", "ISC"),
        ("artistic", "Artistic-1.0-Perl"),
        ("artistic-1", "Artistic-1.0"),
        ("artistic-2", "Artistic-2.0"),
        ("apache-2", "Apache-2.0"),
        ("apache-2.0", "Apache-2.0"),
        ("bsd-2-clause", "BSD-2-Clause"),
        ("bsd-3-clause", "BSD-3-Clause"),
        ("bsd-4-clause", "BSD-4-Clause"),
        ("bsd-4-clause-uc", "BSD-4-Clause-UC"),
        ("cc0", "CC0-1.0"),
        ("cc0-1.0", "CC0-1.0"),
        ("mpl-1.1", "MPL-1.1"),
        ("mpl-2.0", "MPL-2.0"),
        ("psf-2", "PSF-2.0"),
        ("unicode", "Unicode-DFS-2016"),
    ];
    let suffix = if plus { "+" } else { "" };
    if let Some((_, id)) = table.iter().find(|(k, _)| *k == lower) {
        return format!("{id}{suffix}");
    }
    if let Some(l) = spdx::identifiers::LICENSES
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case(base) && l.flags & spdx::flags::IS_DEPRECATED == 0)
    {
        return format!("{}{suffix}", l.name);
    }
    format!("LicenseRef-Debian-{}", sanitize(name))
}

/// `gpl-2` / `gplv3` / `lgpl-2.1` / `agpl-3` / `gfdl-1.3` / bare `gpl` → the SPDX GNU id.
fn gnu_name(lower: &str, plus: bool) -> Option<String> {
    let (family, rest) = ["agpl", "lgpl", "gpl", "gfdl"]
        .iter()
        .find_map(|f| lower.strip_prefix(f).map(|r| (*f, r)))?;
    let ver = rest.trim_start_matches(['-', 'v']);
    let (ver, plus) = if ver.is_empty() {
        // Unversioned: "any version" (Debian policy).
        let first = match family {
            "lgpl" => "2.0",
            "gfdl" => "1.1",
            _ => "1.0",
        };
        (first.to_string(), true)
    } else if ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let v = if ver.contains('.') {
            ver.to_string()
        } else {
            format!("{ver}.0")
        };
        (v, plus)
    } else {
        return None;
    };
    let base = format!("{}-{ver}", family.to_ascii_uppercase());
    let id = spdx::gnu_license_id(&base, plus)?;
    Some(id.name.to_string())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A package's combined expression: every distinct `License:` line joined with `AND` (the package
/// ships all of those files). `Err` lists the lines that could not be mapped.
pub fn combined(licenses: &[String]) -> Result<SpdxExpr, CopyrightError> {
    if licenses.is_empty() {
        return Err(CopyrightError::NoLicense);
    }
    let mut parts = Vec::new();
    let mut bad = Vec::new();
    for l in licenses {
        match dep5_to_spdx(l) {
            Ok(e) => {
                if !parts.contains(&e.as_str().to_string()) {
                    parts.push(e.as_str().to_string());
                }
            }
            Err(e) => bad.push(e),
        }
    }
    if !bad.is_empty() {
        return Err(CopyrightError::Unmapped(bad));
    }
    let text = if parts.len() == 1 {
        parts.remove(0)
    } else {
        parts
            .iter()
            .map(|p| format!("({p})"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    SpdxExpr::strict(&text).map_err(CopyrightError::Combined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep5_short_names_map_to_spdx() {
        for (dep5, spdx) in [
            ("GPL-2+", "GPL-2.0-or-later"),
            ("GPL-2", "GPL-2.0-only"),
            ("GPLv3+", "GPL-3.0-or-later"),
            ("LGPL-2.1+", "LGPL-2.1-or-later"),
            ("LGPL", "LGPL-2.0-or-later"),
            ("AGPL-3+", "AGPL-3.0-or-later"),
            ("Expat", "MIT"),
            ("BSD-3-clause", "BSD-3-Clause"),
            ("ZLIB", "Zlib"),
            ("curl", "curl"),
            (
                "GPL-1+ or Artistic",
                "GPL-1.0-or-later OR Artistic-1.0-Perl",
            ),
            (
                "OpenLDAP-2.8 and UMich",
                "LicenseRef-Debian-OpenLDAP-2.8 AND LicenseRef-Debian-UMich",
            ),
            ("public-domain", "LicenseRef-Debian-public-domain"),
            (
                "BSD-3-clause and/or GPL-3+",
                "BSD-3-Clause OR GPL-3.0-or-later",
            ),
            (
                "BSD-2-clause-NetBSD",
                "LicenseRef-Debian-BSD-2-clause-NetBSD",
            ),
            ("LGPLv3+_or_GPLv2+", "LicenseRef-Debian-LGPLv3--or-GPLv2-"),
            (
                "GPL-2+ with Autoconf-data exception",
                "GPL-2.0-or-later WITH AdditionRef-Debian-Autoconf-data-exception",
            ),
            (
                "GPL-3+ with Bison exception",
                "GPL-3.0-or-later WITH AdditionRef-Debian-Bison-exception",
            ),
        ] {
            match dep5_to_spdx(dep5) {
                Ok(e) => assert_eq!(e.as_str(), spdx, "{dep5}"),
                Err(e) => panic!("{dep5}: {e}"),
            }
        }
    }

    #[test]
    fn status_keeps_installed_packages_only() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n long\n .\n more\n\nPackage: b\nStatus: deinstall ok config-files\nVersion: 2\n\nPackage: c\nVersion: 3\n";
        let p = parse_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "a");
        assert_eq!(p[0].architecture.as_deref(), Some("amd64"));
        assert_eq!(p[1].name, "c");
    }

    #[test]
    fn copyright_standalone_license_paragraphs_are_definitions() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: GPL-2+\n\nFiles: lib/*\nLicense: Expat\n text of expat\n\nLicense: AGPL-3\n Only the text, used nowhere.\n";
        let Copyright::Dep5 { licenses } = parse_copyright(text) else {
            panic!("is DEP-5")
        };
        assert_eq!(licenses, ["GPL-2+", "Expat"]);
        assert_eq!(
            combined(&licenses).unwrap().as_str(),
            "(GPL-2.0-or-later) AND (MIT)"
        );
        assert_eq!(
            parse_copyright("This is free software.\n"),
            Copyright::FreeForm
        );
        assert_eq!(combined(&[]), Err(CopyrightError::NoLicense));
        let bad = combined(&["GPL-2+".into(), "GPL-2+ or".into(), "and Expat".into()]).unwrap_err();
        let CopyrightError::Unmapped(lines) = &bad else {
            panic!("{bad:?}")
        };
        assert_eq!(lines.len(), 2, "{bad}");
        assert!(bad.to_string().starts_with("DEP-5 `GPL-2+ or`: "), "{bad}");
        assert!(bad.to_string().contains("; DEP-5 `and Expat`: "), "{bad}");
    }
}
