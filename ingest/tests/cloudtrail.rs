//! The CloudTrail parser over every input shape, identity type and kind of
//! damage, using the small fixtures in `tests/fixtures/cloudtrail/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use trailhound_core::Event;
use trailhound_ingest::{Collect, Format, ParseContext, Position, cloudtrail, parse_input};

const INGEST_TIME: i64 = 1_714_560_000_000_000;

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cloudtrail")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).expect("fixture exists")
}

fn ctx(origin: &str) -> ParseContext {
    let mut ctx = ParseContext::new(origin);
    ctx.ingest_time = INGEST_TIME;
    ctx
}

/// The `extra` column of the first event, empty when there is none.
fn first_extra(out: &Collect) -> &str {
    out.events
        .first()
        .and_then(|e| e.extra.as_deref())
        .unwrap_or("")
}

fn parse(bytes: &[u8]) -> Collect {
    let mut out = Collect::default();
    cloudtrail::parse(bytes, &ctx("test.json"), &mut out);
    out
}

fn ids(out: &Collect) -> Vec<&str> {
    out.events.iter().map(|e| e.event_id.as_str()).collect()
}

fn event<'a>(out: &'a Collect, id: &str) -> &'a Event {
    out.events
        .iter()
        .find(|e| e.event_id == id)
        .unwrap_or_else(|| panic!("no event {id} in {:?}", ids(out)))
}

fn reasons(out: &Collect) -> Vec<&str> {
    out.dead_letters.iter().map(|d| d.reason).collect()
}

/// The records of `records.json`, for building the other shapes.
fn records() -> Vec<Value> {
    let doc: Value = serde_json::from_slice(&fixture("records.json")).unwrap();
    doc["Records"].as_array().unwrap().clone()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A small valid record with the given id, as one line.
fn small_record(id: &str) -> String {
    json!({
        "eventVersion": "1.09",
        "eventTime": "2024-05-01T10:00:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "GetUser",
        "eventID": id,
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "userName": "alice"},
    })
    .to_string()
}

fn assert_clean(out: &Collect, expected_ids: &[&str]) {
    assert!(
        out.dead_letters.is_empty(),
        "dead letters: {:?}",
        out.dead_letters
    );
    assert_eq!(ids(out), expected_ids);
}

// ---- shapes ----------------------------------------------------------------

#[test]
fn records_file_with_other_top_level_keys() {
    let out = parse(&fixture("records.json"));
    assert_clean(&out, &["evt-0001", "evt-0002"]);
    let e = event(&out, "evt-0001");
    assert_eq!(e.event_name, "ListUsers");
    assert_eq!(e.event_source, "iam.amazonaws.com");
    assert_eq!(e.event_time, 1_714_557_600_000_000);
    assert_eq!(e.ingest_time, INGEST_TIME);
    assert_eq!(e.event_category, "Management");
    assert_eq!(e.read_only, Some(true));
    assert_eq!(e.region.as_deref(), Some("us-east-1"));
    assert_eq!(e.source_ip.as_deref(), Some("198.51.100.7"));
    assert_eq!(e.user_agent.as_deref(), Some("aws-cli/2.15.0"));
    assert_eq!(e.account_id.as_deref(), Some("111122223333"));
    assert_eq!(e.access_key_id.as_deref(), Some("AKIAEXAMPLEALICE0001"));
    assert_eq!(e.request, None);
    assert_eq!(e.response, None);
}

