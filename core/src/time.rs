//! Time helpers: the event model keeps microseconds since the epoch, UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, with or without
/// fractional seconds or offset) into microseconds since the epoch.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    if let Some(micros) = plain_utc_seconds(s) {
        return Some(micros);
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form CloudTrail writes every `eventTime` in,
/// read without chrono's general parser (a tenth of its instructions).
/// `None` for anything else, leap seconds included, which chrono reads.
fn plain_utc_seconds(s: &str) -> Option<i64> {
    let b: &[u8; 20] = s.as_bytes().try_into().ok()?;
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || !matches!(b[19], b'Z' | b'z') {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        let mut n = 0i64;
        for &d in b.get(from..to)? {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Some(n)
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian), counted from March so
    // that the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000)
}

/// Formats microseconds since the epoch as RFC 3339 with second precision.
pub fn format_micros(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{micros}us"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_rfc3339() {
        let m = parse_rfc3339_micros("2024-01-02T03:04:05Z");
        assert_eq!(m, Some(1_704_164_645_000_000));
        assert_eq!(format_micros(1_704_164_645_000_000), "2024-01-02T03:04:05Z");
        assert_eq!(parse_rfc3339_micros("yesterday"), None);
    }

    /// The plain form is read as chrono reads it, on every day of years
    /// around the Gregorian corner cases, and whatever chrono refuses or
    /// reads differently (leap seconds, impossible dates) goes to chrono.
    #[test]
    fn the_plain_form_reads_as_chrono_reads_it() {
        let chrono = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc).timestamp_micros())
        };
        let mut checked = 0;
        for year in [
            0, 1, 4, 99, 100, 400, 1582, 1900, 1969, 1970, 2000, 2024, 2026, 2100, 9999,
        ] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for (h, m, sec) in [
                        (0, 0, 0),
                        (23, 59, 59),
                        (12, 30, 60),
                        (24, 0, 0),
                        (7, 60, 1),
                    ] {
                        let s = format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{sec:02}Z");
                        if let Some(fast) = plain_utc_seconds(&s) {
                            assert_eq!(Some(fast), chrono(&s), "{s}");
                            checked += 1;
                        } else if (1..=12).contains(&month) && sec < 60 && h < 24 && m < 60 {
                            // Declined: only dates that do not exist.
                            assert_eq!(chrono(&s), None, "{s}");
                        }
                        assert_eq!(parse_rfc3339_micros(&s), chrono(&s), "{s}");
                    }
                }
            }
        }
        assert!(checked > 10_000);
        for other in [
            "2024-01-02T03:04:05.5Z",
            "2024-01-02T03:04:05+01:00",
            "2024-01-02 03:04:05Z",
            "2024-01-02t03:04:05z",
            "2024-1-02T03:04:05Z ",
            "+024-01-02T03:04:05Z",
            "2024-01-02T03:04:0xZ",
        ] {
            assert_eq!(parse_rfc3339_micros(other), chrono(other), "{other}");
        }
    }
}
