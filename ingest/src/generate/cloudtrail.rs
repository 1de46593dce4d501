//! Background CloudTrail activity: when each principal acts (people in their
//! working hours, machines steadily, CI in bursts), what the calls look like,
//! and how records are grouped into CloudTrail's delivery files.
//!
//! Planning is per principal and day with its own seeded generator, so a
//! principal's day does not depend on anyone else's; rendering walks the plan
//! in time order with one generator, which keeps output byte-identical for a
//! seed while never holding more than a day of plan in memory.

use std::collections::BTreeMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::GeneratedFile;
use super::ops::{
    Ctx, Op, Scratch, denied_code, fill, fill_assume_role, push_denied, push_host, push_request_id,
};
use super::org::{Org, RoleKind, Sdk, Team, any_app, str_hash};
use super::record::{Ident, Rec, push_record};
use super::util::{
    DAY, HOUR, MINUTE, SECOND, alnum, civil_from_days, exp, hash, mix, normalish, push_aws_id,
    push_hex, push_uuid, weekday,
};

/// A CloudTrail record written by a scenario, merged into the background files.
pub(crate) struct Injected {
    /// Event time.
    pub time: i64,
    /// Index of the account whose trail logs it.
    pub account: usize,
    /// Region it is logged in.
    pub region: &'static str,
    /// The record as compact JSON.
    pub bytes: Vec<u8>,
}

/// How a person reaches AWS.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Chan {
    Cli,
    Console,
    Terraform,
    Machine,
    Service,
}

/// One planned background call.
#[derive(Clone, Copy, Debug)]
struct Planned {
    time: i64,
    /// Session start (console login, role credentials issue).
    ctx: i64,
    actor: u32,
    /// Session number (roles), target index (services), or for people
    /// [`AT_HOME`] when the call comes from their home network.
    aux: u32,
    op: Op,
    chan: Chan,
}

/// [`Planned::aux`] of a person's call made away from the office.
const AT_HOME: u32 = 1;

/// Least time between two of a person's work bursts.
const BURST_PAUSE: i64 = 12 * MINUTE;

/// A person rotates their own access key about once in this many working days.
const KEY_ROTATION_DAYS: u64 = 2_000;

/// When a person works on a local calendar day (days since the epoch), in
/// UTC microseconds; `None` on days off. Shared with the session planner.
pub(crate) fn work_window(org: &Org, pi: usize, day: i64) -> Option<(i64, i64)> {
    let p = org.people.get(pi)?;
    let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 101, pi as u64, day as u64]));
    let midnight = day * DAY - p.tz_min * MINUTE;
    if weekday(day * DAY) < 5 {
        if !rng.gen_bool(0.93) {
            return None;
        }
        let start = midnight + 8 * HOUR + rng.gen_range(0..2 * HOUR);
        Some((start, start + 7 * HOUR + rng.gen_range(0..3 * HOUR)))
    } else {
        if !rng.gen_bool(0.12) {
            return None;
        }
        let start = midnight + 10 * HOUR + rng.gen_range(0..8 * HOUR);
        Some((start, start + rng.gen_range(HOUR / 2..3 * HOUR)))
    }
}

fn weighted(rng: &mut SmallRng, table: &[(Op, u32)]) -> Op {
    let total: u32 = table.iter().map(|e| e.1).sum();
    let mut roll = rng.gen_range(0..total.max(1));
    for (op, w) in table {
        if roll < *w {
            return *op;
        }
        roll -= w;
    }
    table.first().map(|e| e.0).unwrap_or(Op::GetCallerIdentity)
}

