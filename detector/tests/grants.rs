//! The grant table, one test per grant source: Identity Center account
//! assignments (CloudTrail records), Teleport access requests (its audit
//! log) and the grants JSON-lines format. Each source's records are parsed
//! by the ingest parsers, fed to an engine in two parts, and the table is
//! checked after each part: exactly the grants expected, in force exactly
//! when expected. The second part is also fed to an engine restored from a
//! checkpoint taken after the first, which must end with the very same
//! table as the uninterrupted one.

use trailhound_core::time::parse_rfc3339_micros;
use trailhound_core::{Event, events_to_batch};
use trailhound_detector::Engine;
use trailhound_detector::grants::{Grant, GrantConfig, GrantTable};
use trailhound_ingest::{Collect, ParseContext, parse_input};
use trailhound_rules::RuleSet;

fn t(text: &str) -> i64 {
    parse_rfc3339_micros(text).unwrap_or_else(|| panic!("bad time {text}"))
}

fn parse(name: &str, text: &str) -> Vec<Event> {
    let mut out = Collect::default();
    parse_input(text.as_bytes(), &ParseContext::new(name), &mut out);
    assert!(
        out.dead_letters.is_empty(),
        "dead letters: {:?}",
        out.dead_letters
    );
    out.events
}

fn engine() -> Engine {
    Engine::new(RuleSet::from_rules(Vec::new())).with_grants(GrantConfig::default())
}

fn feed(engine: &mut Engine, events: &[Event]) {
    engine
        .process(&events_to_batch(events))
        .unwrap_or_else(|e| panic!("{e}"));
}

fn table(engine: &Engine) -> Vec<Grant> {
    engine.grants().grants().cloned().collect()
}

fn active(engine: &Engine, at: &str) -> Vec<String> {
    engine
        .grants()
        .active_at(t(at))
        .into_iter()
        .map(|g| g.id.clone())
        .collect()
}

/// Feeds `first` and `second` to one engine, and `second` to another
/// restored from a checkpoint taken after `first`; checks both agree, and
/// returns the uninterrupted one (after `check_first` looked at it halfway).
fn through_a_restart(first: &[Event], second: &[Event], check_first: impl Fn(&Engine)) -> Engine {
    let mut whole = engine();
    feed(&mut whole, first);
    check_first(&whole);
    let saved = whole.save_state().unwrap_or_else(|e| panic!("{e}"));
    feed(&mut whole, second);

    let mut resumed = engine();
    resumed
        .restore_state(&saved)
        .unwrap_or_else(|e| panic!("{e}"));
    check_first(&resumed);
    feed(&mut resumed, second);
    assert_eq!(table(&resumed), table(&whole), "restored table differs");
    whole
}

