//! Credential-misuse scenarios: valid credentials used in a way that no
//! known-bad rule names, visible only against the principal's own history.
//! Each is injected after at least eight days of span (when the span is
//! long enough) so that a seven-day learning period has passed, on a victim
//! no other of these scenarios uses, and labelled with every event it adds.

use rand::Rng;
use rand::rngs::SmallRng;

use super::cloudtrail::{Injected, push_sdk_ua, work_window};
use super::linked::{self, LinkedCall};
use super::ops::{Scratch, push_s3_additional};
use super::org::{CI_TZ_MIN, HostRole, Org, Person, Role, RoleKind, Team, bucket};
use super::record::{Ident, Rec, push_json_str, push_record, push_resource};
use super::scenarios::{Injection, Scenario, label};
use super::sessions::{
    Cmd, Keying, Session, SessionFormat, Typist, host_format, keyed, session_id,
};
use super::util::{
    DAY, HOUR, MINUTE, SECOND, aws_id, exp, hash, push_aws_date, push_aws_id, push_kv, push_uuid,
};
use super::{Label, Related};

/// An old CLI on an attacker's machine.
const ATTACKER_CLI: &str = "aws-cli/1.29.62 Python/3.11.4 Linux/6.1.0-13-amd64 botocore/1.31.62";

/// The gateway user's new administrator.
const BACKDOOR_USER: &str = "backdoor";

/// Injects one credential-misuse scenario.
pub(crate) fn inject(
    org: &Org,
    sc: Scenario,
    start: i64,
    end: i64,
    mut rng: SmallRng,
    inj: &mut Injection,
) {
    let day = attack_day(&mut rng, start, end);
    let span = Span { start, end };
    match sc {
        Scenario::StolenKeyNewNetwork => stolen_key(org, day, span, rng, inj),
        Scenario::RoleUnusualHours => role_unusual_hours(org, day, span, rng, inj),
        Scenario::MassS3Read => mass_s3_read(org, day, span, rng, inj),
        Scenario::ScriptedSession => scripted_session(org, day, span, rng, inj),
        Scenario::GatewayThenIam => gateway_then_iam(org, day, span, rng, inj),
        _ => {}
    }
}

#[derive(Clone, Copy)]
struct Span {
    start: i64,
    end: i64,
}

impl Span {
    /// `t` moved inside the span, an hour clear of its end.
    fn clamp(self, t: i64) -> i64 {
        t.clamp(self.start, (self.end - HOUR).max(self.start))
    }
}

/// Midnight (UTC) of the day an attack happens: eight or more days into the
/// span when it has at least nine, else its middle day.
fn attack_day(rng: &mut SmallRng, start: i64, end: i64) -> i64 {
    let first = start.div_euclid(DAY);
    let last = (end - 1).div_euclid(DAY);
    let days = last - first + 1;
    let day = if days >= 10 {
        rng.gen_range(first + 8..last)
    } else if days == 9 {
        first + 8
    } else {
        first + days / 2
    };
    day * DAY
}

/// A person for a scenario: one that fits the first of `prefs` any free
/// person fits (free: no other credential-misuse scenario took them), else
/// anyone free, else anyone.
fn choose_person(
    org: &Org,
    rng: &mut SmallRng,
    inj: &Injection,
    prefs: &[&dyn Fn(&Person) -> bool],
) -> Option<usize> {
    let free: Vec<usize> = (0..org.people.len())
        .filter(|i| {
            org.people
                .get(*i)
                .is_some_and(|p| !inj.taken.contains(&p.arn))
        })
        .collect();
    for fits in prefs {
        let pool: Vec<usize> = free
            .iter()
            .copied()
            .filter(|i| org.people.get(*i).is_some_and(fits))
            .collect();
        if !pool.is_empty() {
            return pool.get(rng.gen_range(0..pool.len())).copied();
        }
    }
    let pool = if free.is_empty() {
        (0..org.people.len()).collect()
    } else {
        free
    };
    pool.get(rng.gen_range(0..pool.len().max(1))).copied()
}

