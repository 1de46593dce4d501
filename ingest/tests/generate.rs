//! The workload generator: determinism, labels, record sizes, parseability
//! of everything it writes, and background that never looks like an attack.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::OnceLock;

use trailhound_core::Event;
use trailhound_ingest::generate::{GenerateConfig, Generated, Scenario, generate};
use trailhound_ingest::{Collect, ParseContext, parse_input};

fn small(scenarios: Vec<Scenario>) -> GenerateConfig {
    GenerateConfig {
        principals: 14,
        events_per_principal_per_day: 60,
        scenarios,
        ..GenerateConfig::default()
    }
}

/// Generated once per test binary: all scenarios, default shape but smaller.
fn with_attacks() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| generate(&small(Scenario::all())))
}

/// Generated once: no scenarios, two days (a weekend is not needed to check shapes).
fn background() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| {
        generate(&GenerateConfig {
            days: 2,
            gzip: false,
            ..small(Vec::new())
        })
    })
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("generated gzip is valid");
        out
    } else {
        bytes.to_vec()
    }
}

/// Every CloudTrail record of a generation, as JSON.
fn records(g: &Generated) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for f in g.files.iter().filter(|f| f.path.starts_with("AWSLogs/")) {
        let doc: serde_json::Value =
            serde_json::from_slice(&gunzip(&f.bytes)).expect("CloudTrail file is JSON");
        let recs = doc["Records"].as_array().expect("Records array").clone();
        all.extend(recs);
    }
    all
}

fn parse_all(g: &Generated) -> Collect {
    let mut out = Collect::default();
    for f in &g.files {
        let ctx = ParseContext::new(f.path.clone());
        parse_input(&f.bytes, &ctx, &mut out);
    }
    out
}

#[test]
fn same_seed_gives_identical_output() {
    let cfg = GenerateConfig {
        principals: 8,
        events_per_principal_per_day: 30,
        ..GenerateConfig::default()
    };
    let a = generate(&cfg);
    let b = generate(&cfg);
    assert_eq!(a.files, b.files);
    assert_eq!(a.labels, b.labels);
    assert_eq!(a.cloudtrail_records, b.cloudtrail_records);
    let c = generate(&GenerateConfig { seed: 8, ..cfg });
    assert_ne!(a.files, c.files);
}

#[test]
fn labels_every_requested_scenario_once() {
    let g = with_attacks();
    let ids: Vec<&str> = g.labels.iter().map(|l| l.scenario.as_str()).collect();
    let want: Vec<&str> = Scenario::all().iter().map(|s| s.id()).collect();
    assert_eq!(ids, want);
    for (l, s) in g.labels.iter().zip(Scenario::all()) {
        assert_eq!(l.rule_id, s.rule_id());
        assert!(!l.event_ids.is_empty(), "{} has no events", l.scenario);
        assert!(l.start <= l.end && l.start.ends_with('Z'), "{l:?}");
        let ok = l.principal.starts_with("arn:aws:iam::") || l.principal.starts_with("gateway:");
        assert!(ok, "{} principal {}", l.scenario, l.principal);
    }
    let root = g.labels.iter().find(|l| l.scenario == "root-activity");
    assert!(root.is_some_and(|l| l.principal.ends_with(":root")));
}

#[test]
fn no_labels_when_no_scenarios_are_asked() {
    assert!(background().labels.is_empty());
    let one = generate(&GenerateConfig {
        principals: 6,
        events_per_principal_per_day: 10,
        sessions: false,
        ..small(vec![Scenario::SgOpenWorld, Scenario::SgOpenWorld])
    });
    assert_eq!(one.labels.len(), 1);
}

#[test]
fn records_average_between_one_and_one_point_six_kilobytes() {
    let recs = records(background());
    assert!(recs.len() > 1000, "only {} records", recs.len());
    let bytes: usize = recs
        .iter()
        .map(|r| serde_json::to_vec(r).map(|v| v.len()).unwrap_or(0))
        .sum();
    let mean = bytes as f64 / recs.len() as f64;
    assert!(
        (1000.0..=1600.0).contains(&mean),
        "mean record size {mean:.0} bytes"
    );
}