fn person_ops(team: Team, chan: Chan) -> &'static [(Op, u32)] {
    use Op::*;
    match (team, chan) {
        // `terraform apply`: the plan's reads, then a few changes.
        (_, Chan::Terraform) => &[
            (Ec2DescribeInstances, 6),
            (Ec2DescribeSecurityGroups, 6),
            (Ec2DescribeVpcs, 4),
            (Ec2DescribeSubnets, 5),
            (Ec2DescribeVolumes, 2),
            (IamGetRole, 5),
            (IamGetPolicyVersion, 4),
            (IamListAttachedRolePolicies, 4),
            (EksDescribeCluster, 2),
            (LambdaGetFunction, 2),
            (DdbDescribeTable, 2),
            (KmsDescribeKey, 3),
            (SecretsDescribeSecret, 1),
            (LogsDescribeLogGroups, 2),
            (S3GetObject, 1),
            (Ec2CreateTags, 3),
            (Ec2AuthorizeInternal, 2),
        ],
        (Team::Backend, _) => &[
            (LogsDescribeLogGroups, 5),
            (LogsFilterLogEvents, 9),
            (LambdaListFunctions, 3),
            (LambdaGetFunction, 5),
            (DdbDescribeTable, 3),
            (DdbQuery, 2),
            (CwGetMetricData, 6),
            (CwDescribeAlarms, 2),
            (Ec2DescribeInstances, 2),
            (S3ListBuckets, 1),
            (S3ListObjects, 3),
            (S3GetObject, 3),
            (EcsDescribeServices, 4),
            (CfnDescribeStacks, 2),
            (SecretsDescribeSecret, 1),
            (SsmGetParameter, 1),
            (GetCallerIdentity, 1),
        ],
        (Team::Platform, _) => &[
            (Ec2DescribeInstances, 8),
            (Ec2DescribeSecurityGroups, 5),
            (Ec2DescribeVpcs, 2),
            (Ec2DescribeSubnets, 3),
            (Ec2DescribeVolumes, 2),
            (EksDescribeCluster, 3),
            (EksListClusters, 2),
            (IamGetRole, 2),
            (IamListRoles, 1),
            (IamListAttachedRolePolicies, 2),
            (CwGetMetricData, 4),
            (CfnDescribeStacks, 3),
            (EcsDescribeServices, 3),
            (LogsFilterLogEvents, 2),
            (S3ListObjects, 1),
            (GetCallerIdentity, 2),
        ],
        (Team::Data, _) => &[
            (S3ListObjects, 8),
            (S3GetObject, 9),
            (S3PutObject, 3),
            (S3ListBuckets, 2),
            (DdbDescribeTable, 2),
            (DdbQuery, 1),
            (LogsFilterLogEvents, 2),
            (CwGetMetricData, 2),
            (GetCallerIdentity, 1),
        ],
        (Team::Security, _) => &[
            (IamListRoles, 4),
            (IamGetRole, 3),
            (IamListAttachedRolePolicies, 3),
            (IamGetPolicyVersion, 3),
            (IamGetUser, 2),
            (IamListAccessKeys, 2),
            (CtDescribeTrails, 2),
            (CtGetTrailStatus, 2),
            (CtLookupEvents, 4),
            (Ec2DescribeSecurityGroups, 3),
            (S3ListBuckets, 2),
            (SecretsListSecrets, 1),
            (KmsDescribeKey, 1),
        ],
        (Team::Support, _) => &[
            (Ec2DescribeInstances, 4),
            (CwGetMetricData, 5),
            (CwDescribeAlarms, 3),
            (LogsFilterLogEvents, 4),
            (EcsDescribeServices, 2),
            (S3ListBuckets, 1),
            (S3ListObjects, 2),
            (DdbDescribeTable, 1),
        ],
    }
}

fn role_ops(kind: RoleKind) -> &'static [(Op, u32)] {
    use Op::*;
    match kind {
        RoleKind::EcsApp => &[
            (S3GetObject, 10),
            (S3PutObject, 5),
            (KmsDecrypt, 6),
            (KmsGenerateDataKey, 3),
            (SecretsGetSecretValue, 2),
            (SsmGetParameter, 2),
            (DdbDescribeTable, 1),
            (DdbGetItem, 6),
            (DdbPutItem, 4),
            (DdbQuery, 4),
        ],
        RoleKind::Ec2App => &[
            (S3GetObject, 8),
            (S3PutObject, 6),
            (KmsDecrypt, 5),
            (SsmGetParameter, 3),
            (SsmGetParametersByPath, 2),
            (SecretsGetSecretValue, 2),
            (Ec2DescribeInstances, 1),
            (Ec2DescribeVolumes, 1),
            (LogsDescribeLogGroups, 1),
        ],
        RoleKind::Lambda => &[
            (DdbGetItem, 6),
            (DdbPutItem, 4),
            (DdbQuery, 4),
            (S3GetObject, 5),
            (S3PutObject, 3),
            (KmsDecrypt, 4),
            (SecretsGetSecretValue, 1),
            (LogsCreateLogStream, 1),
        ],
        RoleKind::Monitoring => &[
            (CwGetMetricData, 14),
            (Ec2DescribeInstances, 4),
            (Ec2DescribeVolumes, 2),
            (Ec2DescribeSecurityGroups, 1),
            (LambdaListFunctions, 2),
            (EcsDescribeServices, 2),
            (CwDescribeAlarms, 2),
            (DdbDescribeTable, 1),
            (S3ListBuckets, 1),
            (CtDescribeTrails, 1),
            (CtGetTrailStatus, 1),
            (IamListRoles, 1),
            (EksListClusters, 1),
        ],
        RoleKind::Etl => &[
            (S3GetObject, 12),
            (S3PutObject, 8),
            (S3ListObjects, 4),
            (KmsDecrypt, 3),
            (KmsGenerateDataKey, 3),
        ],
        // `terraform plan`: reads only.
        RoleKind::CiPlan => &[
            (Ec2DescribeInstances, 6),
            (Ec2DescribeSecurityGroups, 6),
            (Ec2DescribeVpcs, 4),
            (Ec2DescribeSubnets, 5),
            (Ec2DescribeVolumes, 2),
            (IamGetRole, 5),
            (IamGetPolicyVersion, 4),
            (IamListAttachedRolePolicies, 4),
            (EksDescribeCluster, 2),
            (LambdaGetFunction, 2),
            (DdbDescribeTable, 2),
            (KmsDescribeKey, 3),
            (SecretsDescribeSecret, 1),
            (LogsDescribeLogGroups, 2),
        ],
        RoleKind::CiDeploy | RoleKind::GatewayLinked => &[(EcsDescribeServices, 1)],
    }
}

