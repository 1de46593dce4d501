//! Gateway <-> AWS context on every alert.
//!
//! A person's gateway session and the AWS calls it causes are two streams
//! with two principals: `gateway:alice` types on a bastion, and the role the
//! gateway links her login to (`role/gateway-ops`, with `alice` as role
//! session name or source identity) calls AWS. A `correlate:` rule turns
//! that pair into one alert of its own; this module makes *every other*
//! alert carry the link too: an alert on an AWS call of a linked role
//! session lists the command lines its gateway user typed just before, and
//! an alert on a gateway session lists the AWS calls made through that
//! user's linked role around it.
//!
//! The link value is the gateway login: `user_name` on session rows, and on
//! CloudTrail rows either the login a configured map gives for the
//! principal ([`LinkConfig::aws_principals`], for gateways that hand out IAM
//! users rather than a role) or, for assumed roles, the source identity or
//! else the role session name. AWS calls are only remembered for logins
//! with recent gateway activity, so the state stays small however many
//! role sessions an account has: at most [`LinkConfig::max_lines`] lines per
//! login and side, [`LinkConfig::max_links`] logins, nothing older than
//! [`LinkConfig::within_micros`] behind the watermark. The context
//! is recent by nature and is not checkpointed: after a restart it refills
//! within one `within`. Lines are forgotten `within` behind the engine's
//! watermark, not behind the newest event, so parallel inputs read ahead of
//! each other keep each other's context.

use std::collections::{HashMap, VecDeque};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use trailhound_core::schema::columns;
use trailhound_core::time::format_micros;
use trailhound_core::{Alert, event_schema};

/// How gateway logins and AWS principals are linked, and how much is kept.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// How far apart a command and an AWS call may be: 30 minutes.
    pub within_micros: i64,
    /// Most lines kept per login and side: 32 (a replayed day-long session
    /// log must not push a call's commands out before the call is read).
    pub max_lines: usize,
    /// Most lines an alert shows per side, the nearest to it: 6.
    pub shown_lines: usize,
    /// Most logins kept: 100,000 (the least recently active go first).
    pub max_links: usize,
    /// AWS principal ARN -> gateway login, for principals that are a
    /// person's own (an IAM user per gateway user). Assumed roles need no
    /// entry: their source identity or session name is the login.
    pub aws_principals: HashMap<String, String>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            within_micros: 30 * 60 * 1_000_000,
            max_lines: 32,
            shown_lines: 6,
            max_links: 100_000,
            aws_principals: HashMap::new(),
        }
    }
}

/// Which side of the link a row is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A gateway session row (a command typed).
    Gateway,
    /// A CloudTrail row of a principal linked to a gateway login.
    Aws,
}

/// A row's link: the login and the side it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowLink {
    /// The gateway login.
    pub login: String,
    /// The side of the row.
    pub side: Side,
}

#[derive(Debug, Clone)]
struct Line {
    time: i64,
    text: String,
}

#[derive(Debug, Default)]
struct Recent {
    commands: VecDeque<Line>,
    calls: VecDeque<Line>,
    newest: i64,
}

/// Column positions in the event schema.
#[derive(Debug, Clone, Copy)]
struct Cols {
    event_time: usize,
    event_id: usize,
    source: usize,
    principal: usize,
    principal_type: usize,
    user_name: usize,
    session_name: usize,
    source_identity: usize,
    command: usize,
    target: usize,
    session_id: usize,
    event_source: usize,
    event_name: usize,
    error_code: usize,
}

/// Recent commands and AWS calls per gateway login.
#[derive(Debug)]
pub struct LinkContext {
    config: LinkConfig,
    cols: Option<Cols>,
    logins: HashMap<String, Recent>,
    last_expiry: Option<i64>,
}

impl Default for LinkContext {
    fn default() -> Self {
        Self::new(LinkConfig::default())
    }
}

