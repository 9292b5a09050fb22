//! Writing to a registry, and OCI 1.1 referrers: an artifact manifest whose `subject` is the gated
//! digest, found through `GET /v2/<repo>/referrers/<digest>` or, where the registry has no referrers API
//! (CNCF Distribution 2.x), through the referrers tag schema: an image index tagged `sha256-<hex>`
//! listing the artifacts (read-modify-write; the last writer wins a race, as in the spec).

use std::collections::BTreeMap;
use std::io::Read;

use oci_spec::image::MediaType;
use serde_json::{Value, json};

use super::{Client, Manifest};
use crate::error::{Error, Result};
use crate::image::{Descriptor, Digest};

/// The OCI empty config (`{}`, [`MediaType::EmptyJSON`]) used by artifact manifests.
const EMPTY: &[u8] = b"{}";
/// Largest referrers list / artifact payload read.
const LIST_LIMIT: u64 = 4 * 1024 * 1024;

/// An artifact attached to a subject, as listed by the referrers API or the fallback tag.
#[derive(Debug, Clone)]
pub struct Referrer {
    pub descriptor: Descriptor,
    pub artifact_type: String,
}

impl Client {
    /// Upload a blob (monolithic POST + PUT), unless the registry already has it.
    pub fn push_blob(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::sha256_of(bytes);
        let head = self.send("HEAD", &self.url(&format!("blobs/{digest}")), &[], None)?;
        if head.status().as_u16() == 200 {
            return Ok(digest);
        }
        let start = self.send("POST", &self.url("blobs/uploads/"), &[], Some(&[]))?;
        if start.status().as_u16() != 202 {
            return Err(self.status_error("blob upload start", start));
        }
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::corrupt(
                    format!("registry {}", self.name()),
                    "the upload answer has no Location",
                )
            })?
            .to_string();
        let mut url = if location.starts_with("http://") || location.starts_with("https://") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str("digest=");
        url.push_str(&digest.to_string().replace(':', "%3A"));
        let len = bytes.len().to_string();
        let put = self.send(
            "PUT",
            &url,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            Some(bytes),
        )?;
        if put.status().as_u16() != 201 {
            return Err(self.status_error("blob upload", put));
        }
        Ok(digest)
    }

    /// PUT manifest bytes under `reference` (a tag or their digest). Returns whether the registry
    /// answered `OCI-Subject` (it indexed the subject itself: an OCI 1.1 referrers API).
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<bool> {
        let resp = self.send(
            "PUT",
            &self.url(&format!("manifests/{reference}")),
            &[("Content-Type", media_type)],
            Some(bytes),
        )?;
        if resp.status().as_u16() != 201 {
            return Err(self.status_error(&format!("manifest upload {reference}"), resp));
        }
        Ok(resp.headers().get("oci-subject").is_some())
    }

    /// Every tag of the repository (paginated with `Link`), empty when the repository has none.
    pub fn tags(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut url = self.url("tags/list?n=1000");
        for _ in 0..1000 {
            let resp = self.send("GET", &url, &[], None)?;
            match resp.status().as_u16() {
                200 => {}
                404 => return Ok(out),
                _ => return Err(self.status_error("tag list", resp)),
            }
            let next = resp
                .headers()
                .get("link")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| l.split_once('<').and_then(|(_, r)| r.split_once('>')))
                .map(|(u, _)| u.to_string());
            let doc = read_json(resp, LIST_LIMIT, "tag list")?;
            if let Some(tags) = doc.get("tags").and_then(Value::as_array) {
                out.extend(tags.iter().filter_map(|t| t.as_str().map(String::from)));
            }
            match next {
                Some(n) if n.starts_with('/') => url = format!("{}{n}", self.base),
                Some(n) if n.starts_with(&self.base) => url = n,
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Read a small blob, verified against `desc`.
    pub fn blob_bytes(&self, desc: &Descriptor, limit: u64) -> Result<Vec<u8>> {
        let what = format!("blob {}", desc.digest);
        if desc.size > limit {
            return Err(Error::corrupt(what, format!("larger than {limit} bytes")));
        }
        let r = self.open_blob(desc, &what)?;
        let mut v = Vec::new();
        crate::image::blob::VerifyingReader::new(r, desc.digest.clone(), desc.size, what.clone())
            .read_to_end(&mut v)
            .map_err(|e| crate::image::blob::from_io(e, &what))?;
        Ok(v)
    }

    /// Attach `payload` to `subject` as an artifact of `artifact_type`; returns the artifact
    /// manifest's descriptor and whether the referrers-tag fallback was used.
    pub fn attach(
        &self,
        subject: &Manifest,
        artifact_type: &str,
        payload: &[u8],
        annotations: &BTreeMap<String, String>,
    ) -> Result<(Descriptor, bool)> {
        let manifest_type = MediaType::ImageManifest.to_string();
        let index_type = MediaType::ImageIndex.to_string();
        self.push_blob(EMPTY)?;
        let layer = self.push_blob(payload)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "artifactType": artifact_type,
            "config": {"mediaType": MediaType::EmptyJSON.to_string(), "digest": Digest::sha256_of(EMPTY).to_string(), "size": EMPTY.len()},
            "layers": [{"mediaType": artifact_type, "digest": layer.to_string(), "size": payload.len()}],
            "subject": {"mediaType": subject.media_type, "digest": subject.digest.to_string(), "size": subject.bytes.len()},
            "annotations": annotations,
        });
        let bytes = serde_json::to_vec(&manifest).expect("a JSON value serialises");
        let digest = Digest::sha256_of(&bytes);
        let indexed = self.put_manifest(&digest.to_string(), &manifest_type, &bytes)?;
        let desc = Descriptor {
            media_type: manifest_type.clone(),
            digest,
            size: bytes.len() as u64,
            annotations: annotations.clone(),
            platform: None,
        };
        if indexed {
            return Ok((desc, false));
        }
        // Referrers tag schema: add the artifact to the index tagged sha256-<hex>.
        let tag = fallback_tag(&subject.digest);
        let mut list: Vec<Value> = match self.manifest(&tag)? {
            Some(m) => serde_json::from_slice::<Value>(&m.bytes)
                .ok()
                .and_then(|v| v.get("manifests").and_then(Value::as_array).cloned())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        list.retain(|e| e.get("digest").and_then(Value::as_str) != Some(&desc.digest.to_string()));
        list.push(json!({
            "mediaType": manifest_type,
            "digest": desc.digest.to_string(),
            "size": desc.size,
            "artifactType": artifact_type,
            "annotations": annotations,
        }));
        let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": list});
        let ib = serde_json::to_vec(&index).expect("a JSON value serialises");
        self.put_manifest(&tag, &index_type, &ib)?;
        Ok((desc, true))
    }

    /// The artifacts attached to `subject`: the referrers API when the registry has one, else the
    /// `sha256-<hex>` tag. Entries are attacker-written: the caller verifies what it reads.
    pub fn referrers(&self, subject: &Digest) -> Result<Vec<Referrer>> {
        let resp = self.send(
            "GET",
            &self.url(&format!("referrers/{subject}")),
            &[("Accept", MediaType::ImageIndex.as_ref())],
            None,
        )?;
        let status = resp.status().as_u16();
        let is_index = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|c| c.starts_with(MediaType::ImageIndex.as_ref()));
        let doc = if status == 200 && is_index {
            read_json(resp, LIST_LIMIT, "referrers list")?
        } else if status == 404 || status == 200 {
            match self.manifest(&fallback_tag(subject))? {
                Some(m) => crate::image::walk::parse_json(&m.bytes, "referrers tag index")?,
                None => return Ok(Vec::new()),
            }
        } else {
            return Err(self.status_error("referrers list", resp));
        };
        let mut out = Vec::new();
        for (i, v) in doc
            .get("manifests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let Ok(descriptor) = crate::image::walk::descriptor(v, &format!("referrer {i}")) else {
                continue;
            };
            out.push(Referrer {
                descriptor,
                artifact_type: v
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        Ok(out)
    }

    /// Fetch an artifact manifest and its single payload, verifying subject and digests.
    pub fn artifact_payload(&self, r: &Referrer, subject: &Digest) -> Result<(Value, Vec<u8>)> {
        let what = format!("artifact {}", r.descriptor.digest);
        let m = self
            .manifest(&r.descriptor.digest.to_string())?
            .ok_or_else(|| Error::corrupt(&what, "listed but missing"))?;
        let doc = crate::image::walk::parse_json(&m.bytes, &what)?;
        let subj = doc
            .get("subject")
            .and_then(|s| s.get("digest"))
            .and_then(Value::as_str);
        if subj != Some(&subject.to_string()) {
            return Err(Error::corrupt(&what, "its subject is not this image"));
        }
        let layer = doc
            .get("layers")
            .and_then(Value::as_array)
            .and_then(|l| l.first())
            .ok_or_else(|| Error::corrupt(&what, "no payload layer"))?;
        let ld = crate::image::walk::descriptor(layer, &format!("{what} layers[0]"))?;
        let payload = self.blob_bytes(&ld, LIST_LIMIT)?;
        Ok((doc, payload))
    }
}

/// `sha256-<hex>`: the referrers tag schema's tag for `subject`.
pub fn fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm(), subject.hex())
}

fn read_json(resp: super::client::Resp, limit: u64, what: &str) -> Result<Value> {
    let mut v = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit)
        .read_to_end(&mut v)
        .map_err(|e| crate::image::blob::from_io(e, what))?;
    crate::image::walk::parse_json(&v, what)
}
