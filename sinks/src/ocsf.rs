//! OCSF output: an alert as an OCSF 1.1.0 Detection Finding, for security lakes.
//!
//! [`detection_finding`] maps an [`Alert`] onto the Detection Finding class
//! (`class_uid` 2004, category 2 Findings, activity 1 Create, so `type_uid`
//! 200401):
//!
//! | OCSF | from the alert |
//! |---|---|
//! | `time` | `detected_at`, in milliseconds |
//! | `severity_id`, `severity` | informational 1, low 2, medium 3, high 4, critical 5 |
//! | `status_id`, `status` | 1, `New` |
//! | `message` | the title |
//! | `count` | the number of matching events |
//! | `finding_info.uid`, `.title`, `.desc` | alert id, title, evidence |
//! | `finding_info.types` | the tags outside ATT&CK (such as `baseline`), when there are any |
//! | `finding_info.analytic` | `name` = rule id, `type_id` 1 (`Rule`) |
//! | `finding_info.first_seen_time`, `.last_seen_time` | first and last event time, in milliseconds |
//! | `finding_info.attacks` | one per `attack.tNNNN[.NNN]` tag: `technique`, `sub_technique`, and the first tactic tag (`attack.defense-evasion`) as `tactic` |
//! | `finding_info.related_events` | the event ids, as `uid` |
//! | `metadata` | `product` {`name`, `vendor_name` trailhound, `version`}, `version` 1.1.0, `labels` = all tags |
//! | `actor.user` | the principal as `uid`, its last path segment as `name` |
//! | `cloud` | `provider` AWS, `account.uid` the account |
//! | `evidences` | one per event id: `data.event_uid` |
//!
//! [`OcsfLinesSink`] writes one finding per line (`--format ocsf`).

use std::io::Write;

use serde_json::{Map, Value, json};
use trailhound_core::{Alert, Severity};

use crate::{AlertSink, SinkError};

/// The OCSF schema version written.
pub const OCSF_VERSION: &str = "1.1.0";
/// Detection Finding.
pub const CLASS_UID: u32 = 2004;
/// Findings.
pub const CATEGORY_UID: u32 = 2;
/// Create.
pub const ACTIVITY_ID: u32 = 1;
/// `class_uid * 100 + activity_id`.
pub const TYPE_UID: u32 = CLASS_UID * 100 + ACTIVITY_ID;

