//! The grant table: which just-in-time grants are in force, by person and
//! role, in event time; the enrichment columns rules read from it; and the
//! closure of a grant's sessions when it ends.
//!
//! Grants come from three sources, all seen as events: Identity Center
//! account assignments (CloudTrail records, [`identity_center`]), Teleport
//! access requests and the grants JSON-lines format (grant events made by
//! `trailhound_ingest::grants`, merged here by grant id). Per batch the
//! engine calls [`GrantTable::enrich`]: the grant events of the batch are
//! applied first (in event-time order), then every row gets the columns of
//! `trailhound_core::grant::columns`:
//!
//! - a CloudTrail call of an assumed role that grants manage (the role is
//!   named by any grant the table has seen, or by `managed_roles` or
//!   `privileged_roles` in the settings) by a person (its source identity,
//!   else its role session name) gets `grant_covered` (does a grant of that
//!   person for that role cover the call's time?), `grant_privileged`, the
//!   covering grant's id, requester and approver, and, when none covers,
//!   the grant that ended last within `outlived_within` (12 h, the longest
//!   role session) and its end in `grant_ended`;
//! - a grant event gets its grant's id, person, roles, end, requester and
//!   approver (a Teleport approval that names only the request id gets
//!   what the request said);
//! - a gateway session row gets its login as `grant_person`;
//! - every other row gets NULLs.
//!
//! Everything is decided in event time, so a replay and a live run agree: a
//! grant covers `[start, end)`; its end is decided when the engine's
//! watermark passes it ([`GrantTable::close_until`]): the grant's sessions
//! (the role sessions it was seen covering, the concrete role ARNs it names,
//! and, for gateway grants, the person's gateway sessions opened during it
//! and still open) become a [`GrantClosure`] on a `grant.closed` row that
//! the engine runs through the rules like any row, so the rule pack decides
//! what answers it. A call that comes after the grant ended carries a
//! closure of its own session, for the rules that answer a late call.
//!
//! State is bounded: grants are forgotten `retention` (7 days) after they
//! ended or were asked for, gateway sessions the same, role sessions per
//! grant capped at 64. It is saved with the engine's checkpoint
//! ([`GrantTable::snapshot`]) and, on a cold start, rebuilt by replaying
//! the grant events of the lake.

mod enrich;
pub mod history;
pub mod identity_center;
pub mod record;

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use trailhound_core::grant::{
    CATEGORY, GatewaySession, GrantClosure, GrantDoc, RoleSession, names,
};
use trailhound_core::time::format_micros;
use trailhound_core::{Event, Source};

pub use enrich::Enriched;
use identity_center::{Directory, Fact};
pub use record::{Assignment, Grant, RoleRef, SeenSession};

const HOUR: i64 = 3_600_000_000;

/// `grants:` in the settings file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrantConfig {
    /// Roles every call of which is privileged: any call needs a grant.
    /// Role ARNs (`*` wildcards), role names or permission-set names.
    pub privileged_roles: Vec<String>,
    /// Roles that only grants give, besides those the table learns from
    /// the grants it sees: writes need a grant.
    pub managed_roles: Vec<String>,
    /// Gateway roles (Teleport's) -> the AWS roles they give (patterns as
    /// above). A gateway role not listed stands for the AWS role or
    /// permission set of the same name.
    pub gateway_roles: BTreeMap<String, Vec<String>>,
    /// Names Identity Center records do not carry.
    pub identity_center: IdentityCenterConfig,
    /// How long after a grant ended a call on its role counts as the
    /// session outliving it (`grant_ended`): 12 h, the longest role session.
    #[serde(deserialize_with = "period", rename = "outlived_within")]
    pub outlived_within_micros: i64,
    /// How long ended, denied and pending grants are kept: 7 days.
    #[serde(deserialize_with = "period", rename = "retention")]
    pub retention_micros: i64,
}

impl Default for GrantConfig {
    fn default() -> Self {
        Self {
            privileged_roles: Vec::new(),
            managed_roles: Vec::new(),
            gateway_roles: BTreeMap::new(),
            identity_center: IdentityCenterConfig::default(),
            outlived_within_micros: 12 * HOUR,
            retention_micros: 7 * 24 * HOUR,
        }
    }
}

