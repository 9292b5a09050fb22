//! Secret-value checks: `secret-in-layer`, `secret-in-metadata`, and the by-value parts of
//! `provider-env` and `build-secret`. (Owned by the secrets work.)
//!
//! Layer content was scanned during the layer pass ([`SecretScanner`], one per layer); here its hits
//! become findings with the entry's fate and the layer's `created_by`. Metadata is scanned here: config
//! `Env` values (`provider-env`), history `created_by`/`comment` (`build-secret`), labels, manifest and
//! index annotations and attestation blobs (`secret-in-metadata`). By-name assignments in `Env` and
//! history are `checks::env`'s; here those two only match secret values.

use crate::rules::RuleId;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use super::support::{config_location, finding, layer_ref};
use super::{CheckInput, CheckOutcome};
use crate::image::{Descriptor, Digest};
use crate::report::{Evidence, Finding, Location};
use crate::scan::{Patterns, SecretScanner, scan_value};

/// The pattern that matches by variable name; `checks::env` owns names in `Env` and history.
const ASSIGNMENT: &str = "provider-credential-assignment";
/// Manifests of attestations are small JSON documents.
const MANIFEST_LIMIT: u64 = 4 << 20;

const HELP_LAYER: &str = "Remove the file from the layer that adds it — deleting it in a later layer \
    does not help, the earlier blob still ships — and rotate the key: it has been published.";
const HELP_META: &str = "Remove the value from the image metadata (build args, ENV, LABEL, annotations, \
    attestations); let the sidecar provide credentials at run time, and rotate the key.";

/// Outcomes for `secret-in-layer`, `secret-in-metadata`, and the by-value parts of `provider-env` and
/// `build-secret`. `scans[i]` is the scanner that read layer `i`.
pub fn check(input: &CheckInput<'_>) -> Vec<CheckOutcome> {
    let scans = input.scans;
    let patterns = &input.rules.secrets;
    let mut meta = Meta::new(patterns);
    let mut layer = layer_outcome(input, scans);

    let env = meta.env(input);
    let history = meta.history(input);
    let mut metadata = meta.labels_and_annotations(input);
    metadata.extend(meta.attestations(input));

    let mut provider_env = CheckOutcome::from_findings(RuleId::ProviderEnv, env);
    let mut build_secret = CheckOutcome::from_findings(RuleId::BuildSecret, history);
    let mut in_metadata = CheckOutcome::from_findings(RuleId::SecretInMetadata, metadata);
    in_metadata.notes = std::mem::take(&mut meta.notes);
    for (rule, outcome) in [
        (RuleId::ProviderEnv, &mut provider_env),
        (RuleId::BuildSecret, &mut build_secret),
        (RuleId::SecretInMetadata, &mut in_metadata),
    ] {
        if let Some(s) = meta.suppressed.remove(&rule) {
            outcome.suppressed = s;
        }
    }
    layer.detail = Some(format!(
        "{} bytes of {} layers scanned with {} patterns",
        scans.iter().map(|s| s.found.bytes_scanned).sum::<u64>(),
        scans.len(),
        patterns.patterns().len()
    ));
    vec![layer, in_metadata, provider_env, build_secret]
}

/// `secret-in-layer` from the per-layer scanners.
fn layer_outcome(input: &CheckInput<'_>, scans: &[SecretScanner]) -> CheckOutcome {
    let mut findings = Vec::new();
    let mut notes = Vec::new();
    let mut suppressed: BTreeMap<String, u64> = BTreeMap::new();
    for (i, scan) in scans.iter().enumerate() {
        // A layer's entries are in tar order: the hit's entry is found by its ordinal without a map
        // of every entry.
        let entries = input.listings.get(i).map(|l| &l.entries);
        for hit in &scan.found.hits {
            let at = entries.and_then(|es| es.by_ordinal(hit.ordinal));
            let fate = at.map_or_else(
                || "visible".to_string(),
                |e| super::support::fate_text(input, i, e),
            );
            let description = pattern_description(&input.rules.secrets, &hit.evidence.pattern);
            let mut f = finding(
                RuleId::SecretInLayer,
                format!("{description} in layer {i} at {} ({fate})", hit.path),
                Some(HELP_LAYER.into()),
                Location::Entry {
                    layer: layer_ref(input, i),
                    path: hit.path.clone(),
                    fate,
                    offset: Some(hit.offset),
                    line: hit.line,
                },
            );
            f.evidence = Some(hit.evidence.clone());
            findings.push(f);
        }
        notes.extend(scan.found.notes.iter().map(|n| format!("layer {i}: {n}")));
        if scan.found.dropped > 0 {
            notes.push(format!(
                "layer {i}: {} more secret matches were not listed (limit {} per layer)",
                scan.found.dropped,
                crate::scan::MAX_HITS_PER_LAYER
            ));
        }
        for (k, v) in &scan.found.suppressed {
            *suppressed.entry(k.clone()).or_default() += v;
        }
    }
    let mut out = CheckOutcome::from_findings(RuleId::SecretInLayer, findings);
    out.notes = notes;
    out.suppressed = suppressed;
    out
}