#[test]
fn record_count_matches_files_and_request() {
    let g = background();
    let recs = records(g);
    assert_eq!(recs.len() as u64, g.cloudtrail_records);
    // 14 principals x 60 a day x 2 days, give or take the weekly rhythm.
    let expected = 14.0 * 60.0 * 2.0;
    let ratio = recs.len() as f64 / expected;
    assert!((0.6..1.6).contains(&ratio), "{} records", recs.len());
    assert!(g.session_events > 0);
}

#[test]
fn cloudtrail_files_follow_the_delivery_layout() {
    let g = with_attacks();
    let ct: Vec<_> = g
        .files
        .iter()
        .filter(|f| f.path.starts_with("AWSLogs/"))
        .collect();
    assert!(!ct.is_empty());
    for f in ct {
        let parts: Vec<&str> = f.path.split('/').collect();
        assert_eq!(parts.len(), 8, "{}", f.path);
        assert_eq!(parts.get(2), Some(&"CloudTrail"));
        assert!(f.path.ends_with(".json.gz"), "{}", f.path);
        assert!(f.bytes.starts_with(&[0x1f, 0x8b]));
    }
    let kinds = [
        "sessions/teleport/",
        "sessions/asciinema/",
        "sessions/cowrie/",
        "sessions/gateway/",
    ];
    for k in kinds {
        assert!(
            g.files.iter().any(|f| f.path.starts_with(k)),
            "no {k} files"
        );
    }
}

