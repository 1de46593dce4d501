//! Per batch: apply the batch's grant events to the table, then add the
//! grant columns to every row.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use trailhound_core::grant::{CATEGORY, GrantClosure, GrantDoc, RoleSession, names};
use trailhound_core::schema::columns;
use trailhound_core::{event_schema, grant};

use super::identity_center;
use super::record::{RoleRef, SeenSession};
use super::{GrantTable, Judgement};
use crate::prefilter::may_hold;

/// A batch with the grant columns, and the closures its rows carry (by
/// event id): a `grant.closed` row's, or a late call's own session.
#[derive(Debug)]
pub struct Enriched {
    /// The batch, of `trailhound_core::rule_schema`.
    pub batch: RecordBatch,
    /// Closures by event id.
    pub closures: HashMap<String, GrantClosure>,
}

/// Column positions in the event schema.
#[derive(Clone, Copy)]
struct Cols {
    event_time: usize,
    event_id: usize,
    source: usize,
    event_source: usize,
    event_name: usize,
    event_category: usize,
    error_code: usize,
    principal: usize,
    principal_type: usize,
    user_name: usize,
    session_name: usize,
    source_identity: usize,
    session_id: usize,
    request: usize,
    response: usize,
}

impl Cols {
    fn new() -> Result<Self, String> {
        let schema = event_schema();
        let idx = |n: &str| schema.index_of(n).map_err(|e| e.to_string());
        Ok(Self {
            event_time: idx(columns::EVENT_TIME)?,
            event_id: idx(columns::EVENT_ID)?,
            source: idx(columns::SOURCE)?,
            event_source: idx(columns::EVENT_SOURCE)?,
            event_name: idx(columns::EVENT_NAME)?,
            event_category: idx(columns::EVENT_CATEGORY)?,
            error_code: idx(columns::ERROR_CODE)?,
            principal: idx(columns::PRINCIPAL)?,
            principal_type: idx(columns::PRINCIPAL_TYPE)?,
            user_name: idx(columns::USER_NAME)?,
            session_name: idx(columns::SESSION_NAME)?,
            source_identity: idx(columns::SOURCE_IDENTITY)?,
            session_id: idx(columns::SESSION_ID)?,
            request: idx(columns::REQUEST)?,
            response: idx(columns::RESPONSE)?,
        })
    }
}

/// A string cell of a plain or dictionary-encoded string column; `None` for
/// NULL, empty, absent columns and other types.
fn text(batch: &RecordBatch, col: usize, row: usize) -> Option<&str> {
    let a = batch.columns().get(col)?;
    if row >= a.len() || a.is_null(row) {
        return None;
    }
    let s = if let Some(s) = a.as_string_opt::<i32>() {
        s.value(row)
    } else {
        let d = a.as_dictionary_opt::<Int32Type>()?;
        let key = usize::try_from(d.keys().value(row)).ok()?;
        let values = d.values().as_string_opt::<i32>()?;
        if key >= values.len() {
            return None;
        }
        values.value(key)
    };
    (!s.is_empty()).then_some(s)
}

/// The gateway events that open and close a session (and with it what a
/// grant covers).
const SESSION_EDGES: [&str; 2] = ["session.start", "session.end"];

/// The grant columns being built.
struct Out {
    person: StringBuilder,
    role: StringBuilder,
    covered: BooleanBuilder,
    privileged: BooleanBuilder,
    id: StringBuilder,
    ended: TimestampMicrosecondBuilder,
    requester: StringBuilder,
    approver: StringBuilder,
}

