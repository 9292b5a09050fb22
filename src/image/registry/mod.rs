//! Registry input (`docker://HOST[:PORT]/REPO:TAG` or `…@sha256:…`, skopeo's spelling) over the OCI
//! distribution API. The manifest named by the reference becomes a one-entry `index.json`, so the same
//! walk, selection and per-layer pass read it as any local input; every manifest, config and layer is
//! streamed from the registry through the same verifying reader (digest, size; `diff_id` in the layer
//! pass). Nothing is written to disk.
//!
//! Also the write side used by `check --attach`, `promote` and `verify`: blob upload, manifest PUT, tag
//! list, and OCI 1.1 referrers with the referrers-tag-schema fallback ([`referrers`]).

pub mod auth;
pub mod client;
pub mod referrers;

use std::io::{Cursor, Read};
use std::sync::atomic::{AtomicBool, Ordering};

use super::walk::JSON_LIMIT;
use super::{Descriptor, Digest, media};
use crate::error::{Error, Result};
pub use client::Client;

/// The prefix that marks a registry reference.
pub const SCHEME: &str = "docker://";

/// Every manifest type asked for (`Accept`): OCI index and manifest, Docker list and manifest.
pub fn manifest_accept() -> &'static str {
    static ACCEPT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ACCEPT.get_or_init(|| {
        [
            oci_spec::image::MediaType::ImageIndex.as_ref(),
            oci_spec::image::MediaType::ImageManifest.as_ref(),
            crate::image::media::DOCKER_LIST,
            crate::image::media::DOCKER_MANIFEST,
        ]
        .join(", ")
    })
}

static INSECURE: AtomicBool = AtomicBool::new(false);

/// `--insecure`: talk plain http to registries (loopback test registries).
pub fn set_insecure(on: bool) {
    INSECURE.store(on, Ordering::Relaxed);
}

/// Whether `--insecure` was given.
pub fn insecure() -> bool {
    INSECURE.load(Ordering::Relaxed)
}

/// A parsed `HOST[:PORT]/REPO[:TAG][@DIGEST]` (the part after `docker://`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub host: String,
    pub repo: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// Parse the text after `docker://`. A first component without `.`/`:` that is not `localhost`
    /// means Docker Hub (`library/` added to single names), as skopeo does.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| Error::Usage(format!("{SCHEME}{s}: {why}"));
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    Digest::parse(d)
                        .map_err(|_| bad("the part after @ is not a sha256:/sha512: digest"))?,
                ),
            ),
            None => (s, None),
        };
        let (host, path) = match rest.split_once('/') {
            Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => (h.to_string(), p),
            _ => ("docker.io".to_string(), rest),
        };
        // A `:` after the last `/` starts the tag.
        let (repo, tag) = match path.rfind(':') {
            Some(i) if !path[i..].contains('/') => (&path[..i], Some(path[i + 1..].to_string())),
            _ => (path, None),
        };
        let mut repo = repo.to_string();
        if host == "docker.io" && !repo.contains('/') {
            repo = format!("library/{repo}");
        }
        let comp_ok = |c: &str| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        };
        if host.is_empty() || repo.is_empty() || !repo.split('/').all(comp_ok) || repo.len() > 255 {
            return Err(bad(
                "expected HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:… (lowercase repository path)",
            ));
        }
        if let Some(t) = &tag
            && (t.is_empty()
                || t.len() > 128
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                || t.starts_with(['.', '-']))
        {
            return Err(bad("the tag must be [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("name a tag (:edge) or a digest (@sha256:…)"));
        }
        Ok(Reference {
            host,
            repo,
            tag,
            digest,
        })
    }

    /// The manifest reference used in the URL: the digest when there is one, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => unreachable!("parse requires a tag or a digest"),
        }
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.repo)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// A manifest as the registry served it: bytes, their digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub media_type: String,
}

impl Manifest {
    /// Its descriptor.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            annotations: std::collections::BTreeMap::new(),
            platform: None,
        }
    }
}

impl Client {
    /// A client for `r`'s repository, honouring `--insecure`.
    pub fn for_reference(r: &Reference) -> Result<Client> {
        Client::new(&r.host, &r.repo, insecure())
    }