/// A role of the first kind in `kinds` that has one free, else any free machine role.
fn choose_role(
    org: &Org,
    rng: &mut SmallRng,
    inj: &Injection,
    kinds: &[RoleKind],
) -> Option<usize> {
    let free = |r: &Role| !inj.taken.contains(&r.arn) && r.kind != RoleKind::GatewayLinked;
    for kind in kinds {
        let pool: Vec<usize> = (0..org.roles.len())
            .filter(|i| {
                org.roles
                    .get(*i)
                    .is_some_and(|r| r.kind == *kind && free(r))
            })
            .collect();
        if !pool.is_empty() {
            return pool.get(rng.gen_range(0..pool.len())).copied();
        }
    }
    let pool: Vec<usize> = (0..org.roles.len())
        .filter(|i| org.roles.get(*i).is_some_and(free))
        .collect();
    pool.get(rng.gen_range(0..pool.len().max(1))).copied()
}

/// A time inside the person's working hours on the local day of `day`
/// (or the next working day); 15:00 UTC when they do not work that week.
fn working_time(org: &Org, pi: usize, day: i64, rng: &mut SmallRng) -> i64 {
    let d = day.div_euclid(DAY);
    for local in d..d + 7 {
        if let Some((ws, we)) = work_window(org, pi, local) {
            let latest = (we - HOUR).max(ws + 1);
            return rng.gen_range(ws..latest);
        }
    }
    day + 15 * HOUR
}

/// The parts of one management API call.
pub(super) struct Call<'a> {
    pub ident: Ident<'a>,
    pub account: &'a str,
    pub region: &'static str,
    pub ip: &'a str,
    pub ua: &'a [u8],
    pub source: &'a str,
    pub name: &'a str,
    pub read_only: bool,
    pub request: &'a [u8],
    pub response: &'a [u8],
    pub vpce: Option<(&'a str, &'a str)>,
}

/// Writes a management call, queues it and returns its event id.
pub(super) fn call(
    rng: &mut SmallRng,
    inj: &mut Injection,
    account: usize,
    time: i64,
    c: Call<'_>,
) -> String {
    let mut event_id = Vec::with_capacity(36);
    push_uuid(&mut event_id, rng);
    let mut rid = Vec::with_capacity(36);
    push_uuid(&mut rid, rng);
    let service = c.source.split('.').next().unwrap_or("");
    let host = match service {
        "iam" => "iam.amazonaws.com".to_string(),
        _ => format!("{service}.{}.amazonaws.com", c.region),
    };
    let mut bytes = Vec::with_capacity(2048);
    push_record(
        &mut bytes,
        &Rec {
            version: "1.09",
            ident: c.ident,
            time,
            source: c.source,
            name: c.name,
            region: c.region,
            ip: c.ip,
            ua: c.ua,
            error: None,
            request: c.request,
            response: c.response,
            additional: b"",
            request_id: &rid,
            event_id: &event_id,
            read_only: c.read_only,
            resources: b"",
            event_type: "AwsApiCall",
            management: true,
            recipient: c.account,
            shared_event_id: b"",
            vpce: c.vpce,
            category: "Management",
            tls_host: host.as_bytes(),
            tls13: true,
            from_console: false,
        },
    );
    inj.records.push(Injected {
        time,
        account,
        region: c.region,
        bytes,
    });
    String::from_utf8(event_id).unwrap_or_default()
}