#[test]
fn json_lines_grants_are_held_by_id_with_extensions_revocations_and_denials() {
    let lines = [
        r#"{"trailhound":"grant/v1","id":"CHG-1","principal":"alice","roles":["arn:aws:iam::111122223333:role/jit-admin"],"start":"2026-11-02T10:00:00Z","end":"2026-11-02T11:00:00Z","requester":"alice","approver":"bob","ticket":"CHG-1","broker":"sym"}"#,
        r#"{"trailhound":"grant/v1","id":"CHG-2","principal":"bob","role":"jit-admin","start":"2026-11-02T10:15:00Z","end":"2026-11-02T12:00:00Z","approver":"carol","broker":"sym"}"#,
        r#"{"trailhound":"grant/v1","id":"CHG-2","state":"revoked","end":"2026-11-02T10:45:00Z","broker":"sym"}"#,
        r#"{"trailhound":"grant/v1","id":"CHG-3","principal":"carol","roles":["jit-admin"],"state":"denied","time":"2026-11-02T10:46:00Z","broker":"sym"}"#,
        r#"{"trailhound":"grant/v1","id":"CHG-1","principal":"alice","roles":["arn:aws:iam::111122223333:role/jit-admin"],"time":"2026-11-02T10:50:00Z","end":"2026-11-02T11:30:00Z","broker":"sym"}"#,
    ];
    let events = parse("grants.jsonl", &lines.join("\n"));
    assert_eq!(events.len(), 5);
    let engine = through_a_restart(&events[..2], &events[2..], |e| {
        assert_eq!(
            e.grants()
                .grants()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>(),
            ["sym:CHG-1", "sym:CHG-2"]
        );
        assert_eq!(active(e, "2026-11-02T09:59:59Z"), Vec::<String>::new());
        assert_eq!(
            active(e, "2026-11-02T10:30:00Z"),
            ["sym:CHG-1", "sym:CHG-2"]
        );
        assert_eq!(active(e, "2026-11-02T11:10:00Z"), ["sym:CHG-2"]);
    });
    let ids: Vec<&str> = engine.grants().grants().map(|g| g.id.as_str()).collect();
    assert_eq!(ids, ["sym:CHG-1", "sym:CHG-2", "sym:CHG-3"]);
    let g1 = engine.grants().grant("sym:CHG-1").unwrap();
    assert_eq!(g1.person.as_deref(), Some("alice"));
    assert_eq!(
        (g1.start, g1.ends_at()),
        (
            Some(t("2026-11-02T10:00:00Z")),
            Some(t("2026-11-02T11:30:00Z"))
        )
    );
    assert_eq!(
        (g1.approver.as_deref(), g1.ticket.as_deref()),
        (Some("bob"), Some("CHG-1"))
    );
    let g2 = engine.grants().grant("sym:CHG-2").unwrap();
    assert_eq!(g2.ends_at(), Some(t("2026-11-02T10:45:00Z")));
    let g3 = engine.grants().grant("sym:CHG-3").unwrap();
    assert!(g3.denied && g3.start.is_none());
    assert_eq!(
        active(&engine, "2026-11-02T10:30:00Z"),
        ["sym:CHG-1", "sym:CHG-2"]
    );
    assert_eq!(active(&engine, "2026-11-02T10:50:00Z"), ["sym:CHG-1"]);
    assert_eq!(active(&engine, "2026-11-02T11:15:00Z"), ["sym:CHG-1"]);
    assert_eq!(
        active(&engine, "2026-11-02T11:30:00Z"),
        Vec::<String>::new()
    );
}

#[test]
fn teleport_access_requests_are_held_from_approval_to_their_end_merged_by_request_id() {
    let lines = [
        r#"{"event":"access_request.create","code":"T5000I","time":"2026-11-02T10:00:00Z","uid":"u1","user":"alice","id":"r-1","roles":["aws-admin"],"state":"PENDING","expires":"2026-11-02T11:00:00Z","reason":"INC-9"}"#,
        r#"{"event":"access_request.review","code":"T5002I","time":"2026-11-02T10:01:00Z","uid":"u2","id":"r-1","reviewer":"bob","proposed_state":"APPROVED","state":"PENDING"}"#,
        r#"{"event":"access_request.update","code":"T5001I","time":"2026-11-02T10:02:00Z","uid":"u3","id":"r-1","state":"APPROVED","updated_by":"bob","expires":"2026-11-02T11:00:00Z"}"#,
        r#"{"event":"access_request.create","code":"T5000I","time":"2026-11-02T10:05:00Z","uid":"u4","user":"carol","id":"r-2","roles":["dba"],"state":"PENDING"}"#,
        r#"{"event":"access_request.update","code":"T5001I","time":"2026-11-02T10:06:00Z","uid":"u5","id":"r-2","state":"DENIED","updated_by":"bob"}"#,
        r#"{"event":"access_request.create","code":"T5000I","time":"2026-11-02T10:20:00Z","uid":"u6","user":"dave","id":"r-3","roles":["aws-admin"],"state":"PENDING","expires":"2026-11-02T12:00:00Z"}"#,
        r#"{"event":"access_request.update","code":"T5001I","time":"2026-11-02T10:21:00Z","uid":"u7","id":"r-3","state":"APPROVED","updated_by":"erin"}"#,
        r#"{"event":"access_request.delete","code":"T5003I","time":"2026-11-02T10:40:00Z","uid":"u8","id":"r-3"}"#,
    ];
    let events = parse("teleport.log", &lines.join("\n"));
    assert_eq!(events.len(), 8);
    let engine = through_a_restart(&events[..4], &events[4..], |e| {
        assert_eq!(
            e.grants()
                .grants()
                .map(|g| g.id.as_str())
                .collect::<Vec<_>>(),
            ["teleport:r-1", "teleport:r-2"]
        );
        // Asked for but not yet approved: in force for no one.
        assert_eq!(active(e, "2026-11-02T10:01:30Z"), Vec::<String>::new());
        assert_eq!(active(e, "2026-11-02T10:02:00Z"), ["teleport:r-1"]);
        let r2 = e.grants().grant("teleport:r-2").unwrap();
        assert_eq!(
            (r2.start, r2.requested_at),
            (None, Some(t("2026-11-02T10:05:00Z")))
        );
    });
    let r1 = engine.grants().grant("teleport:r-1").unwrap();
    assert_eq!(r1.person.as_deref(), Some("alice"));
    assert_eq!(r1.roles, ["aws-admin"]);
    assert_eq!(
        (r1.requester.as_deref(), r1.approver.as_deref()),
        (Some("alice"), Some("bob"))
    );
    assert_eq!(
        (r1.start, r1.ends_at()),
        (
            Some(t("2026-11-02T10:02:00Z")),
            Some(t("2026-11-02T11:00:00Z"))
        )
    );
    assert!(r1.gateway);
    assert!(engine.grants().grant("teleport:r-2").unwrap().denied);
    let r3 = engine.grants().grant("teleport:r-3").unwrap();
    assert_eq!(r3.approver.as_deref(), Some("erin"));
    assert_eq!(r3.ends_at(), Some(t("2026-11-02T10:40:00Z")));
    assert_eq!(
        active(&engine, "2026-11-02T10:30:00Z"),
        ["teleport:r-1", "teleport:r-3"]
    );
    assert_eq!(active(&engine, "2026-11-02T10:45:00Z"), ["teleport:r-1"]);
    assert_eq!(
        active(&engine, "2026-11-02T11:00:00Z"),
        Vec::<String>::new()
    );
}