/// OCSF's `severity_id` and caption for ours.
pub fn severity(severity: Severity) -> (u8, &'static str) {
    match severity {
        Severity::Informational => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// ATT&CK Enterprise tactics by the names trailhound's tags use.
const TACTICS: &[(&str, &str, &str)] = &[
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource-development", "TA0042", "Resource Development"),
    ("initial-access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege-escalation", "TA0004", "Privilege Escalation"),
    ("defense-evasion", "TA0005", "Defense Evasion"),
    ("credential-access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral-movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command-and-control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// `attack.t1562.008` -> (`T1562`, `Some("T1562.008")`); `None` for other tags.
fn technique(tag: &str) -> Option<(String, Option<String>)> {
    let rest = tag.strip_prefix("attack.")?;
    let id = rest.strip_prefix('t').or_else(|| rest.strip_prefix('T'))?;
    let (main, sub) = match id.split_once('.') {
        Some((m, s)) => (m, Some(s)),
        None => (id, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(main) || sub.is_some_and(|s| !digits(s)) {
        return None;
    }
    Some((format!("T{main}"), sub.map(|s| format!("T{main}.{s}"))))
}

fn tactic(tag: &str) -> Option<Value> {
    let name = tag.strip_prefix("attack.")?.to_ascii_lowercase();
    TACTICS
        .iter()
        .find(|(key, _, _)| *key == name)
        .map(|(_, uid, caption)| json!({"uid": uid, "name": caption}))
}

fn attacks(tags: &[String]) -> Vec<Value> {
    let tactic = tags.iter().find_map(|t| tactic(t));
    let mut out: Vec<Value> = Vec::new();
    for (main, sub) in tags.iter().filter_map(|t| technique(t)) {
        let mut attack = Map::new();
        attack.insert("technique".into(), json!({"uid": main}));
        if let Some(sub) = sub {
            attack.insert("sub_technique".into(), json!({"uid": sub}));
        }
        if let Some(t) = &tactic {
            attack.insert("tactic".into(), t.clone());
        }
        let attack = Value::Object(attack);
        if !out.contains(&attack) {
            out.push(attack);
        }
    }
    if out.is_empty()
        && let Some(t) = tactic
    {
        out.push(json!({"tactic": t}));
    }
    out
}

/// The alert as an OCSF Detection Finding (see the module page).
pub fn detection_finding(alert: &Alert) -> Value {
    let (severity_id, severity_caption) = severity(alert.severity);
    let ms = |micros: i64| micros.div_euclid(1000);
    let mut finding_info = Map::new();
    finding_info.insert("uid".into(), json!(alert.alert_id));
    finding_info.insert("title".into(), json!(alert.title));
    finding_info.insert("desc".into(), json!(alert.evidence));
    let types: Vec<&String> = alert
        .tags
        .iter()
        .filter(|t| !t.starts_with("attack."))
        .collect();
    if !types.is_empty() {
        finding_info.insert("types".into(), json!(types));
    }
    finding_info.insert(
        "analytic".into(),
        json!({"name": alert.rule_id, "uid": alert.rule_id, "type_id": 1, "type": "Rule"}),
    );
    finding_info.insert("first_seen_time".into(), json!(ms(alert.first_event_time)));
    finding_info.insert("last_seen_time".into(), json!(ms(alert.last_event_time)));
    finding_info.insert("created_time".into(), json!(ms(alert.detected_at)));
    let attacks = attacks(&alert.tags);
    if !attacks.is_empty() {
        finding_info.insert("attacks".into(), Value::Array(attacks));
    }
    if !alert.event_ids.is_empty() {
        let related: Vec<Value> = alert
            .event_ids
            .iter()
            .map(|id| json!({"uid": id}))
            .collect();
        finding_info.insert("related_events".into(), Value::Array(related));
    }
    let user_name = alert
        .principal
        .rsplit(['/', ':'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(&alert.principal);
    let mut cloud = Map::new();
    cloud.insert("provider".into(), json!("AWS"));
    if let Some(account) = &alert.account_id {
        cloud.insert(
            "account".into(),
            json!({"uid": account, "type_id": 10, "type": "AWS Account"}),
        );
    }
    let evidences: Vec<Value> = alert
        .event_ids
        .iter()
        .map(|id| json!({"data": {"event_uid": id}}))
        .collect();
    let mut finding = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_ID,
        "activity_name": "Create",
        "type_uid": TYPE_UID,
        "type_name": "Detection Finding: Create",
        "time": ms(alert.detected_at),
        "severity_id": severity_id,
        "severity": severity_caption,
        "status_id": 1,
        "status": "New",
        "message": alert.title,
        "count": alert.event_count,
        "finding_info": Value::Object(finding_info),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {
                "name": "trailhound",
                "vendor_name": "trailhound",
                "version": env!("CARGO_PKG_VERSION"),
            },
            "labels": alert.tags,
        },
        "actor": {
            "user": {"uid": alert.principal, "name": user_name},
        },
        "cloud": Value::Object(cloud),
    });
    if !evidences.is_empty()
        && let Some(obj) = finding.as_object_mut()
    {
        obj.insert("evidences".into(), Value::Array(evidences));
    }
    finding
}

/// One OCSF Detection Finding per alert per line.
pub struct OcsfLinesSink<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> OcsfLinesSink<W> {
    /// A sink writing to `out`.
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write + Send> AlertSink for OcsfLinesSink<W> {
    fn name(&self) -> &'static str {
        "ocsf"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        serde_json::to_writer(&mut self.out, &detection_finding(alert)).map_err(|e| {
            SinkError::Encode {
                sink: "ocsf",
                reason: e.to_string(),
            }
        })?;
        self.out.write_all(b"\n").map_err(|source| SinkError::Io {
            sink: "ocsf",
            source,
        })
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|source| SinkError::Io {
            sink: "ocsf",
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> Alert {
        Alert {
            alert_id: "a1b2".into(),
            rule_id: "aws-cloudtrail-logging-stopped".into(),
            title: "CloudTrail logging stopped".into(),
            severity: Severity::High,
            principal: "arn:aws:iam::123456789012:user/mallory".into(),
            account_id: Some("123456789012".into()),
            first_event_time: 1_700_000_000_123_456,
            last_event_time: 1_700_000_060_000_000,
            detected_at: 1_700_000_100_999_999,
            event_ids: vec!["e1".into(), "e2".into()],
            event_count: 5,
            evidence: "mallory called StopLogging".into(),
            tags: vec![
                "attack.defense-evasion".into(),
                "attack.t1562.008".into(),
                "attack.t1562".into(),
                "baseline".into(),
            ],
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    #[test]
    fn maps_every_field_the_module_page_lists() {
        let f = detection_finding(&alert());
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["category_uid"], 2);
        assert_eq!(f["activity_id"], 1);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["severity_id"], 4);
        assert_eq!(f["time"], 1_700_000_100_999i64);
        let fi = &f["finding_info"];
        assert_eq!(fi["uid"], "a1b2");
        assert_eq!(fi["title"], "CloudTrail logging stopped");
        assert_eq!(fi["desc"], "mallory called StopLogging");
        assert_eq!(fi["types"], json!(["baseline"]));
        assert_eq!(fi["analytic"]["name"], "aws-cloudtrail-logging-stopped");
        assert_eq!(fi["analytic"]["type_id"], 1);
        assert_eq!(fi["first_seen_time"], 1_700_000_000_123i64);
        assert_eq!(fi["last_seen_time"], 1_700_000_060_000i64);
        assert_eq!(
            fi["attacks"],
            json!([
                {"technique": {"uid": "T1562"}, "sub_technique": {"uid": "T1562.008"}, "tactic": {"uid": "TA0005", "name": "Defense Evasion"}},
                {"technique": {"uid": "T1562"}, "tactic": {"uid": "TA0005", "name": "Defense Evasion"}},
            ])
        );
        assert_eq!(f["metadata"]["version"], "1.1.0");
        assert_eq!(f["metadata"]["product"]["name"], "trailhound");
        assert_eq!(f["metadata"]["product"]["vendor_name"], "trailhound");
        assert_eq!(
            f["actor"]["user"]["uid"],
            "arn:aws:iam::123456789012:user/mallory"
        );
        assert_eq!(f["actor"]["user"]["name"], "mallory");
        assert_eq!(f["cloud"]["provider"], "AWS");
        assert_eq!(f["cloud"]["account"]["uid"], "123456789012");
        assert_eq!(
            f["evidences"],
            json!([{"data": {"event_uid": "e1"}}, {"data": {"event_uid": "e2"}}])
        );
        assert_eq!(f["count"], 5);
    }

    #[test]
    fn technique_tags_parse_and_others_do_not() {
        assert_eq!(technique("attack.t1098"), Some(("T1098".into(), None)));
        assert_eq!(
            technique("attack.t1078.004"),
            Some(("T1078".into(), Some("T1078.004".into())))
        );
        assert_eq!(technique("attack.persistence"), None);
        assert_eq!(technique("attack.t10x"), None);
        assert_eq!(technique("baseline"), None);
    }

    #[test]
    fn lines_sink_writes_one_finding_per_line() {
        let mut buf = Vec::new();
        {
            let mut s = OcsfLinesSink::new(&mut buf);
            s.send(&alert()).unwrap();
            s.send(&alert()).unwrap();
            s.flush().unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 2);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["class_uid"], 2004);
        }
    }
}
