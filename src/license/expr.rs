//! SPDX handling: what a package declares → an [`spdx::Expression`] (strict first, then the crate's
//! canonicalisation of lax forms such as `Apache 2.0` or `MIT/X11`), and the pattern type the deny list
//! and package exceptions use.

use std::fmt;

use serde::Deserialize;

/// Why a text is not an SPDX expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// The strict parse failed.
    #[error("`{text}` is not a valid SPDX expression: {reason}")]
    Invalid { text: String, reason: String },
    /// A package declaration that is empty.
    #[error("empty license declaration")]
    Empty,
    /// A package declaration that is not SPDX, not even in a lax spelling.
    #[error("`{text}` is not an SPDX expression{}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default())]
    NotSpdx {
        text: String,
        reason: Option<String>,
    },
}

/// A valid SPDX expression together with the canonical text it was parsed from.
#[derive(Clone)]
pub struct SpdxExpr {
    text: String,
    expr: spdx::Expression,
}

impl SpdxExpr {
    /// Strict SPDX parse (`LicenseRef-…` allowed), as used for policy files and image labels.
    pub fn strict(text: &str) -> Result<SpdxExpr, ExprError> {
        let text = text.trim();
        spdx::Expression::parse(text)
            .map(|expr| SpdxExpr {
                text: text.to_string(),
                expr,
            })
            .map_err(|e| ExprError::Invalid {
                text: text.to_string(),
                reason: e.reason.to_string(),
            })
    }

    /// Parse what a package declares: strict SPDX, else the `spdx` crate's canonical form of a lax
    /// spelling (`Apache 2.0`, `GPL-2.0+`, `MIT/X11`, lower-case operators), else an error saying why.
    pub fn declared(text: &str) -> Result<SpdxExpr, ExprError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ExprError::Empty);
        }
        if let Ok(e) = SpdxExpr::strict(trimmed) {
            return Ok(e);
        }
        match spdx::Expression::canonicalize(trimmed) {
            Ok(Some(canon)) => SpdxExpr::strict(&canon),
            Ok(None) | Err(_) => Err(ExprError::NotSpdx {
                text: trimmed.to_string(),
                reason: spdx::Expression::parse(trimmed)
                    .err()
                    .map(|e| e.reason.to_string()),
            }),
        }
    }

    /// The canonical text (`MIT`, `MIT OR Apache-2.0`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed expression.
    pub fn expression(&self) -> &spdx::Expression {
        &self.expr
    }

    /// Structural equality (same requirements and operators in the same order).
    pub fn same_as(&self, other: &SpdxExpr) -> bool {
        self.expr == other.expr
    }
}

impl PartialEq for SpdxExpr {
    fn eq(&self, other: &Self) -> bool {
        self.same_as(other)
    }
}

impl fmt::Debug for SpdxExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpdxExpr({:?})", self.text)
    }
}

impl fmt::Display for SpdxExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for SpdxExpr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SpdxExpr::strict(&s).map_err(serde::de::Error::custom)
    }
}

/// A license pattern from the deny list or a package exception: an exact SPDX license id (`BUSL-1.1`), a
/// `LicenseRef-…`, or a family prefix ending in `*` (`AGPL-*`, `CC-BY-NC-*`) that names at least one
/// license on the SPDX list. Exceptions (`WITH …`) are matched by the same rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePattern {
    text: String,
}