/// Plans one person's calls for one local day.
fn plan_person(org: &Org, epd: u32, pi: usize, day: i64, out: &mut Vec<Planned>) {
    let Some(p) = org.people.get(pi) else { return };
    let Some((ws, we)) = work_window(org, pi, day) else {
        return;
    };
    let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 102, pi as u64, day as u64]));
    let weekend = weekday(day * DAY) >= 5;
    let mult = if weekend { 0.4 } else { 1.35 };
    let n =
        (f64::from(epd) * p.factor * mult * (1.0 + 0.15 * normalish(&mut rng))).max(3.0) as usize;
    let bursts = (1 + n / 35).min(10);
    let latest = (we - 10 * MINUTE).max(ws + 1);
    let mut starts: Vec<i64> = (0..bursts).map(|_| rng.gen_range(ws..latest)).collect();
    starts.sort_unstable();
    let mut login: Option<i64> = None;
    let mut remaining = n;
    let actor = pi as u32;
    // A burst is one piece of work: the next starts a while after it ends.
    let mut free_at = i64::MIN;
    for (b, &planned_start) in starts.iter().enumerate() {
        let burst_start = planned_start.max(free_at);
        let left = bursts - b;
        let nb = if left == 1 {
            remaining
        } else {
            let even = remaining as f64 / left as f64;
            ((even * rng.gen_range(0.6..1.4)) as usize).min(remaining)
        };
        remaining -= nb;
        let chan = if rng.r#gen::<f64>() < p.console_share {
            Chan::Console
        } else if p.terraform && rng.gen_bool(0.4) {
            Chan::Terraform
        } else {
            Chan::Cli
        };
        // Where this burst comes from: weekends always away from the office
        // (unless the person only ever works there), weekdays as the person's
        // habit says. Drawn from its own hash so the rest of the plan does
        // not depend on it.
        let roll = (mix(hash(&[org.seed, 105, pi as u64, day as u64, b as u64])) % 1000) as f64;
        let home = if weekend {
            p.home_share > 0.0
        } else {
            roll < p.home_share * 1000.0
        };
        let aux = if home { AT_HOME } else { 0 };
        let mut t = burst_start;
        let mut ctx = 0;
        if chan == Chan::Console {
            ctx = match login {
                Some(l) => l,
                None => {
                    out.push(Planned {
                        time: t,
                        ctx: t,
                        actor,
                        aux,
                        op: Op::ConsoleLogin,
                        chan,
                    });
                    login = Some(t);
                    t += rng.gen_range(4 * SECOND..30 * SECOND);
                    t
                }
            };
        }
        let table = person_ops(p.team, chan);
        // Rotating one's own key is rare: about once in KEY_ROTATION_DAYS
        // working days, at the end of a CLI burst.
        let rotate = chan == Chan::Cli
            && b == 0
            && hash(&[org.seed, 106, pi as u64, day as u64]).is_multiple_of(KEY_ROTATION_DAYS);
        for k in 0..nb {
            let op = if rotate && k + 1 == nb {
                Op::IamCreateOwnAccessKey
            } else {
                weighted(&mut rng, table)
            };
            out.push(Planned {
                time: t,
                ctx,
                actor,
                aux,
                op,
                chan,
            });
            let gap = match chan {
                Chan::Terraform => exp(&mut rng, 0.25 * SECOND as f64),
                Chan::Console => exp(&mut rng, 25.0 * SECOND as f64),
                _ => {
                    if rng.gen_bool(0.1) {
                        exp(&mut rng, 4.0 * MINUTE as f64)
                    } else {
                        exp(&mut rng, 12.0 * SECOND as f64)
                    }
                }
            };
            t += gap as i64 + 1000;
        }
        free_at = t + BURST_PAUSE;
    }
}

/// Session number and start for a steady machine role at `t`.
fn role_session(org: &Org, ri: usize, period: i64, t: i64) -> (i64, u32) {
    let phase = (hash(&[org.seed, 103, ri as u64]) % period.max(1) as u64) as i64;
    let epoch = (t - phase).div_euclid(period.max(1));
    (epoch * period + phase, epoch as u32)
}

