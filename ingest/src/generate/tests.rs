//! The generator at baseline scale: credential-misuse scenarios, the
//! gateway's linked role, habits that make each principal learnable, and
//! writing straight to disk.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use trailhound_core::Event;

use super::{GenerateConfig, Generated, Scenario, generate, generate_to_dir};
use crate::{Collect, ParseContext, parse_input};

const START: i64 = 1_793_577_600_000_000;
const DAY: i64 = 86_400_000_000;

/// Thirty principals over ten days with the credential-misuse scenarios.
fn misuse() -> &'static (Generated, Vec<Event>) {
    static G: OnceLock<(Generated, Vec<Event>)> = OnceLock::new();
    G.get_or_init(|| {
        let g = generate(&GenerateConfig {
            principals: 30,
            days: 10,
            events_per_principal_per_day: 40,
            scenarios: Scenario::credential_misuse(),
            gzip: false,
            ..GenerateConfig::default()
        });
        let mut out = Collect::default();
        for f in &g.files {
            parse_input(&f.bytes, &ParseContext::new(f.path.clone()), &mut out);
        }
        assert!(
            out.dead_letters.is_empty(),
            "{:?}",
            out.dead_letters.first()
        );
        (g, out.events)
    })
}

fn network(ip: &str) -> String {
    ip.rsplit_once('.')
        .map(|(n, _)| n.to_string())
        .unwrap_or_default()
}

#[test]
fn sets_name_the_scenarios_and_the_demo_keeps_its_twelve() {
    assert_eq!(Scenario::all().len(), 12);
    assert_eq!(Scenario::set("demo"), Some(Scenario::all()));
    assert_eq!(Scenario::set("credential-misuse").map(|s| s.len()), Some(5));
    assert_eq!(Scenario::set("all").map(|s| s.len()), Some(18));
    assert_eq!(Scenario::set("grants"), Some(Scenario::grants()));
    assert_eq!(GenerateConfig::default().scenarios, Scenario::all());
    for s in Scenario::every() {
        assert_eq!(s.id().parse::<Scenario>(), Ok(s));
        assert!(!s.description().is_empty() && !s.rule_id().is_empty());
    }
}

#[test]
fn credential_misuse_lands_after_a_week_of_history_on_distinct_victims() {
    let (g, events) = misuse();
    let ids: Vec<&str> = g.labels.iter().map(|l| l.scenario.as_str()).collect();
    let want: Vec<&str> = Scenario::credential_misuse()
        .iter()
        .map(|s| s.id())
        .collect();
    assert_eq!(ids, want);
    let by_id: BTreeMap<&str, &Event> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    let mut victims = BTreeSet::new();
    for l in &g.labels {
        assert!(!l.event_ids.is_empty(), "{} has no events", l.scenario);
        assert!(
            victims.insert(l.principal.clone()),
            "{} shared",
            l.principal
        );
        for id in &l.event_ids {
            let e = by_id
                .get(id.as_str())
                .unwrap_or_else(|| panic!("{}: {id} not parsed", l.scenario));
            assert_eq!(e.principal, l.principal, "{}: {id}", l.scenario);
            assert!(e.event_time >= START + 8 * DAY, "{}: too early", l.scenario);
        }
        for r in &l.related {
            for id in &r.event_ids {
                let e = by_id
                    .get(id.as_str())
                    .unwrap_or_else(|| panic!("{}: related {id} not parsed", l.scenario));
                assert_eq!(e.principal, r.principal);
            }
        }
    }
}

#[test]
fn each_scenario_has_its_shape() {
    let (g, events) = misuse();
    let by_id: BTreeMap<&str, &Event> = events.iter().map(|e| (e.event_id.as_str(), e)).collect();
    let label = |id: &str| {
        g.labels
            .iter()
            .find(|l| l.scenario == id)
            .unwrap_or_else(|| panic!("no {id}"))
    };
    let of = |l: &super::Label| -> Vec<&Event> {
        l.event_ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .collect()
    };

    // A long-term key from a network the user never had, ending in a new key.
    let stolen = of(label("stolen-key-new-network"));
    let principal = &label("stolen-key-new-network").principal;
    let usual: BTreeSet<String> = events
        .iter()
        .filter(|e| &e.principal == principal && !stolen.iter().any(|s| s.event_id == e.event_id))
        .filter_map(|e| e.source_ip.as_deref().map(network))
        .collect();
    for e in &stolen {
        assert!(
            e.access_key_id
                .as_deref()
                .is_some_and(|k| k.starts_with("AKIA"))
        );
        let net = network(e.source_ip.as_deref().unwrap_or(""));
        assert!(!usual.contains(&net), "{net} is usual for {principal}");
    }
    assert_eq!(
        stolen.last().map(|e| e.event_name.as_str()),
        Some("CreateAccessKey")
    );

    // A CI role between 02:00 and 04:00 of UTC-5, calling what it never calls.
    for e in of(label("role-unusual-hours-unusual-apis")) {
        let hour = (e.event_time - 5 * 3_600_000_000).rem_euclid(DAY) / 3_600_000_000;
        assert!((2..4).contains(&hour), "hour {hour}");
    }

    // Thousands of distinct objects in under an hour.
    let reads = of(label("mass-s3-read"));
    let keys: BTreeSet<&str> = reads
        .iter()
        .filter_map(|e| e.object_key.as_deref())
        .collect();
    assert!(keys.len() >= 2_500, "{} objects", keys.len());
    let span = reads.iter().map(|e| e.event_time).max().unwrap_or(0)
        - reads.iter().map(|e| e.event_time).min().unwrap_or(0);
    assert!(span < 3_600_000_000, "{span}");
    assert!(reads.iter().all(|e| e.bytes_out.is_some_and(|b| b > 0)));

    // Keys from a program: fast and even.
    for e in of(label("scripted-session")) {
        assert!(e.keystrokes.is_some_and(|k| k >= 20), "{:?}", e.command);
        assert!(e.keystroke_interval_ms_mean.is_some_and(|m| m < 30.0));
        assert!(e.keystroke_interval_ms_stddev.is_some_and(|s| s < 5.0));
    }

    // Commands in a session, then the linked role's IAM calls by the same login.
    let l = label("gateway-then-iam-via-linked-role");
    let login = l.principal.trim_start_matches("gateway:");
    let commands = of(l);
    assert!(commands.iter().all(|e| {
        e.command
            .as_deref()
            .is_some_and(|c| c.starts_with("aws iam "))
    }));
    let calls: Vec<&Event> = l
        .related
        .iter()
        .flat_map(|r| r.event_ids.iter())
        .filter_map(|id| by_id.get(id.as_str()).copied())
        .collect();
    let names: Vec<&str> = calls.iter().map(|e| e.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "GetCallerIdentity",
            "CreateUser",
            "AttachUserPolicy",
            "CreateAccessKey"
        ]
    );
    for e in &calls {
        assert_eq!(e.session_name.as_deref(), Some(login));
        assert_eq!(e.source_identity.as_deref(), Some(login));
    }
    let first = commands.iter().map(|e| e.event_time).min().unwrap_or(0);
    assert!(
        calls
            .iter()
            .all(|e| e.event_time > first - 60_000_000 && e.event_time < first + 15 * 60_000_000)
    );
}

