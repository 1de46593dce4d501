//! The guardrails, against an in-memory IAM (moto's real IAM is in
//! `tests/moto.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use trailhound_core::{ActionMode, ActionOutcome, Alert, Severity};
use trailhound_rules::rule::ResponseName;

use crate::iam::{Holder, Iam, IamError, KeyStatus};
use crate::ledger::Ledger;
use crate::responder::{Responder, rules};
use crate::{ResponseConfig, Target};

#[derive(Default)]
struct World {
    policies: BTreeMap<String, BTreeSet<String>>,
    keys: BTreeMap<(String, String), KeyStatus>,
    fail_puts: bool,
    calls: u32,
}

#[derive(Clone, Default)]
struct FakeIam(Arc<Mutex<World>>);

fn who(on: Holder<'_>) -> String {
    match on {
        Holder::User(u) => format!("user/{u}"),
        Holder::Role(r) => format!("role/{r}"),
    }
}

impl Iam for FakeIam {
    fn put_inline_policy(
        &mut self,
        on: Holder<'_>,
        name: &str,
        _doc: &str,
    ) -> Result<(), IamError> {
        let mut w = self.0.lock().unwrap();
        w.calls += 1;
        if w.fail_puts {
            return Err(IamError {
                operation: "PutUserPolicy",
                code: Some("AccessDenied".into()),
                message: "not allowed".into(),
            });
        }
        w.policies.entry(who(on)).or_default().insert(name.into());
        Ok(())
    }
    fn delete_inline_policy(&mut self, on: Holder<'_>, name: &str) -> Result<bool, IamError> {
        let mut w = self.0.lock().unwrap();
        w.calls += 1;
        Ok(w.policies.entry(who(on)).or_default().remove(name))
    }
    fn inline_policies(&mut self, on: Holder<'_>) -> Result<Vec<String>, IamError> {
        let w = self.0.lock().unwrap();
        Ok(w.policies
            .get(&who(on))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }
    fn access_key_status(&mut self, user: &str, key: &str) -> Result<Option<KeyStatus>, IamError> {
        let w = self.0.lock().unwrap();
        Ok(w.keys.get(&(user.to_string(), key.to_string())).copied())
    }
    fn set_access_key_status(
        &mut self,
        user: &str,
        key: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        let mut w = self.0.lock().unwrap();
        w.calls += 1;
        w.keys.insert((user.to_string(), key.to_string()), status);
        Ok(())
    }
}

const ALICE: &str = "arn:aws:iam::111122223333:user/alice";
const DEPLOYER: &str = "arn:aws:iam::111122223333:role/deployer";

fn alert(n: u32, principal: &str) -> Alert {
    Alert {
        alert_id: format!("alert-{n}"),
        rule_id: "aws-iam-backdoor".into(),
        title: "Backdoor".into(),
        severity: Severity::High,
        principal: principal.into(),
        account_id: Some("111122223333".into()),
        first_event_time: 1,
        last_event_time: 1,
        detected_at: 2,
        event_ids: vec![format!("e{n}")],
        event_count: 1,
        evidence: "x".into(),
        tags: vec![],
        access_key_id: Some("AKIAEXAMPLE0000001".into()),
        session_id: None,
        closes: None,
    }
}

struct Setup {
    responder: Responder,
    iam: FakeIam,
    clock: Arc<AtomicI64>,
    _dir: tempfile::TempDir,
}

fn setup(
    mode: ActionMode,
    respond: &[ResponseName],
    tweak: impl FnOnce(&mut ResponseConfig),
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ResponseConfig {
        mode,
        ..ResponseConfig::default()
    };
    tweak(&mut config);
    let iam = FakeIam::default();
    let for_factory = iam.clone();
    let clock = Arc::new(AtomicI64::new(1_800_000_000_000_000));
    let c = Arc::clone(&clock);
    let lists = BTreeMap::from([("aws-iam-backdoor".to_string(), respond.to_vec())]);
    let responder = Responder::new(
        config,
        lists,
        Ledger::at(dir.path().join("actions.json")),
        Box::new(move || Ok(Box::new(for_factory.clone()) as Box<dyn Iam>)),
    )
    .with_clock(move || c.load(Ordering::Relaxed));
    Setup {
        responder,
        iam,
        clock,
        _dir: dir,
    }
}

fn policies(iam: &FakeIam, holder: &str) -> Vec<String> {
    let w = iam.0.lock().unwrap();
    w.policies
        .get(holder)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn shadow_mode_records_exactly_what_would_be_done_and_changes_nothing() {
    let mut s = setup(
        ActionMode::Shadow,
        &[ResponseName::QuarantinePrincipal],
        |_| {},
    );
    let out = s.responder.handle(&alert(1, ALICE));
    assert_eq!(out.actions.len(), 1);
    let a = &out.actions[0];
    assert_eq!(
        (a.mode, a.outcome),
        (ActionMode::Shadow, ActionOutcome::Done)
    );
    assert!(
        a.reason
            .starts_with("shadow: would add the deny-all inline policy"),
        "{}",
        a.reason
    );
    assert_eq!(a.details["document"]["Statement"][0]["Effect"], "Deny");
    assert_eq!(a.alert_id, "alert-1");
    assert_eq!(s.iam.0.lock().unwrap().calls, 0);
    assert!(s.responder.ledger().read().unwrap().placed.is_empty());
}

#[test]
fn root_services_and_allow_listed_principals_are_never_acted_on() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::QuarantinePrincipal],
        |c| {
            c.allow = vec!["arn:aws:iam::*:role/break-glass-*".into()];
        },
    );
    for (p, why) in [
        (
            "arn:aws:iam::111122223333:root",
            "the account root user is alerted, never acted on",
        ),
        (
            "ec2.amazonaws.com",
            "an AWS service is alerted, never acted on",
        ),
        (
            "arn:aws:iam::111122223333:role/break-glass-admin",
            "allow-listed by `arn:aws:iam::*:role/break-glass-*`",
        ),
        (
            "gateway:bob",
            "quarantine-principal needs an IAM user or role; the principal is a gateway login",
        ),
    ] {
        let out = s.responder.handle(&alert(1, p));
        assert_eq!(out.actions[0].outcome, ActionOutcome::Skipped, "{p}");
        assert_eq!(out.actions[0].reason, why);
    }
    assert_eq!(s.iam.0.lock().unwrap().calls, 0);
}

