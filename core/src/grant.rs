//! Just-in-time grants in the event model: the grant events every source is
//! normalised into, the enrichment columns the detector adds beside the
//! event columns before rules run, and what an alert asks responders to cut
//! when a grant ends.
//!
//! The one design decision to know: grant state is *derived*, never stored
//! with the events. A grant event (a Teleport access request, a line of the
//! grants JSON-lines format) is an ordinary event with `event_category =
//! 'Grant'`, its grant in `request` as a [`GrantDoc`]; Identity Center
//! assignments stay the CloudTrail records they are. The detector keeps the
//! grant table and, per batch, appends the [`columns`] below to the event
//! columns, so rules read them like any column while the lake, the bus and
//! the parsers keep the plain [`crate::event_schema`]. Rules are compiled
//! against [`rule_schema`] (the event columns, then these); a batch without
//! them is widened with NULLs ([`with_null_grant_columns`]).

use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use crate::schema::{event_schema, timestamp_utc};

/// `event_category` of grant events.
pub const CATEGORY: &str = "Grant";

/// Event names of grant events (`event_name`).
pub mod names {
    /// Someone asked for access (Teleport `access_request.create`).
    pub const REQUESTED: &str = "grant.requested";
    /// A reviewer gave their verdict; the request may still need more.
    pub const REVIEWED: &str = "grant.reviewed";
    /// Access was granted: from now (or the document's `start`) to its `end`.
    pub const APPROVED: &str = "grant.approved";
    /// The request was turned down.
    pub const DENIED: &str = "grant.denied";
    /// The grant ended before its time, or its end was recorded
    /// (Teleport `access_request.expire`/`delete`, a `revoked` line).
    pub const ENDED: &str = "grant.ended";
    /// Made by the detector, not read: the watermark passed a grant's end
    /// and the sessions issued during it are to be closed.
    pub const CLOSED: &str = "grant.closed";
}

/// The enrichment columns, in the order they follow the event columns.
pub mod columns {
    /// The person a row is about, as grants name them: the role session's
    /// source identity or session name, the gateway login, a grant's grantee.
    pub const GRANT_PERSON: &str = "grant_person";
    /// The role a row is judged against (the role ARN of an AWS call), or a
    /// grant's roles, comma-separated.
    pub const GRANT_ROLE: &str = "grant_role";
    /// For a call on a role grants manage: whether an active grant covers
    /// it; NULL for rows grants do not govern.
    pub const GRANT_COVERED: &str = "grant_covered";
    /// For a call on a role grants manage: whether the configuration marks
    /// the role as privileged.
    pub const GRANT_PRIVILEGED: &str = "grant_privileged";
    /// The covering grant (or, when none covers, the one that ended last);
    /// on a grant event, its grant.
    pub const GRANT_ID: &str = "grant_id";
    /// When the grant in `grant_id` ended, for a call it does not cover
    /// (the session outlived it); on a grant event, when the grant ends.
    pub const GRANT_ENDED: &str = "grant_ended";
    /// Who asked for the grant in `grant_id`.
    pub const GRANT_REQUESTER: &str = "grant_requester";
    /// Who approved the grant in `grant_id`.
    pub const GRANT_APPROVER: &str = "grant_approver";

    /// Every enrichment column, in schema order.
    pub const ALL: [&str; 8] = [
        GRANT_PERSON,
        GRANT_ROLE,
        GRANT_COVERED,
        GRANT_PRIVILEGED,
        GRANT_ID,
        GRANT_ENDED,
        GRANT_REQUESTER,
        GRANT_APPROVER,
    ];
}

/// The enrichment fields, in schema order.
pub fn grant_fields() -> Vec<Field> {
    use columns::*;
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    vec![
        s(GRANT_PERSON),
        s(GRANT_ROLE),
        Field::new(GRANT_COVERED, DataType::Boolean, true),
        Field::new(GRANT_PRIVILEGED, DataType::Boolean, true),
        s(GRANT_ID),
        Field::new(GRANT_ENDED, timestamp_utc(), true),
        s(GRANT_REQUESTER),
        s(GRANT_APPROVER),
    ]
}

/// The schema rules are compiled against: [`event_schema`] and then the
/// enrichment [`columns`]. Column positions of the event columns are the
/// same in both.
pub fn rule_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let mut fields: Vec<Field> = event_schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.extend(grant_fields());
            Arc::new(Schema::new(fields))
        })
        .clone()
}

/// Why a batch could not be widened.
#[derive(Debug, thiserror::Error)]
#[error("grant columns do not fit the batch: {0}")]
pub struct WidenError(String);

