//! Whiteout marker classification and tar-path normalisation (pure functions): `.wh.<name>`,
//! `.wh..wh..opq`, invalid `.wh.`, AUFS metadata (`.wh..wh.plnk` …), and `..`/absolute names.

/// What a normalised tar path means for the merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// An ordinary entry.
    Plain,
    /// `.wh.<name>`: deletes `path` (parent joined with `<name>`) from lower layers.
    Whiteout(String),
    /// `.wh..wh..opq`: hides every lower child of the directory `path` (`""` = root).
    Opaque(String),
    /// `.wh.` with no name, or a name that is itself `.`/`..` after the prefix.
    Invalid,
    /// AUFS bookkeeping (`.wh..wh.plnk`, `.wh..wh.aufs`, and anything under them): not part of the
    /// filesystem, ignored.
    AufsMeta,
}

/// The opaque-directory marker's basename.
pub const OPAQUE: &str = ".wh..wh..opq";
/// The whiteout prefix.
pub const PREFIX: &str = ".wh.";

/// Classify a normalised path (no leading `/`, no `.`/`..` components).
pub fn classify(path: &str) -> Marker {
    let (parent, base) = split(path);
    if parent.split('/').any(|c| c.starts_with(".wh..wh.")) {
        return Marker::AufsMeta;
    }
    if base == OPAQUE {
        return Marker::Opaque(parent.to_string());
    }
    if base.starts_with(".wh..wh.") {
        return Marker::AufsMeta;
    }
    match base.strip_prefix(PREFIX) {
        None => Marker::Plain,
        Some("" | "." | "..") => Marker::Invalid,
        Some(name) => Marker::Whiteout(join(parent, name)),
    }
}

/// `(parent, basename)`; the parent of a top-level name is `""`.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((p, b)) => (p, b),
        None => ("", path),
    }
}

/// Join a (possibly empty) parent and a name.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// A normalised tar name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// No leading `/`, no empty/`.`/`..` components; `""` is the root.
    pub path: String,
    /// A `..` tried to climb above the root (the path is clamped there).
    pub escapes: bool,
    /// The raw name was absolute.
    pub absolute: bool,
}

/// Normalise a raw tar name lexically: drop empty and `.` components, apply `..` (clamped at the root).
pub fn normalise(raw: &str) -> Normalised {
    let mut parts: Vec<&str> = Vec::new();
    let mut escapes = false;
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    escapes = true;
                }
            }
            _ => parts.push(c),
        }
    }
    Normalised {
        path: parts.join("/"),
        escapes,
        absolute: raw.starts_with('/'),
    }
}

/// Whether a symlink at `path` with `target` points above the root when resolved lexically from its
/// directory (absolute targets are resolved from the image root and never escape).
pub fn symlink_escapes(path: &str, target: &str) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let (parent, _) = split(path);
    let mut depth = parent.split('/').filter(|c| !c.is_empty()).count();
    for c in target.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if depth == 0 {
                    return true;
                }
                depth -= 1;
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_markers() {
        assert_eq!(classify("a/b"), Marker::Plain);
        assert_eq!(classify("a/.wh.b"), Marker::Whiteout("a/b".into()));
        assert_eq!(classify(".wh.b"), Marker::Whiteout("b".into()));
        assert_eq!(classify("a/.wh..wh..opq"), Marker::Opaque("a".into()));
        assert_eq!(classify(".wh..wh..opq"), Marker::Opaque(String::new()));
        assert_eq!(classify("a/.wh."), Marker::Invalid);
        assert_eq!(classify(".wh..wh.plnk"), Marker::AufsMeta);
        assert_eq!(classify(".wh..wh.plnk/123.4"), Marker::AufsMeta);
        assert_eq!(classify("a/x.wh.b"), Marker::Plain);
    }

    #[test]
    fn normalises_names() {
        let n = normalise("./a//b/./c/");
        assert_eq!(
            (n.path.as_str(), n.escapes, n.absolute),
            ("a/b/c", false, false)
        );
        let n = normalise("../x");
        assert_eq!((n.path.as_str(), n.escapes), ("x", true));
        let n = normalise("/abs/p");
        assert_eq!((n.path.as_str(), n.absolute), ("abs/p", true));
        let n = normalise("a/../../b");
        assert_eq!((n.path.as_str(), n.escapes), ("b", true));
        assert_eq!(normalise("./").path, "");
    }

    #[test]
    fn detects_symlink_escapes() {
        assert!(!symlink_escapes("bin", "usr/bin"));
        assert!(!symlink_escapes("a/b", "../c"));
        assert!(symlink_escapes("a/b", "../../c"));
        assert!(symlink_escapes("x", ".."));
        assert!(!symlink_escapes("x", "/../../etc"));
    }
}
