//! The access gateway's linked role: a gateway user who runs the AWS CLI on
//! a bastion host calls AWS as the role `gateway-ops`, assumed for them with
//! their login as both the session name and the source identity (as
//! Teleport's AWS access does). Benign users do it for ordinary reads; the
//! `gateway-then-iam-via-linked-role` scenario does it for IAM changes.
//!
//! The calls are written as records merged into the trail like a
//! scenario's, derived from the sessions that hold the commands, so that
//! command lines and API calls line up in time and by login.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::cloudtrail::Injected;
use super::ops::{Ctx, Op, Scratch, fill, push_host, push_request_id};
use super::org::{Org, Role, str_hash};
use super::record::{Ident, Rec, push_record};
use super::sessions::Session;
use super::util::{SECOND, aws_id, hash, push_uuid};

/// Benign AWS CLI commands run on bastions: (command, output), with
/// `{user}` and `{app}` filled in. Which calls each makes is [`ops_for`].
pub(crate) const AWS_COMMANDS: &[(&str, &str)] = &[
    (
        "aws sts get-caller-identity",
        "{\r\n    \"UserId\": \"AROA:{user}\",\r\n    \"Account\": \"111122223333\",\r\n    \"Arn\": \"arn:aws:sts::111122223333:assumed-role/gateway-ops/{user}\"\r\n}\r\n",
    ),
    (
        "aws s3 ls s3://acme-{app}-artifacts/builds/{app}/",
        "2026-10-30 16:02:11   18234112 3f2a91c.zip\r\n2026-11-01 09:40:52   18240001 8b7d0e4.zip\r\n",
    ),
    (
        "aws ec2 describe-instances --filters Name=tag:app,Values={app} --output table",
        "-----------------------------------\r\n|        DescribeInstances        |\r\n+---------------------------------+\r\n",
    ),
    (
        "aws ecs describe-services --cluster prod --services {app}-api",
        "{\r\n    \"services\": [\r\n        {\r\n            \"serviceName\": \"{app}-api\",\r\n            \"status\": \"ACTIVE\",\r\n            \"desiredCount\": 3\r\n        }\r\n    ]\r\n}\r\n",
    ),
    (
        "aws logs filter-log-events --log-group-name /ecs/{app}-api --filter-pattern ERROR",
        "{\r\n    \"events\": [],\r\n    \"searchedLogStreams\": []\r\n}\r\n",
    ),
    (
        "aws eks update-kubeconfig --name prod-eks",
        "Updated context arn:aws:eks:us-east-1:111122223333:cluster/prod-eks in /home/{user}/.kube/config\r\n",
    ),
    (
        "aws cloudwatch describe-alarms --alarm-name-prefix {app}-",
        "{\r\n    \"MetricAlarms\": [],\r\n    \"CompositeAlarms\": []\r\n}\r\n",
    ),
];

/// The calls a benign AWS CLI command line makes (none for anything else).
pub(crate) fn ops_for(command: &str) -> &'static [Op] {
    let mut words = command.split_whitespace();
    if words.next() != Some("aws") {
        return &[];
    }
    match (words.next(), words.next()) {
        (Some("sts"), Some("get-caller-identity")) => &[Op::GetCallerIdentity],
        (Some("s3"), Some("ls")) => &[Op::S3ListObjects],
        (Some("ec2"), Some("describe-instances")) => &[Op::Ec2DescribeInstances],
        (Some("ecs"), Some("describe-services")) => &[Op::EcsDescribeServices],
        (Some("logs"), Some("filter-log-events")) => &[Op::LogsFilterLogEvents],
        (Some("eks"), Some("update-kubeconfig")) => &[Op::EksDescribeCluster],
        (Some("cloudwatch"), Some("describe-alarms")) => &[Op::CwDescribeAlarms],
        _ => &[],
    }
}

/// The AWS CLI user agent on a bastion, for the CLI command `cli`
/// (`iam.create-user`).
pub(crate) fn cli_user_agent(cli: &str) -> String {
    format!(
        "aws-cli/2.18.10 md/awscrt#0.22.0 ua/2.0 os/linux#6.8.0-1016-aws md/arch#x86_64 lang/python#3.12.6 md/pyimpl#CPython cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#{cli}"
    )
}

/// The temporary key the gateway got for one session's linked-role use.
pub(crate) fn session_key(seed: u64, session_id: &str) -> String {
    aws_id("ASIA", hash(&[seed, 621, str_hash(session_id)]))
}