fn pattern_description(p: &Patterns, id: &str) -> String {
    p.patterns()
        .iter()
        .find(|x| x.id == id)
        .map_or_else(|| id.to_string(), |x| x.description.clone())
}

/// JSON-pointer escaping of one reference token.
fn pointer_token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Metadata scanning state.
struct Meta<'p> {
    patterns: &'p Patterns,
    notes: Vec<String>,
    /// rule id → allowlist id → count.
    suppressed: BTreeMap<RuleId, BTreeMap<String, u64>>,
}

impl<'p> Meta<'p> {
    fn new(patterns: &'p Patterns) -> Self {
        Meta {
            patterns,
            notes: Vec::new(),
            suppressed: BTreeMap::new(),
        }
    }

    /// Matches in `value` (minus by-name assignments when `names_elsewhere`), allowlist applied with
    /// `where_` as the path.
    fn matches(
        &mut self,
        rule: RuleId,
        where_: &str,
        value: &str,
        names_elsewhere: bool,
    ) -> Vec<Evidence> {
        let mut out = Vec::new();
        for ev in scan_value(self.patterns, value.as_bytes()) {
            if names_elsewhere && ev.pattern == ASSIGNMENT {
                continue;
            }
            if let Some(a) = self.patterns.allowed(where_, &ev.pattern, &ev.fingerprint) {
                *self
                    .suppressed
                    .entry(rule)
                    .or_default()
                    .entry(a.id.clone())
                    .or_default() += 1;
                continue;
            }
            out.push(ev);
        }
        out
    }

    fn push(
        &mut self,
        out: &mut Vec<Finding>,
        rule: RuleId,
        what: &str,
        location: &Location,
        evs: Vec<Evidence>,
    ) {
        for ev in evs {
            let description = pattern_description(self.patterns, &ev.pattern);
            let mut f = finding(
                rule,
                format!("{description} in {what}"),
                Some(HELP_META.into()),
                location.clone(),
            );
            f.evidence = Some(ev);
            out.push(f);
        }
    }

