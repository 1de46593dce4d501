//! Slack: one Block Kit message per alert, posted to an incoming webhook.
//!
//! The message ([`message`]) is a `header` block (severity and title), a
//! `section` with four fields (principal, account, when, event count), a
//! `section` with the evidence, and `context` blocks with the rule id, the
//! alert id, the tags and the first event ids; the top-level `text` is the
//! notification fallback. It keeps within Slack's published limits: header
//! text 150 characters, section text 3,000, a field 2,000, ten fields, ten
//! context elements, fifty blocks; longer text is cut with `…`. `&`, `<` and
//! `>` in `mrkdwn` text are escaped as Slack asks, so alert content cannot
//! mention people or make links. Slack answers 429 with `Retry-After` when a
//! webhook posts too fast; [`crate::notify::delivery`] honours it.

use serde_json::{Value, json};
use trailhound_core::time::format_micros;
use trailhound_core::{Alert, Severity};

use super::delivery::{Delivery, DeliveryPolicy, Encode, Job, Request};
use super::{NotifyError, Queued, Route, check_url, queued_sink};

/// Header block text, at most.
pub const HEADER_MAX: usize = 150;
/// Section block text, at most.
pub const SECTION_MAX: usize = 3000;
/// One section field's text, at most.
pub const FIELD_MAX: usize = 2000;
/// Blocks in one message, at most.
pub const BLOCKS_MAX: usize = 50;
/// Elements of one context block, at most.
pub const CONTEXT_ELEMENTS_MAX: usize = 10;

/// Where a Slack sink posts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackConfig {
    /// The sink's name (for logs, counters and dead letters).
    pub name: String,
    /// The incoming webhook URL (a secret: it is all it takes to post).
    pub webhook_url: String,
}

/// Posts every routed alert to a Slack incoming webhook.
#[derive(Debug)]
pub struct SlackSink {
    inner: Queued,
}

impl SlackSink {
    /// Starts the sink's delivery thread.
    pub fn new(
        config: SlackConfig,
        route: Route,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        check_url(&config.name, &config.webhook_url)?;
        let encoder = SlackEncoder {
            url: config.webhook_url,
        };
        let delivery = Delivery::start(&config.name, "slack", Box::new(encoder), policy)?;
        Ok(Self {
            inner: Queued {
                kind: "slack",
                route,
                delivery,
            },
        })
    }
}

queued_sink!(SlackSink);

struct SlackEncoder {
    url: String,
}

impl Encode for SlackEncoder {
    fn encode(&self, job: &Job) -> Result<Request, String> {
        let body = match job {
            Job::Alert(alert) => message(alert),
            Job::Resolve { .. } => return Err("Slack messages cannot be resolved".into()),
        };
        Ok(Request {
            url: self.url.clone(),
            headers: vec![("Content-Type", "application/json; charset=utf-8".into())],
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        })
    }
}

fn emoji(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => ":rotating_light:",
        Severity::High => ":red_circle:",
        Severity::Medium => ":large_orange_circle:",
        Severity::Low => ":large_yellow_circle:",
        Severity::Informational => ":white_circle:",
    }
}

/// `s` cut to at most `max` characters, the last one `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// `s` escaped for `mrkdwn` (`&`, `<`, `>`) and cut to at most `max`
/// characters without splitting an escape.
pub fn mrkdwn(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    let total: usize = s.chars().map(escaped_len).sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    for c in s.chars() {
        let piece = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            _ => "",
        };
        let n = escaped_len(c);
        if len + n > budget {
            out.push('…');
            return out;
        }
        if piece.is_empty() {
            out.push(c);
        } else {
            out.push_str(piece);
        }
        len += n;
    }
    out
}

fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        _ => 1,
    }
}

/// A value shown as inline code: backticks would end the span, so they become quotes.
fn code(s: &str, max: usize) -> String {
    format!("`{}`", mrkdwn(&s.replace('`', "'"), max.saturating_sub(2)))
}

/// The Block Kit message for `alert` (see the module page).
pub fn message(alert: &Alert) -> Value {
    let severity = alert.severity.as_str().to_uppercase();
    let header = truncate(
        &format!("{} {severity}: {}", emoji(alert.severity), alert.title),
        HEADER_MAX,
    );
    let mut when = format_micros(alert.first_event_time);
    if alert.last_event_time != alert.first_event_time {
        when.push_str(&format!(" .. {}", format_micros(alert.last_event_time)));
    }
    let field = |label: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{label}*\n{value}")});
    let value_max = FIELD_MAX - 40;
    let fields = vec![
        field("Principal", code(&alert.principal, value_max)),
        field(
            "Account",
            alert
                .account_id
                .as_deref()
                .map(|a| code(a, value_max))
                .unwrap_or_else(|| "unknown".into()),
        ),
        field("When (UTC)", mrkdwn(&when, value_max)),
        field("Events", alert.event_count.to_string()),
    ];
    let evidence_label = "*Evidence*\n";
    let evidence = format!(
        "{evidence_label}{}",
        mrkdwn(&alert.evidence, SECTION_MAX - evidence_label.len())
    );
    let mut ids = vec![
        json!({"type": "mrkdwn", "text": format!("rule {}", code(&alert.rule_id, 500))}),
        json!({"type": "mrkdwn", "text": format!("alert {}", code(&alert.alert_id, 500))}),
    ];
    if !alert.tags.is_empty() {
        ids.push(json!({"type": "mrkdwn", "text": format!("tags: {}", mrkdwn(&alert.tags.join(", "), 1000))}));
    }
    ids.truncate(CONTEXT_ELEMENTS_MAX);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": header, "emoji": true}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": evidence}}),
        json!({"type": "context", "elements": ids}),
    ];
    if !alert.event_ids.is_empty() {
        let shown: Vec<&str> = alert
            .event_ids
            .iter()
            .take(20)
            .map(String::as_str)
            .collect();
        let mut text = format!("events: {}", shown.join(", "));
        if alert.event_count > shown.len() as u64 {
            text.push_str(&format!(" (of {})", alert.event_count));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": mrkdwn(&text, SECTION_MAX)}]}));
    }
    blocks.truncate(BLOCKS_MAX);
    let fallback = truncate(
        &format!(
            "[{severity}] {} ({}): {}",
            alert.title, alert.rule_id, alert.principal
        ),
        SECTION_MAX,
    );
    json!({"text": fallback, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_counts_characters_and_keeps_escapes_whole() {
        assert_eq!(truncate("héllo", 5), "héllo");
        assert_eq!(truncate("héllo!", 5), "héll…");
        assert_eq!(mrkdwn("a<b>&c", 100), "a&lt;b&gt;&amp;c");
        // Cut before an escape rather than through it.
        assert_eq!(mrkdwn("ab<cd", 5), "ab…");
        assert!(mrkdwn(&"<".repeat(5000), SECTION_MAX).chars().count() <= SECTION_MAX);
        assert_eq!(code("a`b", 50), "`a'b`");
    }
}