/// `grants.identity_center`: what the directory cannot learn from records.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityCenterConfig {
    /// Identity Store user id -> user name (the role session name).
    pub users: BTreeMap<String, String>,
    /// Identity Store group id -> its members' user names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Permission-set ARN -> name.
    pub permission_sets: BTreeMap<String, String>,
}

fn period<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Seconds(s) if s > 0 => Ok(s.saturating_mul(1_000_000)),
        Raw::Seconds(_) => Err(serde::de::Error::custom("must be positive")),
        Raw::Text(t) => trailhound_rules::rule::parse_period_micros(&t).ok_or_else(|| {
            serde::de::Error::custom(format!("`{t}` is not a period like 30m, 12h or 7d"))
        }),
    }
}

/// A gateway session the table follows (for closing with a gateway grant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OpenSession {
    login: String,
    start: i64,
    end: Option<i64>,
}

/// Whether and how grants govern one call.
#[derive(Debug, Clone, Default)]
struct Judgement {
    privileged: bool,
    covering: Option<String>,
    ended: Option<(String, i64)>,
}

/// Grants by person, rebuilt when grants or names change.
#[derive(Debug, Default)]
struct Index {
    by_person: HashMap<String, Vec<String>>,
    anyone: Vec<String>,
}

/// The grant table. See the module documentation.
#[derive(Debug, Default)]
pub struct GrantTable {
    config: GrantConfig,
    grants: BTreeMap<String, Grant>,
    /// Identity Center assignment key -> its grants, oldest first.
    assignments: BTreeMap<String, Vec<String>>,
    directory: Directory,
    gateway: BTreeMap<String, OpenSession>,
    index: Option<Index>,
    /// Per role ARN: (managed, privileged). Cleared when grants change.
    roles: HashMap<String, (bool, bool)>,
    last_sweep: Option<i64>,
}

/// The table as a checkpoint holds it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantSnapshot {
    grants: Vec<Grant>,
    assignments: Vec<(String, Vec<String>)>,
    directory: Directory,
    gateway: Vec<(String, OpenSession)>,
}

impl GrantTable {
    /// An empty table with these settings.
    pub fn new(config: GrantConfig) -> Self {
        Self {
            config,
            ..Self::default()
        }
    }

    /// The settings.
    pub fn config(&self) -> &GrantConfig {
        &self.config
    }