#[test]
fn records_file_pretty_printed() {
    let doc = json!({"Records": records()});
    let out = parse(serde_json::to_string_pretty(&doc).unwrap().as_bytes());
    assert_clean(&out, &["evt-0001", "evt-0002"]);
    // Pretty input yields the same compact request text as compact input.
    assert_eq!(
        event(&out, "evt-0002").request.as_deref(),
        Some(r#"{"userName":"bob"}"#)
    );
}

#[test]
fn json_array_of_records() {
    let compact = serde_json::to_string(&records()).unwrap();
    assert_clean(&parse(compact.as_bytes()), &["evt-0001", "evt-0002"]);
    let pretty = serde_json::to_string_pretty(&records()).unwrap();
    assert_clean(&parse(pretty.as_bytes()), &["evt-0001", "evt-0002"]);
}

#[test]
fn json_lines_with_blank_lines_crlf_and_bom() {
    let lines: Vec<String> = records().iter().map(|r| r.to_string()).collect();
    let text = format!("\u{feff}{}\r\n\r\n   \r\n{}\r\n\r\n", lines[0], lines[1]);
    assert_clean(&parse(text.as_bytes()), &["evt-0001", "evt-0002"]);
}

#[test]
fn single_record_compact_or_pretty() {
    let record = &records()[1];
    assert_clean(&parse(record.to_string().as_bytes()), &["evt-0002"]);
    let pretty = serde_json::to_string_pretty(record).unwrap();
    assert_clean(&parse(pretty.as_bytes()), &["evt-0002"]);
}

/// Spaces between tokens (one line, so the fast scan reads it) give the
/// same compact `request`, `response` and `extra` texts as none.
#[test]
fn spaces_between_tokens_give_the_compact_texts() {
    let compact = r#"{"eventTime":"2026-11-02T10:00:00Z","eventName":"PutObject","eventID":"e1","requestParameters":{"bucketName":"b","key":"a b","tags":[1,{"k":"v w"}]},"responseElements":{"x":null},"tlsDetails":{"tlsVersion":"TLSv1.3"},"requestID":"r 1","n":[]}"#;
    let spaced = r#" { "eventTime" : "2026-11-02T10:00:00Z", "eventName":"PutObject","eventID":"e1","requestParameters": { "bucketName" : "b" , "key":"a b","tags":[ 1, {"k" :"v w"} ] },"responseElements":{"x": null},"tlsDetails":{ "tlsVersion":"TLSv1.3"},"requestID":"r 1","n":[ ] } "#;
    let a = parse(compact.as_bytes());
    let b = parse(spaced.as_bytes());
    assert_clean(&a, &["e1"]);
    assert_clean(&b, &["e1"]);
    let (a, b) = (event(&a, "e1"), event(&b, "e1"));
    assert_eq!(
        a.request.as_deref(),
        Some(r#"{"bucketName":"b","key":"a b","tags":[1,{"k":"v w"}]}"#)
    );
    assert_eq!(a.request, b.request);
    assert_eq!(a.response.as_deref(), Some(r#"{"x":null}"#));
    assert_eq!(a.response, b.response);
    assert_eq!(
        a.extra.as_deref(),
        Some(r#"{"tlsDetails":{"tlsVersion":"TLSv1.3"},"requestID":"r 1","n":[]}"#)
    );
    assert_eq!(a.extra, b.extra);
}

#[test]
fn concatenated_documents_like_jq_output() {
    let r = records();
    let text = format!(
        "{}\n{}\n{}",
        serde_json::to_string_pretty(&r[0]).unwrap(),
        serde_json::to_string_pretty(&r[1]).unwrap(),
        serde_json::to_string_pretty(&json!({"Records": [r[0]]})).unwrap()
    );
    assert_clean(
        &parse(text.as_bytes()),
        &["evt-0001", "evt-0002", "evt-0001"],
    );
}

#[test]
fn one_records_file_per_line() {
    let r = records();
    let text = format!(
        "{}\n{}\n",
        json!({"Records": [r[0]]}),
        json!({"Records": [r[1]]})
    );
    assert_clean(&parse(text.as_bytes()), &["evt-0001", "evt-0002"]);
}

#[test]
fn eventbridge_envelope_is_unwrapped() {
    let out = parse(&fixture("eventbridge.jsonl"));
    assert_clean(&out, &["evt-eb-1"]);
    let e = event(&out, "evt-eb-1");
    assert_eq!(e.event_name, "StopLogging");
    assert_eq!(e.principal, "arn:aws:iam::111122223333:user/mallory");
    let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
    assert!(
        extra.get("detail-type").is_none(),
        "envelope fields stay out of extra"
    );
}

#[test]
fn otrf_timestamp_and_version_fields() {
    let out = parse(&fixture("otrf_timestamp.jsonl"));
    assert_clean(&out, &["evt-otrf-1", "evt-otrf-2"]);
    let e = event(&out, "evt-otrf-1");
    assert_eq!(e.event_time, 1_600_044_264_000_000);
    assert_eq!(e.principal, "arn:aws:iam::111122223333:user/dave");
    assert_eq!(e.mfa, Some(true));
    let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra["@version"], "1");
    assert!(extra.get("@timestamp").is_none());
    let s3 = event(&out, "evt-otrf-2");
    assert_eq!(s3.principal, "arn:aws:iam::111122223333:role/ec2-proxy");
    assert_eq!(s3.bucket.as_deref(), Some("staging-data"));
    assert_eq!(s3.object_key.as_deref(), Some("dump.tar"));
}

#[test]
fn insights_event() {
    let out = parse(&fixture("insight.json"));
    assert_clean(&out, &["evt-insight-1"]);
    let e = event(&out, "evt-insight-1");
    assert_eq!(e.event_category, "Insight");
    assert_eq!(e.event_name, "CreateAccessKey");
    assert_eq!(e.event_source, "iam.amazonaws.com");
    assert_eq!(e.principal, "unknown");
    assert_eq!(e.principal_type, "Unknown");
    let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra["insightDetails"]["insightType"], "ApiCallRateInsight");
    assert_eq!(extra["eventType"], "AwsCloudTrailInsight");
    assert_eq!(extra["sharedEventID"], "shared-insight-1");
}

#[test]
fn insight_category_inferred_from_event_type() {
    let mut record: Value = serde_json::from_slice(&fixture("insight.json")).unwrap();
    let record = record["Records"][0].take();
    let mut record = record;
    record.as_object_mut().unwrap().remove("eventCategory");
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].event_category, "Insight");
}

#[test]
fn s3_data_event_bucket_key_bytes_and_resources() {
    let out = parse(&fixture("s3_data.json"));
    assert_clean(&out, &["evt-s3-1", "evt-s3-2"]);
    let get = event(&out, "evt-s3-1");
    assert_eq!(get.event_category, "Data");
    assert_eq!(get.bucket.as_deref(), Some("finance-reports"));
    assert_eq!(get.object_key.as_deref(), Some("2024/q1/payroll.csv"));
    assert_eq!(get.bytes_in, Some(0));
    assert_eq!(get.bytes_out, Some(48213));
    assert_eq!(
        get.resources,
        vec![
            "arn:aws:s3:::finance-reports/2024/q1/payroll.csv",
            "arn:aws:s3:::finance-reports"
        ]
    );
    // An old data event: no eventCategory, bytes as strings.
    let put = event(&out, "evt-s3-2");
    assert_eq!(put.event_category, "Data");
    assert_eq!(put.bytes_in, Some(1024));
    assert_eq!(put.bytes_out, Some(0));
    assert_eq!(put.object_key.as_deref(), Some("a b/c.txt"));
    assert_eq!(put.read_only, Some(false));
}

#[test]
fn byte_counts_are_read_also_from_keys_written_with_escapes() {
    let text = String::from_utf8(fixture("identities.jsonl")).unwrap();
    let record: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let mut line = record.to_string();
    line.pop(); // the closing brace
    let with = |additional: &str| format!(r#"{line},"additionalEventData":{additional}}}"#);
    // Plain keys, the same keys with an escaped letter, and neither.
    let plain = parse(with(r#"{"bytesTransferredIn":12,"bytesTransferredOut":"34"}"#).as_bytes());
    assert_eq!(plain.events[0].bytes_in, Some(12));
    assert_eq!(plain.events[0].bytes_out, Some(34));
    let escaped = parse(with(r#"{"bytes\u0054ransferredIn":56,"x":1}"#).as_bytes());
    assert_eq!(
        escaped.events[0].bytes_in,
        Some(56),
        "{:?}",
        escaped.dead_letters
    );
    let other = parse(with(r#"{"SignatureVersion":"SigV4"}"#).as_bytes());
    assert_eq!(other.events[0].bytes_in, None);
    assert!(first_extra(&other).contains("SigV4"));
}

// ---- identities ------------------------------------------------------------

#[test]
fn every_user_identity_type() {
    let out = parse(&fixture("identities.jsonl"));
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    // id, principal, principal_type, user_name, mfa, session_name
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<bool>,
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            "root",
            "arn:aws:iam::111122223333:root",
            "Root",
            Some("root"),
            Some(true),
            None,
        ),
        (
            "root-no-arn",
            "arn:aws:iam::111122223333:root",
            "Root",
            Some("root"),
            None,
            None,
        ),
        (
            "iam-user",
            "arn:aws:iam::111122223333:user/alice",
            "IAMUser",
            Some("alice"),
            None,
            None,
        ),
        (
            "assumed-role",
            "arn:aws:iam::111122223333:role/platform/ops-admin",
            "AssumedRole",
            Some("ops-admin"),
            Some(false),
            Some("deploy-bot"),
        ),
        (
            "assumed-role-no-issuer",
            "arn:aws-us-gov:iam::111122223333:role/web-tier",
            "AssumedRole",
            Some("web-tier"),
            None,
            Some("i-0abc"),
        ),
        (
            "federated-user",
            "arn:aws:sts::111122223333:federated-user/erin",
            "FederatedUser",
            Some("erin"),
            Some(false),
            None,
        ),
        (
            "aws-service",
            "lambda.amazonaws.com",
            "AWSService",
            None,
            None,
            None,
        ),
        (
            "aws-account",
            "account:444455556666",
            "AWSAccount",
            None,
            None,
            None,
        ),
        (
            "aws-account-no-id",
            "account:AIDAEXAMPLEOTHER0001",
            "AWSAccount",
            None,
            None,
            None,
        ),
        (
            "identity-center",
            "identitycenter:94482488-3041-7026-18f3-be45837cd0e4",
            "IdentityCenterUser",
            None,
            None,
            None,
        ),
        ("saml-user", "frank", "SAMLUser", Some("frank"), None, None),
        (
            "web-identity-user",
            "1234567890",
            "WebIdentityUser",
            Some("1234567890"),
            None,
            None,
        ),
        ("unknown-type", "XYZ123", "SomethingNew", None, None, None),
        (
            "assumed-role-odd-context",
            "arn:aws:iam::111122223333:role/batch",
            "AssumedRole",
            Some("batch"),
            None,
            Some("job-7"),
        ),
        ("no-identity", "unknown", "Unknown", None, None, None),
        (
            "identity-not-an-object",
            "unknown",
            "Unknown",
            None,
            None,
            None,
        ),
    ];
    for &(id, principal, kind, user, mfa, session) in cases {
        let e = event(&out, id);
        assert_eq!(e.principal, principal, "{id}: principal");
        assert_eq!(e.principal_type, kind, "{id}: principal_type");
        assert_eq!(e.user_name.as_deref(), user, "{id}: user_name");
        assert_eq!(e.mfa, mfa, "{id}: mfa");
        assert_eq!(e.session_name.as_deref(), session, "{id}: session_name");
    }
    assert_eq!(out.events.len(), cases.len());

    let role = event(&out, "assumed-role");
    assert_eq!(
        role.principal_arn.as_deref(),
        Some("arn:aws:sts::111122223333:assumed-role/ops-admin/deploy-bot")
    );
    assert_eq!(role.access_key_id.as_deref(), Some("ASIAEXAMPLEOPS000001"));
    // An empty accessKeyId is no key; the account comes from the identity.
    let root = event(&out, "root");
    assert_eq!(root.access_key_id, None);
    assert_eq!(root.account_id.as_deref(), Some("111122223333"));
    assert!(root.is_protected_principal());
    assert!(event(&out, "aws-service").is_protected_principal());
}

#[test]
fn console_login_mfa_comes_from_mfa_used() {
    let text = String::from_utf8(fixture("identities.jsonl")).unwrap();
    let mut record: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    record["additionalEventData"]["MFAUsed"] = json!("No");
    record["userIdentity"]["sessionContext"] = json!({"attributes": {"mfaAuthenticated": "true"}});
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].mfa, Some(false));
    // Not a ConsoleLogin: the session attribute decides.
    record["eventName"] = json!("ListUsers");
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].mfa, Some(true));
}

#[test]
fn source_identity_and_read_only_as_string() {
    let out = parse(&fixture("records.json"));
    let e = event(&out, "evt-0002");
    assert_eq!(e.source_identity.as_deref(), Some("carol@example.com"));
    assert_eq!(e.read_only, Some(false));
    assert_eq!(e.error_code, None);
}

#[test]
fn console_session_is_lifted_from_session_credential_from_console() {
    let mut record = json!({
        "eventTime": "2026-11-02T10:00:00Z", "eventName": "DescribeInstances",
        "eventSource": "ec2.amazonaws.com", "sessionCredentialFromConsole": "true",
        "userIdentity": {"type": "AssumedRole", "arn": "arn:aws:sts::111122223333:assumed-role/admin/alice"}
    });
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].console_session, Some(true));
    assert!(!first_extra(&out).contains("sessionCredentialFromConsole"));
    record["sessionCredentialFromConsole"] = json!(false);
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].console_session, Some(false));
    // A value that is not a flag is kept, in `extra`, as it came.
    record["sessionCredentialFromConsole"] = json!("sometimes");
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].console_session, None);
    assert!(first_extra(&out).contains(r#""sessionCredentialFromConsole":"sometimes""#));
    record
        .as_object_mut()
        .unwrap()
        .remove("sessionCredentialFromConsole");
    let out = parse(record.to_string().as_bytes());
    assert_eq!(out.events[0].console_session, None);
}

// ---- columns kept as JSON ----------------------------------------------------

#[test]
fn request_response_and_extra_keep_the_rest() {
    let out = parse(&fixture("records.json"));
    let e = event(&out, "evt-0002");
    let response: Value = serde_json::from_str(e.response.as_deref().unwrap()).unwrap();
    assert_eq!(response["accessKey"]["userName"], "bob");
    let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
    assert_eq!(
        extra["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"],
        "ops-admin"
    );
    assert_eq!(extra["eventType"], "AwsApiCall");
    assert_eq!(extra["eventVersion"], "1.09");
    assert_eq!(extra["requestID"], "req-0002");
    assert_eq!(extra["managementEvent"], true);
    for lifted in [
        "eventName",
        "eventTime",
        "eventID",
        "requestParameters",
        "awsRegion",
        "readOnly",
    ] {
        assert!(
            extra.get(lifted).is_none(),
            "{lifted} is a column, not extra"
        );
    }
}

#[test]
fn unknown_and_oddly_typed_fields_go_to_extra() {
    let text = r#"{"eventTime":"2024-05-01T10:00:00Z","eventName":"X","eventID":"odd","brandNew":{"a":[1,2]},"errorMessage":{"nested":true},"weird\"key":1}"#;
    let out = parse(text.as_bytes());
    assert_clean(&out, &["odd"]);
    let e = &out.events[0];
    assert_eq!(e.error_message, None);
    let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra["brandNew"]["a"][1], 2);
    assert_eq!(extra["errorMessage"]["nested"], true);
    assert_eq!(extra["weird\"key"], 1);
}