/// A string cell of a plain or dictionary-encoded string column.
fn str_at(batch: &RecordBatch, col: usize, row: usize) -> Option<&str> {
    let a = batch.columns().get(col)?;
    if row >= a.len() || a.is_null(row) {
        return None;
    }
    if let Some(s) = a.as_string_opt::<i32>() {
        return Some(s.value(row));
    }
    let d = a.as_dictionary_opt::<Int32Type>()?;
    let key = usize::try_from(d.keys().value(row)).ok()?;
    let values = d.values().as_string_opt::<i32>()?;
    (key < values.len()).then(|| values.value(key))
}

impl LinkContext {
    /// Empty context with these settings.
    pub fn new(config: LinkConfig) -> Self {
        let schema = event_schema();
        let idx = |name: &str| schema.index_of(name).ok();
        let cols = (|| {
            Some(Cols {
                event_time: idx(columns::EVENT_TIME)?,
                event_id: idx(columns::EVENT_ID)?,
                source: idx(columns::SOURCE)?,
                principal: idx(columns::PRINCIPAL)?,
                principal_type: idx(columns::PRINCIPAL_TYPE)?,
                user_name: idx(columns::USER_NAME)?,
                session_name: idx(columns::SESSION_NAME)?,
                source_identity: idx(columns::SOURCE_IDENTITY)?,
                command: idx(columns::COMMAND)?,
                target: idx(columns::TARGET)?,
                session_id: idx(columns::SESSION_ID)?,
                event_source: idx(columns::EVENT_SOURCE)?,
                event_name: idx(columns::EVENT_NAME)?,
                error_code: idx(columns::ERROR_CODE)?,
            })
        })();
        Self {
            config,
            cols,
            logins: HashMap::new(),
            last_expiry: None,
        }
    }

    /// Logins with recent context.
    pub fn logins(&self) -> usize {
        self.logins.len()
    }