/// Plans one role's calls for one UTC day.
fn plan_role(org: &Org, epd: u32, ri: usize, day: i64, out: &mut Vec<Planned>) {
    use Op::*;
    let Some(r) = org.roles.get(ri) else { return };
    if r.kind == RoleKind::GatewayLinked {
        // Its calls come from gateway sessions (see `linked`).
        return;
    }
    let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 200, ri as u64, day as u64]));
    let day0 = day * DAY;
    let weekend = weekday(day0) >= 5;
    let n = (f64::from(epd) * r.factor * (1.0 + 0.1 * normalish(&mut rng))).max(1.0) as usize;
    let actor = (org.people.len() + ri) as u32;
    let table = role_ops(r.kind);
    let push = |out: &mut Vec<Planned>, time: i64, ctx: i64, aux: u32, op: Op| {
        out.push(Planned {
            time,
            ctx,
            actor,
            aux,
            op,
            chan: Chan::Machine,
        });
    };
    match r.kind {
        RoleKind::CiDeploy | RoleKind::CiPlan => {
            let per_job = if r.kind == RoleKind::CiDeploy { 14 } else { 30 };
            // The pipeline's schedule is its own and the same every weekday:
            // `scheduled` jobs in the main office's business hours, job `j`
            // in the hour 13 + 9j/scheduled UTC (13:00 to 21:59), each over
            // within its hour. At weekends, now and then one of them.
            let scheduled = ((f64::from(epd) * r.factor) as usize / per_job).max(1);
            let jobs: Vec<usize> = if weekend {
                if rng.gen_bool(0.3) {
                    vec![rng.gen_range(0..scheduled)]
                } else {
                    Vec::new()
                }
            } else {
                (0..scheduled).collect()
            };
            for j in jobs {
                let hour = 13 + (j * 9 / scheduled) as i64;
                let start = day0 + hour * HOUR + rng.gen_range(0..50 * MINUTE);
                let ctx = start - rng.gen_range(3 * SECOND..15 * SECOND);
                let aux = (day as u32).wrapping_mul(131).wrapping_add(j as u32);
                let mut t = start;
                let step = |out: &mut Vec<Planned>, t: &mut i64, op: Op, gap: i64| {
                    push(out, *t, ctx, aux, op);
                    *t += gap;
                };
                if r.kind == RoleKind::CiDeploy {
                    step(out, &mut t, GetCallerIdentity, 2 * SECOND);
                    step(out, &mut t, EcrGetAuthorizationToken, 40 * SECOND);
                    for _ in 0..rng.gen_range(1..3) {
                        let gap = rng.gen_range(SECOND..20 * SECOND);
                        step(out, &mut t, EcrPutImage, gap);
                    }
                    step(out, &mut t, S3PutObject, 3 * SECOND);
                    step(out, &mut t, EcsRegisterTaskDefinition, 2 * SECOND);
                    step(out, &mut t, EcsUpdateService, 15 * SECOND);
                    for _ in 0..rng.gen_range(3..9) {
                        step(out, &mut t, EcsDescribeServices, 15 * SECOND);
                    }
                    if rng.gen_bool(0.3) {
                        step(out, &mut t, LambdaUpdateFunctionCode, 5 * SECOND);
                    }
                    step(out, &mut t, CfnDescribeStacks, SECOND);
                } else {
                    step(out, &mut t, GetCallerIdentity, SECOND);
                    step(out, &mut t, S3GetObject, 2 * SECOND);
                    step(out, &mut t, DdbGetItem, SECOND);
                    for _ in 0..rng.gen_range(18..40) {
                        let op = weighted(&mut rng, table);
                        let gap = rng.gen_range(50_000..400_000);
                        step(out, &mut t, op, gap);
                    }
                }
            }
        }
        RoleKind::Etl => {
            let start = day0 + HOUR + rng.gen_range(0..HOUR);
            let mean = (90 * MINUTE) as f64 / n as f64;
            let mut t = start;
            for _ in 0..n {
                let (ctx, aux) = role_session(org, ri, r.session_period, t);
                let op = weighted(&mut rng, table);
                push(out, t, ctx, aux, op);
                t += exp(&mut rng, mean) as i64 + 1000;
            }
        }
        RoleKind::Lambda => {
            let invocations = (n / 3).max(1);
            let slot = DAY / invocations as i64;
            for i in 0..invocations {
                let mut t = day0 + i as i64 * slot + rng.gen_range(0..slot.max(1));
                for _ in 0..rng.gen_range(2..5) {
                    let (ctx, aux) = role_session(org, ri, r.session_period, t);
                    let op = weighted(&mut rng, table);
                    push(out, t, ctx, aux, op);
                    t += rng.gen_range(20_000..400_000);
                }
            }
        }
        _ => {
            let slot = DAY / n as i64;
            for i in 0..n {
                let t = day0 + i as i64 * slot + rng.gen_range(0..slot.max(1));
                let (ctx, aux) = role_session(org, ri, r.session_period, t);
                let op = weighted(&mut rng, table);
                push(out, t, ctx, aux, op);
            }
        }
    }
}

/// Plans one AWS service's calls for one UTC day.
fn plan_service(org: &Org, epd: u32, si: usize, day: i64, out: &mut Vec<Planned>) {
    let Some(sv) = org.services.get(si) else {
        return;
    };
    let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 300, si as u64, day as u64]));
    let n = (f64::from(epd) * sv.factor).max(1.0) as usize;
    let slot = DAY / n as i64;
    let actor = (org.people.len() + org.roles.len() + si) as u32;
    let op = if sv.invoked_by == "cloudtrail.amazonaws.com" {
        Op::S3GetBucketAcl
    } else {
        Op::AssumeRole
    };
    for i in 0..n {
        let t = day * DAY + i as i64 * slot + rng.gen_range(0..slot.max(1));
        out.push(Planned {
            time: t,
            ctx: t,
            actor,
            aux: rng.gen_range(0..sv.targets.len().max(1)) as u32,
            op,
            chan: Chan::Service,
        });
    }
}

const CLI_UA_HEAD: &[u8] = b"aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 ";
const CLI_UA_MID: &[u8] =
    b" lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#";
const CI_UA_OS: &str = "os/linux#6.5.0-1025-azure md/arch#x86_64";
const TF_UA_HEAD: &[u8] = b"APN/1.0 HashiCorp/1.0 Terraform/1.9.8 (+https://www.terraform.io) terraform-provider-aws/5.74.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.32.3 ua/2.1 os/linux lang/go#1.23.2 md/GOOS#linux md/GOARCH#amd64 api/";
const KERNEL: &[u8] = b"5.10.227-219.884.amzn2.x86_64";