/// The response of `iam:CreateAccessKey` for `user`.
fn new_key_response(rng: &mut SmallRng, user: &str, time: i64) -> Vec<u8> {
    let mut resp = Vec::new();
    resp.extend_from_slice(b"{\"accessKey\":{\"accessKeyId\":\"");
    push_aws_id(&mut resp, "AKIA", rng.r#gen());
    resp.extend_from_slice(b"\",\"status\":\"Active\",");
    push_kv(&mut resp, "userName", user);
    resp.extend_from_slice(b",\"createDate\":\"");
    push_aws_date(&mut resp, time);
    resp.extend_from_slice(b"\"}}");
    resp
}

/// `{"userName":"..."}`.
fn user_request(user: &str) -> Vec<u8> {
    let mut req = Vec::new();
    req.push(b'{');
    push_kv(&mut req, "userName", user);
    req.push(b'}');
    req
}

fn stolen_key(org: &Org, day: i64, span: Span, mut rng: SmallRng, inj: &mut Injection) {
    // Someone who uses their key from the CLI (support staff mostly click).
    let Some(pi) = choose_person(org, &mut rng, inj, &[&|p| p.team != Team::Support]) else {
        return;
    };
    let Some(person) = org.people.get(pi) else {
        return;
    };
    let acct = org.account_id(person.account).to_string();
    // The thief's own network: a /24 of the benchmarking range no office,
    // VPN or known-bad attack uses (those come from 203.0.113.0/24, and one
    // may have taken the same victim earlier).
    let ip = format!(
        "198.19.{}.{}",
        rng.gen_range(100..250),
        rng.gen_range(20..240)
    );
    let mut t = span.clamp(day + rng.gen_range(0..20 * HOUR));
    let own = user_request(&person.name);
    let steps: [(&str, &str, bool, Vec<u8>); 5] = [
        ("sts.amazonaws.com", "GetCallerIdentity", true, Vec::new()),
        ("s3.amazonaws.com", "ListBuckets", true, Vec::new()),
        (
            "iam.amazonaws.com",
            "ListUsers",
            true,
            b"{\"maxItems\":100}".to_vec(),
        ),
        (
            "iam.amazonaws.com",
            "ListAttachedUserPolicies",
            true,
            own.clone(),
        ),
        ("iam.amazonaws.com", "CreateAccessKey", false, own),
    ];
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for (source, name, read_only, request) in steps {
        let response = if name == "CreateAccessKey" {
            new_key_response(&mut rng, &person.name, t)
        } else {
            Vec::new()
        };
        let id = call(
            &mut rng,
            inj,
            person.account,
            t,
            Call {
                ident: Ident::User {
                    account: &acct,
                    name: &person.name,
                    arn: &person.arn,
                    principal_id: &person.principal_id,
                    key: &person.access_key,
                    console: None,
                },
                account: &acct,
                region: "us-east-1",
                ip: &ip,
                ua: ATTACKER_CLI.as_bytes(),
                source,
                name,
                read_only,
                request: &request,
                response: &response,
                vpce: None,
            },
        );
        ids.push(id);
        times.push(t);
        t += rng.gen_range(20 * SECOND..3 * MINUTE);
    }
    inj.taken.push(person.arn.clone());
    inj.labels.push(label(
        Scenario::StolenKeyNewNetwork,
        person.arn.clone(),
        &times,
        ids,
    ));
}

fn role_unusual_hours(org: &Org, day: i64, span: Span, mut rng: SmallRng, inj: &mut Injection) {
    let kinds = [RoleKind::CiDeploy, RoleKind::CiPlan];
    let Some(ri) = choose_role(org, &mut rng, inj, &kinds) else {
        return;
    };
    let Some(role) = org.roles.get(ri) else {
        return;
    };
    let acct = org.account_id(role.account).to_string();
    // 02:00 to 03:40 in the role's business-hours time zone.
    let local = 2 * HOUR + rng.gen_range(0..100 * MINUTE);
    let mut t = span.clamp(day + local - CI_TZ_MIN * MINUTE);
    let session = role
        .sessions
        .get(rng.gen_range(0..role.sessions.len().max(1)))
        .cloned()
        .unwrap_or_else(|| "session".to_string());
    let key = aws_id("ASIA", hash(&[org.seed, 630, t as u64]));
    let ip = role
        .ips
        .get(rng.gen_range(0..role.ips.len().max(1)))
        .cloned()
        .unwrap_or_else(|| "198.51.100.130".to_string());
    let creation = t - rng.gen_range(30 * SECOND..5 * MINUTE);
    let mut policy = Vec::new();
    policy.push(b'{');
    push_kv(&mut policy, "roleName", &role.name);
    policy.extend_from_slice(b",\"policyName\":\"ci-cache-access\",\"policyDocument\":");
    push_json_str(
        &mut policy,
        "{\"Version\":\"2012-10-17\",\"Statement\":[{\"Effect\":\"Allow\",\"Action\":[\"secretsmanager:GetSecretValue\",\"secretsmanager:ListSecrets\"],\"Resource\":\"*\"}]}",
    );
    policy.push(b'}');
    let mut steps: Vec<(&str, &str, &str, bool, Vec<u8>)> = vec![
        (
            "sts.amazonaws.com",
            "GetCallerIdentity",
            "sts.get-caller-identity",
            true,
            Vec::new(),
        ),
        (
            "iam.amazonaws.com",
            "ListRoles",
            "iam.list-roles",
            true,
            b"{\"maxItems\":1000}".to_vec(),
        ),
        (
            "iam.amazonaws.com",
            "PutRolePolicy",
            "iam.put-role-policy",
            false,
            policy,
        ),
        (
            "secretsmanager.amazonaws.com",
            "ListSecrets",
            "secretsmanager.list-secrets",
            true,
            b"{\"maxResults\":100}".to_vec(),
        ),
    ];
    for app in super::org::APPS.iter().take(3) {
        let mut req = Vec::new();
        req.extend_from_slice(b"{\"secretId\":\"arn:aws:secretsmanager:");
        req.extend_from_slice(role.region.as_bytes());
        req.push(b':');
        req.extend_from_slice(acct.as_bytes());
        req.extend_from_slice(b":secret:prod/");
        req.extend_from_slice(app.as_bytes());
        req.extend_from_slice(b"/db-");
        req.extend_from_slice(org.secret_suffix(role.account, app).as_bytes());
        req.extend_from_slice(b"\"}");
        steps.push((
            "secretsmanager.amazonaws.com",
            "GetSecretValue",
            "secretsmanager.get-secret-value",
            true,
            req,
        ));
    }
    let mut ids = Vec::new();
    let mut times = Vec::new();
    for (source, name, cli, read_only, request) in steps {
        let region = if source == "iam.amazonaws.com" {
            "us-east-1"
        } else {
            role.region
        };
        let mut ua = Vec::new();
        let api = source.split('.').next().unwrap_or("");
        push_sdk_ua(&mut ua, role.sdk, api, cli, false);
        let id = call(
            &mut rng,
            inj,
            role.account,
            t,
            Call {
                ident: Ident::Role {
                    account: &acct,
                    role_name: &role.name,
                    role_arn: &role.arn,
                    role_id: &role.role_id,
                    session: &session,
                    key: &key,
                    creation,
                    ec2: false,
                    source_identity: None,
                },
                account: &acct,
                region,
                ip: &ip,
                ua: &ua,
                source,
                name,
                read_only,
                request: &request,
                response: b"",
                vpce: None,
            },
        );
        ids.push(id);
        times.push(t);
        t += rng.gen_range(2 * SECOND..40 * SECOND);
    }
    inj.taken.push(role.arn.clone());
    inj.labels.push(label(
        Scenario::RoleUnusualHours,
        role.arn.clone(),
        &times,
        ids,
    ));
}

fn mass_s3_read(org: &Org, day: i64, span: Span, mut rng: SmallRng, inj: &mut Injection) {
    let kinds = [
        RoleKind::Etl,
        RoleKind::EcsApp,
        RoleKind::Ec2App,
        RoleKind::Lambda,
    ];
    let Some(ri) = choose_role(org, &mut rng, inj, &kinds) else {
        return;
    };
    let Some(role) = org.roles.get(ri) else {
        return;
    };
    let acct = org.account_id(role.account).to_string();
    let mut t = span.clamp(day + 13 * HOUR + rng.gen_range(0..6 * HOUR));
    let session = role
        .sessions
        .first()
        .cloned()
        .unwrap_or_else(|| "session".to_string());
    let key = aws_id("ASIA", hash(&[org.seed, 631, t as u64]));
    let ip = role
        .ips
        .first()
        .cloned()
        .unwrap_or_else(|| "10.0.1.10".to_string());
    let creation = t - rng.gen_range(MINUTE..20 * MINUTE);
    let bucket_name = bucket(&acct, role.app, 0);
    let ua = linked::cli_user_agent("s3.sync");
    let host = format!("{bucket_name}.s3.{}.amazonaws.com", role.region);
    let n = rng.gen_range(2_500..4_000);
    // All of it within about forty minutes.
    let gap = (40 * MINUTE) as f64 / f64::from(n);
    let mut ids = Vec::with_capacity(n as usize);
    let mut times = Vec::with_capacity(n as usize);
    let mut s = Scratch::default();
    for i in 0..n {
        s.clear();
        let object = format!("{}/exports/customers/part-{i:05}.csv.gz", role.app);
        s.req.push(b'{');
        push_kv(&mut s.req, "bucketName", &bucket_name);
        s.req.push(b',');
        push_kv(&mut s.req, "Host", &host);
        s.req.push(b',');
        push_kv(&mut s.req, "key", &object);
        s.req.push(b'}');
        push_s3_additional(
            &mut s.add,
            rng.r#gen(),
            0,
            rng.gen_range(150_000..4_000_000),
        );
        let mut arn = Vec::with_capacity(128);
        arn.extend_from_slice(b"arn:aws:s3:::");
        arn.extend_from_slice(bucket_name.as_bytes());
        arn.push(b'/');
        arn.extend_from_slice(object.as_bytes());
        push_resource(&mut s.res, true, "", "AWS::S3::Object", &arn);
        let mut barn = Vec::with_capacity(64);
        barn.extend_from_slice(b"arn:aws:s3:::");
        barn.extend_from_slice(bucket_name.as_bytes());
        push_resource(&mut s.res, false, &acct, "AWS::S3::Bucket", &barn);
        s.res.push(b']');
        super::util::push_hex_upper(&mut s.rid, 16, rng.r#gen());
        push_uuid(&mut s.eid, &mut rng);
        let mut bytes = Vec::with_capacity(2048);
        push_record(
            &mut bytes,
            &Rec {
                version: "1.09",
                ident: Ident::Role {
                    account: &acct,
                    role_name: &role.name,
                    role_arn: &role.arn,
                    role_id: &role.role_id,
                    session: &session,
                    key: &key,
                    creation,
                    ec2: matches!(role.kind, RoleKind::Ec2App | RoleKind::Etl),
                    source_identity: None,
                },
                time: t,
                source: "s3.amazonaws.com",
                name: "GetObject",
                region: role.region,
                ip: &ip,
                ua: ua.as_bytes(),
                error: None,
                request: &s.req,
                response: b"",
                additional: &s.add,
                request_id: &s.rid,
                event_id: &s.eid,
                read_only: true,
                resources: &s.res,
                event_type: "AwsApiCall",
                management: false,
                recipient: &acct,
                shared_event_id: b"",
                vpce: role.vpce.as_deref().map(|v| (v, acct.as_str())),
                category: "Data",
                tls_host: host.as_bytes(),
                tls13: true,
                from_console: false,
            },
        );
        inj.records.push(Injected {
            time: t,
            account: role.account,
            region: role.region,
            bytes,
        });
        ids.push(String::from_utf8_lossy(&s.eid).into_owned());
        times.push(t);
        t += exp(&mut rng, gap) as i64 + 1_000;
    }
    inj.taken.push(role.arn.clone());
    inj.labels
        .push(label(Scenario::MassS3Read, role.arn.clone(), &times, ids));
}

/// A label whose session events are filled in when the session is written.
fn session_label(sc: Scenario, login: &str) -> Label {
    Label {
        scenario: sc.id().to_string(),
        rule_id: sc.rule_id().to_string(),
        principal: format!("gateway:{login}"),
        start: String::new(),
        end: String::new(),
        event_ids: Vec::new(),
        related: Vec::new(),
    }
}

/// Commands a script runs to look around a host; none is in anyone's habits.
const SCRIPTED: &[(&str, &str)] = &[
    (
        "hostname -I && ip -brief addr show",
        "10.0.10.12\r\nlo  UNKNOWN  127.0.0.1/8\r\nens5  UP  10.0.10.12/24\r\n",
    ),
    (
        "getent passwd | awk -F: '$3 >= 1000 {print $1}'",
        "ubuntu\r\n{user}\r\ndeploy\r\n",
    ),
    (
        "ss -tlnp 2>/dev/null | head -n 20",
        "State  Recv-Q Send-Q Local Address:Port Peer Address:Port\r\nLISTEN 0      511    0.0.0.0:80        0.0.0.0:*\r\n",
    ),
    (
        "find / -xdev -name '*.pem' -newer /etc/hostname 2>/dev/null | head -n 50",
        "/etc/ssl/private/app.pem\r\n/opt/app/certs/client.pem\r\n",
    ),
    (
        "crontab -l 2>/dev/null; ls -la /etc/cron.d",
        "no crontab for {user}\r\ntotal 12\r\n-rw-r--r-- 1 root root 102 Feb 13  2024 .placeholder\r\n",
    ),
];

fn scripted_session(org: &Org, day: i64, span: Span, mut rng: SmallRng, inj: &mut Injection) {
    // Someone with a host whose logs keep keystroke timing.
    let timed = |hi: &usize| {
        matches!(
            host_format(*hi),
            SessionFormat::Jsonl | SessionFormat::Asciinema
        )
    };
    let Some(pi) = choose_person(org, &mut rng, inj, &[&|p| p.hosts.iter().any(timed)]) else {
        return;
    };
    let Some(person) = org.people.get(pi) else {
        return;
    };
    let hi = person
        .hosts
        .iter()
        .copied()
        .find(|h| timed(h))
        .or_else(|| (0..org.hosts.len()).find(|h| timed(h)))
        .unwrap_or(0);
    let Some(host) = org.hosts.get(hi) else {
        return;
    };
    let format = host_format(hi);
    let t0 = span.clamp(working_time(org, pi, day, &mut rng));
    let label_index = inj.labels.len();
    let script = Keying::Scripted {
        mean_ms: 7.0,
        sd_ms: 1.0,
    };
    let mut cmds: Vec<Cmd> = Vec::new();
    let mut at = t0 + rng.gen_range(SECOND..2 * SECOND);
    for (text, out) in SCRIPTED {
        let mut cmd = keyed(
            &mut rng,
            script,
            (*text).to_string(),
            out.replace("{user}", &person.name),
            at,
        );
        cmd.label = Some(label_index);
        at = cmd.enter + rng.gen_range(300_000..1_500_000);
        cmds.push(cmd);
    }
    let exit = keyed(&mut rng, script, "exit".into(), "logout\r\n".into(), at);
    let stop = exit.enter + rng.gen_range(50_000..500_000);
    cmds.push(exit);
    inj.sessions.push(Session {
        format,
        id: session_id(format, hash(&[org.seed, 640, t0 as u64])),
        user: person.name.clone(),
        host: host.name.clone(),
        host_ip: host.ip.clone(),
        client_ip: person.office_ip.clone(),
        start: t0,
        end: stop,
        cmds,
    });
    inj.taken.push(person.arn.clone());
    inj.labels
        .push(session_label(Scenario::ScriptedSession, &person.name));
}

/// The attack's commands: (command line, output, the linked role's call).
const IAM_STEPS: &[(&str, &str, &str)] = &[
    (
        "aws sts get-caller-identity",
        "{\r\n    \"UserId\": \"AROA:{user}\",\r\n    \"Account\": \"{account}\",\r\n    \"Arn\": \"arn:aws:sts::{account}:assumed-role/gateway-ops/{user}\"\r\n}\r\n",
        "GetCallerIdentity",
    ),
    (
        "aws iam create-user --user-name backdoor",
        "{\r\n    \"User\": {\r\n        \"Path\": \"/\",\r\n        \"UserName\": \"backdoor\",\r\n        \"Arn\": \"arn:aws:iam::{account}:user/backdoor\"\r\n    }\r\n}\r\n",
        "CreateUser",
    ),
    (
        "aws iam attach-user-policy --user-name backdoor --policy-arn arn:aws:iam::aws:policy/AdministratorAccess",
        "",
        "AttachUserPolicy",
    ),
    (
        "aws iam create-access-key --user-name backdoor",
        "{\r\n    \"AccessKey\": {\r\n        \"UserName\": \"backdoor\",\r\n        \"Status\": \"Active\"\r\n    }\r\n}\r\n",
        "CreateAccessKey",
    ),
];

fn gateway_then_iam(org: &Org, day: i64, span: Span, mut rng: SmallRng, inj: &mut Injection) {
    let bastion = |hi: &usize| {
        org.hosts
            .get(*hi)
            .is_some_and(|h| h.role == HostRole::Bastion)
    };
    let teleport_bastion = |hi: &usize| bastion(hi) && host_format(*hi) == SessionFormat::Teleport;
    // Preferably someone who already uses the linked role from a Teleport bastion.
    let Some(pi) = choose_person(
        org,
        &mut rng,
        inj,
        &[
            &|p| p.aws_on_hosts && p.hosts.iter().any(teleport_bastion),
            &|p| p.aws_on_hosts && p.hosts.iter().any(bastion),
            &|p| p.hosts.iter().any(bastion),
        ],
    ) else {
        return;
    };
    let Some(person) = org.people.get(pi) else {
        return;
    };
    let hi = person
        .hosts
        .iter()
        .copied()
        .find(|h| teleport_bastion(h))
        .or_else(|| person.hosts.iter().copied().find(|h| bastion(h)))
        .or_else(|| (0..org.hosts.len()).find(|h| bastion(h)))
        .unwrap_or(0);
    let Some(host) = org.hosts.get(hi) else {
        return;
    };
    let format = host_format(hi);
    let t0 = span.clamp(working_time(org, pi, day, &mut rng));
    let label_index = inj.labels.len();
    let typist = Typist::for_user(org.seed, &person.name);
    let sid = session_id(format, hash(&[org.seed, 641, t0 as u64]));
    let account = org.account_id(0).to_string();
    let mut cmds: Vec<Cmd> = Vec::new();
    let mut at = t0 + rng.gen_range(2 * SECOND..6 * SECOND);
    let mut calls: Vec<(i64, &str)> = Vec::new();
    for (text, out, api) in IAM_STEPS {
        let output = out
            .replace("{user}", &person.name)
            .replace("{account}", &account);
        let mut cmd = keyed(
            &mut rng,
            Keying::Typed(typist),
            (*text).to_string(),
            output,
            at,
        );
        if text.starts_with("aws iam ") {
            cmd.label = Some(label_index);
        }
        calls.push((cmd.enter + rng.gen_range(400_000..1_500_000), api));
        at = cmd.enter + rng.gen_range(2 * SECOND..5 * SECOND) + rng.gen_range(0..20 * SECOND);
        cmds.push(cmd);
    }
    let exit = keyed(
        &mut rng,
        Keying::Typed(typist),
        "exit".into(),
        "logout\r\n".into(),
        at,
    );
    let stop = exit.enter + rng.gen_range(50_000..500_000);
    cmds.push(exit);

    let mut related = Vec::new();
    if let Some(role) = org.linked() {
        let key = linked::session_key(org.seed, &sid);
        let creation = calls.first().map(|c| c.0).unwrap_or(t0) - SECOND;
        let mut ids = Vec::new();
        let mut s = Scratch::default();
        for (time, api) in &calls {
            s.clear();
            let (source, cli, read_only) = match *api {
                "GetCallerIdentity" => ("sts.amazonaws.com", "sts.get-caller-identity", true),
                "CreateUser" => ("iam.amazonaws.com", "iam.create-user", false),
                "AttachUserPolicy" => ("iam.amazonaws.com", "iam.attach-user-policy", false),
                _ => ("iam.amazonaws.com", "iam.create-access-key", false),
            };
            match *api {
                "CreateUser" => {
                    s.req = user_request(BACKDOOR_USER);
                    s.resp.extend_from_slice(b"{\"user\":{\"path\":\"/\",");
                    push_kv(&mut s.resp, "userName", BACKDOOR_USER);
                    s.resp.extend_from_slice(b",\"userId\":\"");
                    push_aws_id(&mut s.resp, "AIDA", rng.r#gen());
                    s.resp.extend_from_slice(b"\",\"arn\":\"arn:aws:iam::");
                    s.resp.extend_from_slice(account.as_bytes());
                    s.resp
                        .extend_from_slice(b":user/backdoor\",\"createDate\":\"");
                    push_aws_date(&mut s.resp, *time);
                    s.resp.extend_from_slice(b"\"}}");
                }
                "AttachUserPolicy" => {
                    s.req.push(b'{');
                    push_kv(&mut s.req, "userName", BACKDOOR_USER);
                    s.req.extend_from_slice(
                        b",\"policyArn\":\"arn:aws:iam::aws:policy/AdministratorAccess\"}",
                    );
                }
                "CreateAccessKey" => {
                    s.req = user_request(BACKDOOR_USER);
                    s.resp = new_key_response(&mut rng, BACKDOOR_USER, *time);
                }
                _ => {}
            }
            if source == "iam.amazonaws.com" {
                s.host.extend_from_slice(b"iam.amazonaws.com");
            } else {
                s.host
                    .extend_from_slice(format!("sts.{}.amazonaws.com", role.region).as_bytes());
            }
            push_uuid(&mut s.rid, &mut rng);
            let mut event_id = Vec::with_capacity(36);
            push_uuid(&mut event_id, &mut rng);
            let ua = linked::cli_user_agent(cli);
            inj.records.push(linked::record(
                org,
                role,
                &LinkedCall {
                    login: &person.name,
                    ip: &host.ip,
                    time: *time,
                    creation,
                    key: &key,
                    source,
                    name: api,
                    version: "1.09",
                    read_only,
                    data: false,
                    ua: &ua,
                    event_id: &event_id,
                },
                &s,
            ));
            ids.push(String::from_utf8_lossy(&event_id).into_owned());
        }
        related.push(Related {
            principal: role.arn.clone(),
            rule_id: "aws-iam-user-created-then-admin-attached".to_string(),
            event_ids: ids,
        });
    }
    inj.sessions.push(Session {
        format,
        id: sid,
        user: person.name.clone(),
        host: host.name.clone(),
        host_ip: host.ip.clone(),
        client_ip: person.office_ip.clone(),
        start: t0,
        end: stop,
        cmds,
    });
    inj.taken.push(person.arn.clone());
    let mut l = session_label(Scenario::GatewayThenIam, &person.name);
    l.related = related;
    inj.labels.push(l);
}