const ACCOUNT: &str = "111122223333";
const PS: &str = "arn:aws:sso:::permissionSet/ssoins-1111222233334444/ps-aaaabbbbccccdddd";

/// One CloudTrail record of `sso.amazonaws.com` (or the identity store),
/// made by the administrator carol through her own permission set.
fn record(id: &str, time: &str, source: &str, name: &str, request: &str, response: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.09","userIdentity":{{"type":"AssumedRole","principalId":"AROAEXAMPLE:carol","arn":"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_IdentityAdmin_1a2b3c/carol","accountId":"{ACCOUNT}","sessionContext":{{"sessionIssuer":{{"type":"Role","arn":"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_IdentityAdmin_1a2b3c","userName":"AWSReservedSSO_IdentityAdmin_1a2b3c"}}}}}},"eventTime":"{time}","eventSource":"{source}","eventName":"{name}","awsRegion":"us-east-1","sourceIPAddress":"198.51.100.20","userAgent":"aws-cli/2.18.10","requestParameters":{request},"responseElements":{response},"eventID":"{id}","readOnly":false,"eventType":"AwsApiCall","managementEvent":true,"recipientAccountId":"{ACCOUNT}"}}"#
    )
}

fn assignment(id: &str, time: &str, name: &str, kind: &str, principal: &str) -> String {
    let request = format!(
        r#"{{"instanceArn":"arn:aws:sso:::instance/ssoins-1111222233334444","targetId":"{ACCOUNT}","targetType":"AWS_ACCOUNT","permissionSetArn":"{PS}","principalType":"{kind}","principalId":"{principal}"}}"#
    );
    record(id, time, "sso.amazonaws.com", name, &request, "null")
}

