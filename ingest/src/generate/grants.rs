//! Just-in-time grants in the generated organisation, brought in by the
//! `grant-expired-session-still-used` scenario.
//!
//! The production account gets a role only grants give, `jit-admin`. A
//! broker (`sym`) writes its grants as trailhound grants JSON lines
//! (`grants/sym/grants-YYYY-MM-DD.jsonl`): five people each get the role for
//! an hour on the middle day of the span, approved by a colleague, with a
//! ticket, and use it inside their grant from their office address through
//! the AWS CLI (the role session is named after them): reads and a few
//! ordinary writes, never anything the rule pack calls an attack. One of
//! them (the scenario's victim) keeps using the session after the grant
//! ended: calls from 4 to 25 minutes after its end, which
//! `grant-expired-role-still-used` must catch. Everything else stays inside
//! its grant and must raise no grant alert.

use rand::Rng;
use rand::rngs::SmallRng;

use super::GeneratedFile;
use super::misuse::{Call, call};
use super::org::Org;
use super::record::Ident;
use super::scenarios::{Injection, Scenario, label};
use super::util::{DAY, HOUR, MINUTE, SECOND, aws_id, hash, rfc3339};

/// The role only grants give.
pub(crate) const JIT_ROLE: &str = "jit-admin";
/// The broker's name in the grants file.
const BROKER: &str = "sym";
const CLI_UA: &str = "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/macos#23.6.0 md/arch#arm64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe";

/// Calls made with the role: (service, name, read only, request).
const CALLS: &[(&str, &str, bool, &str)] = &[
    (
        "ec2.amazonaws.com",
        "DescribeInstances",
        true,
        r#"{"instancesSet":{},"filterSet":{"items":[{"name":"tag:app","valueSet":{"items":[{"value":"orders"}]}}]}}"#,
    ),
    (
        "iam.amazonaws.com",
        "GetRole",
        true,
        r#"{"roleName":"orders-api"}"#,
    ),
    (
        "ecs.amazonaws.com",
        "DescribeServices",
        true,
        r#"{"cluster":"prod","services":["orders-api"]}"#,
    ),
    (
        "ecs.amazonaws.com",
        "UpdateService",
        false,
        r#"{"cluster":"prod","service":"orders-api","desiredCount":4}"#,
    ),
    (
        "ec2.amazonaws.com",
        "CreateTags",
        false,
        r#"{"resourcesSet":{"items":[{"resourceId":"i-0a1b2c3d4e5f60718"}]},"tagSet":{"items":[{"key":"incident","value":"open"}]}}"#,
    ),
    (
        "monitoring.amazonaws.com",
        "PutMetricAlarm",
        false,
        r#"{"alarmName":"orders-api-5xx","threshold":5.0}"#,
    ),
];

/// One grant of the file.
struct GrantLine {
    id: String,
    person: String,
    approver: String,
    start: i64,
    end: i64,
}

impl GrantLine {
    fn json(&self, role_arn: &str, account: &str) -> String {
        format!(
            r#"{{"trailhound":"grant/v1","id":"{}","principal":"{}","roles":["{role_arn}"],"accounts":["{account}"],"start":"{}","end":"{}","requester":"{}","approver":"{}","ticket":"{}","broker":"{BROKER}"}}"#,
            self.id,
            self.person,
            rfc3339(self.start, 0),
            rfc3339(self.end, 0),
            self.person,
            self.approver,
            self.id,
        )
    }
}

/// Injects the grants, their use, and the victim's use after its grant.
pub(crate) fn inject(org: &Org, start: i64, end: i64, mut rng: SmallRng, inj: &mut Injection) {
    let people = org.people.len();
    if people < 2 {
        return;
    }
    let acct = org.account_id(0).to_string();
    let role_arn = format!("arn:aws:iam::{acct}:role/{JIT_ROLE}");
    let role_id = aws_id("AROA", hash(&[org.seed, 941]));
    let days = ((end - start) / DAY).max(1);
    let day = start + (days / 2) * DAY;
    // Five grant holders (fewer in a small organisation), the last the victim.
    let first = rng.gen_range(0..people);
    let holders: Vec<usize> = (0..people.min(5)).map(|k| (first + k) % people).collect();
    let victim = holders.len() - 1;
    let mut lines = Vec::new();
    let mut late_ids = Vec::new();
    let mut late_times = Vec::new();
    for (k, &pi) in holders.iter().enumerate() {
        let Some(person) = org.people.get(pi) else {
            continue;
        };
        let approver = org
            .people
            .get((pi + people - 1) % people)
            .map_or("security-oncall", |p| p.name.as_str());
        let grant_start = day + (9 + 2 * k as i64) * HOUR + rng.gen_range(0..20) * MINUTE;
        let grant_end = grant_start + HOUR;
        let line = GrantLine {
            id: format!("GRANT-{}", 1001 + k),
            person: person.name.clone(),
            approver: approver.to_string(),
            start: grant_start,
            end: grant_end,
        };
        let key = aws_id("ASIA", hash(&[org.seed, 942, k as u64]));
        let creation = grant_start + rng.gen_range(1..4) * MINUTE;
        let ident = || Ident::Role {
            account: &acct,
            role_name: JIT_ROLE,
            role_arn: &role_arn,
            role_id: &role_id,
            session: &person.name,
            key: &key,
            creation,
            ec2: false,
            source_identity: None,
        };
        let mut use_at = |t: i64, rng: &mut SmallRng| {
            let (source, name, read_only, request) = CALLS
                .get(rng.gen_range(0..CALLS.len()))
                .copied()
                .unwrap_or(("sts.amazonaws.com", "GetCallerIdentity", true, "{}"));
            let region = if source == "iam.amazonaws.com" {
                "us-east-1"
            } else {
                person.region
            };
            call(
                rng,
                inj,
                0,
                t,
                Call {
                    ident: ident(),
                    account: &acct,
                    region,
                    ip: &person.office_ip,
                    ua: CLI_UA.as_bytes(),
                    source,
                    name,
                    read_only,
                    request: request.as_bytes(),
                    response: b"",
                    vpce: None,
                },
            )
        };
        // Inside the grant.
        let mut t = creation + rng.gen_range(10..60) * SECOND;
        while t < grant_end - 5 * MINUTE {
            use_at(t, &mut rng);
            t += rng.gen_range(2..9) * MINUTE;
        }
        // The victim's session outlives the grant.
        if k == victim {
            let mut t = grant_end + 4 * MINUTE + rng.gen_range(0..30) * SECOND;
            while t < grant_end + 25 * MINUTE {
                late_ids.push(use_at(t, &mut rng));
                late_times.push(t);
                t += rng.gen_range(90..240) * SECOND;
            }
        }
        lines.push(line);
    }
    let text: String = lines
        .iter()
        .map(|l| l.json(&role_arn, &acct) + "\n")
        .collect();
    let date = rfc3339(day, 0);
    inj.files.push(GeneratedFile {
        path: format!(
            "grants/{BROKER}/grants-{}.jsonl",
            date.get(..10).unwrap_or("day")
        ),
        bytes: text.into_bytes(),
        newest: lines.iter().map(|l| l.start).max().unwrap_or(day),
    });
    if !late_ids.is_empty() {
        inj.labels.push(label(
            Scenario::GrantExpiredStillUsed,
            role_arn,
            &late_times,
            late_ids,
        ));
    }
}
