//! RFC 3339 timestamps for query parameters, and their rendering.

use setten_agent::record::Rfc3339;

/// Parses an RFC 3339 date-time (RFC 3339 §5.6: `2026-10-05T09:00:00+09:00`, `Z`, an
/// optional fraction; `t`/`z` and a space for `T` are accepted too) into µs since the
/// Unix epoch. Times before 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("`{s}` is not an RFC 3339 time such as 2026-10-05T09:00:00+09:00 ({why})")
    };
    let b = s.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return Err(bad("wrong length"));
    }
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or_else(|| bad("truncated"))?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("digits expected"));
        }
        part.parse::<i64>().map_err(|_| bad("digits expected"))
    };
    let sep = |at: usize, ok: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if ok.contains(c) => Ok(()),
            _ => Err(bad("separator")),
        }
    };
    let year = num(0, 4)?;
    sep(4, b"-")?;
    let month = num(5, 2)?;
    sep(7, b"-")?;
    let day = num(8, 2)?;
    sep(10, b"Tt ")?;
    let hour = num(11, 2)?;
    sep(13, b":")?;
    let minute = num(14, 2)?;
    sep(16, b":")?;
    let second = num(17, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // A leap second (60) is read as the last second of the minute.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time"));
    }
    let mut i = 19;
    let mut micros = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 6 {
                micros = micros * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err(bad("digits expected after `.`"));
        }
        for _ in (i - start)..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(c @ (b'+' | b'-')) if i + 6 == b.len() => {
            sep(i + 3, b":")?;
            let h = num(i + 1, 2)?;
            let m = num(i + 4, 2)?;
            if h > 23 || m > 59 {
                return Err(bad("no such offset"));
            }
            let o = h * 3600 + m * 60;
            if *c == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return Err(bad("a zone such as Z or +09:00 expected at the end")),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    if secs < 0 {
        return Err(bad("before 1970"));
    }
    Ok(secs * 1_000_000 + micros)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (H. Hinnant, "chrono-Compatible Low-Level Date
/// Algorithms", `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// µs since the epoch as RFC 3339 UTC (`None` and negatives as `None`).
pub fn render(us: Option<i64>) -> Option<String> {
    us.and_then(|u| u64::try_from(u).ok())
        .map(|u| Rfc3339(u).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_fractions_and_round_trips_with_the_agents_rendering() {
        // 2026-10-05T00:00:00Z, the agent tests' T0.
        let t0 = 1_791_158_400_000_000;
        assert_eq!(parse_rfc3339("2026-10-05T00:00:00Z").unwrap(), t0);
        assert_eq!(parse_rfc3339("2026-10-05T09:00:00+09:00").unwrap(), t0);
        assert_eq!(parse_rfc3339("2026-10-04T23:30:00-00:30").unwrap(), t0);
        assert_eq!(
            parse_rfc3339("2026-10-05T00:00:00.5Z").unwrap(),
            t0 + 500_000
        );
        assert_eq!(
            parse_rfc3339("2026-10-05t00:00:00.123456789z").unwrap(),
            t0 + 123_456
        );
        let r = Rfc3339(1_700_000_123_456_789).to_string();
        assert_eq!(parse_rfc3339(&r).unwrap(), 1_700_000_123_456_789);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z").unwrap(),
            1_709_164_800_000_000
        );
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "2026-10-05",
            "2026-10-05T00:00:00",
            "2026-13-05T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-10-05T24:00:00Z",
            "2026-10-05T00:00:00+0900",
            "2026-10-05T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "２０２６-10-05T00:00:00Z",
            "2026-10-05T00:00:00Zjunk",
        ] {
            let e = parse_rfc3339(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }
}
