//! The app's timestamp, as Loki wants it: nanoseconds since the epoch, from
//! RFC 3339 text or epoch seconds / milliseconds / microseconds / nanoseconds
//! (told apart by magnitude, as Vector and Promtail do).

use serde_json::Value;

/// Nanoseconds since the epoch of a timestamp field's value, if it is one.
pub fn parse(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                epoch_int(i)
            } else {
                epoch_float(n.as_f64()?)
            }
        }
        Value::String(s) => rfc3339(s).or_else(|| {
            let s = s.trim();
            match s.parse::<i64>() {
                Ok(i) => epoch_int(i),
                Err(_) => epoch_float(s.parse::<f64>().ok()?),
            }
        }),
        _ => None,
    }
}

fn epoch_int(i: i64) -> Option<i64> {
    let scale = match i.unsigned_abs() {
        0..100_000_000_000 => 1_000_000_000,
        100_000_000_000..100_000_000_000_000 => 1_000_000,
        100_000_000_000_000..100_000_000_000_000_000 => 1_000,
        _ => 1,
    };
    i.checked_mul(scale).filter(|ns| *ns > 0)
}

fn epoch_float(f: f64) -> Option<i64> {
    if !f.is_finite() || f <= 0.0 {
        return None;
    }
    let scale = if f < 1e11 {
        1e9
    } else if f < 1e14 {
        1e6
    } else if f < 1e17 {
        1e3
    } else {
        1.0
    };
    let ns = f * scale;
    (ns < i64::MAX as f64).then_some(ns as i64)
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD(T| )HH:MM:SS[.fraction](Z|±HH:MM)` to nanoseconds.
pub fn rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start {
            return None;
        }
        for _ in (i - start)..9 {
            nanos *= 10;
        }
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let hours = i64::from((h1 - b'0') * 10 + (h2 - b'0'));
            let minutes = i64::from((m1 - b'0') * 10 + (m2 - b'0'));
            let offset = hours * 3600 + minutes * 60;
            if *sign == b'-' {
                -offset
            } else {
                offset
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    seconds.checked_mul(1_000_000_000)?.checked_add(nanos)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rfc3339_with_fractions_and_offsets() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339("2024-02-29T12:34:56.789Z"),
            Some(1_709_210_096_789_000_000)
        );
        assert_eq!(
            rfc3339("2024-02-29T14:34:56.789123456+02:00"),
            Some(1_709_210_096_789_123_456)
        );
        assert_eq!(
            rfc3339("2024-02-29 07:34:56-05:00"),
            Some(1_709_210_096_000_000_000)
        );
        for bad in [
            "2024-02-29",
            "2024-13-01T00:00:00Z",
            "2024-02-29T12:34:56",
            "x",
        ] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn epochs_by_magnitude() {
        let ns = 1_709_210_096_000_000_000;
        assert_eq!(parse(&json!(1_709_210_096)), Some(ns));
        assert_eq!(parse(&json!(1_709_210_096_000u64)), Some(ns));
        assert_eq!(parse(&json!(1_709_210_096_000_000u64)), Some(ns));
        assert_eq!(parse(&json!(1_709_210_096_000_000_000u64)), Some(ns));
        assert_eq!(parse(&json!(1_709_210_096.5)), Some(ns + 500_000_000));
        assert_eq!(parse(&json!("1709210096")), Some(ns));
        assert_eq!(parse(&json!(true)), None);
        assert_eq!(parse(&json!(-5)), None);
    }
}
