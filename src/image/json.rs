//! One reading of every image JSON document, the reading Go-based runtimes make.
//!
//! docker, containerd, podman, skopeo and umoci decode with Go's `encoding/json`: an object key matches a
//! struct field *case-insensitively* (with Unicode simple folding, so `"Uſer"` is `User`) and when a field
//! is set twice the *last* occurrence wins; map keys (`Labels`, `annotations`, `Volumes`, `ExposedPorts`,
//! `LayerSources`, the `repositories` file) are case-sensitive but a repeated map key also keeps the last.
//! serde reads differently (a `Value` map keeps one of the duplicates, a derived struct refuses them), so
//! one document could show one image to the gate and another to the runtime. [`parse`] therefore refuses,
//! as corrupt input (exit 3), every object with an exact duplicate key, and every struct object with two
//! keys that differ only in case, naming both keys and the document. Keys of struct objects that match a
//! known field case-insensitively are then renamed to the field's spelling, so the rest of the reader sees
//! exactly the fields the runtime would see.
//!
//! Nesting is bounded by `serde_json`'s recursion limit (128); the post-pass is iterative.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Which image document is read: decides which objects are Go structs (case-insensitive fields) and
/// which are Go maps (case-sensitive keys), and the spelling of the known fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// An OCI index / image manifest, a Docker manifest list / v2 manifest (`index.json` and blobs whose
    /// kind is only known after parsing).
    Descriptors,
    /// An image config (OCI or Docker `image.Image`).
    Config,
    /// Docker's `manifest.json` (`[{Config, RepoTags, Layers, Parent, LayerSources}]`).
    DockerManifest,
    /// Docker's legacy `repositories` file (`{repo: {tag: id}}`, maps all the way down).
    Repositories,
}

/// Go struct objects whose values are maps (Go `map[string]…`): keys compared exactly.
const MAP_FIELDS: &[&str] = &[
    "annotations",
    "Labels",
    "Volumes",
    "ExposedPorts",
    "LayerSources",
];

/// Fields of OCI/Docker descriptors, indexes, manifests and platforms.
const DESCRIPTOR_FIELDS: &[&str] = &[
    "schemaVersion",
    "mediaType",
    "artifactType",
    "config",
    "layers",
    "manifests",
    "subject",
    "annotations",
    "digest",
    "size",
    "urls",
    "data",
    "platform",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "features",
];

/// Fields of an image config (image-spec `Image` + `ImageConfig`, docker `image.Image` + `container.Config`).
const CONFIG_FIELDS: &[&str] = &[
    "created",
    "author",
    "architecture",
    "os",
    "os.version",
    "os.features",
    "variant",
    "config",
    "container_config",
    "rootfs",
    "history",
    "type",
    "diff_ids",
    "created_by",
    "comment",
    "empty_layer",
    "User",
    "Env",
    "Entrypoint",
    "Cmd",
    "WorkingDir",
    "Labels",
    "ExposedPorts",
    "Volumes",
    "StopSignal",
    "StopTimeout",
    "ArgsEscaped",
    "Healthcheck",
    "Shell",
    "OnBuild",
    "Image",
    "Hostname",
    "Domainname",
    "id",
    "parent",
    "container",
    "docker_version",
];

/// Fields of a Docker `manifest.json` entry (and the descriptors in its `LayerSources`).
const DOCKER_MANIFEST_FIELDS: &[&str] = &[
    "Config",
    "RepoTags",
    "Layers",
    "Parent",
    "LayerSources",
    "mediaType",
    "size",
    "digest",
    "urls",
    "annotations",
];

impl Doc {
    fn fields(self) -> &'static [&'static str] {
        match self {
            Doc::Descriptors => DESCRIPTOR_FIELDS,
            Doc::Config => CONFIG_FIELDS,
            Doc::DockerManifest => DOCKER_MANIFEST_FIELDS,
            Doc::Repositories => &[],
        }
    }
}