/// Appends the user agent of a machine principal's SDK calling `api` (`md/command#cli` for the CLI).
pub(crate) fn push_sdk_ua(buf: &mut Vec<u8>, sdk: Sdk, api: &str, cli: &str, lambda: bool) {
    match sdk {
        Sdk::GoV2 => {
            buf.extend_from_slice(
                b"aws-sdk-go-v2/1.30.3 ua/2.0 os/linux lang/go#1.22.5 md/GOOS#linux md/GOARCH#amd64 api/",
            );
            buf.extend_from_slice(api.as_bytes());
            buf.extend_from_slice(b"#1.40.3");
        }
        Sdk::Boto3 => {
            buf.extend_from_slice(b"Boto3/1.34.0 md/Botocore#1.34.0 ua/2.0 os/linux#");
            buf.extend_from_slice(KERNEL);
            buf.extend_from_slice(b" md/arch#x86_64 lang/python#3.12.7 md/pyimpl#CPython");
            if lambda {
                buf.extend_from_slice(b" exec-env/AWS_Lambda_python3.12");
            }
            buf.extend_from_slice(b" cfg/retry-mode#legacy Botocore/1.34.0");
        }
        Sdk::Java => {
            buf.extend_from_slice(b"aws-sdk-java/2.25.60 Linux/");
            buf.extend_from_slice(KERNEL);
            buf.extend_from_slice(
                b" OpenJDK_64-Bit_Server_VM/21.0.5+11-LTS Java/21.0.5 vendor/Amazon.com_Inc. io/sync http/Apache cfg/retry-mode/legacy",
            );
        }
        Sdk::Node => {
            buf.extend_from_slice(b"aws-sdk-js/3.679.0 ua/2.1 os/linux#");
            buf.extend_from_slice(KERNEL);
            buf.extend_from_slice(b" lang/js md/nodejs#20.18.0 api/");
            buf.extend_from_slice(api.as_bytes());
            buf.extend_from_slice(b"#3.679.0");
            buf.extend_from_slice(if lambda {
                b" exec-env/AWS_Lambda_nodejs20.x" as &[u8]
            } else {
                b" exec-env/AWS_ECS_FARGATE"
            });
        }
        Sdk::Cli => {
            buf.extend_from_slice(CLI_UA_HEAD);
            buf.extend_from_slice(CI_UA_OS.as_bytes());
            buf.extend_from_slice(b" exec-env/GitHubActions");
            buf.extend_from_slice(CLI_UA_MID);
            buf.extend_from_slice(cli.as_bytes());
        }
        Sdk::Terraform => {
            buf.extend_from_slice(TF_UA_HEAD);
            buf.extend_from_slice(api.as_bytes());
            buf.extend_from_slice(b"#1.32.0");
        }
    }
}

/// Appends a `ConsoleLogin` record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_console_login(
    buf: &mut Vec<u8>,
    ident: Ident<'_>,
    account: &str,
    time: i64,
    ip: &str,
    ua: &str,
    mfa: Option<&str>,
    event_id: &[u8],
    state_hash: u64,
) {
    let mut add = Vec::with_capacity(256);
    add.extend_from_slice(
        b"{\"LoginTo\":\"https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_us-east-1_",
    );
    push_hex(&mut add, 16, state_hash);
    add.extend_from_slice(b"\",\"MobileVersion\":\"No\",");
    match mfa {
        Some(device) => {
            add.extend_from_slice(b"\"MFAIdentifier\":\"");
            add.extend_from_slice(device.as_bytes());
            add.extend_from_slice(b"\",\"MFAUsed\":\"Yes\"}");
        }
        None => add.extend_from_slice(b"\"MFAUsed\":\"No\"}"),
    }
    push_record(
        buf,
        &Rec {
            version: "1.09",
            ident,
            time,
            source: "signin.amazonaws.com",
            name: "ConsoleLogin",
            region: "us-east-1",
            ip,
            ua: ua.as_bytes(),
            error: None,
            request: b"",
            response: b"{\"ConsoleLogin\":\"Success\"}",
            additional: &add,
            request_id: b"",
            event_id,
            read_only: false,
            resources: b"",
            event_type: "AwsConsoleSignIn",
            management: true,
            recipient: account,
            shared_event_id: b"",
            vpce: None,
            category: "Management",
            tls_host: b"signin.aws.amazon.com",
            tls13: true,
            from_console: false,
        },
    );
}

/// Turns plans into records.
struct Renderer<'a> {
    org: &'a Org,
    rng: SmallRng,
    s: Scratch,
    caller: Vec<u8>,
}

