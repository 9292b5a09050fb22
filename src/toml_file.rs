//! Strict TOML parsing of rule, preset and secret-pattern files, turning every parse or validation
//! problem into [`Error::RuleFile`] with a miette label on the offending span of the file. Its own module
//! (not `rules`) so that `rules` → `scan` (the compiled patterns) is the only edge between the two.
//! Fields whose errors need a label are `toml::Spanned` ([`SourceFile::error_in`]);
//! [`SourceFile::error_at`] searches the text and is the fallback for the rest.

use std::ops::Range;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// One rule/preset file's text and display name, kept for error labels.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

impl SourceFile<'_> {
    /// Deserialize the whole file strictly (the target types use `deny_unknown_fields`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        toml::from_str(self.text).map_err(|e| {
            let message = e.message().trim().to_string();
            self.error(
                format!("{}: {}", self.name, first_line(&message)),
                e.span(),
                message,
            )
        })
    }

    /// A rule-file error pointing at `span` (byte range into the text).
    pub fn error(&self, message: String, span: Option<Range<usize>>, label: String) -> Error {
        Error::RuleFile {
            message,
            src: miette::NamedSource::new(self.name, self.text.to_string()),
            span: span.map(|r| {
                let len = r.end.saturating_sub(r.start).max(1);
                miette::SourceSpan::from((r.start.min(self.text.len()), len))
            }),
            label,
        }
    }

    /// A validation error labelled at `span` (from a `toml::Spanned` field).
    pub fn error_in(&self, span: Range<usize>, message: &str) -> Error {
        let label = first_line(message).to_string();
        self.error(format!("{}: {message}", self.name), Some(span), label)
    }

    /// A validation error at the `nth` (0-based) occurrence of `needle` (e.g. `id = "x"`), or with no
    /// span when the text is not found.
    #[allow(clippy::needless_pass_by_value)] // callers build the message inline; shared with scan::patterns
    pub fn error_at(&self, needle: &str, nth: usize, message: String) -> Error {
        let span = self
            .text
            .match_indices(needle)
            .nth(nth)
            .map(|(i, _)| i..i + needle.len());
        let label = first_line(&message).to_string();
        self.error(format!("{}: {message}", self.name), span, label)
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn unknown_key_points_at_its_line() {
        let text = "a = 1\nbogus = 2\n";
        let src = SourceFile {
            name: "x.toml",
            text,
        };
        let Err(Error::RuleFile { span, message, .. }) = src.parse::<T>() else {
            panic!("expected a rule-file error");
        };
        let span = span.expect("toml errors carry a span");
        assert_eq!(
            &text[span.offset()..span.offset() + 5],
            "bogus",
            "{message}"
        );
    }

    #[test]
    fn error_at_finds_nth_needle() {
        let text = "[[r]]\nid = \"a\"\n[[r]]\nid = \"a\"\n";
        let src = SourceFile {
            name: "x.toml",
            text,
        };
        let Error::RuleFile { span, .. } = src.error_at("id = \"a\"", 1, "dup".into()) else {
            panic!("wrong variant");
        };
        assert_eq!(
            span.expect("found").offset(),
            text.rfind("id").expect("present")
        );
    }
}
