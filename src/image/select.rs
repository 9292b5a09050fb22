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
    // skopeo's local transports are aliases: `oci:DIR[:tag]`, `oci-archive:PATH[:tag]`,
    // `docker-archive:PATH[:ref]`, `dir:PATH`.
    if let Some(rest) = local_transport(spec) {
        return split_spec(rest);
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
    if let Some((i, sel)) = best {
        return Ok((spec[..i].to_string(), sel));
    }
    if let Some(why) = remote_reference(spec) {
        return Err(Error::Usage(format!(
            "{spec:?} is not a local path; it looks like {why}. x1-validate reads local images \
             (an OCI layout directory, an OCI archive, a `docker save` / `podman save` tar, a \
             skopeo `dir:` directory, or `-` for a tar on stdin; optionally PATH:TAG or \
             PATH@sha256:… to pick one image, and the skopeo prefixes oci:, oci-archive:, \
             docker-archive: and dir: for local paths) and registry images spelled as skopeo \
             does, `docker://HOST[:PORT]/REPO:TAG|@sha256:…` (`--insecure` for plain http). Use \
             that spelling, or copy the image first, e.g. `skopeo copy docker://REF \
             oci-archive:image.tar`"
        )));
    }
    Err(Error::input(
        spec,
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
    ))
}

/// The path part of a skopeo local-transport reference (`oci:`, `oci-archive:`, `docker-archive:`,
/// `dir:`), when `spec` has such a prefix.
fn local_transport(spec: &str) -> Option<&str> {
    ["oci:", "oci-archive:", "docker-archive:", "dir:"]
        .iter()
        .find_map(|p| spec.strip_prefix(p))
        .filter(|rest| !rest.is_empty() && !rest.starts_with("//"))
}

/// When `spec` (which is not an existing path) looks like a reference to an image that is not a local
/// file, a phrase saying what it looks like. The one place that decides what counts as remote: a later
/// registry reader changes only this function and its caller.
pub fn remote_reference(spec: &str) -> Option<String> {
    if let Some((scheme, _)) = spec.split_once("://")
        && !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Some(format!(
            "a `{scheme}://` reference (a registry or other remote transport)"
        ));
    }
    for t in [
        "containers-storage:",
        "docker-daemon:",
        "ostree:",
        "sif:",
        "registry:",
    ] {
        if spec.starts_with(t) {
            return Some(format!("a `{t}` reference (another tool's image store)"));
        }
    }
    // `host[:port]/repo[/…][:tag|@digest]` — a Docker reference with a registry host.
    let (host, rest) = spec.split_once('/')?;
    let (name, port) = match host.split_once(':') {
        Some((n, p)) => (n, Some(p)),
        None => (host, None),
    };
    let host_like = !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b))
        && (name.contains('.') || name == "localhost" || port.is_some())
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let repo = rest.split(['@', ':']).next().unwrap_or(rest);
    let repo_like = !repo.is_empty()
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        });
    (host_like && repo_like).then(|| format!("a registry reference (registry {host})"))
}

/// Docker reference normalisation: drop `docker.io/`/`index.docker.io/` and `library/`, add `:latest`.
pub fn normalise_ref(r: &str) -> String {
    let mut s = r;
    for p in ["index.docker.io/", "docker.io/", "registry-1.docker.io/"] {
        if let Some(rest) = s.strip_prefix(p) {
            s = rest;
        }
    }
    let s = s.strip_prefix("localhost/").unwrap_or(s);
    let s = s.strip_prefix("library/").unwrap_or(s);
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') || last.contains('@') {
        s.to_string()
    } else {
        format!("{s}:latest")
    }
}

/// `repo` and `tag` of a normalised reference (`repo:tag` or `repo@digest`).
fn repo_tag(norm: &str) -> (&str, &str) {
    let slash = norm.rfind('/').map_or(0, |i| i + 1);
    match norm[slash..].find(['@', ':']) {
        Some(i) => (&norm[..slash + i], &norm[slash + i + 1..]),
        None => (norm, ""),
    }
}

