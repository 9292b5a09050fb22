//! JSONC (JSON with `//` and `/* */` comments and trailing commas) to JSON, preserving byte offsets so
//! that `serde_json`'s line/column in an error point at the original text.

/// Blank out comments and trailing commas (with spaces; newlines are kept).
pub fn to_json(text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    blank_comments(&mut b);
    blank_trailing_commas(&mut b);
    // Only ASCII bytes were replaced by ASCII spaces, and only outside strings / inside comments
    // whose UTF-8 sequences are blanked whole, so the result stays valid UTF-8.
    String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn blank_comments(b: &mut [u8]) {
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match (c, b.get(i + 1).copied()) {
            (b'"', _) => in_str = true,
            (b'/', Some(b'/')) => {
                while i < b.len() && b[i] != b'\n' {
                    b[i] = b' ';
                    i += 1;
                }
                continue;
            }
            (b'/', Some(b'*')) => {
                let end = b[i + 2..]
                    .windows(2)
                    .position(|w| w == b"*/")
                    .map_or(b.len(), |p| i + 2 + p + 2);
                for x in &mut b[i..end] {
                    if *x != b'\n' {
                        *x = b' ';
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn blank_trailing_commas(b: &mut [u8]) {
    let mut i = 0;
    let mut in_str = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b',' {
            let next = b[i + 1..].iter().find(|x| !x.is_ascii_whitespace());
            if matches!(next, Some(b'}' | b']')) {
                b[i] = b' ';
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::to_json;

    #[test]
    fn comments_and_trailing_commas() {
        let src = "{\n  // line\n  \"a\": \"http://x//y\", /* block\n */ \"b\": [1, 2,],\n  \"c\": \"\\\"//\",\n}\n";
        let v: serde_json::Value =
            serde_json::from_str(&to_json(src)).expect("valid after stripping");
        assert_eq!(v["a"], "http://x//y");
        assert_eq!(v["b"], serde_json::json!([1, 2]));
        assert_eq!(v["c"], "\"//");
        assert_eq!(to_json(src).len(), src.len());
    }

    #[test]
    fn errors_keep_their_line() {
        let src = "{\n// c\n\"a\": 1,\n\"b\": nope\n}";
        let e = serde_json::from_str::<serde_json::Value>(&to_json(src)).expect_err("invalid");
        assert_eq!(e.line(), 4);
    }
}
