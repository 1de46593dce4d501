//! Where a revocation is decided and taken. For each alert, [`Responder`]
//! works out which responders its rule and the policy ask for, then runs
//! every guardrail in a fixed order, and records one [`Action`] per
//! responder whatever happens:
//!
//! 1. mode `off` -> skipped;
//! 2. the account root and AWS services -> skipped (alerted, never acted on);
//! 3. the allow-list -> skipped, naming the pattern;
//! 4. the responder does not apply (a gateway login for IAM, a temporary
//!    key, no session id, no gateway API) -> skipped, saying why;
//! 5. released before (a replayed alert) or already in place -> skipped;
//! 6. mode `shadow` -> done in shadow, with exactly what would be changed;
//! 7. enforce: the circuit breaker open, or this action over the cap ->
//!    skipped, recorded in shadow with what would have been done, and
//!    tripping the breaker raises a critical alert;
//! 8. enforce: the change is made (with retries), written to the ledger
//!    with its time to live -> done; or it failed -> failed, with an alert.
//!
//! Release (by time to live, or `trailhound release`) removes exactly what
//! the ledger says was added.
//!
//! An alert about a just-in-time grant carries what to close
//! ([`trailhound_core::GrantClosure`], `Alert::closes`). Then
//! `revoke-sessions` acts once per role session it names, on the role, with
//! a deny that holds only for that person's sessions (`aws:userid` ending in
//! `:<session name>`, or `aws:SourceIdentity`) issued before the grant's
//! end, and `end-gateway-session` once per gateway session it names. Each
//! goes through every guardrail above as its own action, on the role (or
//! `gateway:<login>`) as principal; its id is derived from the grant and the
//! session, so the alert on a late call and the closure of the same grant
//! make one action, and "already in place" means that very action.

use std::collections::{BTreeMap, VecDeque};

use trailhound_core::grant::{GatewaySession, GrantClosure, RoleSession};
use trailhound_core::id::stable_id;
use trailhound_core::time::format_micros;
use trailhound_core::{Action, ActionMode, ActionOutcome, Alert, ResponseOutput, Severity};
use trailhound_rules::rule::ResponseName;

use crate::config::{ResponseConfig, responders_for, wildcard};
use crate::gateway::{Fields, Gateway};
use crate::iam::{Holder, Iam, IamError, KeyStatus};
use crate::ledger::{Change, Ledger, LedgerError, Placed};
use crate::principal::Target;

/// Rule ids of the alerts responders raise about themselves.
pub mod rules {
    /// An action failed.
    pub const FAILED: &str = "trailhound-response-failed";
    /// The circuit breaker tripped: enforce mode fell back to shadow.
    pub const CIRCUIT_OPEN: &str = "trailhound-response-circuit-open";
}

/// The kind name of a responder, as action records and the ledger write it.
pub fn kind_name(r: ResponseName) -> &'static str {
    match r {
        ResponseName::QuarantinePrincipal => "quarantine-principal",
        ResponseName::RevokeSessions => "revoke-sessions",
        ResponseName::DisableAccessKey => "disable-access-key",
        ResponseName::EndGatewaySession => "end-gateway-session",
        ResponseName::Notify => "notify",
    }
}

/// Makes the IAM client when enforce mode (or a release) first needs it, so
/// that shadow mode needs no AWS credentials at all.
pub type IamFactory = Box<dyn FnMut() -> Result<Box<dyn Iam>, IamError> + Send>;

/// A release that could not be done.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// No such action in place.
    #[error("no action {0} is in place (see the ledger, or the lake's actions table)")]
    Unknown(String),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// Undoing failed; the action stays in the ledger.
    #[error("releasing {action_id} failed: {reason}")]
    Failed {
        /// The action.
        action_id: String,
        /// Why.
        reason: String,
    },
}

/// The decision maker and executor.
pub struct Responder {
    config: ResponseConfig,
    /// Each rule's `respond:` list, by rule id.
    rule_lists: BTreeMap<String, Vec<ResponseName>>,
    ledger: Ledger,
    iam: Option<Box<dyn Iam>>,
    make_iam: IamFactory,
    gateway: Option<Gateway>,
    /// Times of enforce actions within the cap's window.
    recent: VecDeque<i64>,
    /// Enforce mode is in shadow until then (circuit open).
    open_until: Option<i64>,
    clock: Box<dyn Fn() -> i64 + Send>,
}

