//! Just-in-time grants as events: who may use which role, from when to
//! when, and who approved it.
//!
//! Two sources are parsed here into grant events (`event_category =
//! 'Grant'`, `event_name` one of `grant.requested`, `grant.reviewed`,
//! `grant.approved`, `grant.denied`, `grant.ended`, the grant itself as a
//! [`GrantDoc`] in `request`):
//!
//! - [`jsonl`]: trailhound's grants JSON-lines format (`"trailhound":
//!   "grant/v1"`, `docs/grants-jsonl.md`), for any access broker;
//! - [`teleport`]: Teleport access requests (`access_request.create`,
//!   `.review`, `.update`, `.expire`, `.delete`) found in its audit log,
//!   called from the Teleport session parser.
//!
//! The third source, IAM Identity Center account assignments, needs no
//! parser of its own: `CreateAccountAssignment` and
//! `DeleteAccountAssignment` are CloudTrail records, and the detector's
//! grant table reads them as they are.
//!
//! The one design decision to know: a grant event says what one record
//! said, no more. A Teleport approval names the request but not always its
//! user or roles, a revocation line names only the id; the detector merges
//! the events of one grant by its id. So parsers keep no state between
//! lines, and a grant split across files (or days) comes together anyway.
//! Grant events ride the gateway stream (`source = 'session'`): brokers are
//! the gateway's companions, and their logs are read and followed like it.

pub mod jsonl;
pub mod teleport;

use trailhound_core::grant::{CATEGORY, GrantDoc};
use trailhound_core::{Event, Source};

use crate::emit::ParseContext;

/// The parts of a grant event a parser decides.
pub(crate) struct GrantEvent<'a> {
    /// The broker (`teleport`, or the JSON lines' `broker`): `event_source`.
    pub broker: &'a str,
    /// `grant.*`.
    pub name: &'static str,
    /// Event time, microseconds UTC.
    pub time: i64,
    /// A stable id: the same record read again gives the same id.
    pub event_id: String,
    /// The event model's principal (`gateway:<login>` for Teleport).
    pub principal: String,
    /// `GatewayUser` or `Person`.
    pub principal_type: &'static str,
    /// The grant, as far as this record says.
    pub doc: GrantDoc,
    /// Keys of the record not lifted, as JSON text.
    pub extra: Option<String>,
}

impl GrantEvent<'_> {
    /// The event.
    pub(crate) fn event(self, ctx: &ParseContext) -> Event {
        let request = serde_json::to_string(&self.doc).ok();
        Event {
            event_time: self.time,
            ingest_time: ctx.ingest_time,
            source: Source::Session,
            event_id: self.event_id,
            event_source: self.broker.to_string(),
            event_name: self.name.to_string(),
            event_category: CATEGORY.to_string(),
            principal: self.principal,
            principal_type: self.principal_type.to_string(),
            user_name: self.doc.person.clone(),
            request,
            extra: self.extra,
            ..Event::default()
        }
    }
}
