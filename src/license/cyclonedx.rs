//! `CycloneDX` 1.5 JSON for the inventory: one `library` component per package with its purl, the SPDX
//! expression (or the verbatim declaration as a license `name`), and `x1:*` properties for path, layer,
//! fate and license source. Deterministic: no timestamp, serial number derived from the image digest.

use std::fmt::Write as _;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Ecosystem, Inventory, Package, SpdxExpr};

/// What the BOM says about the image itself.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// The input or reference, e.g. `x1agent/runtime-opencode:edge`.
    pub name: &'a str,
    /// `sha256:…` of the manifest.
    pub manifest_digest: &'a str,
    /// `org.opencontainers.image.licenses`, if set.
    pub license_label: Option<&'a str>,
}

/// The BOM as a JSON value (mask it with [`crate::report::mask_json`], then serialise with
/// `serde_json::to_writer_pretty`: its strings come from the image).
pub fn bom(inv: &Inventory, subject: &Subject<'_>) -> Value {
    let components: Vec<Value> = inv
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| component(i, p))
        .collect();
    let mut image = json!({
        "type": "container",
        "bom-ref": "image",
        "name": subject.name,
        "version": subject.manifest_digest,
    });
    if let Some(l) = subject.license_label.and_then(|l| SpdxExpr::strict(l).ok()) {
        image["licenses"] = json!([{ "expression": l.as_str() }]);
    }
    json!({
        "$schema": "http://cyclonedx.org/schema/bom-1.5.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial(subject.manifest_digest),
        "version": 1,
        "metadata": {
            "tools": { "components": [{
                "type": "application",
                "name": "x1-validate",
                "version": env!("CARGO_PKG_VERSION"),
            }]},
            "component": image,
        },
        "components": components,
    })
}

fn component(i: usize, p: &Package) -> Value {
    let mut c = if p.ecosystem == Ecosystem::File {
        json!({
            "type": "file",
            "bom-ref": format!("{i}:file:{}", p.path),
            "name": p.name,
        })
    } else {
        let purl = purl(p);
        json!({
            "type": "library",
            "bom-ref": format!("{i}:{purl}"),
            "name": p.name,
            "version": p.version,
            "purl": purl,
        })
    };
    if let Some(e) = &p.expression {
        c["licenses"] = json!([{ "expression": e }]);
    } else if let Some(d) = &p.declared {
        c["licenses"] = json!([{ "license": { "name": d } }]);
    }
    let mut props = vec![
        prop("x1:path", &p.path),
        prop("x1:layer", &p.layer.to_string()),
        prop("x1:fate", &p.fate),
        prop("x1:license-source", p.source.as_str()),
    ];
    if let Some(l) = &p.license_path {
        props.push(prop("x1:license-path", l));
    }
    if let Some(score) = p.score {
        props.push(prop("x1:license-text-match-score", &format!("{score:.2}")));
    }
    if let Some(a) = &p.asserted_by {
        props.push(prop("x1:license-asserted-by", a));
    }
    if let Some(u) = &p.unknown {
        props.push(prop("x1:license-unknown", u.as_str()));
    }
    c["properties"] = Value::Array(props);
    c
}

fn prop(name: &str, value: &str) -> Value {
    json!({ "name": name, "value": value })
}

/// `pkg:npm/%40scope/name@1.0.0`, `pkg:deb/debian/curl@7.88.1-10%2Bdeb12u5`.
pub fn purl(p: &Package) -> String {
    match p.ecosystem {
        Ecosystem::Npm => {
            let name = match p.name.split_once('/') {
                Some((scope, n)) => format!("{}/{}", enc(scope), enc(n)),
                None => enc(&p.name),
            };
            format!("pkg:npm/{name}@{}", enc(&p.version))
        }
        Ecosystem::Deb => format!("pkg:deb/debian/{}@{}", enc(&p.name), enc(&p.version)),
        Ecosystem::File => String::new(),
    }
}

/// Percent-encode everything but unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `urn:uuid:` with a name-based (v5-shaped) UUID from the manifest digest.
fn serial(digest: &str) -> String {
    let h = Sha256::digest(format!("x1-validate licenses {digest}").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(eco: Ecosystem, name: &str, version: &str) -> Package {
        Package {
            ecosystem: eco,
            name: name.into(),
            version: version.into(),
            declared: Some("SEE LICENSE IN README.md".into()),
            expression: None,
            parsed: None,
            source: crate::license::LicenseSource::PackageJson,
            score: None,
            asserted_by: None,
            unknown: Some(crate::license::Unknown::new(
                crate::license::UnknownKind::NotSpdx,
                "not SPDX",
            )),
            path: "/p/package.json".into(),
            license_path: None,
            layer: 3,
            fate: "visible".into(),
        }
    }

    #[test]
    fn purls_are_encoded() {
        assert_eq!(
            purl(&pkg(Ecosystem::Npm, "@anthropic-ai/claude-code", "2.1.329")),
            "pkg:npm/%40anthropic-ai/claude-code@2.1.329"
        );
        assert_eq!(
            purl(&pkg(Ecosystem::Deb, "libc6", "2.36-9+deb12u10")),
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u10"
        );
    }

    #[test]
    fn bom_shape() {
        let inv = Inventory {
            packages: vec![pkg(Ecosystem::Npm, "a", "1")],
        };
        let b = bom(
            &inv,
            &Subject {
                name: "img",
                manifest_digest: "sha256:00",
                license_label: Some("MIT"),
            },
        );
        assert_eq!(b["specVersion"], "1.5");
        let serial = b["serialNumber"].as_str().unwrap();
        assert_eq!(serial.len(), "urn:uuid:".len() + 36);
        assert_eq!(&serial[23..24], "5");
        assert_eq!(
            b["components"][0]["licenses"][0]["license"]["name"],
            "SEE LICENSE IN README.md"
        );
        assert_eq!(
            b["metadata"]["component"]["licenses"][0]["expression"],
            "MIT"
        );
    }
}