#[test]
fn the_same_action_on_the_same_principal_is_done_once() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::QuarantinePrincipal],
        |_| {},
    );
    let first = s.responder.handle(&alert(1, ALICE));
    assert_eq!(first.actions[0].outcome, ActionOutcome::Done);
    let again = s.responder.handle(&alert(1, ALICE));
    let other = s.responder.handle(&alert(2, ALICE));
    for out in [again, other] {
        assert_eq!(out.actions[0].outcome, ActionOutcome::Skipped);
        assert!(out.actions[0].reason.starts_with("already in place"));
    }
    assert_eq!(policies(&s.iam, "user/alice").len(), 1);
    assert_eq!(s.iam.0.lock().unwrap().calls, 1);
}

#[test]
fn the_cap_trips_the_breaker_which_falls_back_to_shadow_and_alerts_loudly() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::QuarantinePrincipal],
        |c| {
            c.max_actions = 2;
        },
    );
    let users: Vec<String> = (0..5)
        .map(|i| format!("arn:aws:iam::111122223333:user/u{i}"))
        .collect();
    let outs: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| s.responder.handle(&alert(i as u32, u)))
        .collect();
    assert_eq!(outs[0].actions[0].mode, ActionMode::Enforce);
    assert_eq!(outs[1].actions[0].mode, ActionMode::Enforce);
    assert_eq!(outs[2].actions[0].mode, ActionMode::Shadow);
    assert_eq!(outs[2].actions[0].outcome, ActionOutcome::Skipped);
    assert_eq!(outs[4].actions[0].outcome, ActionOutcome::Skipped);
    assert!(
        outs[2].actions[0]
            .reason
            .starts_with("cap of 2 actions per 3600s reached")
    );
    assert_eq!(outs[2].alerts.len(), 1);
    assert_eq!(outs[2].alerts[0].rule_id, rules::CIRCUIT_OPEN);
    assert_eq!(outs[2].alerts[0].severity, Severity::Critical);
    assert!(
        outs[3].actions[0]
            .reason
            .starts_with("circuit breaker open until")
    );
    assert!(outs[3].alerts.is_empty());
    assert_eq!(s.iam.0.lock().unwrap().calls, 2);
    // After the cooldown, enforce again.
    s.clock.fetch_add(3_601_000_000, Ordering::Relaxed);
    let later = s.responder.handle(&alert(9, &users[4]));
    assert_eq!(later.actions[0].mode, ActionMode::Enforce);
    assert_eq!(later.actions[0].outcome, ActionOutcome::Done);
}