impl Renderer<'_> {
    /// Renders one planned call into `out`; returns (account index, region).
    fn render(&mut self, p: &Planned, out: &mut Vec<u8>) -> (usize, &'static str) {
        let org = self.org;
        let people = org.people.len();
        let roles = org.roles.len();
        let actor = p.actor as usize;
        self.s.clear();
        self.caller.clear();
        let rng = &mut self.rng;
        let s = &mut self.s;
        push_uuid(&mut s.eid, rng);
        let meta = p.op.meta();
        if actor < people {
            let Some(person) = org.people.get(actor) else {
                return (0, "us-east-1");
            };
            let region = if meta.global {
                "us-east-1"
            } else {
                person.region
            };
            let acct = org.account_id(person.account);
            let ip = if p.aux == AT_HOME {
                person.home_ip.as_str()
            } else {
                person.office_ip.as_str()
            };
            if p.op == Op::ConsoleLogin {
                let mfa = format!("arn:aws:iam::{acct}:mfa/{}", person.name);
                push_console_login(
                    out,
                    Ident::User {
                        account: acct,
                        name: &person.name,
                        arn: &person.arn,
                        principal_id: &person.principal_id,
                        key: "",
                        console: None,
                    },
                    acct,
                    p.time,
                    ip,
                    person.browser,
                    Some(&mfa),
                    &s.eid,
                    rng.r#gen(),
                );
                return (person.account, "us-east-1");
            }
            let console = p.chan == Chan::Console;
            if console {
                push_aws_id(
                    &mut s.key,
                    "ASIA",
                    hash(&[org.seed, 50, actor as u64, p.ctx as u64]),
                );
                if rng.gen_bool(0.6) {
                    s.ua.extend_from_slice(person.browser.as_bytes());
                } else {
                    s.ua.extend_from_slice(b"AWS Internal");
                }
            } else {
                s.key.extend_from_slice(person.access_key.as_bytes());
                if p.chan == Chan::Terraform {
                    s.ua.extend_from_slice(TF_UA_HEAD);
                    s.ua.extend_from_slice(meta.api.as_bytes());
                    s.ua.extend_from_slice(b"#1.32.0");
                } else {
                    s.ua.extend_from_slice(CLI_UA_HEAD);
                    s.ua.extend_from_slice(person.cli_os.as_bytes());
                    s.ua.extend_from_slice(CLI_UA_MID);
                    s.ua.extend_from_slice(meta.cli.as_bytes());
                }
            }
            push_request_id(&mut s.rid, &meta, rng);
            let ctx = Ctx {
                org,
                acct_idx: person.account,
                acct,
                region,
                app: any_app(rng),
                time: p.time,
                user: &person.name,
            };
            fill(p.op, &ctx, rng, s);
            if s.host.is_empty() {
                push_host(&mut s.host, &meta, region);
            }
            let failed = p.op.may_fail() && rng.gen_bool(0.015);
            if failed {
                push_denied(&mut s.err, &meta, person.arn.as_bytes());
                s.resp.clear();
            }
            let key = std::str::from_utf8(&s.key).unwrap_or("");
            push_record(
                out,
                &Rec {
                    version: meta.version,
                    ident: Ident::User {
                        account: acct,
                        name: &person.name,
                        arn: &person.arn,
                        principal_id: &person.principal_id,
                        key,
                        console: console.then_some((p.ctx, true)),
                    },
                    time: p.time,
                    source: meta.source,
                    name: meta.name,
                    region,
                    ip,
                    ua: &s.ua,
                    error: failed.then(|| (denied_code(&meta), s.err.as_slice())),
                    request: &s.req,
                    response: &s.resp,
                    additional: &s.add,
                    request_id: &s.rid,
                    event_id: &s.eid,
                    read_only: meta.read_only,
                    resources: &s.res,
                    event_type: "AwsApiCall",
                    management: !meta.data,
                    recipient: acct,
                    shared_event_id: b"",
                    vpce: None,
                    category: if meta.data { "Data" } else { "Management" },
                    tls_host: &s.host,
                    tls13: true,
                    from_console: console,
                },
            );
            (person.account, region)
        } else if actor < people + roles {
            let ri = actor - people;
            let Some(role) = org.roles.get(ri) else {
                return (0, "us-east-1");
            };
            let region = if meta.global {
                "us-east-1"
            } else {
                role.region
            };
            let acct = org.account_id(role.account);
            let ci = matches!(role.kind, RoleKind::CiDeploy | RoleKind::CiPlan);
            let pick_h = if ci {
                u64::from(p.aux)
            } else {
                mix(u64::from(p.aux))
            };
            let session = role
                .sessions
                .get((pick_h % role.sessions.len().max(1) as u64) as usize)
                .map(String::as_str)
                .unwrap_or("session");
            push_aws_id(
                &mut s.key,
                "ASIA",
                hash(&[org.seed, 51, ri as u64, u64::from(p.aux)]),
            );
            let ip = role
                .ips
                .get((mix(u64::from(p.aux) ^ 7) % role.ips.len().max(1) as u64) as usize)
                .map(String::as_str)
                .unwrap_or("10.0.0.1");
            push_sdk_ua(
                &mut s.ua,
                role.sdk,
                meta.api,
                meta.cli,
                role.kind == RoleKind::Lambda,
            );
            push_request_id(&mut s.rid, &meta, rng);
            let app = if rng.gen_bool(0.85) {
                role.app
            } else {
                any_app(rng)
            };
            let ctx = Ctx {
                org,
                acct_idx: role.account,
                acct,
                region,
                app,
                time: p.time,
                user: "",
            };
            fill(p.op, &ctx, rng, s);
            if s.host.is_empty() {
                push_host(&mut s.host, &meta, region);
            }
            let failed = p.op.may_fail() && rng.gen_bool(0.002);
            if failed {
                self.caller.extend_from_slice(b"arn:aws:sts::");
                self.caller.extend_from_slice(acct.as_bytes());
                self.caller.extend_from_slice(b":assumed-role/");
                self.caller.extend_from_slice(role.name.as_bytes());
                self.caller.push(b'/');
                self.caller.extend_from_slice(session.as_bytes());
                push_denied(&mut s.err, &meta, &self.caller);
                s.resp.clear();
            }
            let key = std::str::from_utf8(&s.key).unwrap_or("");
            push_record(
                out,
                &Rec {
                    version: meta.version,
                    ident: Ident::Role {
                        account: acct,
                        role_name: &role.name,
                        role_arn: &role.arn,
                        role_id: &role.role_id,
                        session,
                        key,
                        creation: p.ctx,
                        ec2: matches!(role.kind, RoleKind::Ec2App | RoleKind::Etl),
                        source_identity: None,
                    },
                    time: p.time,
                    source: meta.source,
                    name: meta.name,
                    region,
                    ip,
                    ua: &s.ua,
                    error: failed.then(|| (denied_code(&meta), s.err.as_slice())),
                    request: &s.req,
                    response: &s.resp,
                    additional: &s.add,
                    request_id: &s.rid,
                    event_id: &s.eid,
                    read_only: meta.read_only,
                    resources: &s.res,
                    event_type: "AwsApiCall",
                    management: !meta.data,
                    recipient: acct,
                    shared_event_id: b"",
                    vpce: role.vpce.as_deref().map(|v| (v, acct)),
                    category: if meta.data { "Data" } else { "Management" },
                    tls_host: &s.host,
                    tls13: !matches!(role.sdk, Sdk::Java),
                    from_console: false,
                },
            );
            (role.account, region)
        } else {
            let si = actor - people - roles;
            let Some(sv) = org.services.get(si) else {
                return (0, "us-east-1");
            };
            let target = sv.targets.get(p.aux as usize);
            // A service acts in the account of the role it assumes.
            let acct_idx = target
                .and_then(|(arn, _)| arn.split(':').nth(4))
                .and_then(|id| org.accounts.iter().position(|a| a.id == id))
                .unwrap_or(sv.account);
            let acct = org.account_id(acct_idx);
            let region = org.home_region(acct_idx);
            push_request_id(&mut s.rid, &meta, rng);
            if p.op == Op::AssumeRole {
                let (role_arn, session) = target
                    .map(|(a, s)| (a.as_str(), s.as_str()))
                    .unwrap_or(("arn:aws:iam::111122223333:role/service", "service"));
                fill_assume_role(s, acct, role_arn, session, p.time, rng);
            } else {
                let ctx = Ctx {
                    org,
                    acct_idx,
                    acct,
                    region,
                    app: "orders",
                    time: p.time,
                    user: "",
                };
                fill(p.op, &ctx, rng, s);
            }
            push_record(
                out,
                &Rec {
                    version: meta.version,
                    ident: Ident::Service {
                        invoked_by: sv.invoked_by,
                    },
                    time: p.time,
                    source: meta.source,
                    name: meta.name,
                    region,
                    ip: sv.invoked_by,
                    ua: sv.invoked_by.as_bytes(),
                    error: None,
                    request: &s.req,
                    response: &s.resp,
                    additional: &s.add,
                    request_id: &s.rid,
                    event_id: &s.eid,
                    read_only: meta.read_only,
                    resources: &s.res,
                    event_type: "AwsApiCall",
                    management: true,
                    recipient: acct,
                    shared_event_id: &s.shared,
                    vpce: None,
                    category: "Management",
                    tls_host: b"",
                    tls13: true,
                    from_console: false,
                },
            );
            (acct_idx, region)
        }
    }
}