    /// `provider-env` by value: every `Env` value.
    fn env(&mut self, input: &CheckInput<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, kv) in input.image.config.env.iter().enumerate() {
            let (name, value) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
            let pointer = format!("/config/Env/{i}");
            let evs = self.matches(RuleId::ProviderEnv, &pointer, value, true);
            let what = format!("the config Env value of {name}");
            self.push(
                &mut out,
                RuleId::ProviderEnv,
                &what,
                &config_location(pointer),
                evs,
            );
        }
        out
    }

    /// `build-secret` by value: history `created_by` and `comment`.
    fn history(&mut self, input: &CheckInput<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for (i, h) in input.image.config.history.iter().enumerate() {
            for (field, text) in [("created_by", &h.created_by), ("comment", &h.comment)] {
                let Some(text) = text else { continue };
                let pointer = format!("/history/{i}/{field}");
                let evs = self.matches(RuleId::BuildSecret, &pointer, text, true);
                let what = format!("history[{i}].{field}");
                self.push(
                    &mut out,
                    RuleId::BuildSecret,
                    &what,
                    &config_location(pointer),
                    evs,
                );
            }
        }
        out
    }

    /// Labels, the manifest's, config's and layers' descriptor annotations, index annotations.
    fn labels_and_annotations(&mut self, input: &CheckInput<'_>) -> Vec<Finding> {
        let rule = RuleId::SecretInMetadata;
        let mut out = Vec::new();
        for (k, v) in &input.image.config.labels {
            let pointer = format!("/config/Labels/{}", pointer_token(k));
            let evs = self.matches(rule, &pointer, &format!("{k}={v}"), false);
            self.push(
                &mut out,
                rule,
                &format!("label {k}"),
                &config_location(pointer),
                evs,
            );
        }
        let manifest = input.image.manifest.digest.to_string();
        let mut annotated: Vec<(String, &BTreeMap<String, String>)> = vec![
            ("/annotations".into(), &input.image.annotations),
            (
                "/config/annotations".into(),
                &input.image.config_descriptor.annotations,
            ),
        ];
        for (i, l) in input.image.layers.iter().enumerate() {
            annotated.push((
                format!("/layers/{i}/annotations"),
                &l.descriptor.annotations,
            ));
        }
        for (base, map) in annotated {
            for (k, v) in map {
                let pointer = format!("{base}/{}", pointer_token(k));
                let evs = self.matches(rule, &pointer, &format!("{k}={v}"), false);
                let loc = Location::Manifest {
                    digest: manifest.clone(),
                    pointer,
                };
                self.push(
                    &mut out,
                    rule,
                    &format!("manifest annotation {k}"),
                    &loc,
                    evs,
                );
            }
        }
        for (where_, k, v) in &input.opened.annotations {
            let pointer = format!("/annotations/{}", pointer_token(k));
            let evs = self.matches(
                rule,
                &format!("{where_}{pointer}"),
                &format!("{k}={v}"),
                false,
            );
            let loc = Location::Manifest {
                digest: where_.clone(),
                pointer,
            };
            self.push(
                &mut out,
                rule,
                &format!("annotation {k} of {where_}"),
                &loc,
                evs,
            );
        }
        out
    }

    /// Attestation blobs (and, for attestation manifests, their config and layers: in-toto
    /// statements), streamed through the content scanner.
    fn attestations(&mut self, input: &CheckInput<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        for att in &input.opened.attestations {
            let mut blobs = vec![att.descriptor.clone()];
            if att.descriptor.media_type.contains("manifest") {
                match input
                    .opened
                    .source
                    .blob_bytes(&att.descriptor, MANIFEST_LIMIT)
                {
                    Ok(bytes) => blobs.extend(referenced(&bytes)),
                    Err(e) => self.notes.push(format!(
                        "attestation manifest {} could not be read: {e}",
                        att.descriptor.digest
                    )),
                }
            }
            for desc in blobs {
                self.scan_blob(input, &desc, &mut out);
            }
        }
        out
    }

    fn scan_blob(&mut self, input: &CheckInput<'_>, desc: &Descriptor, out: &mut Vec<Finding>) {
        let rule = RuleId::SecretInMetadata;
        let digest = desc.digest.to_string();
        let mut scanner = SecretScanner::new(Arc::new(self.patterns.clone()));
        let res = input
            .opened
            .source
            .blob(desc)
            .map_err(|e| e.to_string())
            .and_then(|mut r| {
                scanner
                    .scan_stream(0, &digest, &mut r as &mut dyn Read)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = res {
            self.notes.push(format!(
                "attestation blob {digest} could not be scanned: {e}"
            ));
        }
        self.notes.extend(
            scanner
                .found
                .notes
                .iter()
                .map(|n| format!("attestation {digest}: {n}")),
        );
        for (k, v) in scanner.found.suppressed {
            *self
                .suppressed
                .entry(rule)
                .or_default()
                .entry(k)
                .or_default() += v;
        }
        let loc = Location::Blob {
            digest: digest.clone(),
            media_type: desc.media_type.clone(),
        };
        for hit in scanner.found.hits {
            let what = format!("attestation blob {} at byte {}", hit.path, hit.offset);
            self.push(out, rule, &what, &loc, vec![hit.evidence]);
        }
    }
}

/// The config and layer descriptors an attestation manifest refers to.
fn referenced(manifest: &[u8]) -> Vec<Descriptor> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(manifest) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let layers = doc.get("layers").and_then(|l| l.as_array());
    let config = doc.get("config");
    for d in config.into_iter().chain(layers.into_iter().flatten()) {
        let media_type = d.get("mediaType").and_then(|v| v.as_str()).unwrap_or("");
        let digest = d.get("digest").and_then(|v| v.as_str()).unwrap_or("");
        let size = d.get("size").and_then(serde_json::Value::as_u64);
        // A digest that is not one x1-validate verifies names no blob it can read.
        let (Ok(digest), Some(size)) = (digest.parse::<Digest>(), size) else {
            continue;
        };
        out.push(Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: BTreeMap::new(),
            platform: None,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_tokens_are_escaped() {
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }

    #[test]
    fn attestation_manifest_references() {
        let (aa, bb) = ("a".repeat(64), "b".repeat(64));
        let m = format!(
            r#"{{"config":{{"mediaType":"x","digest":"sha256:{aa}","size":2}},
            "layers":[{{"mediaType":"application/vnd.in-toto+json","digest":"sha256:{bb}","size":7}},
                      {{"mediaType":"x","digest":"sha256:../../etc/passwd","size":7}}]}}"#
        );
        let d = referenced(m.as_bytes());
        assert_eq!(d.len(), 2, "the malformed digest is skipped");
        assert_eq!(d[1].digest.hex(), bb);
        assert_eq!(d[1].size, 7);
        assert!(referenced(b"not json").is_empty());
    }
}
