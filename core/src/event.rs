//! The normalised event: one per CloudTrail record or gateway session event.

use serde::{Deserialize, Serialize};

/// Where an event came from. Kept small on purpose: it is a partition of the
/// data that rules, metrics and the lake all group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// AWS CloudTrail: management, data (S3) and Insights events.
    #[default]
    Cloudtrail,
    /// A privileged-access gateway: session and keystroke logs.
    Session,
}

impl Source {
    /// The lower-case name used in the `source` column and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cloudtrail => "cloudtrail",
            Source::Session => "session",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One normalised event. Every source is mapped onto these fields once, at
/// ingest; nothing downstream looks at the original JSON except through
/// `request`, `response` and `extra`.
///
/// Times are microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Event {
    // when and what
    /// When the event happened (CloudTrail `eventTime`, session event time).
    /// Deserialises from microseconds or an RFC 3339 string.
    #[serde(deserialize_with = "micros_or_rfc3339")]
    pub event_time: i64,
    /// When trailhound read it.
    pub ingest_time: i64,
    /// CloudTrail or session.
    pub source: Source,
    /// CloudTrail `eventID`; for session events `<session id>:<sequence>`.
    pub event_id: String,
    /// CloudTrail `eventSource` (`iam.amazonaws.com`); for sessions the gateway kind (`teleport`).
    pub event_source: String,
    /// CloudTrail `eventName`; for sessions `session.start`, `session.command`, ...
    pub event_name: String,
    /// `Management`, `Data`, `Insight` or `Session`.
    pub event_category: String,
    /// CloudTrail `readOnly`, when known.
    pub read_only: Option<bool>,
    /// CloudTrail `errorCode` (`AccessDenied`, ...).
    pub error_code: Option<String>,
    /// CloudTrail `errorMessage`.
    pub error_message: Option<String>,

    // who
    /// The account the call was made in (`recipientAccountId`, else the identity's account).
    pub account_id: Option<String>,
    /// The stable key of the actor: user ARN, role ARN for assumed roles, root ARN,
    /// `gateway:<user>` for gateway users. Baselines and Kafka partitioning use it.
    pub principal: String,
    /// `Root`, `IAMUser`, `AssumedRole`, `FederatedUser`, `AWSService`, `AWSAccount`,
    /// `IdentityCenterUser`, `GatewayUser`, or whatever CloudTrail sent.
    pub principal_type: String,
    /// The full ARN as CloudTrail gave it (for assumed roles, the session ARN).
    pub principal_arn: Option<String>,
    /// The short name: IAM user name, role name, gateway login.
    pub user_name: Option<String>,
    /// The role session name for assumed roles.
    pub session_name: Option<String>,
    /// The access key used (`AKIA...` long-term, `ASIA...` temporary).
    pub access_key_id: Option<String>,
    /// `sourceIdentity` set on role assumption.
    pub source_identity: Option<String>,
    /// Whether MFA was used, when CloudTrail says.
    pub mfa: Option<bool>,
    /// Whether the call used console session credentials (CloudTrail
    /// `sessionCredentialFromConsole`): a role or user session opened in the
    /// AWS console rather than a key or SDK session. Left out of the
    /// serialised event when unknown, so that readers built before the field
    /// existed still read events that lack it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub console_session: Option<bool>,

    // from where
    /// The AWS region of the call.
    pub region: Option<String>,
    /// `sourceIPAddress` (an IP, or a service name such as `ec2.amazonaws.com`).
    pub source_ip: Option<String>,
    /// The caller's user agent.
    pub user_agent: Option<String>,

    // on what
    /// ARNs of the resources touched.
    pub resources: Vec<String>,
    /// S3 bucket, for S3 calls.
    pub bucket: Option<String>,
    /// S3 object key, for S3 object calls.
    pub object_key: Option<String>,
    /// Bytes received by AWS (uploads).
    pub bytes_in: Option<i64>,
    /// Bytes sent by AWS (downloads).
    pub bytes_out: Option<i64>,

    // sessions
    /// Gateway session id.
    pub session_id: Option<String>,
    /// The host or resource the session is connected to.
    pub target: Option<String>,
    /// A command run in the session.
    pub command: Option<String>,
    /// Keystrokes typed, with secrets redacted.
    pub input: Option<String>,
    /// Number of keystrokes behind `input`/`command`.
    pub keystrokes: Option<i64>,
    /// Mean time between keystrokes, in milliseconds.
    pub keystroke_interval_ms_mean: Option<f64>,
    /// Standard deviation of the time between keystrokes, in milliseconds.
    pub keystroke_interval_ms_stddev: Option<f64>,

    // the rest
    /// CloudTrail `requestParameters` as JSON text.
    pub request: Option<String>,
    /// CloudTrail `responseElements` as JSON text.
    pub response: Option<String>,
    /// Everything else of the original record that no column lifts, as a JSON
    /// object (`additionalEventData`, `userIdentity`, unknown fields, ...).
    pub extra: Option<String>,
}

/// Accepts microseconds since the epoch or an RFC 3339 timestamp.
fn micros_or_rfc3339<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Micros;
    impl serde::de::Visitor<'_> for Micros {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("microseconds since the epoch or an RFC 3339 timestamp")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("event_time is too large"))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<i64, E> {
            crate::time::parse_rfc3339_micros(v)
                .ok_or_else(|| E::custom(format!("event_time {v:?} is not an RFC 3339 timestamp")))
        }
    }
    d.deserialize_any(Micros)
}

impl Event {
    /// The bytes of its text, roughly what it takes in memory and as Arrow
    /// columns beyond the fixed-size fields: batches are bounded by it, so
    /// that a thousand events of a megabyte each do not make a gigabyte batch.
    pub fn text_bytes(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        self.event_id.len()
            + self.event_source.len()
            + self.event_name.len()
            + self.event_category.len()
            + self.principal.len()
            + self.principal_type.len()
            + self.resources.iter().map(String::len).sum::<usize>()
            + [
                &self.error_code,
                &self.error_message,
                &self.account_id,
                &self.principal_arn,
                &self.user_name,
                &self.session_name,
                &self.access_key_id,
                &self.source_identity,
                &self.region,
                &self.source_ip,
                &self.user_agent,
                &self.bucket,
                &self.object_key,
                &self.session_id,
                &self.target,
                &self.command,
                &self.input,
                &self.request,
                &self.response,
                &self.extra,
            ]
            .into_iter()
            .map(opt)
            .sum::<usize>()
    }

    /// True for principals trailhound must alert on but never act on: the
    /// account root user and AWS service principals.
    pub fn is_protected_principal(&self) -> bool {
        matches!(self.principal_type.as_str(), "Root" | "AWSService")
    }
}

#[cfg(test)]
mod tests {
    use super::Event;

    #[test]
    fn event_time_reads_micros_or_rfc3339() {
        let a: Event = serde_json::from_str(r#"{"event_time": 1704164645000000}"#).unwrap();
        let b: Event = serde_json::from_str(r#"{"event_time": "2024-01-02T03:04:05Z"}"#).unwrap();
        assert_eq!(a.event_time, 1_704_164_645_000_000);
        assert_eq!(b.event_time, a.event_time);
        assert!(serde_json::from_str::<Event>(r#"{"event_time": "noon"}"#).is_err());
    }
}