/// How well selector `sel` names reference `name`: 0 the same reference once normalised (`localhost/`,
/// `docker.io/[library/]` dropped, `:latest` added), 1 a short name (the trailing path components of
/// the repository, e.g. `x1agent/runtime-opencode:leaky` or `runtime-opencode:leaky`), 2 a bare tag
/// (`leaky`). `None` when it does not name it.
fn match_rank(sel: &str, name: &str) -> Option<u8> {
    if sel == name {
        return Some(0);
    }
    let (s, n) = (normalise_ref(sel), normalise_ref(name));
    if s == n {
        return Some(0);
    }
    let ((srepo, stag), (nrepo, ntag)) = (repo_tag(&s), repo_tag(&n));
    if stag == ntag && nrepo.ends_with(&format!("/{srepo}")) {
        return Some(1);
    }
    // A bare tag names only a tag the reference spells out (an OCI `ref.name` of `edge` is a tag
    // itself, not `edge:latest`).
    let last = name.rsplit('/').next().unwrap_or(name);
    let written_tag = last
        .split('@')
        .next()
        .and_then(|l| l.split_once(':'))
        .map(|(_, t)| t);
    if !sel.contains(['/', ':', '@']) && written_tag == Some(sel) {
        return Some(2);
    }
    None
}

#[cfg(test)]
fn tag_matches(sel: &str, name: &str) -> bool {
    match_rank(sel, name).is_some()
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
        Selector::Tag(t) => {
            let rank = |top: usize, img: &Image| {
                tops[top]
                    .1
                    .iter()
                    .chain(&img.ref_names)
                    .filter_map(|r| match_rank(t, r))
                    .min()
            };
            let best = images.iter().filter_map(|(top, i)| rank(*top, i)).min();
            let picked: Vec<(usize, Image)> = images
                .into_iter()
                .filter(|(top, img)| best.is_some() && rank(*top, img) == best)
                .collect();
            // A short name or a bare tag must name one image; list the candidates otherwise.
            let distinct: BTreeSet<&Digest> = picked.iter().map(|(t, _)| &tops[*t].0).collect();
            if best.is_some_and(|b| b > 0) && distinct.len() > 1 {
                return Err(Error::Usage(format!(
                    "{path}: {t:?} names several images; give the full name or a digest:\n{}",
                    describe(&picked, &tops)
                )));
            }
            picked
        }
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
        let podman = "localhost/x1agent/runtime-opencode:leaky";
        for sel in [
            "x1agent/runtime-opencode:leaky",
            "runtime-opencode:leaky",
            "leaky",
            podman,
        ] {
            assert!(tag_matches(sel, podman), "{sel}");
        }
        assert_eq!(
            match_rank("x1agent/runtime-opencode:leaky", podman),
            Some(0)
        );
        assert_eq!(match_rank("leaky", podman), Some(2));
        assert!(!tag_matches("runtime-opencode", podman));
        assert!(!tag_matches("latest", "edge"), "an OCI ref.name is a tag");
        assert!(tag_matches("latest", "localhost/x:latest"));
        assert!(!tag_matches("opencode:leaky", podman));
        assert!(!tag_matches("other/runtime-opencode:leaky", podman));
        assert!(tag_matches("alpine", "docker.io/library/alpine:latest"));
        assert!(tag_matches("library/alpine:latest", "alpine"));
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
        assert_eq!((path, sel), (ps.clone(), Selector::Digest(d)));
        assert!(split_spec("/nonexistent/x:y").is_err());
        let (path, sel) = split_spec(&format!("oci:{ps}:v2")).expect("oci: alias");
        assert_eq!((path, sel), (ps.clone(), Selector::Tag("v2".into())));
        let (path, _) = split_spec(&format!("docker-archive:{ps}")).expect("alias");
        assert_eq!(path, ps);
    }

    #[test]
    fn remote_references_are_usage_errors() {
        for r in [
            "docker://docker.io/library/alpine:3.20",
            "registry.example.com:5000/x1agent/runtime-opencode:edge",
            "localhost:5000/repo:tag",
            "ghcr.io/x1agent/runtime@sha256:0000",
            "containers-storage:localhost/x:1",
        ] {
            assert!(remote_reference(r).is_some(), "{r}");
            let e = split_spec(r).expect_err(r);
            assert_eq!(e.exit_code(), 2, "{r}: {e}");
            assert!(e.to_string().contains("reads local images"), "{e}");
        }
        for p in [
            "./missing.tar",
            "/tmp/none/x.tar",
            "image.tar",
            "out/x.tar:tag",
        ] {
            assert!(remote_reference(p).is_none(), "{p}");
            assert_eq!(split_spec(p).expect_err(p).exit_code(), 3, "{p}");
        }
    }
}
