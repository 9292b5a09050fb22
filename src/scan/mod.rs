//! Secret scanning: patterns as data (`rules/secrets.toml`), one Aho–Corasick keyword prefilter, regexes
//! run near keyword hits, entropy filters, windowed streaming with overlap, nested archives to a bounded
//! depth, and redacted evidence.

/// The compiled secret patterns and allowlist.
#[derive(Debug, Clone, Default)]
pub struct Patterns {}
