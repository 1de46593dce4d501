//! Alerts as readable text or as JSON lines, on any writer.

use std::io::Write;

use trailhound_core::Alert;
use trailhound_core::time::format_micros;

use crate::{AlertSink, SinkError};

/// One JSON object per alert per line: the format for machines and pipes.
pub struct JsonLinesSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> AlertSink for JsonLinesSink<W> {
    fn name(&self) -> &'static str {
        "json"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, alert).map_err(|e| SinkError::Encode {
            sink: "json",
            reason: e.to_string(),
        })?;
        self.out.write_all(b"\n").map_err(|source| SinkError::Io {
            sink: "json",
            source,
        })
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            sink: "json",
            source,
        })
    }
}

/// A short block per alert, for people at a terminal.
pub struct TextSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> TextSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

/// Formats one alert as the text sink prints it.
pub fn format_text(alert: &Alert) -> String {
    let mut s = format!(
        "[{}] {} ({})\n  who:      {}{}\n  when:     {}",
        alert.severity.as_str().to_uppercase(),
        alert.title,
        alert.rule_id,
        alert.principal,
        alert
            .account_id
            .as_deref()
            .map(|a| format!(" in account {a}"))
            .unwrap_or_default(),
        format_micros(alert.first_event_time),
    );
    if alert.last_event_time != alert.first_event_time {
        s.push_str(&format!(" .. {}", format_micros(alert.last_event_time)));
    }
    s.push_str(&format!("\n  evidence: {}", alert.evidence));
    s.push_str(&format!(
        "\n  events:   {} ({} in all)",
        alert.event_ids.join(", "),
        alert.event_count
    ));
    if !alert.tags.is_empty() {
        s.push_str(&format!("\n  tags:     {}", alert.tags.join(", ")));
    }
    s.push_str(&format!("\n  alert id: {}\n", alert.alert_id));
    s
}

impl<W: Write + Send> AlertSink for TextSink<W> {
    fn name(&self) -> &'static str {
        "text"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        self.out
            .write_all(format_text(alert).as_bytes())
            .map_err(|source| SinkError::Io {
                sink: "text",
                source,
            })
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            sink: "text",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trailhound_core::Severity;

    fn alert() -> Alert {
        Alert {
            alert_id: "abc".into(),
            rule_id: "r".into(),
            title: "T".into(),
            severity: Severity::High,
            principal: "p".into(),
            account_id: Some("1".into()),
            first_event_time: 0,
            last_event_time: 0,
            detected_at: 0,
            event_ids: vec!["e1".into()],
            event_count: 1,
            evidence: "p did x".into(),
            tags: vec![],
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    #[test]
    fn json_lines_are_one_object_per_line() {
        let mut buf = Vec::new();
        {
            let mut s = JsonLinesSink::new(&mut buf);
            s.send(&alert()).unwrap();
            s.send(&alert()).unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        let back: Alert = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(back, alert());
    }

    #[test]
    fn text_names_rule_principal_and_evidence() {
        let t = format_text(&alert());
        assert!(t.contains("[HIGH] T (r)"));
        assert!(t.contains("who:      p in account 1"));
        assert!(t.contains("evidence: p did x"));
    }
}
