//! Baseline rules: the `baseline:` block checked and compiled.
//!
//! A baseline learns, per key (the principal by default), what is usual and
//! lets the detector alert on a departure: a value never seen before for the
//! key (`new_value`), or an hour of day never or rarely seen (`unusual_hour`).
//! This module says *what* the key and the value of a row are; the state
//! (sets, counts, hour histograms, budgets) lives in the detector.
//!
//! A name in `by` or `of` is a column of the event model, one of the derived
//! values computed here ([`NETWORK`]: the /24 of an IPv4 or /48 of an IPv6
//! `source_ip`; [`USER_AGENT_FAMILY`]: the product token of `user_agent`), or
//! else a SQL expression compiled once like `where`.

use std::net::IpAddr;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use datafusion::common::DFSchema;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use trailhound_core::event_schema;
use trailhound_core::schema::columns;

use crate::compile::plan_expr;
use crate::rule::{BaselineKindName, BaselineSpec, parse_period_micros};
use crate::template::cell_text;

/// Derived value: the source network of `source_ip` (/24 for IPv4, /48 for IPv6).
pub const NETWORK: &str = "network";
/// Derived value: the product token of `user_agent`, lower-cased.
pub const USER_AGENT_FAMILY: &str = "user_agent_family";
/// Most names in `by` or `of`.
pub const MAX_PARTS: usize = 8;

/// What a baseline learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaselineKind {
    /// Values seen per key; a value never seen alerts.
    NewValue,
    /// Hours of day seen per key; an hour never or rarely seen alerts.
    UnusualHour,
}

/// Where one part of a key or value comes from.
#[derive(Debug, Clone)]
pub enum Part {
    /// A column of the event model, by index.
    Column(usize),
    /// [`NETWORK`] of the `source_ip` column at this index.
    Network(usize),
    /// [`USER_AGENT_FAMILY`] of the `user_agent` column at this index.
    UserAgentFamily(usize),
    /// A SQL expression, compiled once.
    Expr(Arc<dyn PhysicalExpr>),
}

/// A compiled `baseline:` block.
#[derive(Debug, Clone)]
pub struct CompiledBaseline {
    /// What is learnt.
    pub kind: BaselineKind,
    /// The key's parts and their names as written.
    pub by: Vec<(String, Part)>,
    /// The value's parts (`new_value`) and their names as written.
    pub of: Vec<(String, Part)>,
    /// Learning period in microseconds of event time.
    pub learning_micros: i64,
    /// Learning period as written.
    pub learning_text: String,
    /// Events seen for a key before it may alert.
    pub min_history: u64,
    /// Offset from UTC of the hours of `unusual_hour`, in minutes.
    pub utc_offset_minutes: i32,
    /// Offset as written (`UTC` when none).
    pub utc_offset_text: String,
    /// Share of a key's events below which an hour is rare (0.01 = 1%).
    pub rare_ratio: f64,
}

/// The arrays a baseline reads from one batch, evaluated once per batch.
pub struct BaselineColumns {
    by: Vec<Source>,
    of: Vec<Source>,
    api_pair: bool,
}

enum Source {
    Plain(ArrayRef),
    Network(ArrayRef),
    UserAgentFamily(ArrayRef),
}

impl Source {
    fn text(&self, row: usize) -> Option<String> {
        let (array, f): (&ArrayRef, fn(&str) -> Option<String>) = match self {
            Source::Plain(a) => (a, |s| Some(s.to_string())),
            Source::Network(a) => (a, network_of),
            Source::UserAgentFamily(a) => (a, user_agent_family),
        };
        if row >= array.len() || array.is_null(row) {
            return None;
        }
        let text = cell_text(array.as_ref(), row);
        if text.is_empty() {
            return None;
        }
        f(&text)
    }
}

impl BaselineColumns {
    /// The key of a row; `None` when any part is NULL or cannot be derived.
    pub fn key(&self, row: usize) -> Option<Vec<String>> {
        self.by.iter().map(|s| s.text(row)).collect()
    }

    /// The value of a row in plain words (`iam:CreateUser`, `203.0.113.0/24`,
    /// parts joined by ` / `); `None` when any part is NULL or cannot be
    /// derived (a `source_ip` that is a service name has no network).
    pub fn value(&self, row: usize) -> Option<String> {
        let parts: Vec<String> = self.of.iter().map(|s| s.text(row)).collect::<Option<_>>()?;
        if self.api_pair
            && let [source, name] = parts.as_slice()
        {
            let service = source.strip_suffix(".amazonaws.com").unwrap_or(source);
            return Some(format!("{service}:{name}"));
        }
        Some(parts.join(" / "))
    }
}