    /// Grants held (in force, pending, ended but still remembered).
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// True when no grant is held.
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Every grant held, by id.
    pub fn grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.values()
    }

    /// One grant.
    pub fn grant(&self, id: &str) -> Option<&Grant> {
        self.grants.get(id)
    }

    /// The grants in force at `t`, by id.
    pub fn active_at(&self, t: i64) -> Vec<&Grant> {
        self.grants.values().filter(|g| g.covers(t)).collect()
    }

    /// The person a grant is for, as role sessions name them: its own
    /// person, or an Identity Center user's name.
    pub fn person_of(&self, g: &Grant) -> Option<String> {
        if let Some(p) = &g.person {
            return Some(p.clone());
        }
        let a = g.assignment.as_ref()?;
        if a.principal_type != "USER" {
            return None;
        }
        self.user_name(&a.principal_id).map(str::to_string)
    }

    fn user_name(&self, id: &str) -> Option<&str> {
        self.directory
            .users
            .get(id)
            .or_else(|| self.config.identity_center.users.get(id))
            .map(String::as_str)
    }

    fn permission_set_name(&self, arn: &str) -> Option<&str> {
        self.directory
            .permission_sets
            .get(arn)
            .or_else(|| self.config.identity_center.permission_sets.get(arn))
            .map(String::as_str)
    }

    /// The roles of a grant as text: its roles, or its permission set.
    fn roles_text(&self, g: &Grant) -> Option<String> {
        if let Some(a) = &g.assignment {
            return Some(
                self.permission_set_name(&a.permission_set_arn)
                    .unwrap_or(&a.permission_set_arn)
                    .to_string(),
            );
        }
        (!g.roles.is_empty()).then(|| g.roles.join(","))
    }

    /// Something grants match on changed: forget what was derived from it.
    fn changed(&mut self) {
        self.index = None;
        self.roles.clear();
    }

    /// Applies one grant event.
    fn apply_event(&mut self, source: &str, event_name: &str, time: i64, doc: &GrantDoc) {
        if doc.id.is_empty() || event_name == names::CLOSED {
            return;
        }
        let new = !self.grants.contains_key(&doc.id);
        let g = self
            .grants
            .entry(doc.id.clone())
            .or_insert_with(|| Grant::new(&doc.id, source));
        if g.apply(event_name, time, doc) || new {
            self.changed();
        }
    }

    /// Applies one Identity Center fact; returns the grant it touched.
    fn apply_fact(&mut self, fact: Fact, time: i64, caller: Option<&str>) -> Option<String> {
        match fact {
            Fact::Assigned(a) => {
                let key = a.key();
                let ids = self.assignments.entry(key.clone()).or_default();
                // A deletion read before its creation left an instance
                // without a start: this is its start.
                let waiting = ids.iter().find(|id| {
                    self.grants.get(*id).is_some_and(|g| {
                        g.start.is_none() && g.ends_at().is_some_and(|e| e >= time)
                    })
                });
                if let Some(id) = waiting.cloned() {
                    if let Some(g) = self.grants.get_mut(&id) {
                        g.start = Some(time);
                        if g.approver.is_none() {
                            g.approver = caller.map(str::to_string);
                        }
                    }
                    return Some(id);
                }
                let open = ids.iter().find(|id| {
                    self.grants
                        .get(*id)
                        .is_some_and(|g| g.start.is_some() && g.ends_at().is_none())
                });
                if let Some(id) = open {
                    return Some(id.clone());
                }
                let id = format!("ic:{key}@{}", format_micros(time));
                let mut g = Grant::new(&id, "identity-center");
                g.accounts = vec![a.account.clone()];
                g.assignment = Some(a);
                g.start = Some(time);
                g.approver = caller.map(str::to_string);
                ids.push(id.clone());
                self.grants.insert(id.clone(), g);
                self.changed();
                Some(id)
            }
            Fact::Unassigned(a) => {
                let key = a.key();
                let ids = self.assignments.entry(key.clone()).or_default();
                let open = ids.iter().find(|id| {
                    self.grants.get(*id).is_some_and(|g| {
                        g.start.is_some_and(|s| s <= time) && g.revoked_at.is_none()
                    })
                });
                if let Some(id) = open.cloned() {
                    if let Some(g) = self.grants.get_mut(&id) {
                        g.revoked_at = Some(time);
                    }
                    return Some(id);
                }
                let id = format!("ic:{key}@{}", format_micros(time));
                let mut g = Grant::new(&id, "identity-center");
                g.accounts = vec![a.account.clone()];
                g.assignment = Some(a);
                g.revoked_at = Some(time);
                ids.push(id.clone());
                self.grants.insert(id.clone(), g);
                self.changed();
                Some(id)
            }
            other => {
                if self.directory.learn(&other) {
                    self.changed();
                }
                None
            }
        }
    }

    /// Follows gateway sessions: started, ended.
    fn apply_session(&mut self, event_name: &str, session_id: &str, login: &str, time: i64) {
        match event_name {
            "session.start" => {
                self.gateway
                    .entry(session_id.to_string())
                    .or_insert_with(|| OpenSession {
                        login: login.to_string(),
                        start: time,
                        end: None,
                    });
            }
            "session.end" => {
                if let Some(s) = self.gateway.get_mut(session_id) {
                    s.end = Some(s.end.map_or(time, |e| e.min(time)));
                }
            }
            _ => {}
        }
    }

    fn index(&mut self) -> &Index {
        if self.index.is_none() {
            let mut index = Index::default();
            for g in self.grants.values() {
                let keys: Vec<String> = match (&g.person, &g.assignment) {
                    (Some(p), _) => vec![p.to_ascii_lowercase()],
                    (None, Some(a)) if a.principal_type == "USER" => {
                        match self.user_name(&a.principal_id) {
                            Some(n) => vec![n.to_ascii_lowercase()],
                            None => Vec::new(),
                        }
                    }
                    (None, Some(a)) => self
                        .config
                        .identity_center
                        .groups
                        .get(&a.principal_id)
                        .map(|m| m.iter().map(|p| p.to_ascii_lowercase()).collect())
                        .unwrap_or_default(),
                    (None, None) => continue,
                };
                if keys.is_empty() {
                    index.anyone.push(g.id.clone());
                }
                for k in keys {
                    index.by_person.entry(k).or_default().push(g.id.clone());
                }
            }
            self.index = Some(index);
        }
        self.index.get_or_insert_with(Index::default)
    }

    /// Whether grant `g` gives `role`. `strict`: only what it names for
    /// sure (to decide that grants manage a role); otherwise an Identity
    /// Center grant whose permission set is not named yet gives every
    /// permission-set role of its account.
    fn gives(&self, g: &Grant, role: &RoleRef<'_>, strict: bool) -> bool {
        if !g.accounts.is_empty() && !g.accounts.iter().any(|a| a == role.account) {
            return false;
        }
        if let Some(a) = &g.assignment {
            return match self.permission_set_name(&a.permission_set_arn) {
                Some(name) => role
                    .permission_set
                    .is_some_and(|ps| ps.eq_ignore_ascii_case(name)),
                None => !strict && role.permission_set.is_some(),
            };
        }
        g.roles
            .iter()
            .any(|r| match self.config.gateway_roles.get(r) {
                Some(mapped) => mapped.iter().any(|p| role.matches(p)),
                None => role.matches(r),
            })
    }

    /// (managed, privileged) for a role, cached.
    fn role_verdict(&mut self, role: &RoleRef<'_>) -> (bool, bool) {
        if let Some(v) = self.roles.get(role.arn) {
            return *v;
        }
        let privileged = self.config.privileged_roles.iter().any(|p| role.matches(p));
        // A deletion seen without its creation (start unknown) says the
        // assignment existed, not that the role is only given by grants.
        let managed = privileged
            || self.config.managed_roles.iter().any(|p| role.matches(p))
            || self
                .grants
                .values()
                .filter(|g| g.assignment.is_none() || g.start.is_some())
                .any(|g| self.gives(g, role, true));
        self.roles
            .insert(role.arn.to_string(), (managed, privileged));
        (managed, privileged)
    }

    /// How grants govern a call of `person` on `role` at `t`; `None` when
    /// grants do not manage the role.
    fn judge(&mut self, role: &RoleRef<'_>, person: &str, t: i64) -> Option<Judgement> {
        let (managed, privileged) = self.role_verdict(role);
        if !managed {
            return None;
        }
        let within = self.config.outlived_within_micros;
        let key = person.to_ascii_lowercase();
        let index = self.index();
        let ids: Vec<String> = index
            .by_person
            .get(&key)
            .into_iter()
            .flatten()
            .chain(index.anyone.iter())
            .cloned()
            .collect();
        let mut out = Judgement {
            privileged,
            ..Judgement::default()
        };
        let mut best_end: Option<i64> = None;
        for id in ids {
            let Some(g) = self.grants.get(&id) else {
                continue;
            };
            if !self.gives(g, role, false) {
                continue;
            }
            if g.covers(t) {
                let end = g.ends_at().unwrap_or(i64::MAX);
                if best_end.is_none_or(|b| end > b) {
                    best_end = Some(end);
                    out.covering = Some(id);
                }
            } else if let Some(e) = g.ended_by(t)
                && t.saturating_sub(e) <= within
                && out.ended.as_ref().is_none_or(|(_, b)| e > *b)
            {
                out.ended = Some((id, e));
            }
        }
        Some(out)
    }

    /// The principal a grant's own events would have.
    fn principal_of(&self, g: &Grant) -> String {
        match (&g.person, &g.assignment) {
            (Some(p), _) if g.source == "teleport" => format!("gateway:{p}"),
            (Some(p), _) => p.clone(),
            (None, Some(a)) => format!("identitycenter:{}", a.principal_id),
            (None, None) => format!("grant:{}", g.id),
        }
    }

    /// The grant as a document (for the `request` of a `grant.closed` row).
    fn doc_of(&self, g: &Grant) -> GrantDoc {
        GrantDoc {
            id: g.id.clone(),
            person: self.person_of(g),
            roles: self.roles_text(g).into_iter().collect(),
            accounts: g.accounts.clone(),
            start: g.start.map(format_micros),
            end: g.ends_at().map(format_micros),
            requester: g.requester.clone(),
            approver: g.approver.clone(),
            ticket: g.ticket.clone(),
            reason: None,
            gateway: g.gateway,
        }
    }

    /// Closes every grant whose end is at or before `until` (the engine's
    /// watermark; at the end of input, the newest event time): returns the
    /// `grant.closed` rows of those with sessions to close, enriched, and
    /// their closures by event id. A grant is closed once.
    pub fn close_until(&mut self, until: i64) -> Result<Option<Enriched>, String> {
        let due: Vec<String> = self
            .grants
            .values()
            .filter(|g| g.closed_at.is_none())
            .filter(|g| g.ended_by(until).is_some())
            .map(|g| g.id.clone())
            .collect();
        if due.is_empty() {
            return Ok(None);
        }
        let mut events = Vec::new();
        let mut closures = HashMap::new();
        for id in due {
            let Some(g) = self.grants.get(&id) else {
                continue;
            };
            let Some(end) = g.ends_at() else { continue };
            let closure = self.closure_of(g, end);
            let event = (!closure.role_sessions.is_empty() || !closure.gateway_sessions.is_empty())
                .then(|| self.closed_row(g, end));
            if let Some(g) = self.grants.get_mut(&id) {
                g.closed_at = Some(end);
            }
            if let Some(e) = event {
                closures.insert(e.event_id.clone(), closure);
                events.push(e);
            }
        }
        if events.is_empty() {
            return Ok(None);
        }
        let batch = trailhound_core::events_to_batch(&events);
        let mut enriched = self.enrich(&batch)?;
        enriched.closures = closures;
        Ok(Some(enriched))
    }

    fn closed_row(&self, g: &Grant, end: i64) -> Event {
        Event {
            event_time: end,
            ingest_time: end,
            source: Source::Session,
            event_id: format!("{}:closed", g.id),
            event_source: "trailhound".into(),
            event_name: names::CLOSED.into(),
            event_category: CATEGORY.into(),
            principal: self.principal_of(g),
            principal_type: "Grant".into(),
            user_name: self.person_of(g),
            account_id: g.accounts.first().cloned(),
            request: serde_json::to_string(&self.doc_of(g)).ok(),
            ..Event::default()
        }
    }

    /// What closing `g` (ended at `end`) cuts.
    fn closure_of(&self, g: &Grant, end: i64) -> GrantClosure {
        let person = self.person_of(g);
        let mut role_sessions: Vec<RoleSession> = g
            .sessions
            .iter()
            .map(|s| RoleSession {
                role_arn: s.role_arn.clone(),
                session_name: s.session_name.clone(),
                source_identity: s.source_identity.clone(),
            })
            .collect();
        // Roles it names by ARN, for sessions issued but not seen in use.
        if let Some(p) = &person {
            let named = g
                .roles
                .iter()
                .flat_map(|r| match self.config.gateway_roles.get(r) {
                    Some(mapped) => mapped.clone(),
                    None => vec![r.clone()],
                });
            for arn in named.filter(|a| a.starts_with("arn:") && !a.contains(['*', '?'])) {
                let Some(role) = RoleRef::parse(&arn) else {
                    continue;
                };
                let seen = role_sessions.iter().any(|s| {
                    RoleRef::parse(&s.role_arn)
                        .is_some_and(|r| r.account == role.account && r.name == role.name)
                });
                if !seen {
                    role_sessions.push(RoleSession {
                        role_arn: arn.clone(),
                        session_name: Some(p.clone()),
                        source_identity: None,
                    });
                }
            }
        }
        role_sessions.sort();
        role_sessions.dedup();
        let gateway_sessions = match (&person, g.gateway, g.start) {
            (Some(p), true, Some(start)) => self
                .gateway
                .iter()
                .filter(|(_, s)| s.login.eq_ignore_ascii_case(p))
                .filter(|(_, s)| s.start >= start && s.start < end)
                .filter(|(_, s)| s.end.is_none_or(|e| e > end))
                .map(|(id, s)| GatewaySession {
                    session_id: id.clone(),
                    login: s.login.clone(),
                })
                .collect(),
            _ => Vec::new(),
        };
        GrantClosure {
            grant_id: g.id.clone(),
            person: person.unwrap_or_default(),
            issued_before: end,
            role_sessions,
            gateway_sessions,
        }
    }

    /// Takes every grant that ended by `until` as closed, without closing
    /// anything: after a rebuild from history, whose grants were closed
    /// when they ended.
    pub fn settle(&mut self, until: i64) {
        for g in self.grants.values_mut() {
            if g.closed_at.is_none()
                && let Some(e) = g.ended_by(until)
            {
                g.closed_at = Some(e);
            }
        }
    }

    /// Forgets what is past `retention` behind `watermark`: grants ended,
    /// turned down or left pending that long ago (and closed), gateway
    /// sessions started that long ago. At most once per hour of event time.
    pub fn sweep(&mut self, watermark: i64) {
        if self
            .last_sweep
            .is_some_and(|t| watermark.saturating_sub(t) < HOUR)
        {
            return;
        }
        self.last_sweep = Some(watermark);
        let horizon = watermark.saturating_sub(self.config.retention_micros);
        let before = self.grants.len();
        self.grants.retain(|_, g| {
            let last = [g.ends_at(), g.start, g.requested_at]
                .into_iter()
                .flatten()
                .max();
            // Done: ended and closed (or never started), turned down, or
            // still pending. A grant in force without an end stays.
            let done =
                g.denied || g.start.is_none() || (g.ends_at().is_some() && g.closed_at.is_some());
            !(done && last.is_some_and(|t| t < horizon))
        });
        if self.grants.len() != before {
            let grants = &self.grants;
            self.assignments.retain(|_, ids| {
                ids.retain(|id| grants.contains_key(id));
                !ids.is_empty()
            });
            self.changed();
        }
        self.gateway
            .retain(|_, s| s.end.unwrap_or(s.start).max(s.start) >= horizon);
    }

    /// The table for a checkpoint.
    pub fn snapshot(&self) -> GrantSnapshot {
        GrantSnapshot {
            grants: self.grants.values().cloned().collect(),
            assignments: self
                .assignments
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            directory: self.directory.clone(),
            gateway: self
                .gateway
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Restores a snapshot (the settings stay this table's).
    pub fn restore(&mut self, snapshot: GrantSnapshot) {
        self.grants = snapshot
            .grants
            .into_iter()
            .map(|g| (g.id.clone(), g))
            .collect();
        self.assignments = snapshot.assignments.into_iter().collect();
        self.directory = snapshot.directory;
        self.gateway = snapshot.gateway.into_iter().collect();
        self.last_sweep = None;
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * HOUR;

    fn doc(id: &str, end: Option<&str>) -> GrantDoc {
        GrantDoc {
            id: id.into(),
            person: Some("alice".into()),
            roles: vec!["jit-admin".into()],
            end: end.map(str::to_string),
            ..GrantDoc::default()
        }
    }

    #[test]
    fn ended_grants_are_closed_once_and_forgotten_after_the_retention() {
        let mut t = GrantTable::new(GrantConfig::default());
        t.apply_event(
            "sym",
            names::APPROVED,
            0,
            &doc("a", Some("1970-01-01T01:00:00Z")),
        );
        t.apply_event("sym", names::APPROVED, 0, &doc("open", None));
        t.apply_event("sym", names::REQUESTED, 0, &doc("pending", None));
        // Nothing to close (no session seen, no role named by ARN): closed
        // without a row.
        assert!(
            t.close_until(2 * HOUR)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_none()
        );
        assert_eq!(t.grant("a").and_then(|g| g.closed_at), Some(HOUR));
        t.sweep(HOUR + 6 * DAY);
        assert_eq!(t.len(), 3);
        t.sweep(HOUR + 8 * DAY);
        let ids: Vec<&str> = t.grants().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["open"], "the grant in force without an end stays");
    }

    #[test]
    fn a_snapshot_restores_the_same_table() {
        let mut t = GrantTable::new(GrantConfig::default());
        t.apply_event(
            "sym",
            names::APPROVED,
            5,
            &doc("a", Some("1970-01-01T01:00:00Z")),
        );
        let bytes = postcard::to_stdvec(&t.snapshot()).unwrap_or_default();
        let back: GrantSnapshot = postcard::from_bytes(&bytes).unwrap_or_default();
        let mut u = GrantTable::new(GrantConfig::default());
        u.restore(back);
        assert_eq!(
            u.grants().collect::<Vec<_>>(),
            t.grants().collect::<Vec<_>>()
        );
        assert_eq!(u.active_at(10).len(), 1);
    }
}
