//! Time helpers: the event model keeps microseconds since the epoch, UTC.

use chrono::{DateTime, SecondsFormat, Utc};

/// Now, in microseconds since the epoch.
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Parses an RFC 3339 timestamp (`2024-01-02T03:04:05Z`, with or without
/// fractional seconds or offset) into microseconds since the epoch.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
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
}
