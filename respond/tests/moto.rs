//! The responders against moto's IAM on loopback (PyPI `moto[server]`;
//! `scripts/test` installs it into the cache's virtual environment and
//! points `TRAILHOUND_MOTO` at `moto_server`). Each test starts its own
//! server on a free port and kills it when done. What is checked is what
//! moto reports through the IAM API: the policy on the user, the
//! token-issue-time deny on the role, the key's status, and that release
//! removes exactly that (a pre-existing policy survives both).

use std::collections::BTreeMap;
use std::path::PathBuf;

use trailhound_core::{ActionMode, ActionOutcome, Alert, Severity};
use trailhound_respond::moto::MotoServer;
use trailhound_respond::{AwsIam, Iam, Ledger, Responder, ResponseConfig};
use trailhound_rules::rule::ResponseName;

fn start_moto() -> MotoServer {
    MotoServer::start().unwrap_or_else(|e| panic!("{e}"))
}

const ACCOUNT: &str = "123456789012";

fn alert(n: u32, principal: &str, key: Option<&str>) -> Alert {
    Alert {
        alert_id: format!("alert-{n}"),
        rule_id: "aws-iam-backdoor".into(),
        title: "Backdoor".into(),
        severity: Severity::High,
        principal: principal.into(),
        account_id: Some(ACCOUNT.into()),
        first_event_time: 1,
        last_event_time: 1,
        detected_at: 2,
        event_ids: vec![format!("e{n}")],
        event_count: 1,
        evidence: "x".into(),
        tags: vec![],
        access_key_id: key.map(str::to_string),
        session_id: None,
        closes: None,
    }
}

fn responder(moto: &MotoServer, ledger: PathBuf, respond: &[ResponseName]) -> Responder {
    let config = ResponseConfig {
        mode: ActionMode::Enforce,
        ..ResponseConfig::default()
    };
    let conf = moto.iam_conf();
    Responder::new(
        config,
        BTreeMap::from([("aws-iam-backdoor".to_string(), respond.to_vec())]),
        Ledger::at(ledger),
        Box::new(move || Ok(Box::new(AwsIam::from_conf(conf.clone())?) as Box<dyn Iam>)),
    )
}

/// A checker of its own, beside the responder's client.
fn checker(moto: &MotoServer) -> AwsIam {
    AwsIam::from_conf(moto.iam_conf()).expect("client")
}

const KEEP: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"}]}"#;

#[test]
fn quarantine_leaves_the_deny_on_the_user_and_release_removes_only_it() {
    let moto = start_moto();
    let iam = checker(&moto);
    let c = iam.client();
    iam.block_on(c.create_user().user_name("alice").send())
        .expect("create user");
    iam.block_on(
        c.put_user_policy()
            .user_name("alice")
            .policy_name("keep-me")
            .policy_document(KEEP)
            .send(),
    )
    .expect("pre-existing policy");
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(
        &moto,
        dir.path().join("actions.json"),
        &[ResponseName::QuarantinePrincipal],
    );
    let out = r.handle(&alert(
        1,
        &format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        None,
    ));
    assert_eq!(out.actions.len(), 1);
    let action = &out.actions[0];
    assert_eq!(
        (action.mode, action.outcome),
        (ActionMode::Enforce, ActionOutcome::Done),
        "{}",
        action.reason
    );
    let policy = action.details["policy"]
        .as_str()
        .expect("policy name")
        .to_string();

    let names = iam
        .block_on(c.list_user_policies().user_name("alice").send())
        .expect("list")
        .policy_names;
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.contains(&policy) && names.contains(&"keep-me".to_string()));
    let doc = iam
        .block_on(
            c.get_user_policy()
                .user_name("alice")
                .policy_name(&policy)
                .send(),
        )
        .expect("get")
        .policy_document;
    let doc = decode(&doc);
    assert_eq!(doc["Statement"][0]["Effect"], "Deny");
    assert_eq!(doc["Statement"][0]["Action"], "*");
    assert_eq!(doc["Statement"][0]["Resource"], "*");

    let released = r
        .release(&action.action_id, "released by hand")
        .expect("release");
    assert_eq!(released.outcome, ActionOutcome::Released);
    let names = iam
        .block_on(c.list_user_policies().user_name("alice").send())
        .expect("list")
        .policy_names;
    assert_eq!(names, vec!["keep-me".to_string()]);
}

#[test]
fn revoke_sessions_puts_the_token_issue_time_deny_on_the_role() {
    let moto = start_moto();
    let iam = checker(&moto);
    let c = iam.client();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    iam.block_on(
        c.create_role()
            .role_name("deployer")
            .assume_role_policy_document(trust)
            .send(),
    )
    .expect("create role");
    iam.block_on(
        c.put_role_policy()
            .role_name("deployer")
            .policy_name("keep-me")
            .policy_document(KEEP)
            .send(),
    )
    .expect("pre-existing policy");
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(
        &moto,
        dir.path().join("actions.json"),
        &[ResponseName::RevokeSessions],
    );
    // The principal of an assumed-role session is its role.
    let out = r.handle(&alert(
        2,
        &format!("arn:aws:iam::{ACCOUNT}:role/deployer"),
        Some("ASIAEXAMPLE"),
    ));
    let action = &out.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Done, "{}", action.reason);
    let policy = action.details["policy"]
        .as_str()
        .expect("policy")
        .to_string();
    let before = action.details["token_issued_before"]
        .as_str()
        .expect("time")
        .to_string();
    let doc = iam
        .block_on(
            c.get_role_policy()
                .role_name("deployer")
                .policy_name(&policy)
                .send(),
        )
        .expect("get")
        .policy_document;
    let doc = decode(&doc);
    let st = &doc["Statement"][0];
    assert_eq!(st["Effect"], "Deny");
    assert_eq!(st["Action"], "*");
    assert_eq!(
        st["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
        before.as_str()
    );

    r.release(&action.action_id, "released by hand")
        .expect("release");
    let names = iam
        .block_on(c.list_role_policies().role_name("deployer").send())
        .expect("list")
        .policy_names;
    assert_eq!(names, vec!["keep-me".to_string()]);
}