/// Go's key folding (`encoding/json` `foldName`): ASCII letters upper-cased, the two non-ASCII runes
/// whose fold orbit contains an ASCII letter (KELVIN SIGN, LONG S) mapped onto it, other runes
/// upper-cased when that is one rune.
pub fn fold(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '\u{212A}' => out.push('K'),
            '\u{017F}' => out.push('S'),
            c if c.is_ascii() => out.push(c.to_ascii_uppercase()),
            c => {
                let mut up = c.to_uppercase();
                match (up.next(), up.next()) {
                    (Some(u), None) => out.push(u),
                    _ => out.push(c),
                }
            }
        }
    }
    out
}

/// Parse `bytes` as the document `doc`, named `what` in errors, the way the runtimes read it.
pub fn parse(bytes: &[u8], what: &str, doc: Doc) -> Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut value = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            let msg = e.to_string();
            if msg.contains("recursion limit exceeded") {
                Error::corrupt(
                    what,
                    format!("malformed JSON: nested deeper than 128 levels ({msg})"),
                )
            } else if e.is_data() {
                Error::corrupt(what, format!("ambiguous JSON: {msg}"))
            } else {
                Error::corrupt(what, format!("malformed JSON: {e}"))
            }
        })?;
    canonicalise(&mut value, doc)
        .map_err(|d| Error::corrupt(what, format!("ambiguous JSON: {d}")))?;
    Ok(value)
}

/// How the keys of an object are compared.
#[derive(Clone, Copy)]
enum Shape {
    /// A Go struct: fields match case-insensitively.
    Struct,
    /// A Go map of structs/scalars.
    Map,
    /// A Go map of maps (`repositories`).
    MapOfMaps,
}

fn is_map_field(key: &str) -> bool {
    let f = fold(key);
    MAP_FIELDS.iter().any(|m| fold(m) == f)
}