const WINDOW: i64 = 5 * MINUTE;

/// Where finished files go: kept in memory, or written to disk as soon as
/// they are done.
pub(crate) type Sink<'s> = &'s mut dyn FnMut(GeneratedFile) -> std::io::Result<()>;

/// One delivery file being filled.
struct OpenFile {
    buf: Vec<u8>,
    spans: Vec<(usize, usize)>,
    newest: i64,
}

/// A closed file waiting to be compressed: (path, newest event time, JSON).
type Pending = (String, i64, Vec<u8>);

/// Groups records into CloudTrail delivery files per account, region and
/// five-minute window, compresses them and hands them to a sink.
pub(crate) struct TrailFiles<'a, 's> {
    org: &'a Org,
    gzip: bool,
    open: BTreeMap<(i64, usize, &'static str), OpenFile>,
    pending: Vec<Pending>,
    pending_bytes: usize,
    sink: Sink<'s>,
    error: Option<std::io::Error>,
    /// Records written.
    pub records: u64,
    /// Uncompressed bytes of records written.
    pub record_bytes: u64,
}

impl<'a, 's> TrailFiles<'a, 's> {
    /// An empty set of files.
    pub fn new(org: &'a Org, gzip: bool, sink: Sink<'s>) -> Self {
        Self {
            org,
            gzip,
            open: BTreeMap::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            sink,
            error: None,
            records: 0,
            record_bytes: 0,
        }
    }

    /// Adds one record, delivered `delay` after its event time.
    pub fn add(&mut self, time: i64, delay: i64, account: usize, region: &'static str, rec: &[u8]) {
        let window = (time + delay).div_euclid(WINDOW);
        let file = self
            .open
            .entry((window, account, region))
            .or_insert_with(|| OpenFile {
                buf: Vec::with_capacity(256 * 1024),
                spans: Vec::with_capacity(256),
                newest: time,
            });
        let start = file.buf.len();
        file.buf.extend_from_slice(rec);
        file.spans.push((start, file.buf.len()));
        file.newest = file.newest.max(time);
        self.records += 1;
        self.record_bytes += rec.len() as u64;
    }

    /// Closes every file whose window ends before the one holding `time`.
    pub fn flush_before(&mut self, time: i64) {
        let window = time.div_euclid(WINDOW);
        while let Some(entry) = self.open.first_entry() {
            if entry.key().0 >= window {
                break;
            }
            let (key, file) = entry.remove_entry();
            self.close(key, file);
        }
    }