impl Out {
    fn new(rows: usize) -> Self {
        let s = || StringBuilder::with_capacity(rows, 0);
        Self {
            person: s(),
            role: s(),
            covered: BooleanBuilder::with_capacity(rows),
            privileged: BooleanBuilder::with_capacity(rows),
            id: s(),
            ended: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            requester: s(),
            approver: s(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        person: Option<&str>,
        role: Option<&str>,
        covered: Option<bool>,
        privileged: Option<bool>,
        id: Option<&str>,
        ended: Option<i64>,
        requester: Option<&str>,
        approver: Option<&str>,
    ) {
        self.person.append_option(person);
        self.role.append_option(role);
        self.covered.append_option(covered);
        self.privileged.append_option(privileged);
        self.id.append_option(id);
        self.ended.append_option(ended);
        self.requester.append_option(requester);
        self.approver.append_option(approver);
    }

    fn nothing(&mut self) {
        self.push(None, None, None, None, None, None, None, None);
    }

    fn finish(mut self) -> Vec<ArrayRef> {
        vec![
            Arc::new(self.person.finish()),
            Arc::new(self.role.finish()),
            Arc::new(self.covered.finish()),
            Arc::new(self.privileged.finish()),
            Arc::new(self.id.finish()),
            Arc::new(self.ended.finish()),
            Arc::new(self.requester.finish()),
            Arc::new(self.approver.finish()),
        ]
    }
}

impl GrantTable {
    /// Applies the grant events of `batch` (of the event schema) in
    /// event-time order, then returns it with the grant columns (see the
    /// module documentation) and the closures late calls carry.
    pub fn enrich(&mut self, batch: &RecordBatch) -> Result<Enriched, String> {
        let c = Cols::new()?;
        let Some(times) = batch
            .columns()
            .get(c.event_time)
            .and_then(|a| a.as_primitive_opt::<TimestampMicrosecondType>())
        else {
            return Err("the batch has no event_time column".into());
        };
        let rows = batch.num_rows();
        // 1. What the batch says about grants, in event-time order (the
        // rows that say anything are few: found first, then sorted).
        // Most batches hold no grant, gateway session or Identity Center
        // event at all: their dictionaries say so without a row read.
        let mentions_grants = may_hold(batch, c.event_category, &[CATEGORY])
            || may_hold(batch, c.event_name, &SESSION_EDGES)
            || may_hold(
                batch,
                c.event_source,
                &[identity_center::SSO, identity_center::IDENTITY_STORE],
            );
        let rows_to_read = if mentions_grants { rows } else { 0 };
        let mut order: Vec<usize> = (0..rows_to_read)
            .filter(|&row| {
                let name = text(batch, c.event_name, row).unwrap_or_default();
                text(batch, c.event_category, row) == Some(CATEGORY)
                    || SESSION_EDGES.contains(&name)
                    || identity_center::is_relevant(
                        text(batch, c.event_source, row).unwrap_or_default(),
                        name,
                    )
            })
            .collect();
        order.sort_by_key(|&r| times.value(r));
        let mut row_grant: Vec<Option<String>> = vec![None; rows];
        for &row in &order {
            let time = times.value(row);
            let category = text(batch, c.event_category, row);
            let name = text(batch, c.event_name, row).unwrap_or_default();
            let source = text(batch, c.event_source, row).unwrap_or_default();
            if category == Some(CATEGORY) {
                let doc: GrantDoc = text(batch, c.request, row)
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default();
                if name != names::CLOSED {
                    self.apply_event(source, name, time, &doc);
                }
                if let Some(slot) = row_grant.get_mut(row)
                    && !doc.id.is_empty()
                {
                    *slot = Some(doc.id);
                }
            } else if identity_center::is_relevant(source, name)
                && text(batch, c.error_code, row).is_none()
            {
                let fact = identity_center::read(
                    source,
                    name,
                    text(batch, c.request, row),
                    text(batch, c.response, row),
                );
                let caller = text(batch, c.session_name, row)
                    .or_else(|| text(batch, c.user_name, row))
                    .or_else(|| text(batch, c.principal, row));
                if let Some(fact) = fact
                    && let Some(id) = self.apply_fact(fact, time, caller)
                    && let Some(slot) = row_grant.get_mut(row)
                {
                    *slot = Some(id);
                }
            } else if text(batch, c.source, row) == Some("session")
                && matches!(name, "session.start" | "session.end")
                && let (Some(sid), Some(login)) = (
                    text(batch, c.session_id, row),
                    text(batch, c.user_name, row),
                )
            {
                self.apply_session(name, sid, login, time);
            }
        }
        let mut closures = HashMap::new();
        let configured =
            !self.config.privileged_roles.is_empty() || !self.config.managed_roles.is_empty();
        if self.grants.is_empty() && !configured {
            let batch = grant::with_null_grant_columns(batch).map_err(|e| e.to_string())?;
            return Ok(Enriched { batch, closures });
        }
        // 2. The grant columns, row by row.
        let mut out = Out::new(rows);
        for (row, grant_id) in row_grant.iter().enumerate() {
            let time = times.value(row);
            if let Some(id) = grant_id {
                self.grant_row(&mut out, id);
                continue;
            }
            match text(batch, c.source, row) {
                Some("cloudtrail") if text(batch, c.principal_type, row) == Some("AssumedRole") => {
                    let role = text(batch, c.principal, row).and_then(RoleRef::parse);
                    let session_name = text(batch, c.session_name, row);
                    let source_identity = text(batch, c.source_identity, row);
                    let (Some(role), Some(person)) = (role, source_identity.or(session_name))
                    else {
                        out.nothing();
                        continue;
                    };
                    let Some(j) = self.judge(&role, person, time) else {
                        out.nothing();
                        continue;
                    };
                    let session = SeenSession {
                        role_arn: role.arn.to_string(),
                        session_name: session_name.map(str::to_string),
                        source_identity: source_identity.map(str::to_string),
                    };
                    if let (None, Some((id, end)), Some(event_id)) =
                        (&j.covering, &j.ended, text(batch, c.event_id, row))
                    {
                        closures.insert(
                            event_id.to_string(),
                            GrantClosure {
                                grant_id: id.clone(),
                                person: person.to_string(),
                                issued_before: *end,
                                role_sessions: vec![RoleSession {
                                    role_arn: session.role_arn.clone(),
                                    session_name: session.session_name.clone(),
                                    source_identity: session.source_identity.clone(),
                                }],
                                gateway_sessions: Vec::new(),
                            },
                        );
                    }
                    self.call_row(&mut out, person, role.arn, &j, session);
                }
                Some("session") => {
                    out.push(
                        text(batch, c.user_name, row),
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                        None,
                    );
                }
                _ => out.nothing(),
            }
        }
        let batch = grant::with_grant_columns(batch, out.finish()).map_err(|e| e.to_string())?;
        Ok(Enriched { batch, closures })
    }

    /// The columns of a grant event's row: its grant.
    fn grant_row(&self, out: &mut Out, id: &str) {
        let Some(g) = self.grants.get(id) else {
            out.push(None, None, None, None, Some(id), None, None, None);
            return;
        };
        let person = self.person_of(g);
        let requester = g.requester.clone().or_else(|| {
            // An Identity Center assignment is asked for the person it names.
            g.assignment.as_ref().and(person.clone())
        });
        out.push(
            person.as_deref(),
            self.roles_text(g).as_deref(),
            None,
            None,
            Some(id),
            g.ends_at(),
            requester.as_deref(),
            g.approver.as_deref(),
        );
    }

    /// The columns of a call on a role grants manage; remembers the session
    /// on the grant that covers it.
    fn call_row(
        &mut self,
        out: &mut Out,
        person: &str,
        role: &str,
        j: &Judgement,
        session: SeenSession,
    ) {
        let (id, ended) = match (&j.covering, &j.ended) {
            (Some(id), _) => (Some(id.as_str()), None),
            (None, Some((id, end))) => (Some(id.as_str()), Some(*end)),
            (None, None) => (None, None),
        };
        let g = id.and_then(|id| self.grants.get(id));
        let requester = g.and_then(|g| {
            g.requester
                .clone()
                .or_else(|| g.assignment.as_ref().and(self.person_of(g)))
        });
        let approver = g.and_then(|g| g.approver.clone());
        out.push(
            Some(person),
            Some(role),
            Some(j.covering.is_some()),
            Some(j.privileged),
            id,
            ended,
            requester.as_deref(),
            approver.as_deref(),
        );
        if let Some(id) = &j.covering
            && let Some(g) = self.grants.get_mut(id)
        {
            g.saw(session);
        }
    }
}