#[test]
fn identity_center_assignments_are_held_per_instance_with_names_from_the_directory() {
    let first = [
        record(
            "e-1",
            "2026-11-02T09:00:00Z",
            "sso.amazonaws.com",
            "CreatePermissionSet",
            r#"{"name":"AdminAccess","instanceArn":"arn:aws:sso:::instance/ssoins-1111222233334444"}"#,
            &format!(r#"{{"permissionSet":{{"name":"AdminAccess","permissionSetArn":"{PS}"}}}}"#),
        ),
        record(
            "e-2",
            "2026-11-02T09:01:00Z",
            "identitystore.amazonaws.com",
            "DescribeUser",
            r#"{"identityStoreId":"d-1","userId":"u-alice"}"#,
            r#"{"userId":"u-alice","userName":"alice","identityStoreId":"d-1"}"#,
        ),
        assignment(
            "e-3",
            "2026-11-02T10:00:00Z",
            "CreateAccountAssignment",
            "USER",
            "u-alice",
        ),
        assignment(
            "e-4",
            "2026-11-02T10:05:00Z",
            "CreateAccountAssignment",
            "GROUP",
            "g-ops",
        ),
    ];
    let second = [
        assignment(
            "e-5",
            "2026-11-02T11:00:00Z",
            "DeleteAccountAssignment",
            "USER",
            "u-alice",
        ),
        assignment(
            "e-6",
            "2026-11-02T12:00:00Z",
            "CreateAccountAssignment",
            "USER",
            "u-alice",
        ),
        // The same assignment created twice is one grant.
        assignment(
            "e-7",
            "2026-11-02T12:01:00Z",
            "CreateAccountAssignment",
            "USER",
            "u-alice",
        ),
    ];
    let parse_records = |records: &[String]| {
        parse(
            "111122223333_CloudTrail_us-east-1_20261102T1200Z_x.json",
            &format!(r#"{{"Records":[{}]}}"#, records.join(",")),
        )
    };
    let (first, second) = (parse_records(&first), parse_records(&second));
    let alice = format!("ic:{ACCOUNT}/{PS}/USER/u-alice@");
    let ops = format!("ic:{ACCOUNT}/{PS}/GROUP/g-ops@2026-11-02T10:05:00Z");
    let alice_1 = format!("{alice}2026-11-02T10:00:00Z");
    let alice_2 = format!("{alice}2026-11-02T12:00:00Z");
    let engine = through_a_restart(&first, &second, |e| {
        assert_eq!(
            e.grants()
                .grants()
                .map(|g| g.id.clone())
                .collect::<Vec<_>>(),
            [ops.clone(), alice_1.clone()]
        );
        assert_eq!(
            active(e, "2026-11-02T10:30:00Z"),
            [ops.clone(), alice_1.clone()]
        );
        let g = e.grants().grant(&alice_1).unwrap();
        assert_eq!(e.grants().person_of(g).as_deref(), Some("alice"));
        assert_eq!(g.approver.as_deref(), Some("carol"));
    });
    assert_eq!(
        engine
            .grants()
            .grants()
            .map(|g| g.id.clone())
            .collect::<Vec<_>>(),
        [ops.clone(), alice_1.clone(), alice_2.clone()]
    );
    let first_instance = engine.grants().grant(&alice_1).unwrap();
    assert_eq!(first_instance.ends_at(), Some(t("2026-11-02T11:00:00Z")));
    assert_eq!(
        active(&engine, "2026-11-02T10:30:00Z"),
        [ops.clone(), alice_1.clone()]
    );
    assert_eq!(
        active(&engine, "2026-11-02T11:30:00Z"),
        std::slice::from_ref(&ops)
    );
    assert_eq!(active(&engine, "2026-11-02T12:30:00Z"), [ops, alice_2]);
}

/// The grant columns on calls, for one source: alice's call inside her
/// grant is covered, bob's is not, and alice's call after the end carries
/// the grant that ended.
#[test]
fn calls_are_judged_against_the_grants_in_event_time() {
    use arrow::array::{Array, AsArray};
    let grant = parse(
        "grants.jsonl",
        r#"{"trailhound":"grant/v1","id":"CHG-9","principal":"alice","roles":["jit-admin"],"start":"2026-11-02T10:00:00Z","end":"2026-11-02T11:00:00Z"}"#,
    );
    let call = |time: &str, who: &str| Event {
        event_time: t(time),
        event_id: format!("{who}@{time}"),
        event_source: "iam.amazonaws.com".into(),
        event_name: "CreateUser".into(),
        read_only: Some(false),
        principal: format!("arn:aws:iam::{ACCOUNT}:role/jit-admin"),
        principal_type: "AssumedRole".into(),
        session_name: Some(who.into()),
        ..Event::default()
    };
    let mut table = GrantTable::new(GrantConfig::default());
    table
        .enrich(&events_to_batch(&grant))
        .unwrap_or_else(|e| panic!("{e}"));
    let rows = [
        call("2026-11-02T10:30:00Z", "alice"),
        call("2026-11-02T10:31:00Z", "bob"),
        call("2026-11-02T11:05:00Z", "alice"),
        Event {
            principal: format!("arn:aws:iam::{ACCOUNT}:role/ci"),
            ..call("2026-11-02T10:32:00Z", "ci")
        },
    ];
    let enriched = table
        .enrich(&events_to_batch(&rows))
        .unwrap_or_else(|e| panic!("{e}"));
    let batch = enriched.batch;
    let covered = batch
        .column_by_name("grant_covered")
        .unwrap()
        .as_boolean()
        .clone();
    let got: Vec<Option<bool>> = (0..4)
        .map(|i| covered.is_valid(i).then(|| covered.value(i)))
        .collect();
    assert_eq!(got, [Some(true), Some(false), Some(false), None]);
    let ids = batch.column_by_name("grant_id").unwrap().as_string::<i32>();
    assert_eq!(ids.value(0), "grants:CHG-9");
    assert!(ids.is_null(1));
    assert_eq!(ids.value(2), "grants:CHG-9");
    let ended = batch.column_by_name("grant_ended").unwrap();
    assert!(ended.is_null(0) && ended.is_null(1) && !ended.is_null(2));
    assert!(enriched.closures.contains_key("alice@2026-11-02T11:05:00Z"));
}

/// A Teleport grant, when it ends, closes the gateway sessions its user
/// opened during it and left open, and the AWS role its gateway role maps
/// to (for that user's sessions): the closure the responders act on.
#[test]
fn a_teleport_grant_closes_its_users_open_gateway_sessions_and_mapped_role() {
    let lines = [
        r#"{"event":"access_request.create","time":"2026-11-02T10:00:00Z","uid":"u1","user":"alice","id":"r-9","roles":["aws-admin"],"state":"PENDING","expires":"2026-11-02T11:00:00Z"}"#,
        r#"{"event":"access_request.update","time":"2026-11-02T10:01:00Z","uid":"u2","id":"r-9","state":"APPROVED","updated_by":"bob"}"#,
        r#"{"ei":0,"event":"session.start","uid":"u3","user":"alice","sid":"s-open","time":"2026-11-02T10:05:00Z","server_hostname":"bastion-1","addr.remote":"198.51.100.4:51000"}"#,
        r#"{"ei":0,"event":"session.start","uid":"u4","user":"alice","sid":"s-done","time":"2026-11-02T10:06:00Z","server_hostname":"bastion-1","addr.remote":"198.51.100.4:51001"}"#,
        r#"{"ei":1,"event":"session.end","uid":"u5","user":"alice","sid":"s-done","time":"2026-11-02T10:20:00Z","server_hostname":"bastion-1"}"#,
        r#"{"ei":0,"event":"session.start","uid":"u6","user":"carol","sid":"s-carol","time":"2026-11-02T10:07:00Z","server_hostname":"bastion-1","addr.remote":"198.51.100.5:51002"}"#,
        r#"{"ei":0,"event":"session.start","uid":"u7","user":"dave","sid":"s-late","time":"2026-11-02T11:40:00Z","server_hostname":"bastion-1","addr.remote":"198.51.100.6:51003"}"#,
    ];
    let events = parse("teleport.log", &lines.join("\n"));
    let rules = RuleSet::builtin().unwrap_or_else(|e| panic!("{:?}", e.errors));
    let closing: Vec<_> = rules
        .rules()
        .iter()
        .filter(|r| r.id == "grant-ended-close-sessions")
        .cloned()
        .collect();
    let mut config = GrantConfig::default();
    config.gateway_roles.insert(
        "aws-admin".into(),
        vec![format!("arn:aws:iam::{ACCOUNT}:role/admin")],
    );
    let mut engine = Engine::new(RuleSet::from_rules(closing)).with_grants(config);
    let mut alerts = engine
        .process(&events_to_batch(&events))
        .unwrap_or_else(|e| panic!("{e}"));
    alerts.extend(engine.flush().unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let closes = alerts[0].closes.as_ref().expect("a closure");
    assert_eq!(closes.grant_id, "teleport:r-9");
    assert_eq!(closes.person, "alice");
    assert_eq!(closes.issued_before, t("2026-11-02T11:00:00Z"));
    let sessions: Vec<&str> = closes
        .gateway_sessions
        .iter()
        .map(|s| s.session_id.as_str())
        .collect();
    assert_eq!(sessions, ["s-open"]);
    assert_eq!(closes.role_sessions.len(), 1);
    assert_eq!(
        closes.role_sessions[0].role_arn,
        format!("arn:aws:iam::{ACCOUNT}:role/admin")
    );
    assert_eq!(
        closes.role_sessions[0].session_name.as_deref(),
        Some("alice")
    );
    assert_eq!(alerts[0].principal, "gateway:alice");
}