    /// GET a manifest by tag or digest; `None` on 404. The bytes are hashed here: a digest reference
    /// whose bytes hash differently is corrupt.
    pub fn manifest(&self, reference: &str) -> Result<Option<Manifest>> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self.send("GET", &url, &[("Accept", manifest_accept())], None)?;
        match resp.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.status_error(&format!("manifest {reference}"), resp)),
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_string())
            .unwrap_or_default();
        let what = format!("manifest {reference} of {}", self.name());
        let mut bytes = Vec::new();
        resp.into_body()
            .into_reader()
            .take(JSON_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| super::blob::from_io(e, &what))?;
        if bytes.len() as u64 > JSON_LIMIT {
            return Err(Error::corrupt(
                what,
                format!("larger than the {JSON_LIMIT}-byte limit for JSON documents"),
            ));
        }
        let digest = Digest::sha256_of(&bytes);
        if let Ok(want) = Digest::parse(reference)
            && want.algorithm() == crate::image::digest::Algorithm::Sha256
            && want != digest
        {
            return Err(Error::corrupt(
                what,
                format!("digest mismatch: the registry served bytes hashing to {digest}"),
            ));
        }
        let doc: serde_json::Value = super::walk::parse_json(&bytes, &what)?;
        let declared = doc
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or_default();
        if declared.contains("distribution.manifest.v1")
            || ctype.contains("distribution.manifest.v1")
        {
            return Err(Error::corrupt(
                what,
                "Docker schema 1 manifests are not supported (re-push the image with a current client)",
            ));
        }
        let media_type = if media::is_index(&ctype) || media::is_manifest(&ctype) {
            ctype
        } else if !declared.is_empty() {
            declared.to_string()
        } else if doc.get("manifests").is_some() {
            "application/vnd.oci.image.index.v1+json".into()
        } else {
            "application/vnd.oci.image.manifest.v1+json".into()
        };
        Ok(Some(Manifest {
            bytes,
            digest,
            media_type,
        }))
    }

    /// Open a blob (or a manifest by digest, by its media type) as a stream; the caller verifies it.
    pub fn open_blob(&self, desc: &Descriptor, what: &str) -> Result<Box<dyn Read + Send>> {
        let is_manifest = media::is_index(&desc.media_type) || media::is_manifest(&desc.media_type);
        let kind = if is_manifest { "manifests" } else { "blobs" };
        let url = self.url(&format!("{kind}/{}", desc.digest));
        let accept: &[(&str, &str)] = if is_manifest {
            &[("Accept", manifest_accept())]
        } else {
            &[]
        };
        let resp = self.send("GET", &url, accept, None)?;
        match resp.status().as_u16() {
            200 => {}
            404 => {
                return Err(Error::corrupt(
                    what,
                    format!(
                        "missing: registry {} has no such {}",
                        self.name(),
                        &kind[..kind.len() - 1]
                    ),
                ));
            }
            _ => return Err(self.status_error(what, resp)),
        }
        if let Some(len) = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len != desc.size
        {
            return Err(Error::corrupt(
                what,
                format!(
                    "size differs: the descriptor says {} bytes, the registry serves {len}",
                    desc.size
                ),
            ));
        }
        Ok(Box::new(resp.into_body().into_reader()))
    }
}

/// A registry input: the client and the manifest the reference names.
#[derive(Debug)]
pub struct Remote {
    pub client: Client,
    pub reference: Reference,
    pub top: Manifest,
    index_json: Vec<u8>,
}

impl Remote {
    /// Resolve the reference: fetch (and verify) its manifest. A missing manifest is exit 3.
    pub fn connect(reference: &Reference) -> Result<Remote> {
        let client = Client::for_reference(reference)?;
        let mref = reference.manifest_ref();
        let top = client.manifest(&mref)?.ok_or_else(|| {
            Error::corrupt(
                format!("{SCHEME}{reference}"),
                format!(
                    "not found: registry {} has no manifest {mref}",
                    client.name()
                ),
            )
        })?;
        let mut annotations = serde_json::Map::new();
        if let Some(t) = &reference.tag {
            annotations.insert(
                "org.opencontainers.image.ref.name".into(),
                serde_json::Value::String(t.clone()),
            );
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": top.media_type,
                "digest": top.digest.to_string(),
                "size": top.bytes.len(),
                "annotations": annotations,
            }],
        });
        Ok(Remote {
            client,
            reference: reference.clone(),
            top,
            index_json: serde_json::to_vec(&index).expect("a JSON value serialises"),
        })
    }

    /// The synthetic `index.json` (one entry: the referenced manifest).
    pub fn index_json(&self) -> &[u8] {
        &self.index_json
    }

    /// A stream of the blob of `desc` (unverified: the caller wraps it in the verifying reader).
    pub fn open(&self, desc: &Descriptor, what: &str) -> Result<Box<dyn Read + Send>> {
        if desc.digest == self.top.digest {
            return Ok(Box::new(Cursor::new(self.top.bytes.clone())));
        }
        self.client.open_blob(desc, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_accept_names_the_four_manifest_types() {
        assert_eq!(
            manifest_accept(),
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, \
             application/vnd.docker.distribution.manifest.v2+json"
        );
    }

    #[test]
    fn references_parse_like_skopeo() {
        let r = Reference::parse("127.0.0.1:5000/x1agent/runtime-opencode:edge").expect("ok");
        assert_eq!(r.host, "127.0.0.1:5000");
        assert_eq!(r.repo, "x1agent/runtime-opencode");
        assert_eq!(r.tag.as_deref(), Some("edge"));
        assert_eq!(r.manifest_ref(), "edge");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("localhost/a/b@{d}")).expect("ok");
        assert_eq!(r.host, "localhost");
        assert_eq!(r.manifest_ref(), d);
        assert!(r.tag.is_none());
        let r = Reference::parse("busybox:1").expect("ok");
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("docker.io", "library/busybox")
        );
        for bad in [
            "h:5000/Upper:x",
            "h:5000/repo",
            "h:5000/repo@sha256:zz",
            "h:5000/repo:-x",
            "h:5000/:t",
        ] {
            assert!(
                matches!(Reference::parse(bad), Err(Error::Usage(_))),
                "{bad} should be a usage error"
            );
        }
    }
}