/// `batch` (of [`event_schema`]) with the enrichment columns appended.
/// `grant` must hold one array per [`columns::ALL`], of the batch's length.
pub fn with_grant_columns(
    batch: &RecordBatch,
    grant: Vec<ArrayRef>,
) -> Result<RecordBatch, WidenError> {
    let mut all: Vec<ArrayRef> = batch.columns().to_vec();
    all.extend(grant);
    RecordBatch::try_new(rule_schema(), all).map_err(|e| WidenError(e.to_string()))
}

/// `batch` widened to [`rule_schema`] with every enrichment column NULL. A
/// batch that is already that wide is returned as it is (cheaply cloned).
pub fn with_null_grant_columns(batch: &RecordBatch) -> Result<RecordBatch, WidenError> {
    if batch.num_columns() >= rule_schema().fields().len() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let nulls = grant_fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), rows))
        .collect();
    with_grant_columns(batch, nulls)
}

/// A grant as a grant event carries it in `request` (JSON). Times are
/// RFC 3339 text so that rules can read them (`json_get_str(request,
/// 'end')`). Every field but `id` may be absent on an update: the detector
/// merges the events of one grant by `id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrantDoc {
    /// The grant's id, unique within its source (`teleport:<request id>`,
    /// `<broker>:<id>`).
    pub id: String,
    /// Who the grant is for: a gateway login, an Identity Center user
    /// name, an e-mail; matched against role session names and source
    /// identities (ASCII case ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<String>,
    /// The roles granted: role ARNs (`*` wildcards allowed), role names,
    /// Identity Center permission-set names, or gateway roles that the
    /// configuration maps to those.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The accounts it is limited to; empty: wherever the roles are.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<String>,
    /// When access starts (RFC 3339); absent: when it was approved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When access ends (RFC 3339); absent: until an end is recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Who asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Who approved (the last approving reviewer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// The change or incident ticket.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Why it was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether the grant also governs the person's gateway sessions (they
    /// are ended with it).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub gateway: bool,
}

/// One role session a grant closure revokes: the deny goes on the role and
/// holds only for this person's sessions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleSession {
    /// The role (`arn:aws:iam::ACCOUNT:role/PATH/NAME`).
    pub role_arn: String,
    /// The role session name the person's sessions carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_name: Option<String>,
    /// The source identity their sessions carry, when they have no session
    /// name to match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_identity: Option<String>,
}

/// One gateway session a grant closure ends.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GatewaySession {
    /// The gateway's session id.
    pub session_id: String,
    /// The login that opened it.
    pub login: String,
}

/// What an alert about an ended grant asks responders to close: the
/// sessions issued during the grant. `revoke-sessions` puts a
/// token-issue-time deny on each role, scoped to the person's sessions;
/// `end-gateway-session` ends each gateway session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClosure {
    /// The grant.
    pub grant_id: String,
    /// Its person.
    pub person: String,
    /// Sessions issued before this time (the grant's end, microseconds UTC)
    /// are cut; later ones (a new grant's) are not.
    pub issued_before: i64,
    /// The role sessions to revoke.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role_sessions: Vec<RoleSession>,
    /// The gateway sessions to end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateway_sessions: Vec<GatewaySession>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, events_to_batch};

    #[test]
    fn the_rule_schema_is_the_event_schema_then_the_grant_columns() {
        let events = event_schema();
        let rules = rule_schema();
        assert_eq!(
            rules.fields().len(),
            events.fields().len() + columns::ALL.len()
        );
        for (i, f) in events.fields().iter().enumerate() {
            assert_eq!(rules.field(i), f.as_ref());
        }
        for (i, name) in columns::ALL.iter().enumerate() {
            assert_eq!(rules.field(events.fields().len() + i).name(), name);
        }
    }

    #[test]
    fn a_plain_batch_widens_with_nulls_and_a_wide_one_stays() {
        let batch = events_to_batch(&[Event::default(), Event::default()]);
        let wide = with_null_grant_columns(&batch).unwrap();
        assert_eq!(wide.schema(), rule_schema());
        assert_eq!(wide.num_rows(), 2);
        let id = wide.column_by_name(columns::GRANT_ID).unwrap();
        assert_eq!(id.null_count(), 2);
        let again = with_null_grant_columns(&wide).unwrap();
        assert_eq!(again.num_columns(), wide.num_columns());
    }

    #[test]
    fn a_grant_document_reads_back_and_leaves_out_what_is_absent() {
        let doc = GrantDoc {
            id: "jsonl:CHG-1".into(),
            person: Some("alice".into()),
            roles: vec!["arn:aws:iam::111122223333:role/admin".into()],
            end: Some("2026-11-02T11:00:00Z".into()),
            ..GrantDoc::default()
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert!(
            !text.contains("approver") && !text.contains("gateway"),
            "{text}"
        );
        let back: GrantDoc = serde_json::from_str(&text).unwrap();
        assert_eq!(back, doc);
    }
}