#[test]
fn release_removes_exactly_what_was_added_and_a_replay_does_not_redo_it() {
    let mut s = setup(
        ActionMode::Enforce,
        &[
            ResponseName::QuarantinePrincipal,
            ResponseName::RevokeSessions,
        ],
        |_| {},
    );
    s.iam
        .0
        .lock()
        .unwrap()
        .policies
        .entry("role/deployer".into())
        .or_default()
        .insert("keep-me".into());
    let out = s.responder.handle(&alert(1, DEPLOYER));
    assert_eq!(out.actions.len(), 2);
    assert!(out.actions.iter().all(|a| a.outcome == ActionOutcome::Done));
    assert_eq!(policies(&s.iam, "role/deployer").len(), 3);
    let revoke = &out.actions[1];
    assert_eq!(
        revoke.details["document"]["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
        "2027-01-15T08:00:00Z"
    );
    for a in &out.actions {
        let r = s
            .responder
            .release(&a.action_id, "released by hand")
            .unwrap();
        assert_eq!(r.outcome, ActionOutcome::Released);
        assert_eq!(r.alert_id, "alert-1");
    }
    assert_eq!(
        policies(&s.iam, "role/deployer"),
        vec!["keep-me".to_string()]
    );
    let replay = s.responder.handle(&alert(1, DEPLOYER));
    assert!(replay.actions.iter().all(|a| a.outcome == ActionOutcome::Skipped
        && a.reason.starts_with("released before")));
    assert!(s.responder.release("nope", "x").is_err());
}

#[test]
fn the_time_to_live_releases_on_its_own() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::DisableAccessKey],
        |c| {
            c.ttl = std::time::Duration::from_secs(60);
        },
    );
    s.iam.0.lock().unwrap().keys.insert(
        ("alice".into(), "AKIAEXAMPLE0000001".into()),
        KeyStatus::Active,
    );
    let out = s.responder.handle(&alert(1, ALICE));
    assert_eq!(
        out.actions[0].outcome,
        ActionOutcome::Done,
        "{}",
        out.actions[0].reason
    );
    let key = ("alice".to_string(), "AKIAEXAMPLE0000001".to_string());
    assert_eq!(
        s.iam.0.lock().unwrap().keys.get(&key),
        Some(&KeyStatus::Inactive)
    );
    assert!(s.responder.expire().actions.is_empty());
    s.clock.fetch_add(61_000_000, Ordering::Relaxed);
    let released = s.responder.expire();
    assert_eq!(released.actions.len(), 1);
    assert_eq!(released.actions[0].outcome, ActionOutcome::Released);
    assert!(
        released.actions[0]
            .reason
            .starts_with("time to live of 60s over")
    );
    assert_eq!(
        s.iam.0.lock().unwrap().keys.get(&key),
        Some(&KeyStatus::Active)
    );
}

#[test]
fn a_key_already_inactive_or_temporary_is_left_alone() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::DisableAccessKey],
        |_| {},
    );
    s.iam.0.lock().unwrap().keys.insert(
        ("alice".into(), "AKIAEXAMPLE0000001".into()),
        KeyStatus::Inactive,
    );
    let out = s.responder.handle(&alert(1, ALICE));
    assert_eq!(out.actions[0].outcome, ActionOutcome::Failed);
    assert!(out.actions[0].reason.contains("already inactive"));
    assert!(s.responder.ledger().read().unwrap().placed.is_empty());
    let mut temp = alert(2, ALICE);
    temp.access_key_id = Some("ASIAEXAMPLE0000002".into());
    let out = s.responder.handle(&temp);
    assert_eq!(out.actions[0].outcome, ActionOutcome::Skipped);
    assert!(out.actions[0].reason.contains("temporary key"));
}

#[test]
fn a_failed_action_is_recorded_and_raises_its_own_alert() {
    let mut s = setup(
        ActionMode::Enforce,
        &[ResponseName::QuarantinePrincipal],
        |_| {},
    );
    s.iam.0.lock().unwrap().fail_puts = true;
    let out = s.responder.handle(&alert(1, ALICE));
    assert_eq!(out.actions[0].outcome, ActionOutcome::Failed);
    assert!(
        out.actions[0].reason.contains("AccessDenied")
            || out.actions[0].reason.contains("not allowed")
    );
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].rule_id, rules::FAILED);
    // The responder's own alerts are never responded to.
    let mut own = out.alerts[0].clone();
    own.principal = ALICE.into();
    assert!(s.responder.handle(&own).is_empty());
}

#[test]
fn off_mode_records_that_nothing_was_done() {
    let mut s = setup(
        ActionMode::Off,
        &[ResponseName::QuarantinePrincipal],
        |_| {},
    );
    let out = s.responder.handle(&alert(1, ALICE));
    assert_eq!(out.actions[0].outcome, ActionOutcome::Skipped);
    assert_eq!(out.actions[0].reason, "response mode is off");
    assert_eq!(Target::parse(ALICE).kind(), "IAM user");
}

