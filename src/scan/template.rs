//! True-positive example templates: `sk-ant-api03-{b64u:93}AA` is expanded at test time with a random
//! body, so no live-looking key is ever committed. A placeholder is `{CLASS:N}`; every other character
//! (JSON braces included) is literal.
//!
//! Classes: `alnum` `[A-Za-z0-9]`, `upper` `[A-Z]`, `lower` `[a-z]`, `alpha` `[A-Za-z]`, `upnum`
//! `[A-Z0-9]`, `b32` `[A-Z2-7]`, `b32l` `[a-z2-7]`,
//! `hex` `[0-9a-f]`, `num` `[0-9]`, `b64` `[A-Za-z0-9+/]`, `b64u` `[A-Za-z0-9_-]`; and one-character
//! fills for false-positive examples: `xs` (x), `upx` (X), `zeros` (0), `as` (a), `upa` (A). `{CLASS:0}`
//! expands to nothing: it breaks a literal that other scanners would flag (`AKIAIOSFODNN7{upx:0}EXAMPLE`).

/// The alphabet of a class name.
pub fn alphabet(class: &str) -> Option<&'static [u8]> {
    Some(match class {
        "alnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "lower" => b"abcdefghijklmnopqrstuvwxyz",
        "alpha" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "b32l" => b"abcdefghijklmnopqrstuvwxyz234567",
        "upnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "b32" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "hex" => b"0123456789abcdef",
        "num" => b"0123456789",
        "b64" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "b64u" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
        "xs" => b"x",
        "upx" => b"X",
        "zeros" => b"0",
        "as" => b"a",
        "upa" => b"A",
        _ => return None,
    })
}

/// Expand `template`, drawing each placeholder character with `pick(alphabet)`. Returns `None` when a
/// `{CLASS:N}` names an unknown class.
pub fn expand(template: &str, pick: &mut dyn FnMut(&[u8]) -> u8) -> Option<String> {
    let mut out = String::with_capacity(template.len() * 2);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let spec = after.find('}').map(|close| (&after[..close], close));
        if let Some(((class, n), close)) =
            spec.and_then(|(body, close)| parse_spec(body).map(|s| (s, close)))
        {
            let alpha = alphabet(class)?;
            for _ in 0..n {
                out.push(char::from(pick(alpha)));
            }
            rest = &after[close + 1..];
        } else {
            out.push('{');
            rest = after;
        }
    }
    out.push_str(rest);
    Some(out)
}

/// `CLASS:N` with a lowercase class name and a count.
fn parse_spec(body: &str) -> Option<(&str, usize)> {
    let (class, n) = body.split_once(':')?;
    if class.is_empty()
        || !class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return None;
    }
    Some((class, n.parse().ok()?))
}

/// Whether `template` contains at least one placeholder (every tp example must).
pub fn has_placeholder(template: &str) -> bool {
    let mut n = 0;
    let mut count = |_: &[u8]| {
        n += 1;
        b'x'
    };
    expand(template, &mut count).is_some() && n > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_classes_and_keeps_braces() {
        let mut i = 0usize;
        let mut pick = |a: &[u8]| {
            i += 1;
            a[i % a.len()]
        };
        let s = expand(r#"{"k":"AKIA{upnum:4}"}"#, &mut pick).expect("known class");
        assert_eq!(s.len(), r#"{"k":"AKIA"}"#.len() + 4);
        assert!(s.starts_with(r#"{"k":"AKIA"#) && s.ends_with(r#""}"#));
        assert!(expand("{nope:3}", &mut pick).is_none());
        assert!(has_placeholder("x{hex:2}"));
        assert!(!has_placeholder("${VAR}"));
    }
}
