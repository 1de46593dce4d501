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
    /// Suggested responses (`quarantine-principal`, `revoke-sessions`,
    /// `disable-access-key`, `end-gateway-session`, `notify`). Recorded with
    /// the alert; whether anything is done is the response policy's call.
    #[serde(default)]
    pub respond: Vec<ResponseName>,
    /// Aggregate matching rows per group over event-time windows; the rule
    /// alerts when `having` holds for a closed window.
    #[serde(default)]
    pub window: Option<WindowSpec>,
    /// An ordered sequence of steps by the same key within a time span.
    #[serde(default)]
    pub sequence: Option<SequenceSpec>,
    /// Principals, accounts and source networks whose events never alert for this rule.
    #[serde(default)]
    pub suppress: Option<SuppressSpec>,
    /// Learn each principal's normal and alert on what departs from it
    /// (compiled in [`crate::baseline`]).
    #[serde(default)]
    pub baseline: Option<BaselineSpec>,
    /// Join two kinds of activity that share a link value within a span
    /// (compiled in [`crate::correlate`]).
    #[serde(default)]
    pub correlate: Option<CorrelateSpec>,
}

/// `correlate:` — a `then` row following a `first` row with the same link
/// value within `within` alerts, showing both sides.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorrelateSpec {
    /// SQL expression giving the value both sides share (a person's login).
    pub link: String,
    /// SQL condition of the side that comes first (session commands).
    pub first: String,
    /// SQL condition of the side that follows (AWS calls).
    pub then: String,
    /// Longest span from a `first` row to a `then` row.
    pub within: String,
}

/// `baseline:` — per key (principal by default), learn what is usual and
/// alert on a departure once the key has enough history. See
/// `docs/rules.md` ("Baselines") for every kind and its keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineSpec {
    /// `new_value`, `unusual_hour`, `rate` or `rare`.
    pub kind: BaselineKindName,
    /// Columns whose values make one baseline (for `rare`: who counts as a
    /// distinct holder of a value). Default: `[principal]`.
    #[serde(default = "default_dedup_key")]
    pub by: Vec<String>,
    /// For `new_value` and `rare`: the column (or derived value, or SQL
    /// expression), or list of them, whose values are learnt.
    #[serde(default)]
    pub of: Option<OneOrMany>,
    /// No alert for a key until its first event is at least this old in
    /// event time (for `rare`: until the rule's first event is). Default `7d`.
    #[serde(default = "default_learning")]
    pub learning: String,
    /// History a key needs before it may alert: events for `new_value` and
    /// `unusual_hour` (default 50), bins with activity for `rate` (default
    /// 24). Not for `rare`.
    #[serde(default)]
    pub min_history: Option<u64>,
    /// For `unusual_hour` and `rate`: the offset from UTC of the hours
    /// (`+02:00`, `-05:30`). Default UTC.
    #[serde(default)]
    pub utc_offset: Option<String>,
    /// For `unusual_hour`: an hour is rare below this share of the key's
    /// events, in percent. Default 1.
    #[serde(default)]
    pub rare_percent: Option<f64>,
    /// For `rate`: what a bin measures: `count` (rows), `count_distinct(x)`
    /// or `sum(x)` of a numeric column or expression. Default `count`.
    #[serde(default)]
    pub measure: Option<String>,
    /// For `rate`: the bin length in event time (`10m`, `1h`). Default `1h`.
    #[serde(default)]
    pub window: Option<String>,
    /// For `rate`: alert when a bin's value exceeds this many times the
    /// key's usual value for that part of the day. Default 10.
    #[serde(default)]
    pub factor: Option<f64>,
    /// For `rate`: and the bin's value is at least this. Default 100.
    #[serde(default)]
    pub min_value: Option<f64>,
    /// For `rare`: alert when fewer than this many distinct holders have
    /// ever shown the value, this one included. Default 3.
    #[serde(default)]
    pub below: Option<u32>,
}

/// The kinds of baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineKindName {
    /// A value never seen for the key before.
    NewValue,
    /// An hour of day never or rarely seen for the key.
    UnusualHour,
    /// A bin's count, distinct count or sum far above the key's usual for
    /// that part of the day.
    Rate,
    /// A value that few holders across the organisation have ever shown.
    Rare,
}

/// One name or a list of names (`of: event_name`, `of: [event_source, event_name]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single name.
    One(String),
    /// Several names.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The names as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

fn default_learning() -> String {
    "7d".to_string()
}

/// `window:` — aggregate rows that pass `where` per group over event-time windows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Columns whose values make one group (at least one).
    pub group_by: Vec<String>,
    /// Window length: `30s`, `10m`, `1h`, `1d`.
    pub size: String,
    /// Sliding windows advancing by this much; absent means tumbling windows.
    #[serde(default)]
    pub slide: Option<String>,
    /// SQL over aggregates (`count(*)`, `count(col)`, `count(DISTINCT col)`,
    /// `sum`, `min`, `max`, `avg` of numeric columns) that must hold.
    pub having: String,
    /// More aggregates to compute and show in the evidence only (`sum(bytes_out)`).
    #[serde(default)]
    pub show: Vec<String>,
}

/// `sequence:` — ordered steps by the same key within `within`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceSpec {
    /// Columns whose values must be equal across the steps.
    pub by: Vec<String>,
    /// Longest span from the first step to the last (and of the absence wait).
    pub within: String,
    /// Steps in order; an `absent` step may come last.
    pub steps: Vec<StepSpec>,
}

/// One step of a sequence: either `where` (must happen) or `absent` (must not).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// What the step means, for evidence.
    pub name: String,
    /// SQL condition of a step that must happen.
    #[serde(default, rename = "where")]
    pub predicate: Option<String>,
    /// SQL condition of an event that must not happen within `within` of the first step.
    #[serde(default)]
    pub absent: Option<String>,
}

/// `suppress:` — matches from these never alert. The same shape is the global
/// suppress list of the detector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressSpec {
    /// Principal patterns; `*` matches any run of characters.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Account ids (patterns with `*` allowed).
    #[serde(default)]
    pub accounts: Vec<String>,
    /// CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`) or single addresses of `source_ip`.
    #[serde(default)]
    pub source_networks: Vec<String>,
}

/// A response a rule may suggest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseName {
    /// Deny-all inline policy on the IAM user or role.
    QuarantinePrincipal,
    /// Deny everything for sessions issued before now (stops stolen STS credentials).
    RevokeSessions,
    /// Deactivate the access key used.
    DisableAccessKey,
    /// End and lock the gateway session.
    EndGatewaySession,
    /// Alert people only.
    Notify,
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
    /// How many alerts `events` must raise through the detector (after
    /// windows, sequences, suppress and dedup). For window and sequence rules.
    #[serde(default)]
    pub alerts: Option<usize>,
}

impl RuleTestSpec {
    /// True for tests judged by alerts (run through the detector), not row matches.
    pub fn is_stateful(&self) -> bool {
        self.alerts.is_some()
    }
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
