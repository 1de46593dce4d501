//! `end-gateway-session` against a real HTTP server on loopback: the
//! gateway's API gets the session id, the bearer token and the lock; a
//! release calls the unlock URL; a 503 is retried; a gateway that keeps
//! failing makes the action fail with its own alert.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use trailhound_core::{ActionMode, ActionOutcome, Alert, Severity};
use trailhound_respond::config::GatewaySettings;
use trailhound_respond::{Iam, IamError, Ledger, Responder, ResponseConfig};
use trailhound_rules::rule::ResponseName;

/// One request as the server saw it.
#[derive(Debug)]
struct Seen {
    line: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// Answers `statuses` in turn, one request per connection, and reports each.
fn server(statuses: Vec<u16>) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for status in statuses {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut headers = BTreeMap::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let len: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            let _ = tx.send(Seen {
                line: line.trim().to_string(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
    });
    (url, rx)
}

fn responder(url: &str, dir: &std::path::Path, attempts: u32) -> Responder {
    let config = ResponseConfig {
        mode: ActionMode::Enforce,
        attempts,
        gateway: Some(GatewaySettings {
            url: format!("{url}/v1/sessions/{{session_id}}/terminate"),
            method: "POST".into(),
            headers: BTreeMap::new(),
            token: Some("s3cr3t-token".into()),
            body: None,
            release_url: Some(format!("{url}/v1/users/{{login}}/unlock")),
            timeout: Duration::from_secs(5),
        }),
        ..ResponseConfig::default()
    };
    Responder::new(
        config,
        BTreeMap::from([(
            "gateway-suspicious-command".to_string(),
            vec![ResponseName::EndGatewaySession],
        )]),
        Ledger::at(dir.join("actions.json")),
        Box::new(|| {
            Err::<Box<dyn Iam>, _>(IamError {
                operation: "client",
                code: None,
                message: "no IAM in this test".into(),
            })
        }),
    )
}

fn alert() -> Alert {
    Alert {
        alert_id: "alert-gw".into(),
        rule_id: "gateway-suspicious-command".into(),
        title: "Suspicious command".into(),
        severity: Severity::High,
        principal: "gateway:bob".into(),
        account_id: None,
        first_event_time: 1,
        last_event_time: 1,
        detected_at: 2,
        event_ids: vec!["sess-42:7".into()],
        event_count: 1,
        evidence: "bob ran curl | sh".into(),
        tags: vec![],
        access_key_id: None,
        session_id: Some("sess-42".into()),
        closes: None,
    }
}

#[test]
fn the_gateway_api_ends_the_session_and_release_unlocks_the_login() {
    let (url, seen) = server(vec![200, 200]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(&url, dir.path(), 2);
    let out = r.handle(&alert());
    let action = &out.actions[0];
    assert_eq!(action.outcome, ActionOutcome::Done, "{}", action.reason);
    assert_eq!(action.details["session_id"], "sess-42");
    let req = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("a request");
    assert_eq!(req.line, "POST /v1/sessions/sess-42/terminate HTTP/1.1");
    assert_eq!(
        req.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cr3t-token")
    );
    let body: serde_json::Value = serde_json::from_str(&req.body).expect("JSON body");
    assert_eq!(body["session_id"], "sess-42");
    assert_eq!(body["login"], "bob");
    assert_eq!(body["lock"], true);
    // The token never reaches the record.
    assert!(
        !serde_json::to_string(&out.actions)
            .unwrap()
            .contains("s3cr3t")
    );

    let released = r
        .release(&action.action_id, "released by hand")
        .expect("release");
    assert_eq!(released.outcome, ActionOutcome::Released);
    let req = seen
        .recv_timeout(Duration::from_secs(5))
        .expect("the unlock");
    assert_eq!(req.line, "POST /v1/users/bob/unlock HTTP/1.1");
}

#[test]
fn a_gateway_that_keeps_failing_fails_the_action_with_its_own_alert() {
    let (url, seen) = server(vec![503, 503]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(&url, dir.path(), 2);
    let out = r.handle(&alert());
    assert_eq!(out.actions[0].outcome, ActionOutcome::Failed);
    assert!(
        out.actions[0].reason.contains("HTTP 503"),
        "{}",
        out.actions[0].reason
    );
    assert!(out.actions[0].reason.contains("after 2 attempts"));
    assert_eq!(out.alerts.len(), 1);
    assert_eq!(out.alerts[0].rule_id, "trailhound-response-failed");
    assert_eq!(seen.iter().take(2).count(), 2, "retried once");
    assert!(r.ledger().read().unwrap().placed.is_empty());
}

#[test]
fn a_503_is_retried_and_the_second_answer_ends_the_session() {
    let (url, seen) = server(vec![503, 200]);
    let dir = tempfile::tempdir().unwrap();
    let mut r = responder(&url, dir.path(), 3);
    let out = r.handle(&alert());
    assert_eq!(
        out.actions[0].outcome,
        ActionOutcome::Done,
        "{}",
        out.actions[0].reason
    );
    assert!(
        out.actions[0].reason.contains("HTTP 200"),
        "{}",
        out.actions[0].reason
    );
    let requests: Vec<Seen> = seen.iter().take(2).collect();
    assert_eq!(requests.len(), 2);
    assert!(
        requests
            .iter()
            .all(|q| q.line == "POST /v1/sessions/sess-42/terminate HTTP/1.1")
    );
    assert!(out.alerts.is_empty());
}
