//! One grant as the table keeps it, how grant events merge into it, and how
//! a role and a person are matched against it.

use serde::{Deserialize, Serialize};
use trailhound_core::grant::{GrantDoc, names};
use trailhound_core::time::parse_rfc3339_micros;

/// An Identity Center account assignment behind a grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// `targetId`: the account.
    pub account: String,
    /// `permissionSetArn`.
    pub permission_set_arn: String,
    /// `principalType`: `USER` or `GROUP`.
    pub principal_type: String,
    /// `principalId`: the Identity Store user or group id.
    pub principal_id: String,
}

impl Assignment {
    /// The key of the assignment (one per account, permission set and
    /// principal); instances of it over time are separate grants.
    pub fn key(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.account, self.permission_set_arn, self.principal_type, self.principal_id
        )
    }
}

/// A role session seen covered by a grant: what closing it revokes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeenSession {
    /// The role.
    pub role_arn: String,
    /// The session name.
    pub session_name: Option<String>,
    /// The source identity.
    pub source_identity: Option<String>,
}

/// Most role sessions remembered per grant.
pub const MAX_SESSIONS: usize = 64;

/// One grant, merged from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The id (`teleport:<id>`, `<broker>:<id>`, `ic:<assignment>@<start>`).
    pub id: String,
    /// Where it came from: `teleport`, the broker, `identity-center`.
    pub source: String,
    /// The person it is for, when the source names them (Identity Center
    /// grants name an Identity Store id instead: see `assignment`).
    pub person: Option<String>,
    /// The Identity Center assignment, for grants from Identity Center.
    pub assignment: Option<Assignment>,
    /// Roles as the source names them (ARN patterns, role names,
    /// permission sets, gateway roles).
    pub roles: Vec<String>,
    /// Accounts it is limited to; empty: any.
    pub accounts: Vec<String>,
    /// When it was asked for.
    pub requested_at: Option<i64>,
    /// When access starts; `None` until approved.
    pub start: Option<i64>,
    /// When access ends as granted; `None`: open-ended.
    pub end: Option<i64>,
    /// When it was ended early (revoked, expired, assignment deleted).
    pub revoked_at: Option<i64>,
    /// Who asked.
    pub requester: Option<String>,
    /// Who approved.
    pub approver: Option<String>,
    /// The ticket.
    pub ticket: Option<String>,
    /// Turned down.
    pub denied: bool,
    /// Governs the person's gateway sessions too.
    pub gateway: bool,
    /// Its end was passed by the watermark and its sessions handed to the
    /// responders (at [`Grant::closed_at`]).
    pub closed_at: Option<i64>,
    /// Role sessions seen covered by it.
    pub sessions: Vec<SeenSession>,
}

impl Grant {
    /// An empty grant of `id` from `source`.
    pub fn new(id: &str, source: &str) -> Self {
        Self {
            id: id.to_string(),
            source: source.to_string(),
            person: None,
            assignment: None,
            roles: Vec::new(),
            accounts: Vec::new(),
            requested_at: None,
            start: None,
            end: None,
            revoked_at: None,
            requester: None,
            approver: None,
            ticket: None,
            denied: false,
            gateway: false,
            closed_at: None,
            sessions: Vec::new(),
        }
    }

    /// When access ends: the earlier of the granted end and an early end.
    pub fn ends_at(&self) -> Option<i64> {
        match (self.end, self.revoked_at) {
            (Some(e), Some(r)) => Some(e.min(r)),
            (e, r) => e.or(r),
        }
    }

    /// Whether it grants access at `t` (event time).
    pub fn covers(&self, t: i64) -> bool {
        !self.denied && self.start.is_some_and(|s| s <= t) && self.ends_at().is_none_or(|e| t < e)
    }

    /// Whether it was in force at some time and has ended by `t`.
    pub fn ended_by(&self, t: i64) -> Option<i64> {
        if self.denied || self.start.is_none() {
            return None;
        }
        self.ends_at().filter(|&e| e <= t)
    }

    /// Merges one grant event (`event_name`, event time) into it. Returns
    /// true when what it matches changed (person, roles, accounts).
    pub fn apply(&mut self, event_name: &str, time: i64, doc: &GrantDoc) -> bool {
        let mut changed = false;
        if let Some(p) = doc.person.as_deref().filter(|p| !p.is_empty())
            && self.person.is_none()
        {
            self.person = Some(p.to_string());
            changed = true;
        }
        if !doc.roles.is_empty() && doc.roles != self.roles {
            self.roles = doc.roles.clone();
            changed = true;
        }
        if !doc.accounts.is_empty() && doc.accounts != self.accounts {
            self.accounts = doc.accounts.clone();
            changed = true;
        }
        for (slot, value) in [
            (&mut self.requester, &doc.requester),
            (&mut self.ticket, &doc.ticket),
        ] {
            if slot.is_none() {
                slot.clone_from(value);
            }
        }
        if doc.approver.is_some() {
            self.approver.clone_from(&doc.approver);
        }
        self.gateway |= doc.gateway;
        let doc_start = doc.start.as_deref().and_then(parse_rfc3339_micros);
        let doc_end = doc.end.as_deref().and_then(parse_rfc3339_micros);
        match event_name {
            names::REQUESTED => {
                self.requested_at = Some(self.requested_at.map_or(time, |r| r.min(time)));
                if self.end.is_none() {
                    self.end = doc_end;
                }
            }
            names::APPROVED => {
                let start = doc_start.unwrap_or(time);
                self.start = Some(self.start.map_or(start, |s| s.min(start)));
                if let Some(e) = doc_end {
                    self.set_end(e);
                }
                self.denied = false;
            }
            names::DENIED => self.denied = true,
            names::ENDED => {
                let e = doc_end.unwrap_or(time);
                self.revoked_at = Some(self.revoked_at.map_or(e, |r| r.min(e)));
            }
            _ => {}
        }
        changed
    }