#[test]
fn disable_access_key_leaves_the_key_inactive_and_release_reactivates_it() {
    let moto = start_moto();
    let iam = checker(&moto);
    let c = iam.client();
    iam.block_on(c.create_user().user_name("bob").send())
        .expect("create user");
    let key = iam
        .block_on(c.create_access_key().user_name("bob").send())
        .expect("key")
        .access_key
        .map(|k| k.access_key_id)
        .expect("key id");
    let other = iam
        .block_on(c.create_access_key().user_name("bob").send())
        .expect("second key")
        .access_key
        .map(|k| k.access_key_id)
        .expect("key id");
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(
        &moto,
        dir.path().join("actions.json"),
        &[ResponseName::DisableAccessKey],
    );
    let out = r.handle(&alert(
        3,
        &format!("arn:aws:iam::{ACCOUNT}:user/bob"),
        Some(&key),
    ));
    let action = &out.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Done, "{}", action.reason);
    let status = |iam: &AwsIam| -> BTreeMap<String, String> {
        iam.block_on(iam.client().list_access_keys().user_name("bob").send())
            .expect("list keys")
            .access_key_metadata
            .into_iter()
            .filter_map(|k| Some((k.access_key_id?, k.status?.as_str().to_string())))
            .collect()
    };
    let now = status(&iam);
    assert_eq!(now.get(&key).map(String::as_str), Some("Inactive"));
    assert_eq!(now.get(&other).map(String::as_str), Some("Active"));
    r.release(&action.action_id, "released by hand")
        .expect("release");
    let after = status(&iam);
    assert_eq!(after.get(&key).map(String::as_str), Some("Active"));
    assert_eq!(after.get(&other).map(String::as_str), Some("Active"));
}

/// IAM returns policy documents URL-encoded; moto may or may not.
fn decode(doc: &str) -> serde_json::Value {
    if let Ok(v) = serde_json::from_str(doc) {
        return v;
    }
    let mut out = Vec::new();
    let b = doc.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&doc[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("policy document {doc:?} is not JSON: {e}"))
}

#[test]
fn shadow_allow_listed_and_root_change_nothing_in_moto() {
    let moto = start_moto();
    let iam = checker(&moto);
    let c = iam.client();
    for user in ["carol", "break-glass-dave"] {
        iam.block_on(c.create_user().user_name(user).send())
            .expect("create user");
        iam.block_on(
            c.put_user_policy()
                .user_name(user)
                .policy_name("keep-me")
                .policy_document(KEEP)
                .send(),
        )
        .expect("pre-existing policy");
    }
    let dir = tempfile::tempdir().unwrap();
    let respond = [
        ResponseName::QuarantinePrincipal,
        ResponseName::RevokeSessions,
    ];
    let lists = BTreeMap::from([("aws-iam-backdoor".to_string(), respond.to_vec())]);
    let conf = moto.iam_conf();
    let factory = move || -> Result<Box<dyn Iam>, trailhound_respond::IamError> {
        Ok(Box::new(AwsIam::from_conf(conf.clone())?))
    };

    // Shadow: what would be done, recorded; nothing done.
    let mut shadow = Responder::new(
        ResponseConfig::default(),
        lists.clone(),
        Ledger::at(dir.path().join("shadow.json")),
        Box::new(factory.clone()),
    );
    let out = shadow.handle(&alert(
        4,
        &format!("arn:aws:iam::{ACCOUNT}:user/carol"),
        None,
    ));
    assert_eq!(out.actions.len(), 2);
    for a in &out.actions {
        assert_eq!(
            (a.mode, a.outcome),
            (ActionMode::Shadow, ActionOutcome::Done)
        );
        assert!(a.reason.starts_with("shadow: would add"), "{}", a.reason);
        assert_eq!(a.details["name"], "carol");
    }

    // Enforce, but allow-listed or root: skipped, untouched.
    let mut enforce = Responder::new(
        ResponseConfig {
            mode: ActionMode::Enforce,
            allow: vec!["arn:aws:iam::*:user/break-glass-*".into()],
            ..ResponseConfig::default()
        },
        lists,
        Ledger::at(dir.path().join("enforce.json")),
        Box::new(factory),
    );
    for principal in [
        format!("arn:aws:iam::{ACCOUNT}:user/break-glass-dave"),
        format!("arn:aws:iam::{ACCOUNT}:root"),
    ] {
        let out = enforce.handle(&alert(5, &principal, None));
        assert!(
            out.actions
                .iter()
                .all(|a| a.outcome == ActionOutcome::Skipped),
            "{out:?}"
        );
    }
    for user in ["carol", "break-glass-dave"] {
        let names = iam
            .block_on(c.list_user_policies().user_name(user).send())
            .expect("list")
            .policy_names;
        assert_eq!(names, vec!["keep-me".to_string()], "{user}");
    }
}
