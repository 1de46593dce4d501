//! What an SQS message says about new objects: the S3 event notification
//! delivered straight to the queue, the same wrapped in an SNS envelope,
//! the EventBridge "Object Created" event, and CloudTrail's own SNS
//! notification (`s3Bucket`, `s3ObjectKey`). S3's `s3:TestEvent`, sent when
//! a notification is configured, says nothing to read.

use serde_json::Value;

/// An object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// The bucket.
    pub bucket: String,
    /// The key, decoded.
    pub key: String,
    /// The size the notification gave, when it gave one.
    pub size: Option<u64>,
}

impl ObjectRef {
    /// `s3://bucket/key`, the name in dead letters and logs.
    pub fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

/// What a message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Objects to read (possibly none, when every record was of another kind).
    Objects(Vec<ObjectRef>),
    /// `s3:TestEvent`: nothing to read.
    Test,
}

/// A message that is not a notification this crate knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an S3, SNS, EventBridge or CloudTrail notification: {0}")]
pub struct NoticeError(pub String);

/// Reads a message body.
pub fn parse_notice(body: &str) -> Result<Notice, NoticeError> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| NoticeError(format!("not JSON ({e})")))?;
    from_value(&v, 0)
}

fn from_value(v: &Value, depth: u8) -> Result<Notice, NoticeError> {
    if v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice::Test);
    }
    // SNS: the notification is the `Message` string.
    if v.get("Type").and_then(Value::as_str) == Some("Notification")
        && let Some(inner) = v.get("Message").and_then(Value::as_str)
    {
        if depth > 2 {
            return Err(NoticeError("envelopes nested too deep".into()));
        }
        let inner: Value = serde_json::from_str(inner)
            .map_err(|e| NoticeError(format!("SNS message is not JSON ({e})")))?;
        return from_value(&inner, depth + 1);
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        let mut objects = Vec::new();
        for r in records {
            let source = r.get("eventSource").and_then(Value::as_str);
            let name = r.get("eventName").and_then(Value::as_str).unwrap_or("");
            if source != Some("aws:s3") || !name.starts_with("ObjectCreated:") {
                continue;
            }
            let bucket = r.pointer("/s3/bucket/name").and_then(Value::as_str);
            let key = r.pointer("/s3/object/key").and_then(Value::as_str);
            let (Some(bucket), Some(key)) = (bucket, key) else {
                return Err(NoticeError("an S3 record without bucket or key".into()));
            };
            objects.push(ObjectRef {
                bucket: bucket.to_string(),
                // S3 notifications give keys form-encoded.
                key: form_decode(key),
                size: r.pointer("/s3/object/size").and_then(Value::as_u64),
            });
        }
        return Ok(Notice::Objects(objects));
    }
    if v.get("source").and_then(Value::as_str) == Some("aws.s3") && v.get("detail").is_some() {
        if v.get("detail-type").and_then(Value::as_str) != Some("Object Created") {
            return Ok(Notice::Objects(Vec::new()));
        }
        let bucket = v.pointer("/detail/bucket/name").and_then(Value::as_str);
        let key = v.pointer("/detail/object/key").and_then(Value::as_str);
        let (Some(bucket), Some(key)) = (bucket, key) else {
            return Err(NoticeError(
                "an EventBridge event without bucket or key".into(),
            ));
        };
        return Ok(Notice::Objects(vec![ObjectRef {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: v.pointer("/detail/object/size").and_then(Value::as_u64),
        }]));
    }
    if let (Some(bucket), Some(keys)) = (
        v.get("s3Bucket").and_then(Value::as_str),
        v.get("s3ObjectKey").and_then(Value::as_array),
    ) {
        return Ok(Notice::Objects(
            keys.iter()
                .filter_map(Value::as_str)
                .map(|k| ObjectRef {
                    bucket: bucket.to_string(),
                    key: k.to_string(),
                    size: None,
                })
                .collect(),
        ));
    }
    let mut shown: String = v.to_string().chars().take(120).collect();
    if shown.len() >= 120 {
        shown.push('…');
    }
    Err(NoticeError(shown))
}

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space);
/// malformed escapes stay as they are.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(hex) = b.get(i + 1..i + 3)
            && let Some(x) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if c == b'+' { b' ' } else { c });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a key in a CloudTrail bucket is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A log file: `[prefix/]AWSLogs/[o-org/]ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/...`.
    CloudTrail {
        /// The organisation id of an organisation trail.
        org: Option<String>,
        /// The account the events are of.
        account: String,
        /// The region.
        region: String,
    },
    /// A digest file (`CloudTrail-Digest`): integrity proofs, no events.
    Digest,
    /// Anything else: read and parsed like any input (what is not
    /// CloudTrail ends as a dead letter).
    Other,
}