#[test]
fn event_id_falls_back_to_a_stable_hash() {
    let text = r#"{"eventTime":"2024-05-01T10:00:00Z","eventName":"NoId"}"#;
    let first = parse(text.as_bytes());
    let again = parse(text.as_bytes());
    assert_eq!(first.events[0].event_id.len(), 32);
    assert_eq!(first.events[0].event_id, again.events[0].event_id);
    let other = parse(br#"{"eventTime":"2024-05-01T10:00:01Z","eventName":"NoId"}"#);
    assert_ne!(first.events[0].event_id, other.events[0].event_id);
}

#[test]
fn to_event_reads_one_record_text() {
    let text = records()[0].to_string();
    let e = cloudtrail::record::to_event(&text, &ctx("x")).unwrap();
    assert_eq!(e.event_id, "evt-0001");
    let err = cloudtrail::record::to_event("[1]", &ctx("x")).unwrap_err();
    assert_eq!(err.reason(), "not_a_record");
}

// ---- damage --------------------------------------------------------------------

#[test]
fn missing_event_time_or_event_name_is_a_dead_letter() {
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        r#"{"eventName":"NoTime","eventID":"a"}"#,
        r#"{"eventTime":"2024-05-01T10:00:00Z","eventID":"b"}"#,
        r#"{"eventTime":"not a time","eventName":"BadTime","eventID":"c"}"#,
        small_record("good")
    );
    let out = parse(text.as_bytes());
    assert_eq!(ids(&out), vec!["good"]);
    assert_eq!(
        reasons(&out),
        vec!["missing_field", "missing_field", "invalid_field"]
    );
    assert!(out.dead_letters[0].detail.contains("eventTime"));
    assert!(out.dead_letters[1].detail.contains("eventName"));
    assert_eq!(out.dead_letters[2].position, Position::Line(3));
}