impl CompiledBaseline {
    /// Evaluates the key and value parts on a batch of the event schema.
    pub fn columns(&self, batch: &RecordBatch) -> Result<BaselineColumns, String> {
        let sources = |parts: &[(String, Part)]| -> Result<Vec<Source>, String> {
            parts
                .iter()
                .map(|(name, p)| {
                    let column = |i: usize| {
                        batch
                            .columns()
                            .get(i)
                            .cloned()
                            .ok_or_else(|| format!("baseline column {name:?} missing in batch"))
                    };
                    Ok(match p {
                        Part::Column(i) => Source::Plain(column(*i)?),
                        Part::Network(i) => Source::Network(column(*i)?),
                        Part::UserAgentFamily(i) => Source::UserAgentFamily(column(*i)?),
                        Part::Expr(e) => Source::Plain(
                            e.evaluate(batch)
                                .and_then(|v| v.into_array(batch.num_rows()))
                                .map_err(|e| format!("baseline {name:?}: {e}"))?,
                        ),
                    })
                })
                .collect()
        };
        let names: Vec<&str> = self.of.iter().map(|(n, _)| n.as_str()).collect();
        Ok(BaselineColumns {
            by: sources(&self.by)?,
            of: sources(&self.of)?,
            api_pair: names == [columns::EVENT_SOURCE, columns::EVENT_NAME],
        })
    }

    /// The verb of the alert's sentence for a new value: `called`, `came
    /// from network`, `used region`, ...
    pub fn verb(&self) -> String {
        let names: Vec<&str> = self.of.iter().map(|(n, _)| n.as_str()).collect();
        match names.as_slice() {
            [columns::EVENT_SOURCE, columns::EVENT_NAME] | [columns::EVENT_NAME] => "called".into(),
            [NETWORK] => "came from network".into(),
            [columns::SOURCE_IP] => "came from address".into(),
            [columns::REGION] => "used region".into(),
            [USER_AGENT_FAMILY] => "used user agent".into(),
            [columns::USER_AGENT] => "used user agent string".into(),
            [columns::BUCKET] => "touched bucket".into(),
            [columns::TARGET] => "connected to".into(),
            [columns::COMMAND] => "ran".into(),
            [columns::EVENT_SOURCE] => "called service".into(),
            other => format!("had {}", other.join(" / ")),
        }
    }
}

/// The source network of an address: `a.b.c.0/24` for IPv4, the /48 for
/// IPv6 (`2001:db8:1::/48`); `None` for anything that is not an address
/// (CloudTrail puts service names such as `ec2.amazonaws.com` there).
pub fn network_of(source_ip: &str) -> Option<String> {
    let ip: IpAddr = source_ip.trim().parse().ok()?;
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            Some(format!("{net}/48"))
        }
    }
}

/// The family of a user agent: the product token before the first `/`,
/// lower-cased (`aws-cli/2.15.0 Python/3.11` -> `aws-cli`, `Boto3/1.34`
/// -> `boto3`, `[aws-sdk-go/1.44]` -> `aws-sdk-go`); the whole string,
/// lower-cased, when it has no `/` (`console.amazonaws.com`). `None` when
/// empty.
pub fn user_agent_family(user_agent: &str) -> Option<String> {
    let head = user_agent.split('/').next().unwrap_or_default();
    let head = head.trim().trim_start_matches(['[', '(']).trim();
    let family: String = head.chars().take(64).collect::<String>().to_lowercase();
    (!family.is_empty()).then_some(family)
}

/// Parses `+02:00`, `-05:30`, `+2`, `UTC`, `Z` into minutes east of UTC.
pub fn parse_utc_offset(s: &str) -> Option<i32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" || s.is_empty() {
        return Some(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => (1, s),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().ok()?),
        None => (rest.parse::<i32>().ok()?, 0),
    };
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Some(sign * (h * 60 + m))
}

fn part(ctx: &SessionContext, schema: &DFSchema, name: &str) -> Result<Part, String> {
    let arrow_schema = event_schema();
    let index = |column: &str| {
        arrow_schema
            .index_of(column)
            .map_err(|_| format!("column {column:?} is not in the event model"))
    };
    Ok(match name.trim() {
        NETWORK => Part::Network(index(columns::SOURCE_IP)?),
        USER_AGENT_FAMILY => Part::UserAgentFamily(index(columns::USER_AGENT)?),
        n if arrow_schema.index_of(n).is_ok() => Part::Column(index(n)?),
        sql => Part::Expr(plan_expr(ctx, sql, schema).map_err(|e| {
            format!(
                "{sql:?} is neither a column of the event model, `{NETWORK}`, \
                 `{USER_AGENT_FAMILY}` nor an expression that compiles: {e}"
            )
        })?),
    })
}