#[test]
fn benign_gateway_users_call_aws_through_the_linked_role_by_their_login() {
    let (g, events) = misuse();
    let injected: BTreeSet<&str> = g
        .labels
        .iter()
        .flat_map(|l| l.related.iter().flat_map(|r| r.event_ids.iter()))
        .map(String::as_str)
        .collect();
    let linked: Vec<&Event> = events
        .iter()
        .filter(|e| e.principal.ends_with(":role/gateway/gateway-ops"))
        .filter(|e| !injected.contains(e.event_id.as_str()))
        .collect();
    assert!(linked.len() >= 10, "only {} linked calls", linked.len());
    let logins: BTreeSet<String> = events
        .iter()
        .filter(|e| e.principal.starts_with("gateway:"))
        .filter_map(|e| e.user_name.clone())
        .collect();
    for e in &linked {
        assert_eq!(e.read_only, Some(true), "{}", e.event_name);
        let name = e.session_name.as_deref().unwrap_or("");
        assert_eq!(e.source_identity.as_deref(), Some(name));
        assert!(logins.contains(name), "{name} is no gateway user");
        assert!(
            e.source_ip
                .as_deref()
                .is_some_and(|ip| ip.starts_with("10.0."))
        );
    }
}

#[test]
fn people_keep_their_networks_and_nobody_types_like_a_script() {
    let (g, events) = misuse();
    let injected: BTreeSet<&str> = g
        .labels
        .iter()
        .flat_map(|l| l.event_ids.iter())
        .map(String::as_str)
        .collect();
    let mut networks: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| !injected.contains(e.event_id.as_str()))
    {
        if e.principal_type == "IAMUser"
            && let Some(ip) = e.source_ip.as_deref()
        {
            networks
                .entry(&e.principal)
                .or_default()
                .insert(network(ip));
        }
        if e.event_name == "session.command" && e.keystrokes.is_some_and(|k| k >= 20) {
            let mean = e.keystroke_interval_ms_mean.unwrap_or(0.0);
            let sd = e.keystroke_interval_ms_stddev.unwrap_or(0.0);
            assert!(mean >= 30.0 || sd >= 5.0, "{:?}: {mean} {sd}", e.command);
        }
    }
    assert!(!networks.is_empty());
    for (p, nets) in &networks {
        assert!(nets.len() <= 2, "{p} from {nets:?}");
    }
}

#[test]
fn a_big_org_has_people_roles_services_and_the_linked_role() {
    let org = super::org::Org::new(7, 500);
    let total = org.people.len() + org.roles.len() + org.services.len();
    assert_eq!(total, 500);
    assert!(org.people.len() >= 300, "{} people", org.people.len());
    assert!(org.linked().is_some());
    let homes: BTreeSet<String> = org.people.iter().map(|p| network(&p.home_ip)).collect();
    assert!(homes.len() > 150, "{} home networks", homes.len());
    assert!(org.people.iter().any(|p| p.aws_on_hosts));
}

#[test]
fn writing_to_a_folder_streams_the_same_files() {
    let cfg = GenerateConfig {
        principals: 12,
        days: 2,
        events_per_principal_per_day: 30,
        scenarios: vec![Scenario::StopLogging, Scenario::ScriptedSession],
        ..GenerateConfig::default()
    };
    let kept = generate(&cfg);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let summary = generate_to_dir(&cfg, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.files, kept.files.len() as u64);
    assert_eq!(summary.labels, kept.labels);
    assert_eq!(summary.cloudtrail_records, kept.cloudtrail_records);
    for f in &kept.files {
        let disk = std::fs::read(dir.path().join(&f.path)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(disk, f.bytes, "{}", f.path);
        assert!(f.newest >= cfg.start - DAY && f.newest < cfg.start + 3 * DAY);
    }
    assert!(dir.path().join("labels.json").is_file());
}