/// What an action record is about.
#[derive(Clone, Copy)]
struct Subject<'a> {
    alert: &'a Alert,
    kind: &'a str,
    action_id: &'a str,
}

/// What a grant-closing action is limited to.
#[derive(Clone, Copy)]
enum Scope<'a> {
    /// One person's sessions of one role.
    Role(&'a GrantClosure, &'a RoleSession),
    /// One gateway session.
    Gateway(&'a GrantClosure, &'a GatewaySession),
}

impl Scope<'_> {
    /// The action id: the same for every alert about this grant and session.
    fn action_id(&self, kind: &str) -> String {
        match self {
            Scope::Role(c, s) => {
                let before = c.issued_before.to_string();
                stable_id([
                    "action",
                    kind,
                    &c.grant_id,
                    &s.role_arn,
                    s.session_name.as_deref().unwrap_or("-"),
                    s.source_identity.as_deref().unwrap_or("-"),
                    &before,
                ])
            }
            Scope::Gateway(c, g) => stable_id(["action", kind, &c.grant_id, &g.session_id]),
        }
    }

    /// The alert as this action sees it: the role (or the gateway login) as
    /// principal, the gateway session as its session.
    fn view(&self, alert: &Alert) -> Alert {
        let mut view = alert.clone();
        match self {
            Scope::Role(_, s) => {
                view.principal = s.role_arn.clone();
                view.session_id = None;
            }
            Scope::Gateway(_, g) => {
                view.principal = format!("gateway:{}", g.login);
                view.session_id = Some(g.session_id.clone());
            }
        }
        view.access_key_id = None;
        view
    }
}

struct Plan {
    change: Change,
    details: serde_json::Value,
    describe: String,
}

impl Responder {
    /// A responder over `config` with the rules' `respond:` lists.
    pub fn new(
        config: ResponseConfig,
        rule_lists: BTreeMap<String, Vec<ResponseName>>,
        ledger: Ledger,
        make_iam: IamFactory,
    ) -> Self {
        let gateway = config.gateway.clone().map(Gateway::new);
        Self {
            config,
            rule_lists,
            ledger,
            iam: None,
            make_iam,
            gateway,
            recent: VecDeque::new(),
            open_until: None,
            clock: Box::new(trailhound_core::time::now_micros),
        }
    }