fn closing(n: u32, roles: &[(&str, &str)], gateway: &[&str]) -> Alert {
    use trailhound_core::grant::{GatewaySession, GrantClosure, RoleSession};
    Alert {
        principal: "alice".into(),
        access_key_id: None,
        closes: Some(GrantClosure {
            grant_id: "sym:CHG-1".into(),
            person: "alice".into(),
            issued_before: 1_793_617_200_000_001,
            role_sessions: roles
                .iter()
                .map(|(arn, name)| RoleSession {
                    role_arn: arn.to_string(),
                    session_name: Some(name.to_string()),
                    source_identity: None,
                })
                .collect(),
            gateway_sessions: gateway
                .iter()
                .map(|sid| GatewaySession {
                    session_id: sid.to_string(),
                    login: "alice".into(),
                })
                .collect(),
        }),
        ..alert(n, "alice")
    }
}

#[test]
fn a_grant_closure_revokes_each_role_session_once_scoped_to_the_person() {
    let mut s = setup(ActionMode::Enforce, &[ResponseName::RevokeSessions], |c| {
        c.allow = vec!["arn:aws:iam::*:role/break-glass".into()];
    });
    let roles = [
        ("arn:aws:iam::111122223333:role/jit-admin", "alice"),
        ("arn:aws:iam::111122223333:role/break-glass", "alice"),
    ];
    let out = s.responder.handle(&closing(1, &roles, &[]));
    assert_eq!(out.actions.len(), 2, "{:?}", out.actions);
    let done = &out.actions[0];
    assert_eq!(
        (done.mode, done.outcome, done.principal.as_str()),
        (
            ActionMode::Enforce,
            ActionOutcome::Done,
            "arn:aws:iam::111122223333:role/jit-admin"
        )
    );
    let condition = &done.details["document"]["Statement"][0]["Condition"];
    assert_eq!(condition["StringLike"]["aws:userid"], "*:alice");
    // The grant ended in the middle of a second: that second still counts.
    assert_eq!(
        condition["DateLessThan"]["aws:TokenIssueTime"],
        "2026-11-02T11:00:01Z"
    );
    assert_eq!(out.actions[1].outcome, ActionOutcome::Skipped);
    assert!(out.actions[1].reason.contains("allow-listed"));
    assert_eq!(policies(&s.iam, "role/jit-admin").len(), 1);
    // The same grant's closure from another alert (the late call, then the
    // end) is the same action: already in place.
    let again = s.responder.handle(&closing(2, &roles[..1], &[]));
    assert_eq!(again.actions[0].outcome, ActionOutcome::Skipped);
    assert!(again.actions[0].reason.starts_with("already in place"));
    // Another person's grant on the same role is an action of its own.
    let mut bob = closing(
        3,
        &[("arn:aws:iam::111122223333:role/jit-admin", "bob")],
        &[],
    );
    if let Some(c) = bob.closes.as_mut() {
        c.grant_id = "sym:CHG-2".into();
    }
    let out = s.responder.handle(&bob);
    assert_eq!(out.actions[0].outcome, ActionOutcome::Done);
    assert_eq!(policies(&s.iam, "role/jit-admin").len(), 2);
}

#[test]
fn a_grant_closure_in_shadow_changes_nothing_and_names_each_gateway_session() {
    let mut s = setup(
        ActionMode::Shadow,
        &[
            ResponseName::RevokeSessions,
            ResponseName::EndGatewaySession,
        ],
        |c| {
            c.gateway = Some(crate::config::GatewaySettings {
                url: "http://127.0.0.1:9/v1/sessions/{session_id}/terminate".into(),
                method: "POST".into(),
                headers: BTreeMap::new(),
                token: None,
                body: None,
                release_url: None,
                timeout: std::time::Duration::from_secs(1),
            });
        },
    );
    let out = s.responder.handle(&closing(
        1,
        &[("arn:aws:iam::111122223333:role/jit-admin", "alice")],
        &["s-1", "s-2"],
    ));
    let kinds: Vec<(&str, &str, ActionOutcome)> = out
        .actions
        .iter()
        .map(|a| (a.kind.as_str(), a.principal.as_str(), a.outcome))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "revoke-sessions",
                "arn:aws:iam::111122223333:role/jit-admin",
                ActionOutcome::Done
            ),
            ("end-gateway-session", "gateway:alice", ActionOutcome::Done),
            ("end-gateway-session", "gateway:alice", ActionOutcome::Done),
        ]
    );
    assert_eq!(out.actions[2].details["session_id"], "s-2");
    assert!(out.actions.iter().all(|a| a.mode == ActionMode::Shadow));
    assert_eq!(s.iam.0.lock().unwrap().calls, 0);
    let _ = &s.clock;
}
