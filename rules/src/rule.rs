//! The rule file: what a user writes, before compilation.

use serde::Deserialize;
use trailhound_core::{Event, Severity};

/// One rule as written in YAML. Unknown keys are refused so that a typo
/// (`wehre:`) is an error rather than a rule that silently matches nothing.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id, kebab-case; by convention the file name without `.yaml`.
    pub id: String,
    /// One line for alert titles.
    pub title: String,
    /// What it catches, why it matters, known benign causes.
    #[serde(default)]
    pub description: String,
    /// How bad a match is.
    pub severity: SeverityName,
    /// ATT&CK and other tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Links for the reader.
    #[serde(default)]
    pub references: Vec<String>,
    /// Off switch without deleting the file.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A SQL boolean expression over the event model.
    #[serde(rename = "where")]
    pub predicate: String,
    /// The alert's plain-words evidence: `{column}` and `{request.a.b}` are filled in.
    #[serde(default)]
    pub evidence: Option<String>,
    /// How repeated matches fold into one alert.
    #[serde(default)]
    pub dedup: DedupSpec,
    /// Inline tests: events in, verdict out.
    #[serde(default)]
    pub tests: Vec<RuleTestSpec>,
}

fn yes() -> bool {
    true
}

/// A severity as written (`high`, `Critical`, ...).
#[derive(Debug, Clone, Copy)]
pub struct SeverityName(pub Severity);

impl<'de> Deserialize<'de> for SeverityName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(SeverityName)
            .map_err(serde::de::Error::custom)
    }
}

/// Dedup: matches with the same key within one period are one alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// Columns whose values form the key. Default: `[principal]`.
    #[serde(default = "default_dedup_key")]
    pub key: Vec<String>,
    /// Period such as `30s`, `15m`, `1h`, `1d`. Default: `1h`.
    #[serde(default = "default_period")]
    pub period: String,
}

impl Default for DedupSpec {
    fn default() -> Self {
        Self {
            key: default_dedup_key(),
            period: default_period(),
        }
    }
}

fn default_dedup_key() -> Vec<String> {
    vec!["principal".to_string()]
}

fn default_period() -> String {
    "1h".to_string()
}

/// One inline test.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleTestSpec {
    /// What the test shows.
    pub name: String,
    /// A single event (use with `match`).
    #[serde(default)]
    pub event: Option<Event>,
    /// Whether `event` must match.
    #[serde(default, rename = "match")]
    pub matches_event: Option<bool>,
    /// Several events (use with `matches`).
    #[serde(default)]
    pub events: Vec<Event>,
    /// How many of `events` must match.
    #[serde(default)]
    pub matches: Option<usize>,
}

/// Parses `30s`, `15m`, `1h`, `2d` into microseconds.
pub fn parse_period_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    if secs <= 0 {
        return None;
    }
    secs.checked_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::parse_period_micros;

    #[test]
    fn periods_parse_with_units_only() {
        assert_eq!(parse_period_micros("90s"), Some(90_000_000));
        assert_eq!(parse_period_micros("1h"), Some(3_600_000_000));
        assert_eq!(parse_period_micros("2d"), Some(172_800_000_000));
        assert_eq!(parse_period_micros("10"), None);
        assert_eq!(parse_period_micros("0m"), None);
        assert_eq!(parse_period_micros("5w"), None);
    }
}