impl LicensePattern {
    /// Validate a pattern; typos (a pattern that matches nothing on the SPDX list) are errors.
    pub fn new(text: &str) -> Result<LicensePattern, String> {
        let text = text.trim();
        let ok = if let Some(prefix) = text.strip_suffix('*') {
            !prefix.is_empty()
                && spdx::identifiers::LICENSES
                    .iter()
                    .map(|l| l.name)
                    .chain(spdx::identifiers::EXCEPTIONS.iter().map(|e| e.name))
                    .any(|n| n.starts_with(prefix))
        } else {
            text.starts_with("LicenseRef-")
                || spdx::license_id(text).is_some()
                || spdx::exception_id(text).is_some()
        };
        if ok {
            Ok(LicensePattern {
                text: text.to_string(),
            })
        } else {
            Err(format!(
                "`{text}` is not an SPDX license or exception id, a `LicenseRef-…`, or a prefix `…*` \
                 of one"
            ))
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Does this pattern match an identifier (`AGPL-3.0-only`, `LicenseRef-Foo`)?
    pub fn matches_name(&self, name: &str) -> bool {
        match self.text.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.text,
        }
    }

    /// Does this pattern match a requirement's license or its `WITH` addition?
    pub fn matches(&self, req: &spdx::LicenseReq) -> bool {
        if self.matches_name(&license_name(&req.license)) {
            return true;
        }
        req.addition
            .as_ref()
            .is_some_and(|a| self.matches_name(&a.to_string()))
    }
}

impl<'de> Deserialize<'de> for LicensePattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        LicensePattern::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The identifier of a license item as the SPDX list spells it (`GPL-2.0-or-later`, `Apache-2.0`,
/// `LicenseRef-Foo`); a non-GNU `+` is dropped (the deny list names license families, not versions).
pub fn license_name(item: &spdx::LicenseItem) -> String {
    match item {
        spdx::LicenseItem::Spdx { id, or_later } => {
            if *or_later && id.is_gnu() && !id.name.ends_with("-or-later") {
                let base = id.name.trim_end_matches("-only");
                format!("{base}-or-later")
            } else {
                id.name.to_string()
            }
        }
        spdx::LicenseItem::Other(r) => r.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_lax_declarations() {
        assert_eq!(SpdxExpr::declared("MIT").unwrap().as_str(), "MIT");
        assert_eq!(
            SpdxExpr::declared("(MIT OR AGPL-3.0-only)")
                .unwrap()
                .as_str(),
            "(MIT OR AGPL-3.0-only)"
        );
        assert_eq!(
            SpdxExpr::declared("Apache 2.0").unwrap().as_str(),
            "Apache-2.0"
        );
        assert_eq!(
            SpdxExpr::declared("MIT/Apache-2.0").unwrap().as_str(),
            "MIT OR Apache-2.0"
        );
        let err = SpdxExpr::declared("SEE LICENSE IN README.md").unwrap_err();
        assert!(matches!(err, ExprError::NotSpdx { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("`SEE LICENSE IN README.md` is not an SPDX expression ("),
            "{err}"
        );
        assert_eq!(SpdxExpr::declared("   "), Err(ExprError::Empty));
        assert_eq!(
            SpdxExpr::declared("   ").unwrap_err().to_string(),
            "empty license declaration"
        );
        assert!(SpdxExpr::strict("Apache 2.0").is_err());
    }

    #[test]
    fn expression_equality_is_structural() {
        let a = SpdxExpr::strict("MIT").unwrap();
        let b = SpdxExpr::declared(" MIT ").unwrap();
        let c = SpdxExpr::strict("Apache-2.0").unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn patterns_validate_and_match() {
        assert!(LicensePattern::new("AGPL-*").is_ok());
        assert!(LicensePattern::new("BUSL-1.1").is_ok());
        assert!(LicensePattern::new("LicenseRef-Commons-Clause").is_ok());
        assert!(LicensePattern::new("LicenseRef-Anything").is_ok());
        assert!(LicensePattern::new("AGLP-*").is_err());
        assert!(LicensePattern::new("Busl").is_err());
        assert!(LicensePattern::new("*").is_err());
        let p = LicensePattern::new("AGPL-*").unwrap();
        let e = spdx::Expression::parse("AGPL-3.0-or-later").unwrap();
        let req = &e.requirements().next().unwrap().req;
        assert!(p.matches(req));
        let e = spdx::Expression::parse("GPL-2.0-or-later WITH Classpath-exception-2.0").unwrap();
        let req = &e.requirements().next().unwrap().req;
        assert!(!p.matches(req));
        assert!(
            LicensePattern::new("Classpath-exception-2.0")
                .unwrap()
                .matches(req)
        );
    }
}
