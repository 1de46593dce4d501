//! LookupEvents through the AWS SDK's replay client: every page is
//! followed, the overlap of the next window is deduplicated by event id,
//! the cursor moves only when the caller takes the new one, and requests
//! of a region are spaced under the API's 2 per second.

use std::time::Duration;

use aws_sdk_cloudtrail::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::test_util::{ReplayEvent, StaticReplayClient};
use aws_smithy_types::body::SdkBody;
use trailhound_aws::lookup::{LookupCursor, LookupReader, LookupSettings};

const HOUR: i64 = 3_600_000_000;
/// 2026-12-03T12:00:00Z in microseconds.
const NOON: i64 = 1_796_299_200_000_000;

fn record(id: &str, secs: i64) -> serde_json::Value {
    let record = serde_json::json!({
        "eventVersion": "1.08",
        "eventID": id,
        "eventTime": "2026-12-03T11:50:00Z",
        "eventSource": "iam.amazonaws.com",
        "eventName": "ListUsers",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice",
                         "accountId": "111122223333", "accessKeyId": "AKIAEXAMPLE"},
    });
    serde_json::json!({
        "EventId": id,
        "EventName": "ListUsers",
        "EventTime": secs,
        "EventSource": "iam.amazonaws.com",
        "CloudTrailEvent": record.to_string(),
    })
}

fn page(events: &[(&str, i64)], next: Option<&str>) -> ReplayEvent {
    let mut body = serde_json::json!({
        "Events": events.iter().map(|(id, t)| record(id, *t)).collect::<Vec<_>>(),
    });
    if let Some(n) = next {
        body["NextToken"] = n.into();
    }
    ReplayEvent::new(
        http::Request::builder()
            .uri("https://cloudtrail.us-east-1.amazonaws.com/")
            .body(SdkBody::empty())
            .expect("a request"),
        http::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.1")
            .body(SdkBody::from(body.to_string()))
            .expect("a response"),
    )
}

fn reader(replay: &StaticReplayClient, settings: LookupSettings) -> LookupReader {
    let conf = aws_sdk_cloudtrail::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .http_client(replay.clone())
        .build();
    LookupReader::from_clients(
        vec![(
            "us-east-1".into(),
            aws_sdk_cloudtrail::Client::from_conf(conf),
        )],
        settings,
    )
    .expect("a reader")
}

fn bodies(replay: &StaticReplayClient) -> Vec<serde_json::Value> {
    replay
        .actual_requests()
        .map(|r| {
            let bytes = r.body().bytes().unwrap_or_default();
            serde_json::from_slice(bytes).unwrap_or(serde_json::Value::Null)
        })
        .collect()
}

#[test]
fn lookup_follows_pages_drops_the_overlap_and_keeps_under_the_rate_limit() {
    let t = NOON / 1_000_000;
    let replay = StaticReplayClient::new(vec![
        // First poll: two pages.
        page(&[("e1", t - 3000), ("e2", t - 2000)], Some("page-2")),
        page(&[("e3", t - 120)], None),
        // Second poll, one hour later: the overlap hands e3 back.
        page(&[("e3", t - 120), ("e4", t + 1200)], Some("page-2b")),
        page(&[("e5", t + 3000)], None),
    ]);
    let settings = LookupSettings {
        overlap: Duration::from_secs(15 * 60),
        lookback: Duration::from_secs(3600),
        requests_per_second: 2.0,
        ..LookupSettings::default()
    };
    let mut reader = reader(&replay, settings);

    let first = reader
        .poll(&LookupCursor::default(), NOON)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.requests, 2);
    assert_eq!(first.records.len(), 3);
    assert_eq!(first.duplicates, 0);
    let region = &first.next.regions["us-east-1"];
    assert_eq!(region.until, NOON);
    // Only e3 is within the overlap of the window's end.
    assert_eq!(region.seen.keys().collect::<Vec<_>>(), vec!["e3"]);

    let second = reader
        .poll(&first.next, NOON + HOUR)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(second.requests, 2);
    assert_eq!(second.duplicates, 1);
    let ids: Vec<String> = second
        .records
        .iter()
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(r).expect("a record")["eventID"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(ids, vec!["e4", "e5"]);

    // What was asked: the lookback window, then the next page by token,
    // then a window starting one overlap before the first one's end.
    let asked = bodies(&replay);
    assert_eq!(asked.len(), 4);
    let secs = |v: &serde_json::Value| v.as_f64().map(|f| f as i64);
    assert_eq!(secs(&asked[0]["StartTime"]), Some(t - 3600));
    assert_eq!(secs(&asked[0]["EndTime"]), Some(t));
    assert_eq!(asked[0]["MaxResults"], 50);
    assert!(asked[0].get("NextToken").is_none());
    assert_eq!(asked[1]["NextToken"], "page-2");
    assert_eq!(secs(&asked[2]["StartTime"]), Some(t - 15 * 60));
    assert_eq!(secs(&asked[2]["EndTime"]), Some(t + 3600));
    assert_eq!(asked[3]["NextToken"], "page-2b");

    // Four requests, each at least half a second after the one before.
    let sent = reader.request_times("us-east-1");
    assert_eq!(sent.len(), 4);
    for pair in sent.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(500),
            "requests {:?} apart",
            pair[1] - pair[0]
        );
    }
}

#[test]
fn a_failed_poll_leaves_the_cursor_where_it_was() {
    let replay = StaticReplayClient::new(vec![ReplayEvent::new(
        http::Request::builder()
            .uri("https://cloudtrail.us-east-1.amazonaws.com/")
            .body(SdkBody::empty())
            .expect("a request"),
        http::Response::builder()
            .status(400)
            .header("content-type", "application/x-amz-json-1.1")
            .body(SdkBody::from(
                r#"{"__type":"InvalidTimeRangeException","message":"bad range"}"#,
            ))
            .expect("a response"),
    )]);
    let mut reader = reader(&replay, LookupSettings::default());
    let cursor = LookupCursor::default();
    let error = reader.poll(&cursor, NOON).expect_err("the poll succeeded");
    assert_eq!(error.code.as_deref(), Some("InvalidTimeRangeException"));
    assert_eq!(cursor, LookupCursor::default());
}
