//! Units of the command line and the environment: sizes (`16GiB`) and durations (`10s`), as clap value
//! parsers and for `X1_VALIDATE_*` variables. A leaf module: the parts that read a size from the
//! environment (sandbox, cache) need not depend on the command line.

use std::time::Duration;

/// `123`, `64K`, `16GiB`, `1T` → bytes (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (e.g. 16GiB, 512M, 1000000)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Parse a duration: `10`, `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], s[i..].trim()));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 10s, 500ms)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (ms, s, m)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!("`{s}`: must be between 1ms and 1h"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        let size = |s| parse_size(s).ok();
        assert_eq!(size("1000"), Some(1000));
        assert_eq!(size("256K"), Some(256 << 10));
        assert_eq!(size("512MiB"), Some(512 << 20));
        assert_eq!(size("4g"), Some(4 << 30));
        assert_eq!(size("8GB"), Some(8 << 30));
        assert_eq!(size("1T"), Some(1 << 40));
        for bad in ["", "G", "4X", "-1", "1.5G", "99999999999999999999T"] {
            assert_eq!(size(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10").expect("ok"), Duration::from_secs(10));
        assert_eq!(
            parse_duration("500ms").expect("ok"),
            Duration::from_millis(500)
        );
        assert_eq!(parse_duration("2m").expect("ok"), Duration::from_secs(120));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