    fn close(&mut self, key: (i64, usize, &'static str), mut file: OpenFile) {
        let (window, account, region) = key;
        let acct = self.org.account_id(account).to_string();
        let h = hash(&[
            self.org.seed,
            60,
            window as u64,
            account as u64,
            str_hash(region),
        ]);
        // CloudTrail files are only roughly in time order: swap some neighbours.
        let mut rng = SmallRng::seed_from_u64(h);
        for i in 1..file.spans.len() {
            if rng.gen_bool(0.2) {
                file.spans.swap(i - 1, i);
            }
        }
        let mut out = Vec::with_capacity(file.buf.len() + file.spans.len() + 16);
        out.extend_from_slice(b"{\"Records\":[");
        for (i, (a, b)) in file.spans.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(file.buf.get(*a..*b).unwrap_or(&[]));
        }
        out.extend_from_slice(b"]}");
        let end = (window + 1) * WINDOW;
        let days = end.div_euclid(DAY);
        let (y, m, d) = civil_from_days(days);
        let sod = end.rem_euclid(DAY) / SECOND;
        let path = format!(
            "AWSLogs/{acct}/CloudTrail/{region}/{y:04}/{m:02}/{d:02}/{acct}_CloudTrail_{region}_{y:04}{m:02}{d:02}T{:02}{:02}Z_{}.json{}",
            sod / 3600,
            sod / 60 % 60,
            alnum(16, mix(h)),
            if self.gzip { ".gz" } else { "" }
        );
        self.pending_bytes += out.len();
        self.pending.push((path, file.newest, out));
        if self.pending_bytes > 48 * 1024 * 1024 {
            self.compress_pending();
        }
    }

    fn compress_pending(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let files: Vec<GeneratedFile> = if self.gzip {
            let threads = std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .clamp(1, 8);
            let chunk = pending.len().div_ceil(threads).max(1);
            let compressed: Vec<Vec<GeneratedFile>> = std::thread::scope(|scope| {
                let handles: Vec<_> = pending
                    .chunks(chunk)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|(path, newest, bytes)| GeneratedFile {
                                    path: path.clone(),
                                    bytes: gzip(bytes),
                                    newest: *newest,
                                })
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            compressed.into_iter().flatten().collect()
        } else {
            pending
                .into_iter()
                .map(|(path, newest, bytes)| GeneratedFile {
                    path,
                    bytes,
                    newest,
                })
                .collect()
        };
        for f in files {
            if self.error.is_some() {
                break;
            }
            if let Err(e) = (self.sink)(f) {
                self.error = Some(e);
            }
        }
    }

    /// Closes every open file and hands everything left to the sink.
    /// Returns (records, record bytes), or the sink's first error.
    pub fn finish(mut self) -> std::io::Result<(u64, u64)> {
        self.flush_before(i64::MAX);
        self.compress_pending();
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok((self.records, self.record_bytes)),
        }
    }

    /// Whether the sink failed (writing more is pointless then).
    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Compresses bytes with gzip.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(bytes.len() / 8), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// Writes all background records for the span plus the injected records
/// into delivery files, handing each finished file to `sink`. Returns
/// (records, record bytes).
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_trail(
    org: &Org,
    start: i64,
    end: i64,
    epd: u32,
    gzip_files: bool,
    mut injected: Vec<Injected>,
    sink: Sink<'_>,
) -> std::io::Result<(u64, u64)> {
    injected.sort_by_key(|i| i.time);
    let mut injected = injected.into_iter().peekable();
    let mut files = TrailFiles::new(org, gzip_files, sink);
    let mut renderer = Renderer {
        org,
        rng: SmallRng::seed_from_u64(hash(&[org.seed, 3])),
        s: Scratch::default(),
        caller: Vec::new(),
    };
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut plan = Vec::new();
    let first_day = start.div_euclid(DAY);
    let last_day = (end - 1).div_euclid(DAY);
    let add_injected = |files: &mut TrailFiles<'_, '_>, inj: Injected| {
        let delay = (hash(&[org.seed, 61, inj.time as u64]) % 120) as i64 * SECOND;
        files.add(inj.time, delay, inj.account, inj.region, &inj.bytes);
    };
    for day in first_day..=last_day {
        if files.failed() {
            break;
        }
        plan.clear();
        for pi in 0..org.people.len() {
            for local in day - 1..=day + 1 {
                plan_person(org, epd, pi, local, &mut plan);
            }
        }
        for ri in 0..org.roles.len() {
            plan_role(org, epd, ri, day, &mut plan);
        }
        for si in 0..org.services.len() {
            plan_service(org, epd, si, day, &mut plan);
        }
        let lo = (day * DAY).max(start);
        let hi = ((day + 1) * DAY).min(end);
        plan.retain(|p| p.time >= lo && p.time < hi);
        plan.sort_by_key(|p| p.time);
        for p in &plan {
            while let Some(inj) = injected.next_if(|i| i.time <= p.time) {
                add_injected(&mut files, inj);
            }
            buf.clear();
            let (account, region) = renderer.render(p, &mut buf);
            let delay = (exp(&mut renderer.rng, 40.0 * SECOND as f64) as i64).min(4 * MINUTE);
            files.add(p.time, delay, account, region, &buf);
            files.flush_before(p.time);
        }
    }
    for inj in injected {
        add_injected(&mut files, inj);
    }
    files.finish()
}