#[test]
fn invalid_json_line_among_good_ones() {
    let text = format!(
        "{}\n{}\n{}\n",
        small_record("one"),
        r#"{"eventTime":"2024-05-01T10:00:00Z","eventName": oops}"#,
        small_record("three")
    );
    let out = parse(text.as_bytes());
    assert_eq!(ids(&out), vec!["one", "three"]);
    assert_eq!(reasons(&out), vec!["invalid_json"]);
    let dead = &out.dead_letters[0];
    assert_eq!(dead.position, Position::Line(2));
    assert!(dead.detail.contains("line 1 column"), "{}", dead.detail);
    assert!(dead.excerpt.contains("oops"));
}

#[test]
fn json_that_is_not_a_record_object() {
    let text = format!("{}\n42\n\"text\"\n", small_record("ok"));
    let out = parse(text.as_bytes());
    assert_eq!(ids(&out), vec!["ok"]);
    assert_eq!(reasons(&out), vec!["not_a_record", "not_a_record"]);

    let list = format!("[{}, 7, [1], null]", small_record("in-list"));
    let out = parse(list.as_bytes());
    assert_eq!(ids(&out), vec!["in-list"]);
    assert_eq!(reasons(&out), vec!["not_a_record"; 3]);
    assert_eq!(out.dead_letters[0].position, Position::Record(1));

    let out = parse(br#"{"Records": "nope"}"#);
    assert_eq!(reasons(&out), vec!["not_a_record"]);
}

#[test]
fn ten_megabyte_record_is_too_large_and_neighbours_parse() {
    let pad = "x".repeat(10 * 1024 * 1024);
    let big = format!(
        r#"{{"eventTime":"2024-05-01T10:00:00Z","eventName":"Big","eventID":"big","requestParameters":{{"pad":"{pad}"}}}}"#
    );
    // One record per line: refused by length before any parsing.
    let lines = format!(
        "{}\n{big}\n{}\n",
        small_record("before"),
        small_record("after")
    );
    let out = parse(lines.as_bytes());
    assert_eq!(ids(&out), vec!["before", "after"]);
    assert_eq!(reasons(&out), vec!["too_large"]);
    assert_eq!(out.dead_letters[0].position, Position::Line(2));
    assert!(out.dead_letters[0].excerpt.len() <= 1024);

    // Inside a Records file: measured from the raw text and skipped.
    let file = format!(
        r#"{{"Records":[{},{big},{}]}}"#,
        small_record("before"),
        small_record("after")
    );
    let out = parse(file.as_bytes());
    assert_eq!(ids(&out), vec!["before", "after"]);
    assert_eq!(reasons(&out), vec!["too_large"]);
    assert_eq!(out.dead_letters[0].position, Position::Record(1));
}

#[test]
fn non_utf8_bytes_are_a_dead_letter() {
    // Line-oriented: only the damaged line is lost.
    let mut lines = small_record("one").into_bytes();
    lines.extend_from_slice(
        b"\n{\"eventTime\":\"2024-05-01T10:00:00Z\",\"eventName\":\"\xff\xfe\"}\n",
    );
    lines.extend_from_slice(small_record("three").as_bytes());
    let out = parse(&lines);
    assert_eq!(ids(&out), vec!["one", "three"]);
    assert_eq!(reasons(&out), vec!["invalid_utf8"]);
    assert_eq!(out.dead_letters[0].position, Position::Line(2));

    // In a Records file: only the damaged record is lost.
    let mut file = format!("{{\"Records\":[{},", small_record("one")).into_bytes();
    file.extend_from_slice(b"{\"eventTime\":\"2024-05-01T10:00:00Z\",\"eventName\":\"A\xc3\"},");
    file.extend_from_slice(format!("{}]}}", small_record("three")).as_bytes());
    let out = parse(&file);
    assert_eq!(ids(&out), vec!["one", "three"]);
    assert_eq!(reasons(&out), vec!["invalid_utf8"]);
    assert_eq!(out.dead_letters[0].position, Position::Record(1));

    // Pretty-printed array: the same.
    let mut pretty = format!("[\n  {},\n", small_record("one")).into_bytes();
    pretty.extend_from_slice(
        b"  {\"eventTime\": \"2024-05-01T10:00:00Z\", \"eventName\": \"\x80\"},\n",
    );
    pretty.extend_from_slice(format!("  {}\n]\n", small_record("three")).as_bytes());
    let out = parse(&pretty);
    assert_eq!(ids(&out), vec!["one", "three"]);
    assert_eq!(reasons(&out), vec!["invalid_utf8"]);
}

#[test]
fn broken_records_document_keeps_the_records_before_the_break() {
    let doc = json!({"Records": records()});
    let pretty = serde_json::to_string_pretty(&doc).unwrap();
    let cut = &pretty[..pretty.len() - 40];
    let out = parse(cut.as_bytes());
    assert_eq!(ids(&out), vec!["evt-0001"]);
    assert_eq!(reasons(&out), vec!["invalid_json"]);
    assert_eq!(out.dead_letters[0].position, Position::Record(1));
}

#[test]
fn garbage_document_is_one_whole_dead_letter() {
    let out = parse(b"{\n \"Records\": [ this is not json\n ]\n}\n");
    assert!(out.events.is_empty());
    assert_eq!(reasons(&out), vec!["invalid_json"]);
    assert_eq!(out.dead_letters[0].position, Position::Whole);
}

#[test]
fn json_lines_whose_first_line_is_broken() {
    let text = format!(
        "{{\"eventName\": \"Broken\", \"eventTime\n{}\n{}\n",
        small_record("two"),
        small_record("three")
    );
    let out = parse(text.as_bytes());
    assert_eq!(ids(&out), vec!["two", "three"]);
    assert_eq!(reasons(&out), vec!["invalid_json"]);
    assert_eq!(out.dead_letters[0].position, Position::Line(1));
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let deep_list = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    // Nested lists where a record belongs: refused.
    let out = parse(format!("{deep_list}\n{}", small_record("after")).as_bytes());
    assert_eq!(ids(&out), vec!["after"]);
    assert_eq!(reasons(&out), vec!["not_a_record"]);
    let pretty = format!("[\n{deep_list}\n]");
    assert_eq!(reasons(&parse(pretty.as_bytes())), vec!["not_a_record"]);
    // Deep objects inside the fields the parser reads: still a record.
    let deep = format!("{}1{}", r#"{"a":"#.repeat(20_000), "}".repeat(20_000));
    let record = format!(
        r#"{{"eventTime":"2024-05-01T10:00:00Z","eventName":"Deep","eventID":"deep-identity","userIdentity":{{"type":"IAMUser","arn":{deep},"sessionContext":{deep},"x":{deep}}},"additionalEventData":{deep}}}"#
    );
    let out = parse(record.as_bytes());
    assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
    assert_eq!(event(&out, "deep-identity").principal_type, "IAMUser");
    // Deep but valid JSON inside a field, under the size limit: kept as text.
    let deep_field = format!(
        r#"{{"eventTime":"2024-05-01T10:00:00Z","eventName":"Deep","eventID":"deep","requestParameters":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    for text in [
        deep_field.clone(),
        format!("[{deep_field}]"),
        format!("{}\n{deep_field}", small_record("before")),
    ] {
        let out = parse(text.as_bytes());
        assert!(out.dead_letters.is_empty());
        assert_eq!(
            event(&out, "deep").request.as_ref().map(String::len),
            Some(200_001)
        );
    }
}

#[test]
fn empty_input_is_nothing() {
    for input in [
        &b""[..],
        b"\n\n",
        b"\xEF\xBB\xBF",
        b"{\"Records\":[]}",
        b"[]",
    ] {
        let out = parse(input);
        assert!(
            out.events.is_empty() && out.dead_letters.is_empty(),
            "{input:?}"
        );
    }
}

// ---- through parse_input -----------------------------------------------------

#[test]
fn gzip_records_file_through_parse_input() {
    let gz = gzip(&fixture("records.json"));
    let mut out = Collect::default();
    let summary = parse_input(
        &gz,
        &ctx("111122223333_CloudTrail_us-east-1_x.json.gz"),
        &mut out,
    );
    assert_eq!(summary.format, Format::CloudTrail);
    assert!(!summary.skipped);
    assert_clean(&out, &["evt-0001", "evt-0002"]);

    let gz = gzip(&fixture("otrf_timestamp.jsonl"));
    let mut out = Collect::default();
    parse_input(&gz, &ctx("export.jsonl.gz"), &mut out);
    assert_clean(&out, &["evt-otrf-1", "evt-otrf-2"]);
}

#[test]
fn truncated_gzip_keeps_the_records_before_the_cut() {
    let records: Vec<String> = (0..400)
        .map(|i| small_record(&format!("r{i:04}-{}", i * 7919 % 1000)))
        .collect();
    let file = format!("{{\"Records\":[{}]}}", records.join(","));
    let gz = gzip(file.as_bytes());
    let cut = &gz[..gz.len() / 2];
    let mut out = Collect::default();
    parse_input(cut, &ctx("cut.json.gz"), &mut out);
    let n = out.events.len();
    assert!(n > 0 && n < 400, "{n} events");
    assert_eq!(
        ids(&out),
        records
            .iter()
            .take(n)
            .map(|r| {
                let v: Value = serde_json::from_str(r).unwrap();
                v["eventID"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<_>>()
    );
    let reasons = reasons(&out);
    assert!(reasons.contains(&"bad_gzip"), "{reasons:?}");
    assert!(reasons.contains(&"invalid_json"), "{reasons:?}");
}

#[test]
fn digest_file_is_skipped() {
    let name = "example_CloudTrail-Digest_us-east-1_20240501T000000Z.json";
    let mut out = Collect::default();
    let summary = parse_input(&fixture(name), &ctx(name), &mut out);
    assert!(summary.skipped);
    assert_eq!(summary.format, Format::CloudTrailDigest);
    assert!(out.events.is_empty() && out.dead_letters.is_empty());
    // Recognised by content too, under any name.
    let mut out = Collect::default();
    let summary = parse_input(&gzip(&fixture(name)), &ctx("digest.json.gz"), &mut out);
    assert!(summary.skipped);
}

// ---- real data -------------------------------------------------------------------

fn data_files(dir: &Path, files: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        if path.is_dir() {
            data_files(&path, files);
        } else if !name.starts_with("license") && !name.ends_with(".md") {
            files.push(path);
        }
    }
}

#[test]
fn shared_cloudtrail_data_parses_without_dead_letters() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/cloudtrail");
    if !dir.is_dir() {
        eprintln!("skipped: {} is absent", dir.display());
        return;
    }
    let mut files = Vec::new();
    data_files(&dir, &mut files);
    let mut by_folder = std::collections::BTreeMap::<String, usize>::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let mut out = Collect::default();
        let summary = parse_input(&bytes, &ctx(&path.display().to_string()), &mut out);
        assert_eq!(summary.format, Format::CloudTrail, "{}", path.display());
        assert!(
            out.dead_letters.is_empty(),
            "{}: {:?}",
            path.display(),
            out.dead_letters
        );
        for e in &out.events {
            assert!(e.event_time > 0 && !e.event_name.is_empty() && !e.event_id.is_empty());
            assert_ne!(e.principal, "unknown", "{}: {}", path.display(), e.event_id);
        }
        let folder = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        *by_folder.entry(folder).or_default() += out.events.len();
    }
    assert_eq!(
        by_folder.get("stratus-red-team"),
        Some(&310),
        "{by_folder:?}"
    );
    assert_eq!(by_folder.get("otrf"), Some(&103), "{by_folder:?}");
    assert_eq!(by_folder.values().sum::<usize>(), 413);
}

/// Found by the `cloudtrail` fuzz target: a list on a line of its own
/// numbered its records across the whole input, so reading a big
/// line-oriented file in pieces (which `parse_file` does) gave other
/// positions than reading it whole. Records of a list on a line are now
/// numbered within that line.
#[test]
fn lists_on_lines_number_their_records_within_the_line_whole_or_in_pieces() {
    let input = b"[1]\n[2]\n[3]\n";
    let whole = parse(input);
    let positions: Vec<Position> = whole.dead_letters.iter().map(|d| d.position).collect();
    assert_eq!(positions, vec![Position::Record(0); 3]);
    assert!(
        whole.dead_letters[2]
            .detail
            .contains("in the list on line 3")
    );

    let mut pieces = Collect::default();
    let ctx = ctx("test.json");
    // Each piece says how many newlines it held: where the next one starts.
    assert_eq!(
        cloudtrail::parse_lines_from(b"[1]\n[2]\n", 1, &ctx, &mut pieces),
        2
    );
    assert_eq!(
        cloudtrail::parse_lines_from(b"[3]\n", 3, &ctx, &mut pieces),
        1
    );
    assert_eq!(pieces.dead_letters, whole.dead_letters);
    let mut last = Collect::default();
    assert_eq!(cloudtrail::parse_lines_from(b"[4]", 4, &ctx, &mut last), 0);
}

/// Every record of the fixtures as one compact line.
fn fixture_records() -> Vec<String> {
    let mut out = Vec::new();
    for name in [
        "records.json",
        "s3_data.json",
        "insight.json",
        "identities.jsonl",
        "eventbridge.jsonl",
        "otrf_timestamp.jsonl",
    ] {
        let text = String::from_utf8(fixture(name)).expect("UTF-8 fixture");
        let values: Vec<Value> = match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(doc)) => match doc.get("Records") {
                Some(Value::Array(records)) => records.clone(),
                _ => vec![Value::Object(doc)],
            },
            _ => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    serde_json::from_str(l.trim_start_matches('\u{feff}')).expect("a JSON line")
                })
                .collect(),
        };
        out.extend(values.iter().map(Value::to_string));
    }
    out
}

#[test]
fn every_event_is_what_its_record_alone_gives_whatever_came_before() {
    // The reader parses record after record into one reused event: no
    // field of a record may leak into the next. Both orders, so that each
    // kind of record follows richer and poorer ones.
    let records = fixture_records();
    assert!(records.len() > 20, "{} records", records.len());
    let alone: Vec<Event> = records
        .iter()
        .map(|r| cloudtrail::record::to_event(r, &ctx("test.json")).expect("a record"))
        .collect();
    for reversed in [false, true] {
        let (mut lines, mut expected) = (records.clone(), alone.clone());
        if reversed {
            lines.reverse();
            expected.reverse();
        }
        let out = parse(lines.join("\n").as_bytes());
        assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters);
        assert_eq!(out.events.len(), expected.len());
        for (got, want) in out.events.iter().zip(&expected) {
            assert_eq!(got, want, "reversed: {reversed}");
        }
    }
}
