//! Picking images: `PATH:TAG` / `PATH@sha256:…` parsing (paths may contain `:` and `@`, so the longest
//! prefix that exists wins), tag matching with Docker reference normalisation, de-duplication,
//! ambiguity errors that list what exists, and platform filtering.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::path::Path;

use super::walk::Walk;
use super::{Attestation, Digest, Image, Platform};
use crate::error::{Error, Result};

/// Which image of a multi-image input to take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    None,
    Tag(String),
    Digest(String),
}

/// Split `spec` into the input path and a selector. The whole string wins when it exists (or is `-`);
/// otherwise the longest existing prefix before a `@sha256:`/`@sha512:` or a `:` is the path.
pub fn split_spec(spec: &str) -> Result<(String, Selector)> {
    if spec == "-" || Path::new(spec).exists() {
        return Ok((spec.to_string(), Selector::None));
    }
    let mut best: Option<(usize, Selector)> = None;
    for (i, c) in spec.char_indices() {
        let (prefix, rest) = (&spec[..i], &spec[i + 1..]);
        if prefix.is_empty() || rest.is_empty() || !(prefix == "-" || Path::new(prefix).exists()) {
            continue;
        }
        let sel = match c {
            '@' if rest.starts_with("sha256:") || rest.starts_with("sha512:") => {
                Selector::Digest(rest.to_string())
            }
            ':' => Selector::Tag(rest.to_string()),
            _ => continue,
        };
        if best.as_ref().is_none_or(|(j, _)| i > *j) {
            best = Some((i, sel));
        }
    }
    match best {
        Some((i, sel)) => Ok((spec[..i].to_string(), sel)),
        None => Err(Error::input(
            spec,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        )),
    }
}

/// Docker reference normalisation: drop `docker.io/`/`index.docker.io/` and `library/`, add `:latest`.
pub fn normalise_ref(r: &str) -> String {
    let mut s = r;
    for p in ["index.docker.io/", "docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest;
        }
    }
    let s = s.strip_prefix("library/").unwrap_or(s);
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') || last.contains('@') {
        s.to_string()
    } else {
        format!("{s}:latest")
    }
}

fn tag_matches(sel: &str, name: &str) -> bool {
    sel == name || normalise_ref(sel) == normalise_ref(name)
}

/// The selected, de-duplicated, platform-filtered images, with the side data of the walk.
pub type Selected = (
    Vec<Image>,
    Vec<Attestation>,
    Vec<(String, String, String)>,
    Vec<String>,
);

/// Apply the selector and platform to a walk's result.
pub fn select(
    walk: Walk,
    selector: &Selector,
    platform: Option<&Platform>,
    path: &str,
) -> Result<Selected> {
    let Walk {
        images,
        attestations,
        annotations,
        notes,
        tops,
    } = walk;
    if images.is_empty() {
        let mut detail = "no runnable container image in the input".to_string();
        if !attestations.is_empty() {
            let _ = write!(
                detail,
                " ({} non-image artifact manifest(s) only)",
                attestations.len()
            );
        }
        if !notes.is_empty() {
            let _ = write!(detail, "; {}", notes.join("; "));
        }
        return Err(Error::corrupt(path, detail));
    }
    let listing = describe(&images, &tops);
    let picked: Vec<(usize, Image)> = match selector {
        Selector::None => images,
        Selector::Tag(t) => images
            .into_iter()
            .filter(|(top, img)| {
                tops[*top].1.iter().any(|r| tag_matches(t, r))
                    || img.ref_names.iter().any(|r| tag_matches(t, r))
            })
            .collect(),
        Selector::Digest(d) => images
            .into_iter()
            .filter(|(top, img)| {
                img.manifest.digest.to_string() == *d || tops[*top].0.to_string() == *d
            })
            .collect(),
    };
    if picked.is_empty() {
        return Err(Error::Usage(format!(
            "{path} has no image matching {}; it holds:\n{listing}",
            match selector {
                Selector::Tag(t) => format!("tag {t:?}"),
                Selector::Digest(d) => format!("digest {d}"),
                Selector::None => String::new(),
            }
        )));
    }
    let picked = dedup(picked);
    let groups: HashSet<BTreeSet<Digest>> = {
        let mut per_top: std::collections::BTreeMap<usize, BTreeSet<Digest>> =
            std::collections::BTreeMap::new();
        for (top, img) in &picked {
            per_top
                .entry(*top)
                .or_default()
                .insert(img.manifest.digest.clone());
        }
        per_top.into_values().collect()
    };
    if !selector.is_some() && groups.len() > 1 {
        return Err(Error::Usage(format!(
            "{path} holds several images; pick one with {path}:TAG or {path}@sha256:…:\n{listing}"
        )));
    }
    let mut out: Vec<Image> = picked.into_iter().map(|(_, i)| i).collect();
    if let Some(p) = platform {
        let available: Vec<String> = out.iter().map(|i| i.platform.to_string()).collect();
        out.retain(|i| platform_matches(p, &i.platform));
        if out.is_empty() {
            return Err(Error::Usage(format!(
                "{path} has no image for platform {p}; available: {}",
                available.join(", ")
            )));
        }
    }
    Ok((out, attestations, annotations, notes))
}

