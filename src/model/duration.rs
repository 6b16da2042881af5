//! Go-style duration text (`168h`, `10m`, `1h30m`, `0s`, `1.5h`) as the registry's config and
//! regfsck's flags use it. No I/O.

use std::time::Duration;

/// Parse a Go `time.ParseDuration`-style duration (units ns, us, ms, s, m, h; plus d for days).
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("invalid duration {text:?}: missing unit (use s, m, h or d)"))?;
        if num_len == 0 {
            return Err(format!("invalid duration {text:?}"));
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            u => return Err(format!("invalid duration {text:?}: unknown unit {u:?}")),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(format!("invalid duration {text:?}: too large"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Whole seconds as short duration text that `parse` reads back: `45s`, `9m30s`, `2h5m`, `3d4h`
/// (the two largest units).
pub fn format_short(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m, sec) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 => format!("{m}m"),
        (0, 0, _) => format!("{m}m{sec}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h{m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d{h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::{format_short, parse};

    #[test]
    fn short_text() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (600, "10m"),
            (570, "9m30s"),
            (7500, "2h5m"),
            (3600, "1h"),
            (273600, "3d4h"),
            (86400, "1d"),
        ] {
            assert_eq!(format_short(secs), text);
            assert!(parse(text).unwrap().as_secs() <= secs as u64);
        }
    }
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse("168h").unwrap(), Duration::from_secs(168 * 3600));
        assert_eq!(parse("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("2d").unwrap(), Duration::from_secs(172800));
        for bad in ["", "10", "h", "10x", "-1s", "1e400h"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