/// Classifies a key by CloudTrail's delivery layout.
pub fn classify_key(key: &str) -> KeyKind {
    let parts: Vec<&str> = key.split('/').collect();
    let Some(at) = parts.iter().position(|p| *p == "AWSLogs") else {
        return KeyKind::Other;
    };
    let rest = parts.get(at + 1..).unwrap_or_default();
    let (org, rest) = match rest.first() {
        Some(o) if o.starts_with("o-") => {
            (Some((*o).to_string()), rest.get(1..).unwrap_or_default())
        }
        _ => (None, rest),
    };
    match rest {
        [account, "CloudTrail-Digest", ..] if is_account(account) => KeyKind::Digest,
        [account, "CloudTrail", region, ..] if is_account(account) => KeyKind::CloudTrail {
            org,
            account: (*account).to_string(),
            region: (*region).to_string(),
        },
        _ => KeyKind::Other,
    }
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/03/111122223333_CloudTrail_us-east-1_20261103T1205Z_abc.json.gz";

    fn one(bucket: &str, key: &str) -> Notice {
        Notice::Objects(vec![ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size: Some(1234),
        }])
    }

    #[test]
    fn a_direct_s3_notification_gives_its_objects_with_keys_decoded() {
        let body = format!(
            r#"{{"Records":[{{"eventVersion":"2.1","eventSource":"aws:s3","eventName":"ObjectCreated:Put",
            "s3":{{"bucket":{{"name":"trail-logs"}},"object":{{"key":"{}","size":1234}}}}}},
            {{"eventSource":"aws:s3","eventName":"ObjectRemoved:Delete","s3":{{"bucket":{{"name":"x"}},"object":{{"key":"y"}}}}}}]}}"#,
            KEY.replace('/', "%2F")
        );
        assert_eq!(parse_notice(&body), Ok(one("trail-logs", KEY)));
        assert_eq!(form_decode("a+b%20c%zz%4"), "a b c%zz%4");
    }

    #[test]
    fn sns_eventbridge_and_cloudtrail_notifications_are_understood() {
        let s3 = format!(
            r#"{{"Records":[{{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{{"bucket":{{"name":"trail-logs"}},"object":{{"key":"{KEY}","size":1234}}}}}}]}}"#
        );
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": s3})
            .to_string();
        assert_eq!(parse_notice(&sns), Ok(one("trail-logs", KEY)));
        let eb =
            serde_json::json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "trail-logs"}, "object": {"key": KEY, "size": 1234}}})
            .to_string();
        assert_eq!(parse_notice(&eb), Ok(one("trail-logs", KEY)));
        let ct = serde_json::json!({"s3Bucket": "trail-logs", "s3ObjectKey": [KEY]}).to_string();
        assert_eq!(
            parse_notice(&ct),
            Ok(Notice::Objects(vec![ObjectRef {
                bucket: "trail-logs".into(),
                key: KEY.into(),
                size: None
            }]))
        );
    }

    #[test]
    fn the_test_event_and_strangers_are_told_apart() {
        let t = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-03T12:00:00.000Z","Bucket":"trail-logs"}"#;
        assert_eq!(parse_notice(t), Ok(Notice::Test));
        let wrapped = serde_json::json!({"Type": "Notification", "Message": t}).to_string();
        assert_eq!(parse_notice(&wrapped), Ok(Notice::Test));
        assert!(parse_notice("not json").is_err());
        let e = parse_notice(r#"{"hello":"world"}"#).unwrap_err();
        assert!(e.to_string().contains("hello"), "{e}");
    }

    #[test]
    fn keys_follow_cloudtrails_layout() {
        assert_eq!(
            classify_key(KEY),
            KeyKind::CloudTrail {
                org: None,
                account: "111122223333".into(),
                region: "us-east-1".into()
            }
        );
        assert_eq!(
            classify_key(
                "logs/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail/eu-west-1/2026/11/03/f.json.gz"
            ),
            KeyKind::CloudTrail {
                org: Some("o-a1b2c3d4e5".into()),
                account: "444455556666".into(),
                region: "eu-west-1".into()
            }
        );
        assert_eq!(
            classify_key(
                "AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail-Digest/eu-west-1/2026/11/03/d.json.gz"
            ),
            KeyKind::Digest
        );
        assert_eq!(classify_key("exports/report.csv"), KeyKind::Other);
        assert_eq!(classify_key("AWSLogs/12345/CloudTrail/x"), KeyKind::Other);
    }
}