/// Checks and compiles a `baseline:` block.
pub fn compile_baseline(
    ctx: &SessionContext,
    schema: &DFSchema,
    spec: &BaselineSpec,
) -> Result<CompiledBaseline, String> {
    if spec.by.is_empty() || spec.by.len() > MAX_PARTS {
        return Err(format!("baseline.by needs 1 to {MAX_PARTS} names"));
    }
    let by = spec
        .by
        .iter()
        .map(|n| {
            Ok((
                n.clone(),
                part(ctx, schema, n).map_err(|e| format!("baseline.by: {e}"))?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let of_names = spec.of.as_ref().map(|o| o.to_vec()).unwrap_or_default();
    let kind = match spec.kind {
        BaselineKindName::NewValue => BaselineKind::NewValue,
        BaselineKindName::UnusualHour => BaselineKind::UnusualHour,
    };
    match kind {
        BaselineKind::NewValue if of_names.is_empty() || of_names.len() > MAX_PARTS => {
            return Err(format!(
                "baseline kind new_value needs `of`: 1 to {MAX_PARTS} names"
            ));
        }
        BaselineKind::UnusualHour if !of_names.is_empty() => {
            return Err("baseline kind unusual_hour takes no `of`".into());
        }
        _ => {}
    }
    let of = of_names
        .iter()
        .map(|n| {
            Ok((
                n.clone(),
                part(ctx, schema, n).map_err(|e| format!("baseline.of: {e}"))?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let learning_micros = parse_period_micros(&spec.learning).ok_or_else(|| {
        format!(
            "baseline.learning {:?} is not a positive number followed by s, m, h or d",
            spec.learning
        )
    })?;
    let utc_offset_text = spec.utc_offset.clone().unwrap_or_else(|| "UTC".into());
    let utc_offset_minutes = parse_utc_offset(&utc_offset_text).ok_or_else(|| {
        format!("baseline.utc_offset {utc_offset_text:?} is not like +02:00 or -05:30")
    })?;
    if spec.utc_offset.is_some() && kind != BaselineKind::UnusualHour {
        return Err("baseline.utc_offset applies to kind unusual_hour only".into());
    }
    let rare_percent = spec.rare_percent.unwrap_or(1.0);
    if !(0.0..=50.0).contains(&rare_percent) {
        return Err(format!(
            "baseline.rare_percent {rare_percent} is not between 0 and 50"
        ));
    }
    Ok(CompiledBaseline {
        kind,
        by,
        of,
        learning_micros,
        learning_text: spec.learning.clone(),
        min_history: spec.min_history,
        utc_offset_minutes,
        utc_offset_text,
        rare_ratio: rare_percent / 100.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_are_the_24_of_ipv4_and_the_48_of_ipv6() {
        assert_eq!(
            network_of("203.0.113.77").as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            network_of("2001:db8:abcd:12::1").as_deref(),
            Some("2001:db8:abcd::/48")
        );
        assert_eq!(
            network_of("::ffff:198.51.100.9").as_deref(),
            Some("198.51.100.0/24")
        );
        assert_eq!(network_of("ec2.amazonaws.com"), None);
        assert_eq!(network_of("AWS Internal"), None);
        assert_eq!(network_of(""), None);
    }

    #[test]
    fn user_agent_family_is_the_product_token_lower_cased() {
        assert_eq!(
            user_agent_family("aws-cli/2.15.0 Python/3.11.6 Linux/6.1").as_deref(),
            Some("aws-cli")
        );
        assert_eq!(
            user_agent_family("Boto3/1.34.0 md/Botocore#1.34.0").as_deref(),
            Some("boto3")
        );
        assert_eq!(
            user_agent_family("[aws-sdk-go/1.44.0 (go1.21)]").as_deref(),
            Some("aws-sdk-go")
        );
        assert_eq!(
            user_agent_family("Mozilla/5.0 (X11; Linux x86_64)").as_deref(),
            Some("mozilla")
        );
        assert_eq!(
            user_agent_family("console.amazonaws.com").as_deref(),
            Some("console.amazonaws.com")
        );
        assert_eq!(user_agent_family("  "), None);
    }

    #[test]
    fn utc_offsets_parse() {
        assert_eq!(parse_utc_offset("+02:00"), Some(120));
        assert_eq!(parse_utc_offset("-05:30"), Some(-330));
        assert_eq!(parse_utc_offset("3"), Some(180));
        assert_eq!(parse_utc_offset("UTC"), Some(0));
        assert_eq!(parse_utc_offset("+25:00"), None);
        assert_eq!(parse_utc_offset("east"), None);
    }
}
