//! `provider-env` and `build-secret` by variable name: a provider-credential variable
//! (`rules/credentials.toml`) assigned a non-empty literal in the config `Env`, or in a history
//! `created_by`/`comment` (`ENV K=V`, legacy `ENV K V`, `ARG K=V`, `BuildKit` `RUN |N K=V …`, inline
//! `K=V` in a `RUN`). An empty value or a reference (`${VAR}`, `$VAR`, `{env:VAR}`) is not a key. The
//! by-value halves of both rules live in `checks::secrets`.

use sha2::{Digest as _, Sha256};

use super::support::{config_location, finding};
use super::{CheckInput, CheckOutcome};
use crate::report::Evidence;
use crate::rules::{Credentials, RuleId};

/// Redacted evidence for a value: a short prefix, the length, a SHA-256 fingerprint.
pub fn evidence(value: &str, pattern: &str) -> Evidence {
    let chars = value.chars().count();
    let keep = (chars / 4).min(8);
    Evidence {
        prefix: value.chars().take(keep).collect(),
        length: value.len(),
        fingerprint: format!("sha256:{}", hex::encode(Sha256::digest(value.as_bytes()))),
        pattern: pattern.to_string(),
    }
}

/// Whether `value` holds a literal (not empty, not a reference to another variable).
pub fn is_literal(value: &str) -> bool {
    let v = value.trim();
    let v = strip_quotes(v).trim();
    if v.is_empty() {
        return false;
    }
    let ident = |s: &str| {
        let mut b = s.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_')
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
    };
    if let Some(inner) = v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        return !ident(inner);
    }
    if let Some(inner) = v.strip_prefix("{env:").and_then(|r| r.strip_suffix('}')) {
        return !ident(inner);
    }
    if let Some(inner) = v.strip_prefix('$') {
        return !ident(inner);
    }
    true
}

fn strip_quotes(v: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner;
        }
    }
    v
}

/// `provider-env` (by name).
pub fn provider_env(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::ProviderEnv;
    let creds = &input.rules.credentials;
    let mut findings = Vec::new();
    for (i, kv) in input.image.config.env.iter().enumerate() {
        let (name, value) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if creds.is_credential_var(name) && is_literal(value) {
            let mut f = finding(
                id,
                format!("config Env sets provider credential `{name}` to a literal value"),
                Some(format!(
                    "remove `ENV {name}`; providers authenticate through the sidecar. Rotate the key."
                )),
                config_location(format!("/config/Env/{i}")),
            );
            f.evidence = Some(evidence(value, name));
            findings.push(f);
        }
    }
    CheckOutcome::from_findings(id, findings)
}

/// `build-secret` (by name).
pub fn build_secret(input: &CheckInput<'_>) -> CheckOutcome {
    let id = RuleId::BuildSecret;
    let creds = &input.rules.credentials;
    let mut findings = Vec::new();
    for (i, h) in input.image.config.history.iter().enumerate() {
        for (field, text) in [("created_by", &h.created_by), ("comment", &h.comment)] {
            let Some(text) = text else { continue };
            for (name, value) in assignments(text, creds) {
                let mut f = finding(
                    id,
                    format!("history[{i}].{field} assigns provider credential `{name}` a literal value"),
                    Some(
                        "pass credentials with `RUN --mount=type=secret`, never ARG/ENV; rebuild and \
                         rotate the key"
                            .into(),
                    ),
                    config_location(format!("/history/{i}/{field}")),
                );
                f.evidence = Some(evidence(&value, &name));
                findings.push(f);
            }
        }
    }
    CheckOutcome::from_findings(id, findings)
}

/// Every `NAME=literal` (and legacy `ENV NAME literal`) assignment of a credential variable in `text`.
pub fn assignments(text: &str, creds: &Credentials) -> Vec<(String, String)> {
    let tokens = shell_words(text);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if let Some((name, value)) = t.split_once('=') {
            let value = value.trim_end_matches(';');
            if creds.is_credential_var(name) && is_literal(value) {
                out.push((name.to_string(), value.to_string()));
            }
        } else if t == "ENV" && i + 2 < tokens.len() && !tokens[i + 1].contains('=') {
            // legacy `ENV NAME value with spaces`: the rest of the instruction is the value
            let name = &tokens[i + 1];
            let value = tokens[i + 2..].join(" ");
            if creds.is_credential_var(name) && is_literal(&value) {
                out.push((name.clone(), value));
            }
            i = tokens.len();
        }
        i += 1;
    }
    out
}

/// Split like a POSIX shell would into words (quotes and backslashes honoured, no expansion);
/// `&&`, `||`, `;` and `|` separated by spaces become their own words.
pub fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                    cur.push(d);
                }
            }
            '"' => {
                in_word = true;
                while let Some(d) = chars.next() {
                    match d {
                        '"' => break,
                        '\\' => {
                            if let Some(e) = chars.next() {
                                cur.push(e);
                            }
                        }
                        _ => cur.push(d),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    cur.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toml_file::SourceFile;

    fn creds() -> Credentials {
        Credentials::load(&SourceFile {
            name: "credentials.toml",
            text: include_str!("../../rules/credentials.toml"),
        })
        .expect("shipped credentials load")
    }

    #[test]
    fn literals_and_references() {
        for v in [
            "",
            "''",
            "\"\"",
            "${OPENAI_API_KEY}",
            "$X1_TOKEN",
            "{env:X1_SIDECAR_TOKEN}",
            "  ",
        ] {
            assert!(!is_literal(v), "{v:?} is not a literal");
        }
        for v in ["abc", "${A}${B}", "sk-test", "${X:-fallback}", "$"] {
            assert!(is_literal(v), "{v:?} is a literal");
        }
    }

    #[test]
    fn history_forms() {
        let c = creds();
        let val = "abcdef0123456789";
        let cases = [
            format!("ENV OPENAI_API_KEY={val} OTHER=1"),
            format!("/bin/sh -c #(nop)  ENV ANTHROPIC_API_KEY {val}"),
            format!("ARG GITHUB_TOKEN={val}"),
            format!("RUN |2 GH_TOKEN={val} FOO=bar /bin/sh -c make # buildkit"),
            format!("/bin/sh -c export OPENROUTER_API_KEY=\"{val}\" && run"),
        ];
        for text in &cases {
            let a = assignments(text, &c);
            assert_eq!(a.len(), 1, "{text}: {a:?}");
            assert_eq!(a[0].1, val, "{text}");
        }
        for clean in [
            "ARG OPENAI_API_KEY",
            "ENV OPENAI_API_KEY=",
            "RUN |1 OPENAI_API_KEY= /bin/sh -c x",
            "ENV OPENAI_API_KEY=${OPENAI_API_KEY}",
            "ENV AWS_REGION=eu-west-1 GOOGLE_VERTEX_PROJECT=p",
            "ENV OPENAI_BASE_URL=http://localhost:11432/v1",
        ] {
            assert!(assignments(clean, &c).is_empty(), "{clean}");
        }
    }

    #[test]
    fn evidence_never_holds_the_value() {
        let v = "0123456789abcdefghijklmnopqrstuvwxyz0123";
        let e = evidence(v, "OPENAI_API_KEY");
        assert_eq!(e.length, v.len());
        assert!(e.prefix.len() <= 8 && v.starts_with(&e.prefix));
        assert!(e.fingerprint.starts_with("sha256:") && !e.fingerprint.contains(v));
    }
}