    /// The login of an assumed-role CloudTrail row: its source identity,
    /// else its role session name.
    fn role_login<'b>(batch: &'b RecordBatch, c: &Cols, row: usize) -> Option<&'b str> {
        if str_at(batch, c.principal_type, row) != Some("AssumedRole") {
            return None;
        }
        str_at(batch, c.source_identity, row).or_else(|| str_at(batch, c.session_name, row))
    }

    /// Learns the commands and linked AWS calls of a batch, and returns the
    /// link of every row that has one, by event id. `watermark` is the
    /// engine's (event time up to which rows are taken as complete): lines
    /// are forgotten only once they are `within` behind it, so inputs read
    /// in parallel, some ahead of others, do not expire each other's lines.
    pub fn observe(
        &mut self,
        batch: &RecordBatch,
        watermark: Option<i64>,
    ) -> HashMap<String, RowLink> {
        let mut links = HashMap::new();
        let Some(c) = self.cols else {
            return links;
        };
        let Some(times) = batch
            .columns()
            .get(c.event_time)
            .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        else {
            return links;
        };
        // AWS calls are linked only to logins with recent gateway activity:
        // with none yet, and no gateway row in this batch to start one,
        // no row links.
        if self.logins.is_empty() && !crate::prefilter::may_hold(batch, c.source, &["session"]) {
            self.expire(watermark);
            return links;
        }
        // No sort needed: `push` keeps each login's lines in time order.
        for row in (0..batch.num_rows()).filter(|&r| times.is_valid(r)) {
            let time = times.value(row);
            let Some(event_id) = str_at(batch, c.event_id, row) else {
                continue;
            };
            match str_at(batch, c.source, row) {
                Some("session") => {
                    let login = str_at(batch, c.user_name, row).or_else(|| {
                        str_at(batch, c.principal, row).and_then(|p| p.strip_prefix("gateway:"))
                    });
                    let Some(login) = login else { continue };
                    if let Some(command) = str_at(batch, c.command, row) {
                        let host = str_at(batch, c.target, row).unwrap_or("-");
                        let session = str_at(batch, c.session_id, row).unwrap_or("-");
                        let text = format!("{host} ({session}): {command}");
                        self.push(login, time, text, Side::Gateway);
                    }
                    links.insert(
                        event_id.to_string(),
                        RowLink {
                            login: login.to_string(),
                            side: Side::Gateway,
                        },
                    );
                }
                Some("cloudtrail") => {
                    let login = match str_at(batch, c.principal, row)
                        .and_then(|p| self.config.aws_principals.get(p))
                    {
                        Some(mapped) => Some(mapped.clone()),
                        None => Self::role_login(batch, &c, row).map(str::to_string),
                    };
                    // Only logins with recent gateway activity are linked.
                    let Some(login) = login.filter(|l| self.logins.contains_key(l)) else {
                        continue;
                    };
                    let principal = str_at(batch, c.principal, row).unwrap_or("-");
                    let service = str_at(batch, c.event_source, row)
                        .map(|s| s.trim_end_matches(".amazonaws.com"))
                        .unwrap_or("-");
                    let name = str_at(batch, c.event_name, row).unwrap_or("-");
                    let failed = str_at(batch, c.error_code, row)
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default();
                    let text = format!("{principal} {service}:{name}{failed}");
                    self.push(&login, time, text, Side::Aws);
                    links.insert(
                        event_id.to_string(),
                        RowLink {
                            login,
                            side: Side::Aws,
                        },
                    );
                }
                _ => {}
            }
        }
        self.expire(watermark);
        links
    }

    fn push(&mut self, login: &str, time: i64, text: String, side: Side) {
        if !self.logins.contains_key(login) && self.logins.len() >= self.config.max_links {
            // The least recently active login goes.
            if let Some(oldest) = self
                .logins
                .iter()
                .min_by_key(|(_, r)| r.newest)
                .map(|(l, _)| l.clone())
            {
                self.logins.remove(&oldest);
            }
        }
        let recent = self.logins.entry(login.to_string()).or_default();
        recent.newest = recent.newest.max(time);
        let lines = match side {
            Side::Gateway => &mut recent.commands,
            Side::Aws => &mut recent.calls,
        };
        // Keep time order whatever order rows and batches come in.
        let at = lines.partition_point(|l| l.time <= time);
        lines.insert(at, Line { time, text });
        while lines.len() > self.config.max_lines.max(1) {
            lines.pop_front();
        }
    }

    /// Forgets lines older than `within` behind the watermark, at most once
    /// per `within / 4` of event time.
    fn expire(&mut self, watermark: Option<i64>) {
        let Some(newest) = watermark else { return };
        let every = (self.config.within_micros / 4).max(1);
        if self
            .last_expiry
            .is_some_and(|t| newest.saturating_sub(t) < every)
        {
            return;
        }
        self.last_expiry = Some(newest);
        let cutoff = newest.saturating_sub(self.config.within_micros);
        self.logins.retain(|_, r| {
            r.commands.retain(|l| l.time >= cutoff);
            r.calls.retain(|l| l.time >= cutoff);
            !(r.commands.is_empty() && r.calls.is_empty())
        });
    }

    /// Appends the other side of the link to an alert's evidence: the
    /// commands typed before an AWS-side alert, the AWS calls around a
    /// gateway-side one. Does nothing when there is nothing to show.
    pub fn annotate(&self, alert: &mut Alert, link: &RowLink) {
        let Some(recent) = self.logins.get(&link.login) else {
            return;
        };
        let within = self.config.within_micros;
        let from = alert.first_event_time.saturating_sub(within);
        let (lines, until, words) = match link.side {
            Side::Aws => (
                &recent.commands,
                alert.last_event_time,
                format!("gateway user {} typed before this", link.login),
            ),
            Side::Gateway => (
                &recent.calls,
                alert.last_event_time.saturating_add(within),
                format!("AWS calls through {}'s linked principal", link.login),
            ),
        };
        let near: Vec<&Line> = lines
            .iter()
            .filter(|l| l.time >= from && l.time <= until)
            .collect();
        let skip = near.len().saturating_sub(self.config.shown_lines.max(1));
        let shown: Vec<String> = near
            .iter()
            .skip(skip)
            .map(|l| format!("{} {}", format_micros(l.time), l.text))
            .collect();
        if shown.is_empty() {
            return;
        }
        alert
            .evidence
            .push_str(&format!("; {words}: {}", shown.join("; ")));
    }
}