/// Keep the first image per manifest digest, merging ref names.
fn dedup(picked: Vec<(usize, Image)>) -> Vec<(usize, Image)> {
    let mut out: Vec<(usize, Image)> = Vec::new();
    for (top, img) in picked {
        if let Some((_, prev)) = out
            .iter_mut()
            .find(|(_, p)| p.manifest.digest == img.manifest.digest)
        {
            for r in img.ref_names {
                if !prev.ref_names.contains(&r) {
                    prev.ref_names.push(r);
                }
            }
        } else {
            out.push((top, img));
        }
    }
    out
}

/// Whether `want` (variant optional) matches `have`.
pub fn platform_matches(want: &Platform, have: &Platform) -> bool {
    want.os == have.os
        && want.architecture == have.architecture
        && (want.variant.is_none() || want.variant == have.variant)
}

fn describe(images: &[(usize, Image)], tops: &[(Digest, Vec<String>)]) -> String {
    let mut s = String::new();
    let mut seen = BTreeSet::new();
    for (top, img) in images {
        if !seen.insert((*top, img.manifest.digest.clone())) {
            continue;
        }
        let mut refs: Vec<&String> = tops[*top].1.iter().collect();
        for r in &img.ref_names {
            if !refs.contains(&r) {
                refs.push(r);
            }
        }
        let name = if refs.is_empty() {
            "(untagged)".to_string()
        } else {
            refs.iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(s, "  {name}  {}  {}", img.manifest.digest, img.platform);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_docker_refs() {
        assert_eq!(normalise_ref("test_image_1"), "test_image_1:latest");
        assert_eq!(
            normalise_ref("index.docker.io/library/test_image_1:latest"),
            "test_image_1:latest"
        );
        assert_eq!(
            normalise_ref("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert!(tag_matches("test_image_1", "test_image_1:latest"));
        assert!(!tag_matches("test_image_1", "test_image_2:latest"));
    }

    #[test]
    fn splits_specs_on_existing_prefix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a:b.tar");
        std::fs::write(&p, b"x").expect("write");
        let ps = p.display().to_string();
        assert_eq!(
            split_spec(&ps).expect("whole"),
            (ps.clone(), Selector::None)
        );
        let (path, sel) = split_spec(&format!("{ps}:repo/x:v1")).expect("tag");
        assert_eq!(
            (path.as_str(), sel),
            (ps.as_str(), Selector::Tag("repo/x:v1".into()))
        );
        let d = format!("sha256:{}", "a".repeat(64));
        let (path, sel) = split_spec(&format!("{ps}@{d}")).expect("digest");
        assert_eq!((path, sel), (ps, Selector::Digest(d)));
        assert!(split_spec("/nonexistent/x:y").is_err());
    }
}