/// Check every struct object for case-variant keys and rename known fields to their spelling. Iterative.
fn canonicalise(root: &mut Value, doc: Doc) -> Result<(), String> {
    let top = if doc == Doc::Repositories {
        Shape::MapOfMaps
    } else {
        Shape::Struct
    };
    let fields = doc.fields();
    let mut stack: Vec<(&mut Value, Shape, String)> = vec![(root, top, String::new())];
    while let Some((v, shape, path)) = stack.pop() {
        match v {
            Value::Array(a) => {
                for (i, item) in a.iter_mut().enumerate() {
                    stack.push((item, shape, format!("{path}/{i}")));
                }
            }
            Value::Object(m) => {
                if matches!(shape, Shape::Struct) {
                    struct_keys(m, fields, &path)?;
                }
                for (k, child) in m.iter_mut() {
                    let child_shape = match shape {
                        Shape::MapOfMaps => Shape::Map,
                        Shape::Struct if is_map_field(k) => Shape::Map,
                        Shape::Map | Shape::Struct => Shape::Struct,
                    };
                    stack.push((child, child_shape, format!("{path}/{k}")));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Refuse two keys of one struct object that fold to the same name; spell known fields canonically.
fn struct_keys(
    m: &mut Map<String, Value>,
    fields: &[&'static str],
    path: &str,
) -> Result<(), String> {
    let mut folded: Vec<(String, &String)> = m.keys().map(|k| (fold(k), k)).collect();
    folded.sort();
    for w in folded.windows(2) {
        if w[0].0 == w[1].0 {
            let at = if path.is_empty() { "/" } else { path };
            return Err(format!(
                "keys {:?} and {:?} (in the object at {at}) differ only in case; Go-based runtimes \
                 match them to one field and keep the last",
                w[0].1, w[1].1
            ));
        }
    }
    let renames: Vec<(String, &'static str)> = folded
        .iter()
        .filter_map(|(f, k)| {
            let canon = fields.iter().find(|c| fold(c) == *f)?;
            (k.as_str() != *canon).then(|| ((*k).clone(), *canon))
        })
        .collect();
    for (from, to) in renames {
        if let Some(v) = m.remove(&from) {
            m.insert(to.to_string(), v);
        }
    }
    Ok(())
}

/// Builds a [`Value`], refusing a key repeated in one object.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Strict)?;
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!(
                    "key {k:?} appears twice in one object; Go-based runtimes keep the last"
                )));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str, doc: Doc) -> String {
        parse(s.as_bytes(), "doc", doc)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn exact_duplicates_are_refused_everywhere() {
        let e = err(r#"{"config":{"User":"a","User":"0"}}"#, Doc::Config);
        assert!(e.contains(r#"key "User" appears twice"#), "{e}");
        let e = err(r#"{"config":{"Labels":{"a":"1","a":"2"}}}"#, Doc::Config);
        assert!(e.contains(r#"key "a" appears twice"#), "{e}");
        let e = err(r#"{"r":{"t":"1","t":"2"}}"#, Doc::Repositories);
        assert!(e.contains("appears twice"), "{e}");
    }

    #[test]
    fn case_variants_are_refused_in_structs_only() {
        let e = err(r#"{"config":{"User":"a","user":"0"}}"#, Doc::Config);
        assert!(
            e.contains(r#"keys "User" and "user""#) && e.contains("/config"),
            "{e}"
        );
        let e = err(r#"{"layers":[],"Layers":[]}"#, Doc::Descriptors);
        assert!(e.contains("differ only in case"), "{e}");
        // Long S folds onto `s` in Go.
        let e = err(
            "{\"config\":{\"User\":\"a\",\"U\u{17F}er\":\"0\"}}",
            Doc::Config,
        );
        assert!(e.contains("differ only in case"), "{e}");
        // Map keys are case-sensitive in Go: both labels are kept, nothing is ambiguous.
        let v = parse(
            br#"{"config":{"Labels":{"a":"1","A":"2"}}}"#,
            "doc",
            Doc::Config,
        )
        .expect("labels a and A are two labels");
        assert_eq!(v["config"]["Labels"]["A"], "2");
        parse(br#"{"r":{"t":"1","T":"2"}}"#, "doc", Doc::Repositories).expect("map of maps");
        // Annotations in a descriptor nested in an index are maps too.
        parse(
            br#"{"manifests":[{"annotations":{"x":"1","X":"2"}}]}"#,
            "doc",
            Doc::Descriptors,
        )
        .expect("annotation keys are case-sensitive");
        let e = err(
            r#"{"manifests":[{"platform":{"os":"linux","OS":"windows"}}]}"#,
            Doc::Descriptors,
        );
        assert!(e.contains("/manifests/0/platform"), "{e}");
    }

    #[test]
    fn known_fields_are_spelled_as_the_runtime_reads_them() {
        let v = parse(
            br#"{"CONFIG":{"user":"0","env":["A=1"]},"RootFS":{"Diff_IDs":[]}}"#,
            "doc",
            Doc::Config,
        )
        .expect("parses");
        assert_eq!(v["config"]["User"], "0");
        assert_eq!(v["config"]["Env"][0], "A=1");
        assert!(v["rootfs"]["diff_ids"].is_array());
        let v = parse(
            "[{\"config\":\"c.json\",\"layers\":[\"l\"]}]".as_bytes(),
            "manifest.json",
            Doc::DockerManifest,
        )
        .expect("parses");
        assert_eq!(v[0]["Config"], "c.json");
        assert_eq!(v[0]["Layers"][0], "l");
    }

    #[test]
    fn deep_nesting_is_a_clean_error() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let e = err(&deep, Doc::Config);
        assert!(e.contains("deeper than 128"), "{e}");
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        parse(ok.as_bytes(), "doc", Doc::Config).expect("100 levels are fine");
    }
}