    /// Uses `clock` (microseconds UTC) instead of the system clock (tests).
    pub fn with_clock(mut self, clock: impl Fn() -> i64 + Send + 'static) -> Self {
        self.clock = Box::new(clock);
        self
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The configuration.
    pub fn config(&self) -> &ResponseConfig {
        &self.config
    }

    fn iam(&mut self) -> Result<&mut Box<dyn Iam>, IamError> {
        if self.iam.is_none() {
            self.iam = Some((self.make_iam)()?);
        }
        match self.iam.as_mut() {
            Some(iam) => Ok(iam),
            None => Err(IamError {
                operation: "client",
                code: None,
                message: "no IAM client".into(),
            }),
        }
    }

    /// Decides, and in enforce mode acts, on one alert.
    pub fn handle(&mut self, alert: &Alert) -> ResponseOutput {
        let mut out = ResponseOutput::default();
        if alert.rule_id.starts_with("trailhound-response-") {
            return out;
        }
        let list = self
            .rule_lists
            .get(&alert.rule_id)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let wanted = responders_for(
            &self.config,
            list,
            &alert.rule_id,
            alert.severity,
            &alert.tags,
        );
        for r in wanted {
            match (&alert.closes, r) {
                (Some(c), ResponseName::RevokeSessions) => {
                    for s in &c.role_sessions {
                        let scope = Scope::Role(c, s);
                        self.one(&scope.view(alert), r, Some(scope), &mut out);
                    }
                }
                (Some(c), ResponseName::EndGatewaySession) => {
                    for g in &c.gateway_sessions {
                        let scope = Scope::Gateway(c, g);
                        self.one(&scope.view(alert), r, Some(scope), &mut out);
                    }
                }
                _ => self.one(alert, r, None, &mut out),
            }
        }
        out
    }

    fn record(
        &self,
        subject: &Subject<'_>,
        mode: ActionMode,
        outcome: ActionOutcome,
        reason: String,
        details: serde_json::Value,
    ) -> Action {
        let Subject {
            alert,
            kind,
            action_id,
        } = *subject;
        Action {
            action_id: action_id.to_string(),
            alert_id: alert.alert_id.clone(),
            rule_id: alert.rule_id.clone(),
            principal: alert.principal.clone(),
            kind: kind.to_string(),
            mode,
            outcome,
            reason,
            time: (self.clock)(),
            details,
        }
    }

    fn one(
        &mut self,
        alert: &Alert,
        r: ResponseName,
        scope: Option<Scope<'_>>,
        out: &mut ResponseOutput,
    ) {
        let kind = kind_name(r);
        let action_id = match &scope {
            Some(s) => s.action_id(kind),
            None => stable_id(["action", kind, &alert.principal, &alert.alert_id]),
        };
        let mode = self.config.mode;
        let subject = Subject {
            alert,
            kind,
            action_id: &action_id,
        };
        let skip = |this: &Self, reason: String| {
            this.record(
                &subject,
                mode,
                ActionOutcome::Skipped,
                reason,
                serde_json::Value::Null,
            )
        };
        if mode == ActionMode::Off {
            out.actions.push(skip(self, "response mode is off".into()));
            return;
        }
        let target = Target::parse(&alert.principal);
        if matches!(target, Target::Root | Target::Service) {
            out.actions.push(skip(
                self,
                format!("{} is alerted, never acted on", target.kind()),
            ));
            return;
        }
        if let Some(p) = self
            .config
            .allow
            .iter()
            .find(|p| wildcard(p, &alert.principal))
        {
            out.actions
                .push(skip(self, format!("allow-listed by `{p}`")));
            return;
        }
        let plan = match self.plan(alert, r, &target, &action_id, scope) {
            Ok(plan) => plan,
            Err(reason) => {
                out.actions.push(skip(self, reason));
                return;
            }
        };
        let ledger = match self.ledger.read() {
            Ok(l) => l,
            Err(e) => {
                out.actions.push(self.record(
                    &subject,
                    mode,
                    ActionOutcome::Failed,
                    e.to_string(),
                    plan.details,
                ));
                out.alerts
                    .push(self.failure_alert(alert, kind, &e.to_string()));
                return;
            }
        };
        if ledger.released.contains_key(&action_id) {
            out.actions.push(skip(
                self,
                "released before: a new alert is needed to act again".into(),
            ));
            return;
        }
        let in_place = match scope {
            // A grant's action is in place when that very action is.
            Some(_) => ledger.placed.get(&action_id),
            None => ledger.active(kind, &alert.principal),
        };
        if let Some(p) = in_place {
            out.actions.push(skip(
                self,
                format!("already in place (action {})", p.action_id),
            ));
            return;
        }
        if mode == ActionMode::Shadow {
            out.actions.push(self.record(
                &subject,
                ActionMode::Shadow,
                ActionOutcome::Done,
                format!("shadow: would {}", plan.describe),
                plan.details,
            ));
            return;
        }
        // Enforce: the circuit breaker and the cap.
        let now = (self.clock)();
        let window = micros(self.config.window);
        while self.recent.front().is_some_and(|&t| t <= now - window) {
            self.recent.pop_front();
        }
        if let Some(until) = self.open_until {
            if now < until {
                out.actions.push(self.record(
                    &subject,
                    ActionMode::Shadow,
                    ActionOutcome::Skipped,
                    format!(
                        "circuit breaker open until {}: shadow instead of enforce; would {}",
                        format_micros(until),
                        plan.describe
                    ),
                    plan.details,
                ));
                return;
            }
            self.open_until = None;
        }
        if self.recent.len() >= self.config.max_actions as usize {
            let until = now + micros(self.config.cooldown);
            self.open_until = Some(until);
            let why = format!(
                "cap of {} actions per {}s reached: enforce mode is in shadow until {}",
                self.config.max_actions,
                self.config.window.as_secs(),
                format_micros(until)
            );
            tracing::error!(reason = %why, "Response circuit breaker tripped.");
            out.alerts.push(self.breaker_alert(alert, &why, now));
            out.actions.push(self.record(
                &subject,
                ActionMode::Shadow,
                ActionOutcome::Skipped,
                format!("{why}; would {}", plan.describe),
                plan.details,
            ));
            return;
        }
        self.recent.push_back(now);
        match self.apply(alert, &plan.change, &plan.details) {
            Ok(note) => {
                let expires_at =
                    (!self.config.ttl.is_zero()).then(|| now + micros(self.config.ttl));
                let placed = Placed {
                    action_id: action_id.clone(),
                    alert_id: alert.alert_id.clone(),
                    rule_id: alert.rule_id.clone(),
                    principal: alert.principal.clone(),
                    kind: kind.to_string(),
                    change: plan.change.clone(),
                    taken_at: now,
                    expires_at,
                };
                let mut details = plan.details;
                if let (Some(obj), Some(t)) = (details.as_object_mut(), expires_at) {
                    obj.insert("expires_at".into(), format_micros(t).into());
                }
                match self.ledger.update(|d| {
                    d.placed.insert(action_id.clone(), placed);
                }) {
                    Ok(()) => out.actions.push(self.record(
                        &subject,
                        ActionMode::Enforce,
                        ActionOutcome::Done,
                        format!("{}{note}", plan.describe),
                        details,
                    )),
                    Err(e) => {
                        // In place but not in the ledger: say so loudly,
                        // with what to remove by hand.
                        let reason = format!(
                            "{} done, but the ledger could not record it ({e}); remove it by hand",
                            plan.describe
                        );
                        out.alerts.push(self.failure_alert(alert, kind, &reason));
                        out.actions.push(self.record(
                            &subject,
                            ActionMode::Enforce,
                            ActionOutcome::Failed,
                            reason,
                            details,
                        ));
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(action = kind, error = %reason, "Response action failed.");
                out.alerts.push(self.failure_alert(alert, kind, &reason));
                out.actions.push(self.record(
                    &subject,
                    ActionMode::Enforce,
                    ActionOutcome::Failed,
                    reason,
                    plan.details,
                ));
            }
        }
    }

    /// What `r` would change for this alert, or why it does not apply.
    fn plan(
        &self,
        alert: &Alert,
        r: ResponseName,
        target: &Target,
        action_id: &str,
        scope: Option<Scope<'_>>,
    ) -> Result<Plan, String> {
        let prefix = &self.config.policy_prefix;
        let short = &action_id[..action_id.len().min(12)];
        let iam_holder = |what: &str| match target {
            Target::User { name, .. } => Ok(("user", name.clone())),
            Target::Role { name, .. } => Ok(("role", name.clone())),
            other => Err(format!(
                "{what} needs an IAM user or role; the principal is {}",
                other.kind()
            )),
        };
        match r {
            ResponseName::QuarantinePrincipal => {
                let (holder, name) = iam_holder("quarantine-principal")?;
                let policy = format!("{prefix}-quarantine-{short}");
                let document = deny_all();
                Ok(Plan {
                    describe: format!("add the deny-all inline policy {policy} to {holder} {name}"),
                    details: serde_json::json!({
                        "holder": holder, "name": name, "policy": policy, "document": document,
                    }),
                    change: Change::InlinePolicy {
                        holder: holder.into(),
                        name,
                        policy,
                    },
                })
            }
            ResponseName::RevokeSessions if matches!(scope, Some(Scope::Role(..))) => {
                let Some(Scope::Role(closure, session)) = scope else {
                    return Err("no role session to revoke".into());
                };
                let (holder, name) = iam_holder("revoke-sessions")?;
                let policy = format!("{prefix}-revoke-grant-{short}");
                let before = token_time_after(closure.issued_before);
                let (document, whose) = deny_grant_sessions(&before, session)?;
                Ok(Plan {
                    describe: format!(
                        "add the inline policy {policy} to {holder} {name}, denying every action to {whose} issued before {before} (grant {})",
                        closure.grant_id
                    ),
                    details: serde_json::json!({
                        "holder": holder, "name": name, "policy": policy,
                        "token_issued_before": before, "grant_id": closure.grant_id,
                        "session_name": session.session_name,
                        "source_identity": session.source_identity,
                        "document": document,
                    }),
                    change: Change::InlinePolicy {
                        holder: holder.into(),
                        name,
                        policy,
                    },
                })
            }
            ResponseName::RevokeSessions => {
                let (holder, name) = iam_holder("revoke-sessions")?;
                let policy = format!("{prefix}-revoke-sessions-{short}");
                let before = token_time((self.clock)());
                let document = deny_older_tokens(&before);
                Ok(Plan {
                    describe: format!(
                        "add the inline policy {policy} to {holder} {name}, denying every action to sessions issued before {before}"
                    ),
                    details: serde_json::json!({
                        "holder": holder, "name": name, "policy": policy,
                        "token_issued_before": before, "document": document,
                    }),
                    change: Change::InlinePolicy {
                        holder: holder.into(),
                        name,
                        policy,
                    },
                })
            }
            ResponseName::DisableAccessKey => {
                let Target::User { name, .. } = target else {
                    return Err(format!(
                        "disable-access-key needs an IAM user; the principal is {}",
                        target.kind()
                    ));
                };
                let Some(key) = alert.access_key_id.as_deref() else {
                    return Err(
                        "the alert names no access key (it did not fire on one event)".into(),
                    );
                };
                if key.starts_with("ASIA") {
                    return Err(format!(
                        "{key} is a temporary key and cannot be deactivated; revoke-sessions stops it"
                    ));
                }
                Ok(Plan {
                    describe: format!("deactivate access key {key} of user {name}"),
                    details: serde_json::json!({"user": name, "key": key}),
                    change: Change::KeyDeactivated {
                        user: name.clone(),
                        key: key.to_string(),
                    },
                })
            }
            ResponseName::EndGatewaySession => {
                let Some(session_id) = alert.session_id.as_deref() else {
                    return Err("the alert names no gateway session".into());
                };
                if self.gateway.is_none() {
                    return Err("no gateway API is configured (response.gateway)".into());
                }
                let login = match target {
                    Target::Gateway { login } => login.clone(),
                    _ => alert.principal.clone(),
                };
                Ok(Plan {
                    describe: format!("end and lock gateway session {session_id} of {login}"),
                    details: serde_json::json!({
                        "session_id": session_id, "login": login, "command": "end-and-lock",
                    }),
                    change: Change::GatewaySession {
                        session_id: session_id.to_string(),
                        login,
                    },
                })
            }
            ResponseName::Notify => Err("notify is not a responder".into()),
        }
    }

    /// Makes the change; `Ok` carries a note for the record.
    fn apply(
        &mut self,
        alert: &Alert,
        change: &Change,
        details: &serde_json::Value,
    ) -> Result<String, String> {
        match change {
            Change::InlinePolicy {
                holder,
                name,
                policy,
            } => {
                let Some(doc) = details.get("document") else {
                    return Err("the plan has no policy document".into());
                };
                let doc = doc.to_string();
                let on = holder_of(holder, name);
                let iam = self.iam().map_err(|e| e.to_string())?;
                iam.put_inline_policy(on, policy, &doc)
                    .map(|()| String::new())
                    .map_err(|e| e.to_string())
            }
            Change::KeyDeactivated { user, key } => {
                let iam = self.iam().map_err(|e| e.to_string())?;
                match iam
                    .access_key_status(user, key)
                    .map_err(|e| e.to_string())?
                {
                    None => Err(format!("user {user} has no access key {key}")),
                    Some(KeyStatus::Inactive) => Err(format!(
                        "access key {key} was already inactive; nothing to do or to release"
                    )),
                    Some(KeyStatus::Active) => iam
                        .set_access_key_status(user, key, KeyStatus::Inactive)
                        .map(|()| String::new())
                        .map_err(|e| e.to_string()),
                }
            }
            Change::GatewaySession { session_id, login } => {
                let Some(gw) = &self.gateway else {
                    return Err("no gateway API is configured".into());
                };
                let fields = Fields {
                    session_id,
                    principal: &alert.principal,
                    login,
                    alert_id: &alert.alert_id,
                    rule_id: &alert.rule_id,
                };
                gw.end_session(&fields, self.config.attempts)
                    .map(|answer| format!(" ({answer})"))
            }
        }
    }

    /// Releases actions whose time to live is over.
    pub fn expire(&mut self) -> ResponseOutput {
        let now = (self.clock)();
        let mut out = ResponseOutput::default();
        let due = match self.ledger.read() {
            Ok(d) => d.expired(now),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the action ledger for expiry.");
                return out;
            }
        };
        let ttl = self.config.ttl.as_secs();
        for id in due {
            match self.release(&id, &format!("time to live of {ttl}s over")) {
                Ok(a) => out.actions.push(a),
                Err(ReleaseError::Failed { action_id, reason }) => {
                    out.actions.push(Action {
                        action_id,
                        alert_id: String::new(),
                        rule_id: String::new(),
                        principal: String::new(),
                        kind: "release".into(),
                        mode: ActionMode::Enforce,
                        outcome: ActionOutcome::Failed,
                        reason,
                        time: now,
                        details: serde_json::Value::Null,
                    });
                }
                Err(e) => tracing::warn!(error = %e, "Release by time to live failed."),
            }
        }
        out
    }

    /// Releases the actions in place on `principal`.
    pub fn release_principal(
        &mut self,
        principal: &str,
        why: &str,
    ) -> Vec<Result<Action, ReleaseError>> {
        let ids: Vec<String> = match self.ledger.read() {
            Ok(d) => d
                .placed
                .values()
                .filter(|p| p.principal == principal)
                .map(|p| p.action_id.clone())
                .collect(),
            Err(e) => return vec![Err(e.into())],
        };
        ids.iter().map(|id| self.release(id, why)).collect()
    }

    /// Undoes one action: removes exactly what it added and records it.
    pub fn release(&mut self, action_id: &str, why: &str) -> Result<Action, ReleaseError> {
        let data = self.ledger.read()?;
        let Some(placed) = data.placed.get(action_id).cloned() else {
            return Err(ReleaseError::Unknown(action_id.to_string()));
        };
        let failed = |reason: String| ReleaseError::Failed {
            action_id: action_id.to_string(),
            reason,
        };
        let (note, details) = match &placed.change {
            Change::InlinePolicy {
                holder,
                name,
                policy,
            } => {
                let on = holder_of(holder, name);
                let iam = self.iam().map_err(|e| failed(e.to_string()))?;
                let removed = iam
                    .delete_inline_policy(on, policy)
                    .map_err(|e| failed(e.to_string()))?;
                let note = if removed {
                    format!("removed inline policy {policy} from {holder} {name}")
                } else {
                    format!("inline policy {policy} on {holder} {name} was already gone")
                };
                (
                    note,
                    serde_json::json!({"holder": holder, "name": name, "policy": policy}),
                )
            }
            Change::KeyDeactivated { user, key } => {
                let iam = self.iam().map_err(|e| failed(e.to_string()))?;
                let note = match iam
                    .access_key_status(user, key)
                    .map_err(|e| failed(e.to_string()))?
                {
                    Some(KeyStatus::Inactive) => {
                        iam.set_access_key_status(user, key, KeyStatus::Active)
                            .map_err(|e| failed(e.to_string()))?;
                        format!("reactivated access key {key} of user {user}")
                    }
                    Some(KeyStatus::Active) => {
                        format!("access key {key} of user {user} was already active")
                    }
                    None => format!("access key {key} of user {user} no longer exists"),
                };
                (note, serde_json::json!({"user": user, "key": key}))
            }
            Change::GatewaySession { session_id, login } => {
                let note = match &self.gateway {
                    Some(gw) => {
                        let fields = Fields {
                            session_id,
                            principal: &placed.principal,
                            login,
                            alert_id: &placed.alert_id,
                            rule_id: &placed.rule_id,
                        };
                        match gw.unlock(&fields, self.config.attempts).map_err(failed)? {
                            Some(answer) => format!("unlocked {login} ({answer})"),
                            None => format!(
                                "session {session_id} stays ended; no release URL is configured to unlock {login}"
                            ),
                        }
                    }
                    None => {
                        format!("session {session_id} stays ended; no gateway API is configured")
                    }
                };
                (
                    note,
                    serde_json::json!({"session_id": session_id, "login": login}),
                )
            }
        };
        let now = (self.clock)();
        self.ledger.update(|d| {
            d.placed.remove(action_id);
            d.released.insert(action_id.to_string(), now);
        })?;
        Ok(Action {
            action_id: placed.action_id,
            alert_id: placed.alert_id,
            rule_id: placed.rule_id,
            principal: placed.principal,
            kind: placed.kind,
            mode: ActionMode::Enforce,
            outcome: ActionOutcome::Released,
            reason: format!("{why}: {note}"),
            time: now,
            details,
        })
    }

    fn failure_alert(&self, alert: &Alert, kind: &str, reason: &str) -> Alert {
        let now = (self.clock)();
        Alert {
            alert_id: stable_id([rules::FAILED, kind, &alert.alert_id]),
            rule_id: rules::FAILED.into(),
            title: format!("Response action {kind} failed"),
            severity: Severity::High,
            principal: alert.principal.clone(),
            account_id: alert.account_id.clone(),
            first_event_time: alert.first_event_time,
            last_event_time: alert.last_event_time,
            detected_at: now,
            event_ids: alert.event_ids.clone(),
            event_count: alert.event_count,
            evidence: format!(
                "{kind} for alert {} ({}) on {} failed: {reason}",
                alert.alert_id, alert.rule_id, alert.principal
            ),
            tags: vec!["trailhound.response".into()],
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    fn breaker_alert(&self, alert: &Alert, why: &str, now: i64) -> Alert {
        let at = now.to_string();
        Alert {
            alert_id: stable_id([rules::CIRCUIT_OPEN, &at]),
            rule_id: rules::CIRCUIT_OPEN.into(),
            title: "Automated response circuit breaker tripped".into(),
            severity: Severity::Critical,
            principal: alert.principal.clone(),
            account_id: alert.account_id.clone(),
            first_event_time: alert.first_event_time,
            last_event_time: alert.last_event_time,
            detected_at: now,
            event_ids: alert.event_ids.clone(),
            event_count: alert.event_count,
            evidence: format!(
                "{why}. The alert that tripped it: {} ({}) on {}. Check what is being acted on before resetting (restart the detector).",
                alert.alert_id, alert.rule_id, alert.principal
            ),
            tags: vec!["trailhound.response".into()],
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }
}

fn holder_of<'a>(holder: &str, name: &'a str) -> Holder<'a> {
    if holder == "role" {
        Holder::Role(name)
    } else {
        Holder::User(name)
    }
}

fn micros(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4)
}

/// `aws:TokenIssueTime` format: ISO 8601 UTC to the second.
fn token_time(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// `aws:TokenIssueTime` at or after `micros`: the second it falls in,
/// rounded up, so that a session issued in the grant's last second is
/// still before it.
fn token_time_after(micros: i64) -> String {
    let up = micros.saturating_add(999_999).div_euclid(1_000_000) * 1_000_000;
    token_time(up)
}

/// The policy that closes one person's sessions of a role issued before
/// `before` (a grant's end): deny everything to sessions whose
/// `aws:userid` ends in `:<session name>` (a role session's id is
/// `<role id>:<session name>`), or whose source identity is theirs.
/// Returns the document and, in words, whose sessions it denies.
pub fn deny_grant_sessions(
    before: &str,
    session: &RoleSession,
) -> Result<(serde_json::Value, String), String> {
    let (match_on, whose) = match (&session.session_name, &session.source_identity) {
        (Some(name), _) => (
            serde_json::json!({"StringLike": {"aws:userid": format!("*:{name}")}}),
            format!("sessions named {name}"),
        ),
        (None, Some(id)) => (
            serde_json::json!({"StringEquals": {"aws:SourceIdentity": id}}),
            format!("sessions of source identity {id}"),
        ),
        (None, None) => {
            return Err("the role session has no name or source identity to match".into());
        }
    };
    let mut condition = serde_json::json!({"DateLessThan": {"aws:TokenIssueTime": before}});
    if let (Some(c), Some(m)) = (condition.as_object_mut(), match_on.as_object()) {
        c.extend(m.clone());
    }
    Ok((
        serde_json::json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "TrailhoundRevokeGrantSessions",
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": condition
            }]
        }),
        whose,
    ))
}

/// The deny-all policy document of a quarantine.
pub fn deny_all() -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TrailhoundQuarantine",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*"
        }]
    })
}

/// The policy of "revoke active sessions": deny everything to sessions
/// whose token was issued before `before`.
pub fn deny_older_tokens(before: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "TrailhoundRevokeOlderSessions",
            "Effect": "Deny",
            "Action": "*",
            "Resource": "*",
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}}
        }]
    })
}