    /// Sets the granted end (an approval, an extension). An extension past
    /// a closure already made reopens the grant: it closes again at its new
    /// end.
    pub fn set_end(&mut self, e: i64) {
        self.end = Some(e);
        if self
            .closed_at
            .is_some_and(|c| self.ends_at().is_some_and(|now| now > c))
        {
            self.closed_at = None;
        }
    }

    /// Remembers a role session it covered.
    pub fn saw(&mut self, session: SeenSession) {
        if self.sessions.len() < MAX_SESSIONS && !self.sessions.contains(&session) {
            self.sessions.push(session);
        }
    }
}

/// A role as a CloudTrail row names it: `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRef<'a> {
    /// The ARN as the row gives it.
    pub arn: &'a str,
    /// The account.
    pub account: &'a str,
    /// The role name (last part).
    pub name: &'a str,
    /// The permission set, for an Identity Center role
    /// (`AWSReservedSSO_<PermissionSet>_<hash>`).
    pub permission_set: Option<&'a str>,
}

impl<'a> RoleRef<'a> {
    /// Reads a role ARN; `None` for anything else.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (scheme, _partition, service, _region, account, resource) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if scheme != "arn" || service != "iam" || !resource.starts_with("role/") {
            return None;
        }
        let name = resource.rsplit('/').next().filter(|n| !n.is_empty())?;
        let permission_set = name
            .strip_prefix("AWSReservedSSO_")
            .and_then(|rest| rest.rsplit_once('_'))
            .map(|(ps, _)| ps)
            .filter(|ps| !ps.is_empty());
        Some(Self {
            arn,
            account,
            name,
            permission_set,
        })
    }

    /// Whether a pattern names this role: an ARN (the same account and role
    /// name, whatever the path; `*` and `?` wildcards match the whole ARN),
    /// or a role name or permission-set name (wildcards allowed, ASCII
    /// case ignored).
    pub fn matches(&self, pattern: &str) -> bool {
        let pattern = pattern.trim();
        if pattern.starts_with("arn:") {
            if pattern.contains(['*', '?']) {
                return wildcard(pattern, self.arn);
            }
            return RoleRef::parse(pattern)
                .is_some_and(|p| p.account == self.account && p.name == self.name);
        }
        let lower = pattern.to_ascii_lowercase();
        let name = self.name.to_ascii_lowercase();
        wildcard(&lower, &name)
            || self
                .permission_set
                .is_some_and(|ps| wildcard(&lower, &ps.to_ascii_lowercase()))
    }
}

pub use trailhound_core::wildcard;

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(end: Option<&str>) -> GrantDoc {
        GrantDoc {
            id: "g".into(),
            person: Some("alice".into()),
            roles: vec!["jit-admin".into()],
            end: end.map(str::to_string),
            ..GrantDoc::default()
        }
    }

    #[test]
    fn a_grant_covers_from_approval_to_the_earlier_of_its_end_and_a_revocation() {
        let mut g = Grant::new("g", "test");
        g.apply(
            names::REQUESTED,
            5,
            &doc(Some("1970-01-01T00:00:00.000100Z")),
        );
        assert!(!g.covers(10), "requested is not granted");
        g.apply(names::APPROVED, 10, &doc(None));
        assert!(g.covers(10) && g.covers(99) && !g.covers(100));
        g.apply(names::ENDED, 50, &GrantDoc::default());
        assert!(g.covers(49) && !g.covers(50));
        assert_eq!(g.ended_by(60), Some(50));
        // An approval read after the revocation does not undo it.
        g.apply(
            names::APPROVED,
            10,
            &doc(Some("1970-01-01T00:00:00.000200Z")),
        );
        assert!(!g.covers(150));
    }

    #[test]
    fn roles_match_by_arn_name_path_wildcard_and_permission_set() {
        let r = RoleRef::parse(
            "arn:aws:iam::111122223333:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdminAccess_0123abcd",
        )
        .unwrap();
        assert_eq!(r.permission_set, Some("AdminAccess"));
        assert!(r.matches("adminaccess"));
        assert!(r.matches("arn:aws:iam::111122223333:role/AWSReservedSSO_AdminAccess_0123abcd"));
        assert!(r.matches("arn:aws:iam::*:role/aws-reserved/*"));
        assert!(!r.matches("arn:aws:iam::999988887777:role/AWSReservedSSO_AdminAccess_0123abcd"));
        assert!(!r.matches("ReadOnly"));
        let plain = RoleRef::parse("arn:aws:iam::1:role/jit-admin").unwrap();
        assert!(plain.matches("jit-*") && plain.matches("JIT-ADMIN"));
        assert_eq!(RoleRef::parse("arn:aws:iam::1:user/bob"), None);
    }
}