/// One call made through the linked role.
pub(crate) struct LinkedCall<'a> {
    /// The gateway login: session name and source identity.
    pub login: &'a str,
    /// The bastion's address (it reaches AWS through a VPC endpoint).
    pub ip: &'a str,
    /// Event time.
    pub time: i64,
    /// When the role was assumed for the session.
    pub creation: i64,
    /// The session's `ASIA...` key.
    pub key: &'a str,
    /// `eventSource`.
    pub source: &'a str,
    /// `eventName`.
    pub name: &'a str,
    /// `eventVersion`.
    pub version: &'a str,
    /// `readOnly`.
    pub read_only: bool,
    /// A data event (S3 object-level) rather than a management event.
    pub data: bool,
    /// The user agent.
    pub ua: &'a str,
    /// The event id.
    pub event_id: &'a [u8],
}

/// Writes one linked-role record; `s` holds its request, response,
/// additional data, resources, request id and TLS host.
pub(crate) fn record(org: &Org, role: &Role, c: &LinkedCall<'_>, s: &Scratch) -> Injected {
    let acct = org.account_id(role.account);
    let region = if c.source == "iam.amazonaws.com" {
        "us-east-1"
    } else {
        role.region
    };
    let mut bytes = Vec::with_capacity(2048);
    push_record(
        &mut bytes,
        &Rec {
            version: c.version,
            ident: Ident::Role {
                account: acct,
                role_name: &role.name,
                role_arn: &role.arn,
                role_id: &role.role_id,
                session: c.login,
                key: c.key,
                creation: c.creation,
                ec2: false,
                source_identity: Some(c.login),
            },
            time: c.time,
            source: c.source,
            name: c.name,
            region,
            ip: c.ip,
            ua: c.ua.as_bytes(),
            error: None,
            request: &s.req,
            response: &s.resp,
            additional: &s.add,
            request_id: &s.rid,
            event_id: c.event_id,
            read_only: c.read_only,
            resources: &s.res,
            event_type: "AwsApiCall",
            management: !c.data,
            recipient: acct,
            shared_event_id: b"",
            vpce: role.vpce.as_deref().map(|v| (v, acct)),
            category: if c.data { "Data" } else { "Management" },
            tls_host: &s.host,
            tls13: true,
            from_console: false,
        },
    );
    Injected {
        time: c.time,
        account: role.account,
        region,
        bytes,
    }
}

/// The linked-role calls of benign sessions: one or more per AWS CLI
/// command line, a moment after Enter.
pub(crate) fn background_calls(org: &Org, sessions: &[Session]) -> Vec<Injected> {
    let Some(role) = org.linked() else {
        return Vec::new();
    };
    let acct = org.account_id(role.account);
    let mut out = Vec::new();
    let mut s = Scratch::default();
    for session in sessions {
        let first_aws = session
            .cmds
            .iter()
            .find(|c| !ops_for(&c.text).is_empty())
            .map(|c| c.enter);
        let Some(first_aws) = first_aws else {
            continue;
        };
        let mut rng = SmallRng::seed_from_u64(hash(&[org.seed, 620, str_hash(&session.id)]));
        let key = session_key(org.seed, &session.id);
        let creation = first_aws - SECOND;
        let app = session
            .cmds
            .iter()
            .find_map(|c| app_of(&c.text))
            .unwrap_or(role.app);
        for cmd in &session.cmds {
            let mut time = cmd.enter + rng.gen_range(300_000..1_500_000);
            for op in ops_for(&cmd.text) {
                let meta = op.meta();
                let region = if meta.global {
                    "us-east-1"
                } else {
                    role.region
                };
                s.clear();
                let mut event_id = Vec::with_capacity(36);
                push_uuid(&mut event_id, &mut rng);
                push_request_id(&mut s.rid, &meta, &mut rng);
                let ctx = Ctx {
                    org,
                    acct_idx: role.account,
                    acct,
                    region,
                    app,
                    time,
                    user: "",
                };
                fill(*op, &ctx, &mut rng, &mut s);
                if s.host.is_empty() {
                    push_host(&mut s.host, &meta, region);
                }
                let ua = cli_user_agent(meta.cli);
                out.push(record(
                    org,
                    role,
                    &LinkedCall {
                        login: &session.user,
                        ip: &session.host_ip,
                        time,
                        creation,
                        key: &key,
                        source: meta.source,
                        name: meta.name,
                        version: meta.version,
                        read_only: meta.read_only,
                        data: meta.data,
                        ua: &ua,
                        event_id: &event_id,
                    },
                    &s,
                ));
                time += rng.gen_range(100_000..800_000);
            }
        }
    }
    out
}

/// The application a command line names (`{app}-api`, `acme-{app}-...`).
fn app_of(command: &str) -> Option<&'static str> {
    super::org::APPS
        .iter()
        .copied()
        .find(|app| command.contains(&format!("{app}-")) || command.contains(&format!("/{app}/")))
}