#[test]
fn records_cover_a_real_mix_of_identities_and_services() {
    let recs = records(background());
    let mut types = BTreeMap::new();
    let mut sources = BTreeMap::new();
    let mut errors = 0;
    for r in &recs {
        *types
            .entry(r["userIdentity"]["type"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
        *sources
            .entry(r["eventSource"].as_str().unwrap_or("").to_string())
            .or_insert(0) += 1;
        if r.get("errorCode").is_some() {
            errors += 1;
        }
    }
    for t in ["IAMUser", "AssumedRole", "AWSService"] {
        assert!(types.contains_key(t), "no {t} in {types:?}");
    }
    for s in [
        "s3.amazonaws.com",
        "sts.amazonaws.com",
        "ec2.amazonaws.com",
        "iam.amazonaws.com",
        "kms.amazonaws.com",
        "dynamodb.amazonaws.com",
        "secretsmanager.amazonaws.com",
        "signin.amazonaws.com",
    ] {
        assert!(sources.contains_key(s), "no {s} in {sources:?}");
    }
    assert!(errors > 0, "no AccessDenied at all");
}

/// Background must never look like any attack in the scenario table.
#[test]
fn background_never_looks_like_an_attack() {
    let g = background();
    let forbidden_calls = [
        "StopLogging",
        "DeleteTrail",
        "PutEventSelectors",
        "BatchGetSecretValue",
        "ModifySnapshotAttribute",
        "ModifyImageAttribute",
        "ModifyDBSnapshotAttribute",
        "PutBucketPolicy",
        "UpdateAssumeRolePolicy",
        "GetFederationToken",
        "DeleteFlowLogs",
        "LeaveOrganization",
        "GetPasswordData",
        "ScheduleKeyDeletion",
        "AddPermission",
        "CreateLoginProfile",
        "UpdateLoginProfile",
        "AttachUserPolicy",
    ];
    for r in records(g) {
        let name = r["eventName"].as_str().unwrap_or("");
        assert!(!forbidden_calls.contains(&name), "background {name}");
        assert_ne!(r["userIdentity"]["type"], "Root");
        let text = r.to_string();
        assert!(!text.contains("0.0.0.0/0"), "world-open rule: {text}");
        assert!(!text.contains("AdministratorAccess"));
        if name == "ConsoleLogin" {
            assert_eq!(r["additionalEventData"]["MFAUsed"], "Yes");
        }
        if name == "CreateAccessKey" {
            let own = &r["userIdentity"]["userName"];
            let asked = &r["requestParameters"]["userName"];
            assert!(
                asked.is_null() || asked == own,
                "key for another user: {text}"
            );
        }
    }
    let bad = [
        "history -c",
        "HISTFILE",
        "| sh",
        "| bash",
        "/dev/tcp",
        "nc -e",
        "chmod +x",
        ".aws/credentials",
        "/etc/shadow",
        "169.254.169.254",
    ];
    for f in g.files.iter().filter(|f| f.path.starts_with("sessions/")) {
        let text = String::from_utf8_lossy(&f.bytes);
        for b in bad {
            assert!(!text.contains(b), "{} contains {b:?}", f.path);
        }
    }
}

#[test]
fn injecting_scenarios_leaves_the_background_unchanged() {
    let plain = records(&generate(&small(Vec::new())));
    let attacked = records(with_attacks());
    let mut attacked_ids: BTreeMap<String, &serde_json::Value> = BTreeMap::new();
    for r in &attacked {
        attacked_ids.insert(r["eventID"].as_str().unwrap_or("").to_string(), r);
    }
    for r in &plain {
        let id = r["eventID"].as_str().unwrap_or("");
        assert_eq!(
            attacked_ids.get(id),
            Some(&r),
            "background record {id} changed"
        );
    }
    let injected: usize = with_attacks()
        .labels
        .iter()
        .filter(|l| !l.principal.starts_with("gateway:"))
        .map(|l| l.event_ids.len())
        .sum();
    assert_eq!(attacked.len(), plain.len() + injected);
}

#[test]
fn every_file_parses_without_dead_letters() {
    let g = with_attacks();
    let out = parse_all(g);
    assert!(
        out.dead_letters.is_empty(),
        "{} dead letters, first: {:?}",
        out.dead_letters.len(),
        out.dead_letters.first()
    );
    let ct = out
        .events
        .iter()
        .filter(|e| e.event_category != "Session")
        .count() as u64;
    assert_eq!(ct, g.cloudtrail_records);
    assert!(out.events.iter().any(|e| e.event_category == "Session"));
}

#[test]
fn labelled_events_are_parsed_with_the_labelled_principal() {
    let g = with_attacks();
    let out = parse_all(g);
    let by_id: BTreeMap<&str, &Event> = out
        .events
        .iter()
        .map(|e| (e.event_id.as_str(), e))
        .collect();
    for l in &g.labels {
        for id in &l.event_ids {
            let e = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{}: event {id} not among parsed events", l.scenario));
            assert_eq!(e.principal, l.principal, "{}: event {id}", l.scenario);
        }
    }
}

#[test]
fn scenario_ids_parse_and_unknown_ids_list_the_valid_ones() {
    for s in Scenario::all() {
        assert_eq!(s.id().parse::<Scenario>(), Ok(s));
        assert!(!s.description().is_empty());
    }
    let err = "nope".parse::<Scenario>().unwrap_err();
    assert!(
        err.contains("stop-logging") && err.contains("session-credential-read"),
        "{err}"
    );
}

#[test]
fn write_to_writes_every_file_and_the_labels() {
    let g = generate(&GenerateConfig {
        principals: 5,
        events_per_principal_per_day: 10,
        ..small(vec![Scenario::StopLogging])
    });
    let dir = tempfile::tempdir().expect("temp dir");
    g.write_to(dir.path()).expect("written");
    for f in &g.files {
        let on_disk = std::fs::read(dir.path().join(&f.path)).expect("file exists");
        assert_eq!(on_disk, f.bytes);
    }
    let labels: Vec<trailhound_ingest::generate::Label> =
        serde_json::from_slice(&std::fs::read(dir.path().join("labels.json")).expect("labels"))
            .expect("labels parse");
    assert_eq!(labels, g.labels);
}
