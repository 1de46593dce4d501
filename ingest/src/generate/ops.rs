//! The API calls background principals make: for each, where it goes, how
//! it is logged, and how its request, response and resources look.

use rand::Rng;
use rand::rngs::SmallRng;

use super::org::{Org, bucket, str_hash};
use super::record::push_resource;
use super::util::{
    DAY, HOUR, civil_from_days, hash, pick, push_aws_date, push_aws_id, push_b64, push_escaped,
    push_hex, push_hex_upper, push_i64, push_kv, push_time, push_u64, push_uuid,
};

/// A background API call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(missing_docs)]
pub(crate) enum Op {
    GetCallerIdentity,
    AssumeRole,
    S3GetObject,
    S3PutObject,
    S3ListObjects,
    S3ListBuckets,
    S3GetBucketAcl,
    Ec2DescribeInstances,
    Ec2DescribeSecurityGroups,
    Ec2DescribeVpcs,
    Ec2DescribeSubnets,
    Ec2DescribeVolumes,
    Ec2CreateTags,
    Ec2AuthorizeInternal,
    IamGetUser,
    IamListRoles,
    IamGetRole,
    IamListAttachedRolePolicies,
    IamGetPolicyVersion,
    IamListAccessKeys,
    IamCreateOwnAccessKey,
    LambdaListFunctions,
    LambdaGetFunction,
    LambdaUpdateFunctionCode,
    KmsDecrypt,
    KmsGenerateDataKey,
    KmsDescribeKey,
    LogsDescribeLogGroups,
    LogsFilterLogEvents,
    LogsCreateLogStream,
    CwGetMetricData,
    CwDescribeAlarms,
    DdbDescribeTable,
    DdbGetItem,
    DdbPutItem,
    DdbQuery,
    SsmGetParameter,
    SsmGetParametersByPath,
    SecretsGetSecretValue,
    SecretsDescribeSecret,
    SecretsListSecrets,
    EcrGetAuthorizationToken,
    EcrPutImage,
    EcsDescribeServices,
    EcsUpdateService,
    EcsRegisterTaskDefinition,
    CfnDescribeStacks,
    EksDescribeCluster,
    EksListClusters,
    CtDescribeTrails,
    CtGetTrailStatus,
    CtLookupEvents,
    ConsoleLogin,
}

/// How an operation is logged.
pub(crate) struct Meta {
    /// `eventSource`.
    pub source: &'static str,
    /// Endpoint prefix (`ec2`, `api.ecr`, `monitoring`); empty for S3 and sign-in.
    pub host: &'static str,
    /// SDK API id for user agents (`api/ec2#...`).
    pub api: &'static str,
    /// IAM action prefix.
    pub prefix: &'static str,
    /// `eventName`.
    pub name: &'static str,
    /// IAM action name (differs from `eventName` for Lambda).
    pub action: &'static str,
    /// `readOnly`.
    pub read_only: bool,
    /// A data event rather than a management event.
    pub data: bool,
    /// A global service logged in us-east-1.
    pub global: bool,
    /// JSON protocol service (errors are `AccessDeniedException`).
    pub json: bool,
    /// AWS CLI command for `md/command#`.
    pub cli: &'static str,
    /// `eventVersion`.
    pub version: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn m(
    source: &'static str,
    host: &'static str,
    api: &'static str,
    prefix: &'static str,
    name: &'static str,
    action: &'static str,
    read_only: bool,
    flags: u8,
    cli: &'static str,
) -> Meta {
    Meta {
        source,
        host,
        api,
        prefix,
        name,
        action,
        read_only,
        data: flags & 1 != 0,
        global: flags & 2 != 0,
        json: flags & 4 != 0,
        cli,
        version: if flags & 8 != 0 { "1.08" } else { "1.09" },
    }
}

const DATA: u8 = 1;
const GLOBAL: u8 = 2;
const JSON: u8 = 4;
const OLD: u8 = 8;

impl Op {
    /// How this operation is logged.
    pub fn meta(self) -> Meta {
        use Op::*;
        let ec2 = |name, action, ro, cli| {
            m(
                "ec2.amazonaws.com",
                "ec2",
                "ec2",
                "ec2",
                name,
                action,
                ro,
                OLD,
                cli,
            )
        };
        let iam = |name, ro, cli| {
            m(
                "iam.amazonaws.com",
                "iam",
                "iam",
                "iam",
                name,
                name,
                ro,
                GLOBAL | OLD,
                cli,
            )
        };
        let s3 = |name, ro, flags, cli| {
            m(
                "s3.amazonaws.com",
                "",
                "s3",
                "s3",
                name,
                name,
                ro,
                flags,
                cli,
            )
        };
        match self {
            GetCallerIdentity => m(
                "sts.amazonaws.com",
                "sts",
                "sts",
                "sts",
                "GetCallerIdentity",
                "GetCallerIdentity",
                true,
                OLD,
                "sts.get-caller-identity",
            ),
            AssumeRole => m(
                "sts.amazonaws.com",
                "sts",
                "sts",
                "sts",
                "AssumeRole",
                "AssumeRole",
                true,
                OLD,
                "sts.assume-role",
            ),
            S3GetObject => s3("GetObject", true, DATA, "s3.cp"),
            S3PutObject => s3("PutObject", false, DATA, "s3.cp"),
            S3ListObjects => s3("ListObjects", true, DATA, "s3.ls"),
            S3ListBuckets => s3("ListBuckets", true, 0, "s3.ls"),
            S3GetBucketAcl => s3("GetBucketAcl", true, 0, "s3api.get-bucket-acl"),
            Ec2DescribeInstances => ec2(
                "DescribeInstances",
                "DescribeInstances",
                true,
                "ec2.describe-instances",
            ),
            Ec2DescribeSecurityGroups => ec2(
                "DescribeSecurityGroups",
                "DescribeSecurityGroups",
                true,
                "ec2.describe-security-groups",
            ),
            Ec2DescribeVpcs => ec2("DescribeVpcs", "DescribeVpcs", true, "ec2.describe-vpcs"),
            Ec2DescribeSubnets => ec2(
                "DescribeSubnets",
                "DescribeSubnets",
                true,
                "ec2.describe-subnets",
            ),
            Ec2DescribeVolumes => ec2(
                "DescribeVolumes",
                "DescribeVolumes",
                true,
                "ec2.describe-volumes",
            ),
            Ec2CreateTags => ec2("CreateTags", "CreateTags", false, "ec2.create-tags"),
            Ec2AuthorizeInternal => ec2(
                "AuthorizeSecurityGroupIngress",
                "AuthorizeSecurityGroupIngress",
                false,
                "ec2.authorize-security-group-ingress",
            ),
            IamGetUser => iam("GetUser", true, "iam.get-user"),
            IamListRoles => iam("ListRoles", true, "iam.list-roles"),
            IamGetRole => iam("GetRole", true, "iam.get-role"),
            IamListAttachedRolePolicies => iam(
                "ListAttachedRolePolicies",
                true,
                "iam.list-attached-role-policies",
            ),
            IamGetPolicyVersion => iam("GetPolicyVersion", true, "iam.get-policy-version"),
            IamListAccessKeys => iam("ListAccessKeys", true, "iam.list-access-keys"),
            IamCreateOwnAccessKey => iam("CreateAccessKey", false, "iam.create-access-key"),
            LambdaListFunctions => m(
                "lambda.amazonaws.com",
                "lambda",
                "lambda",
                "lambda",
                "ListFunctions20150331",
                "ListFunctions",
                true,
                0,
                "lambda.list-functions",
            ),
            LambdaGetFunction => m(
                "lambda.amazonaws.com",
                "lambda",
                "lambda",
                "lambda",
                "GetFunction20150331v2",
                "GetFunction",
                true,
                0,
                "lambda.get-function",
            ),
            LambdaUpdateFunctionCode => m(
                "lambda.amazonaws.com",
                "lambda",
                "lambda",
                "lambda",
                "UpdateFunctionCode20150331v2",
                "UpdateFunctionCode",
                false,
                0,
                "lambda.update-function-code",
            ),
            KmsDecrypt => m(
                "kms.amazonaws.com",
                "kms",
                "kms",
                "kms",
                "Decrypt",
                "Decrypt",
                true,
                JSON | OLD,
                "kms.decrypt",
            ),
            KmsGenerateDataKey => m(
                "kms.amazonaws.com",
                "kms",
                "kms",
                "kms",
                "GenerateDataKey",
                "GenerateDataKey",
                true,
                JSON | OLD,
                "kms.generate-data-key",
            ),
            KmsDescribeKey => m(
                "kms.amazonaws.com",
                "kms",
                "kms",
                "kms",
                "DescribeKey",
                "DescribeKey",
                true,
                JSON | OLD,
                "kms.describe-key",
            ),
            LogsDescribeLogGroups => m(
                "logs.amazonaws.com",
                "logs",
                "cloudwatchlogs",
                "logs",
                "DescribeLogGroups",
                "DescribeLogGroups",
                true,
                JSON,
                "logs.describe-log-groups",
            ),
            LogsFilterLogEvents => m(
                "logs.amazonaws.com",
                "logs",
                "cloudwatchlogs",
                "logs",
                "FilterLogEvents",
                "FilterLogEvents",
                true,
                JSON,
                "logs.filter-log-events",
            ),
            LogsCreateLogStream => m(
                "logs.amazonaws.com",
                "logs",
                "cloudwatchlogs",
                "logs",
                "CreateLogStream",
                "CreateLogStream",
                false,
                JSON,
                "logs.create-log-stream",
            ),
            CwGetMetricData => m(
                "monitoring.amazonaws.com",
                "monitoring",
                "cloudwatch",
                "cloudwatch",
                "GetMetricData",
                "GetMetricData",
                true,
                0,
                "cloudwatch.get-metric-data",
            ),
            CwDescribeAlarms => m(
                "monitoring.amazonaws.com",
                "monitoring",
                "cloudwatch",
                "cloudwatch",
                "DescribeAlarms",
                "DescribeAlarms",
                true,
                0,
                "cloudwatch.describe-alarms",
            ),
            DdbDescribeTable => m(
                "dynamodb.amazonaws.com",
                "dynamodb",
                "dynamodb",
                "dynamodb",
                "DescribeTable",
                "DescribeTable",
                true,
                JSON | OLD,
                "dynamodb.describe-table",
            ),
            DdbGetItem => m(
                "dynamodb.amazonaws.com",
                "dynamodb",
                "dynamodb",
                "dynamodb",
                "GetItem",
                "GetItem",
                true,
                DATA | JSON,
                "dynamodb.get-item",
            ),
            DdbPutItem => m(
                "dynamodb.amazonaws.com",
                "dynamodb",
                "dynamodb",
                "dynamodb",
                "PutItem",
                "PutItem",
                false,
                DATA | JSON,
                "dynamodb.put-item",
            ),
            DdbQuery => m(
                "dynamodb.amazonaws.com",
                "dynamodb",
                "dynamodb",
                "dynamodb",
                "Query",
                "Query",
                true,
                DATA | JSON,
                "dynamodb.query",
            ),
            SsmGetParameter => m(
                "ssm.amazonaws.com",
                "ssm",
                "ssm",
                "ssm",
                "GetParameter",
                "GetParameter",
                true,
                JSON | OLD,
                "ssm.get-parameter",
            ),
            SsmGetParametersByPath => m(
                "ssm.amazonaws.com",
                "ssm",
                "ssm",
                "ssm",
                "GetParametersByPath",
                "GetParametersByPath",
                true,
                JSON | OLD,
                "ssm.get-parameters-by-path",
            ),
            SecretsGetSecretValue => m(
                "secretsmanager.amazonaws.com",
                "secretsmanager",
                "secretsmanager",
                "secretsmanager",
                "GetSecretValue",
                "GetSecretValue",
                true,
                JSON,
                "secretsmanager.get-secret-value",
            ),
            SecretsDescribeSecret => m(
                "secretsmanager.amazonaws.com",
                "secretsmanager",
                "secretsmanager",
                "secretsmanager",
                "DescribeSecret",
                "DescribeSecret",
                true,
                JSON,
                "secretsmanager.describe-secret",
            ),
            SecretsListSecrets => m(
                "secretsmanager.amazonaws.com",
                "secretsmanager",
                "secretsmanager",
                "secretsmanager",
                "ListSecrets",
                "ListSecrets",
                true,
                JSON,
                "secretsmanager.list-secrets",
            ),
            EcrGetAuthorizationToken => m(
                "ecr.amazonaws.com",
                "api.ecr",
                "ecr",
                "ecr",
                "GetAuthorizationToken",
                "GetAuthorizationToken",
                true,
                JSON | OLD,
                "ecr.get-login-password",
            ),
            EcrPutImage => m(
                "ecr.amazonaws.com",
                "api.ecr",
                "ecr",
                "ecr",
                "PutImage",
                "PutImage",
                false,
                JSON | OLD,
                "ecr.put-image",
            ),
            EcsDescribeServices => m(
                "ecs.amazonaws.com",
                "ecs",
                "ecs",
                "ecs",
                "DescribeServices",
                "DescribeServices",
                true,
                JSON,
                "ecs.describe-services",
            ),
            EcsUpdateService => m(
                "ecs.amazonaws.com",
                "ecs",
                "ecs",
                "ecs",
                "UpdateService",
                "UpdateService",
                false,
                JSON,
                "ecs.update-service",
            ),
            EcsRegisterTaskDefinition => m(
                "ecs.amazonaws.com",
                "ecs",
                "ecs",
                "ecs",
                "RegisterTaskDefinition",
                "RegisterTaskDefinition",
                false,
                JSON,
                "ecs.register-task-definition",
            ),
            CfnDescribeStacks => m(
                "cloudformation.amazonaws.com",
                "cloudformation",
                "cloudformation",
                "cloudformation",
                "DescribeStacks",
                "DescribeStacks",
                true,
                OLD,
                "cloudformation.describe-stacks",
            ),
            EksDescribeCluster => m(
                "eks.amazonaws.com",
                "eks",
                "eks",
                "eks",
                "DescribeCluster",
                "DescribeCluster",
                true,
                JSON,
                "eks.describe-cluster",
            ),
            EksListClusters => m(
                "eks.amazonaws.com",
                "eks",
                "eks",
                "eks",
                "ListClusters",
                "ListClusters",
                true,
                JSON,
                "eks.list-clusters",
            ),
            CtDescribeTrails => m(
                "cloudtrail.amazonaws.com",
                "cloudtrail",
                "cloudtrail",
                "cloudtrail",
                "DescribeTrails",
                "DescribeTrails",
                true,
                JSON,
                "cloudtrail.describe-trails",
            ),
            CtGetTrailStatus => m(
                "cloudtrail.amazonaws.com",
                "cloudtrail",
                "cloudtrail",
                "cloudtrail",
                "GetTrailStatus",
                "GetTrailStatus",
                true,
                JSON,
                "cloudtrail.get-trail-status",
            ),
            CtLookupEvents => m(
                "cloudtrail.amazonaws.com",
                "cloudtrail",
                "cloudtrail",
                "cloudtrail",
                "LookupEvents",
                "LookupEvents",
                true,
                JSON,
                "cloudtrail.lookup-events",
            ),
            ConsoleLogin => m(
                "signin.amazonaws.com",
                "",
                "signin",
                "signin",
                "ConsoleLogin",
                "ConsoleLogin",
                false,
                GLOBAL,
                "",
            ),
        }
    }

    /// Whether a background call of this kind may fail with AccessDenied.
    pub fn may_fail(self) -> bool {
        !matches!(
            self,
            Op::ConsoleLogin
                | Op::GetCallerIdentity
                | Op::AssumeRole
                | Op::IamCreateOwnAccessKey
                | Op::S3GetBucketAcl
                | Op::LogsCreateLogStream
        )
    }
}

/// Reusable buffers for one record's fragments.
#[derive(Default)]
pub(crate) struct Scratch {
    /// requestParameters.
    pub req: Vec<u8>,
    /// responseElements.
    pub resp: Vec<u8>,
    /// additionalEventData.
    pub add: Vec<u8>,
    /// resources.
    pub res: Vec<u8>,
    /// userAgent.
    pub ua: Vec<u8>,
    /// requestID.
    pub rid: Vec<u8>,
    /// eventID.
    pub eid: Vec<u8>,
    /// accessKeyId.
    pub key: Vec<u8>,
    /// TLS host header.
    pub host: Vec<u8>,
    /// errorMessage.
    pub err: Vec<u8>,
    /// sharedEventID.
    pub shared: Vec<u8>,
    /// Anything else.
    pub tmp: Vec<u8>,
}

impl Scratch {
    /// Empties every buffer, keeping capacity.
    pub fn clear(&mut self) {
        for b in [
            &mut self.req,
            &mut self.resp,
            &mut self.add,
            &mut self.res,
            &mut self.ua,
            &mut self.rid,
            &mut self.eid,
            &mut self.key,
            &mut self.host,
            &mut self.err,
            &mut self.shared,
            &mut self.tmp,
        ] {
            b.clear();
        }
    }
}

/// What a call is about: where, when, for which app, by whom.
pub(crate) struct Ctx<'a> {
    /// The organisation.
    pub org: &'a Org,
    /// Index of the account.
    pub acct_idx: usize,
    /// Account id.
    pub acct: &'a str,
    /// Region.
    pub region: &'a str,
    /// App whose resources are touched.
    pub app: &'static str,
    /// Event time.
    pub time: i64,
    /// The IAM user name of the caller (empty for roles).
    pub user: &'a str,
}

/// Writes the endpoint host for a call into `s.host`.
pub(crate) fn push_host(s: &mut Vec<u8>, meta: &Meta, region: &str) {
    if meta.global {
        s.extend_from_slice(meta.host.as_bytes());
        s.extend_from_slice(b".amazonaws.com");
    } else {
        s.extend_from_slice(meta.host.as_bytes());
        s.push(b'.');
        s.extend_from_slice(region.as_bytes());
        s.extend_from_slice(b".amazonaws.com");
    }
}

/// Appends S3's `additionalEventData` (signature, TLS, bytes in and out).
pub(crate) fn push_s3_additional(buf: &mut Vec<u8>, h: u64, bytes_in: u64, bytes_out: u64) {
    buf.extend_from_slice(
        b"{\"SignatureVersion\":\"SigV4\",\"CipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"bytesTransferredIn\":",
    );
    push_u64(buf, bytes_in);
    buf.extend_from_slice(b",\"AuthenticationMethod\":\"AuthHeader\",\"x-amz-id-2\":\"");
    push_b64(buf, 76, h);
    buf.extend_from_slice(b"\",\"bytesTransferredOut\":");
    push_u64(buf, bytes_out);
    buf.push(b'}');
}

/// Appends a plausible object key; returns the range its size falls in.
fn push_s3_key(buf: &mut Vec<u8>, rng: &mut SmallRng, app: &str, time: i64) -> (u64, u64) {
    let (y, m, d) = civil_from_days(time.div_euclid(DAY));
    let date = |buf: &mut Vec<u8>| {
        push_u64(buf, y.max(0) as u64);
        for n in [m, d] {
            buf.push(b'/');
            buf.push(b'0' + (n / 10) as u8);
            buf.push(b'0' + (n % 10) as u8);
        }
    };
    match rng.gen_range(0..6) {
        0 => {
            buf.extend_from_slice(app.as_bytes());
            buf.extend_from_slice(b"/events/");
            date(buf);
            buf.extend_from_slice(b"/part-");
            push_u64(buf, rng.gen_range(10_000..10_400));
            buf.extend_from_slice(b".snappy.parquet");
            (500_000, 60_000_000)
        }
        1 => {
            buf.extend_from_slice(b"exports/");
            buf.extend_from_slice(app.as_bytes());
            buf.extend_from_slice(b"-report-");
            date(buf);
            buf.extend_from_slice(b".csv");
            (10_000, 5_000_000)
        }
        2 => {
            buf.extend_from_slice(b"builds/");
            buf.extend_from_slice(app.as_bytes());
            buf.push(b'/');
            push_hex(buf, 40, rng.r#gen());
            buf.extend_from_slice(b".zip");
            (1_000_000, 50_000_000)
        }
        3 => {
            buf.extend_from_slice(b"uploads/");
            push_hex(buf, 2, rng.r#gen());
            buf.push(b'/');
            push_hex(buf, 32, rng.r#gen());
            buf.extend_from_slice(b".jpg");
            (20_000, 3_000_000)
        }
        4 => {
            buf.extend_from_slice(b"logs/");
            buf.extend_from_slice(app.as_bytes());
            buf.push(b'/');
            date(buf);
            buf.extend_from_slice(b"/app-");
            push_u64(buf, rng.gen_range(0..24));
            buf.extend_from_slice(b".log.gz");
            (5_000, 2_000_000)
        }
        _ => {
            buf.extend_from_slice(b"config/");
            buf.extend_from_slice(app.as_bytes());
            buf.extend_from_slice(b"/settings.json");
            (300, 5_000)
        }
    }
}

fn push_bucket_resource(buf: &mut Vec<u8>, first: bool, acct: &str, b: &str) {
    let mut arn = Vec::with_capacity(64);
    arn.extend_from_slice(b"arn:aws:s3:::");
    arn.extend_from_slice(b.as_bytes());
    push_resource(buf, first, acct, "AWS::S3::Bucket", &arn);
}

fn push_kms_resource(buf: &mut Vec<u8>, c: &Ctx<'_>) {
    let mut arn = Vec::with_capacity(96);
    arn.extend_from_slice(b"arn:aws:kms:");
    arn.extend_from_slice(c.region.as_bytes());
    arn.push(b':');
    arn.extend_from_slice(c.acct.as_bytes());
    arn.extend_from_slice(b":key/");
    arn.extend_from_slice(c.org.kms_key(c.acct_idx, c.app).as_bytes());
    push_resource(buf, true, c.acct, "AWS::KMS::Key", &arn);
    buf.push(b']');
}

fn push_secret_arn(buf: &mut Vec<u8>, c: &Ctx<'_>) {
    buf.extend_from_slice(b"arn:aws:secretsmanager:");
    buf.extend_from_slice(c.region.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(c.acct.as_bytes());
    buf.extend_from_slice(b":secret:prod/");
    buf.extend_from_slice(c.app.as_bytes());
    buf.extend_from_slice(b"/db-");
    buf.extend_from_slice(c.org.secret_suffix(c.acct_idx, c.app).as_bytes());
}

fn push_filter(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(b"\"filterSet\":{\"items\":[{");
    push_kv(buf, "name", name);
    buf.extend_from_slice(b",\"valueSet\":{\"items\":[{");
    push_kv(buf, "value", value);
    buf.extend_from_slice(b"}]}}]}");
}

fn push_ms(buf: &mut Vec<u8>, micros: i64) {
    push_i64(buf, micros / 1000);
}

/// A role name the caller may look at.
fn some_role<'a>(c: &'a Ctx<'_>, rng: &mut SmallRng) -> &'a str {
    if c.org.roles.is_empty() {
        "ReadOnly"
    } else {
        let i = rng.gen_range(0..c.org.roles.len());
        c.org
            .roles
            .get(i)
            .map(|r| r.name.as_str())
            .unwrap_or("ReadOnly")
    }
}

/// Fills the request, response, additional data and resources of `op`.
pub(crate) fn fill(op: Op, c: &Ctx<'_>, rng: &mut SmallRng, s: &mut Scratch) {
    let req = &mut s.req;
    let resp = &mut s.resp;
    let add = &mut s.add;
    let res = &mut s.res;
    match op {
        Op::GetCallerIdentity | Op::LambdaListFunctions | Op::EcrGetAuthorizationToken => {}
        Op::AssumeRole => {
            // Background AssumeRole comes from services; see `fill_assume_role`.
        }
        Op::S3GetObject | Op::S3PutObject => {
            let b = bucket(c.acct, c.app, rng.gen_range(0..3));
            let mut key = std::mem::take(&mut s.tmp);
            key.clear();
            let (lo, hi) = push_s3_key(&mut key, rng, c.app, c.time);
            let key_str = std::str::from_utf8(&key).unwrap_or("");
            req.push(b'{');
            push_kv(req, "bucketName", &b);
            req.extend_from_slice(b",\"Host\":\"");
            req.extend_from_slice(b.as_bytes());
            req.extend_from_slice(b".s3.");
            req.extend_from_slice(c.region.as_bytes());
            req.extend_from_slice(b".amazonaws.com\",");
            push_kv(req, "key", key_str);
            if op == Op::S3PutObject {
                req.extend_from_slice(b",\"x-amz-server-side-encryption\":\"aws:kms\"");
            }
            req.push(b'}');
            s.host.extend_from_slice(b.as_bytes());
            s.host.extend_from_slice(b".s3.");
            s.host.extend_from_slice(c.region.as_bytes());
            s.host.extend_from_slice(b".amazonaws.com");
            let size = rng.gen_range(lo..hi);
            if op == Op::S3PutObject {
                push_s3_additional(add, rng.r#gen(), size, 0);
                resp.extend_from_slice(
                    b"{\"x-amz-server-side-encryption\":\"aws:kms\",\"x-amz-server-side-encryption-bucket-key-enabled\":\"true\",\"x-amz-server-side-encryption-aws-kms-key-id\":\"arn:aws:kms:",
                );
                resp.extend_from_slice(c.region.as_bytes());
                resp.push(b':');
                resp.extend_from_slice(c.acct.as_bytes());
                resp.extend_from_slice(b":key/");
                resp.extend_from_slice(c.org.kms_key(c.acct_idx, c.app).as_bytes());
                resp.extend_from_slice(b"\"}");
            } else {
                push_s3_additional(add, rng.r#gen(), 0, size);
            }
            let mut arn = Vec::with_capacity(128);
            arn.extend_from_slice(b"arn:aws:s3:::");
            arn.extend_from_slice(b.as_bytes());
            arn.push(b'/');
            arn.extend_from_slice(&key);
            push_resource(res, true, "", "AWS::S3::Object", &arn);
            push_bucket_resource(res, false, c.acct, &b);
            res.push(b']');
            s.tmp = key;
        }
        Op::S3ListObjects => {
            let b = bucket(c.acct, c.app, rng.gen_range(0..3));
            req.extend_from_slice(b"{\"list-type\":\"2\",");
            push_kv(req, "bucketName", &b);
            req.extend_from_slice(b",\"encoding-type\":\"url\",\"prefix\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"/\",\"delimiter\":\"/\",\"Host\":\"");
            req.extend_from_slice(b.as_bytes());
            req.extend_from_slice(b".s3.");
            req.extend_from_slice(c.region.as_bytes());
            req.extend_from_slice(b".amazonaws.com\"}");
            s.host.extend_from_slice(b.as_bytes());
            s.host.extend_from_slice(b".s3.");
            s.host.extend_from_slice(c.region.as_bytes());
            s.host.extend_from_slice(b".amazonaws.com");
            push_s3_additional(add, rng.r#gen(), 0, rng.gen_range(400..30_000));
            push_bucket_resource(res, true, c.acct, &b);
            res.push(b']');
        }
        Op::S3ListBuckets => {
            req.extend_from_slice(b"{\"Host\":\"s3.");
            req.extend_from_slice(c.region.as_bytes());
            req.extend_from_slice(b".amazonaws.com\"}");
            s.host.extend_from_slice(b"s3.");
            s.host.extend_from_slice(c.region.as_bytes());
            s.host.extend_from_slice(b".amazonaws.com");
            push_s3_additional(add, rng.r#gen(), 0, rng.gen_range(2_000..9_000));
        }
        Op::S3GetBucketAcl => {
            let b = c
                .org
                .accounts
                .get(c.acct_idx)
                .map(|a| a.trail_bucket.as_str())
                .unwrap_or("acme-cloudtrail");
            req.push(b'{');
            push_kv(req, "bucketName", b);
            req.extend_from_slice(b",\"Host\":\"");
            req.extend_from_slice(b.as_bytes());
            req.extend_from_slice(b".s3.amazonaws.com\",\"acl\":\"\"}");
            push_s3_additional(add, rng.r#gen(), 0, 549);
            push_bucket_resource(res, true, c.acct, b);
            res.push(b']');
        }
        Op::Ec2DescribeInstances => {
            if rng.gen_bool(0.5) {
                req.extend_from_slice(b"{\"instancesSet\":{},");
                push_filter(req, "tag:app", c.app);
                req.push(b'}');
            } else {
                req.extend_from_slice(
                    b"{\"maxResults\":1000,\"instancesSet\":{},\"filterSet\":{}}",
                );
            }
        }
        Op::Ec2DescribeSecurityGroups => {
            req.extend_from_slice(b"{\"securityGroupSet\":{},\"securityGroupIdSet\":{\"items\":[{");
            push_kv(req, "groupId", &c.org.security_group(c.acct_idx, c.app));
            req.extend_from_slice(b"}]},\"filterSet\":{}}");
        }
        Op::Ec2DescribeVpcs => req.extend_from_slice(b"{\"vpcSet\":{},\"filterSet\":{}}"),
        Op::Ec2DescribeSubnets => {
            req.extend_from_slice(b"{\"subnetSet\":{},");
            push_filter(req, "vpc-id", &c.org.vpc(c.acct_idx));
            req.push(b'}');
        }
        Op::Ec2DescribeVolumes => {
            req.extend_from_slice(b"{\"volumeSet\":{},");
            let i = c.org.instance(c.acct_idx, c.app, rng.gen_range(0..4));
            push_filter(req, "attachment.instance-id", &i);
            req.push(b'}');
        }
        Op::Ec2CreateTags => {
            let i = c.org.instance(c.acct_idx, c.app, rng.gen_range(0..4));
            req.extend_from_slice(b"{\"resourcesSet\":{\"items\":[{");
            push_kv(req, "resourceId", &i);
            req.extend_from_slice(
                b"}]},\"tagSet\":{\"items\":[{\"key\":\"owner\",\"value\":\"platform\"},{\"key\":\"app\",",
            );
            push_kv(req, "value", c.app);
            req.extend_from_slice(b"}]}}");
            resp.extend_from_slice(b"{\"requestId\":\"");
            resp.extend_from_slice(&s.rid);
            resp.extend_from_slice(b"\",\"_return\":true}");
        }
        Op::Ec2AuthorizeInternal => {
            let sg = c.org.security_group(c.acct_idx, c.app);
            let port = pick(rng, &[5432u16, 6379, 8080, 443, 9090]);
            req.push(b'{');
            push_kv(req, "groupId", &sg);
            req.extend_from_slice(
                b",\"ipPermissions\":{\"items\":[{\"ipProtocol\":\"tcp\",\"fromPort\":",
            );
            push_u64(req, u64::from(port));
            req.extend_from_slice(b",\"toPort\":");
            push_u64(req, u64::from(port));
            req.extend_from_slice(
                b",\"groups\":{},\"ipRanges\":{\"items\":[{\"cidrIp\":\"10.0.0.0/8\",\"description\":\"internal\"}]},\"ipv6Ranges\":{},\"prefixListIds\":{}}]}}",
            );
            resp.extend_from_slice(b"{\"requestId\":\"");
            resp.extend_from_slice(&s.rid);
            resp.extend_from_slice(b"\",\"_return\":true,\"securityGroupRuleSet\":{\"items\":[{");
            push_kv(resp, "groupOwnerId", c.acct);
            resp.push(b',');
            push_kv(resp, "groupId", &sg);
            resp.extend_from_slice(b",\"securityGroupRuleId\":\"sgr-0");
            push_hex(resp, 16, rng.r#gen());
            resp.extend_from_slice(b"\",\"isEgress\":false,\"ipProtocol\":\"tcp\",\"fromPort\":");
            push_u64(resp, u64::from(port));
            resp.extend_from_slice(b",\"toPort\":");
            push_u64(resp, u64::from(port));
            resp.extend_from_slice(
                b",\"cidrIpv4\":\"10.0.0.0/8\",\"description\":\"internal\"}]}}",
            );
        }
        Op::IamGetUser => {
            if rng.gen_bool(0.5) {
                req.push(b'{');
                push_kv(req, "userName", c.user);
                req.push(b'}');
            }
        }
        Op::IamListRoles => {
            if rng.gen_bool(0.5) {
                req.extend_from_slice(b"{\"maxItems\":1000}");
            }
        }
        Op::IamGetRole | Op::IamListAttachedRolePolicies => {
            req.push(b'{');
            push_kv(req, "roleName", some_role(c, rng));
            req.push(b'}');
        }
        Op::IamGetPolicyVersion => {
            req.extend_from_slice(b"{\"policyArn\":\"arn:aws:iam::");
            req.extend_from_slice(c.acct.as_bytes());
            req.extend_from_slice(b":policy/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-access\",\"versionId\":\"v");
            push_u64(req, rng.gen_range(1..9));
            req.extend_from_slice(b"\"}");
        }
        Op::IamListAccessKeys => {
            req.push(b'{');
            push_kv(req, "userName", c.user);
            req.push(b'}');
        }
        Op::IamCreateOwnAccessKey => {
            if rng.gen_bool(0.6) {
                req.push(b'{');
                push_kv(req, "userName", c.user);
                req.push(b'}');
            }
            resp.extend_from_slice(b"{\"accessKey\":{\"accessKeyId\":\"");
            push_aws_id(resp, "AKIA", rng.r#gen());
            resp.extend_from_slice(b"\",\"status\":\"Active\",");
            push_kv(resp, "userName", c.user);
            resp.extend_from_slice(b",\"createDate\":\"");
            push_aws_date(resp, c.time);
            resp.extend_from_slice(b"\"}}");
        }
        Op::LambdaGetFunction => {
            req.extend_from_slice(b"{\"functionName\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-handler\"}");
        }
        Op::LambdaUpdateFunctionCode => {
            let mut arn = Vec::with_capacity(80);
            arn.extend_from_slice(b"arn:aws:lambda:");
            arn.extend_from_slice(c.region.as_bytes());
            arn.push(b':');
            arn.extend_from_slice(c.acct.as_bytes());
            arn.extend_from_slice(b":function:");
            arn.extend_from_slice(c.app.as_bytes());
            arn.extend_from_slice(b"-handler");
            req.extend_from_slice(b"{\"functionName\":\"");
            req.extend_from_slice(&arn);
            req.extend_from_slice(b"\",\"publish\":true,\"dryRun\":false}");
            resp.extend_from_slice(b"{\"functionName\":\"");
            resp.extend_from_slice(c.app.as_bytes());
            resp.extend_from_slice(b"-handler\",\"functionArn\":\"");
            resp.extend_from_slice(&arn);
            resp.extend_from_slice(
                b"\",\"runtime\":\"python3.12\",\"handler\":\"app.handler\",\"codeSize\":",
            );
            push_u64(resp, rng.gen_range(20_000..9_000_000));
            resp.extend_from_slice(b",\"timeout\":30,\"memorySize\":512,\"codeSha256\":\"");
            push_b64(resp, 43, rng.r#gen());
            resp.extend_from_slice(b"=\",\"version\":\"");
            push_u64(resp, rng.gen_range(10..400));
            resp.extend_from_slice(b"\",\"state\":\"Active\",\"lastUpdateStatus\":\"InProgress\",\"packageType\":\"Zip\",\"architectures\":[\"arm64\"]}");
        }
        Op::KmsDecrypt => {
            req.extend_from_slice(
                b"{\"encryptionAlgorithm\":\"SYMMETRIC_DEFAULT\",\"encryptionContext\":{",
            );
            if rng.gen_bool(0.5) {
                req.extend_from_slice(b"\"aws:secretsmanager:arn\":\"");
                push_secret_arn(req, c);
                req.push(b'"');
            } else {
                req.extend_from_slice(b"\"aws:s3:arn\":\"arn:aws:s3:::");
                req.extend_from_slice(bucket(c.acct, c.app, 0).as_bytes());
                req.push(b'"');
            }
            req.extend_from_slice(b"}}");
            push_kms_resource(res, c);
        }
        Op::KmsGenerateDataKey => {
            req.extend_from_slice(b"{\"keyId\":\"alias/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(
                b"\",\"keySpec\":\"AES_256\",\"encryptionContext\":{\"aws:s3:arn\":\"arn:aws:s3:::",
            );
            req.extend_from_slice(bucket(c.acct, c.app, 0).as_bytes());
            req.extend_from_slice(b"\"}}");
            push_kms_resource(res, c);
        }
        Op::KmsDescribeKey => {
            req.extend_from_slice(b"{\"keyId\":\"alias/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"\"}");
            push_kms_resource(res, c);
        }
        Op::LogsDescribeLogGroups => {
            if rng.gen_bool(0.5) {
                req.extend_from_slice(b"{\"logGroupNamePrefix\":\"/aws/lambda/");
                req.extend_from_slice(c.app.as_bytes());
                req.extend_from_slice(b"\"}");
            } else {
                req.extend_from_slice(b"{\"limit\":50}");
            }
        }
        Op::LogsFilterLogEvents => {
            req.extend_from_slice(b"{\"logGroupName\":\"/ecs/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-api\",\"startTime\":");
            push_ms(req, c.time - HOUR * rng.gen_range(1..6));
            req.extend_from_slice(b",\"endTime\":");
            push_ms(req, c.time);
            req.extend_from_slice(b",\"filterPattern\":\"");
            req.extend_from_slice(
                pick(rng, &["ERROR", "timeout", "\\\"status\\\":500", "WARN"]).as_bytes(),
            );
            req.extend_from_slice(b"\",\"interleaved\":true}");
        }
        Op::LogsCreateLogStream => {
            req.extend_from_slice(b"{\"logGroupName\":\"/aws/lambda/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-handler\",\"logStreamName\":\"");
            let mut t = Vec::with_capacity(20);
            push_time(&mut t, c.time, 0);
            for &ch in t.get(..10).unwrap_or(&[]) {
                req.push(if ch == b'-' { b'/' } else { ch });
            }
            req.extend_from_slice(b"/[$LATEST]");
            push_hex(req, 32, rng.r#gen());
            req.extend_from_slice(b"\"}");
        }
        Op::CwGetMetricData => {
            let (ns, metric, dim) = pick(
                rng,
                &[
                    ("AWS/ECS", "CPUUtilization", "ServiceName"),
                    ("AWS/ApplicationELB", "TargetResponseTime", "TargetGroup"),
                    ("AWS/Lambda", "Errors", "FunctionName"),
                    ("AWS/RDS", "DatabaseConnections", "DBInstanceIdentifier"),
                    ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName"),
                ],
            );
            req.extend_from_slice(
                b"{\"metricDataQueries\":[{\"id\":\"m1\",\"metricStat\":{\"metric\":{",
            );
            push_kv(req, "namespace", ns);
            req.push(b',');
            push_kv(req, "metricName", metric);
            req.extend_from_slice(b",\"dimensions\":[{");
            push_kv(req, "name", dim);
            req.extend_from_slice(b",\"value\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-prod\"}]},\"period\":60,\"stat\":\"Average\"},\"returnData\":true}],\"startTime\":\"");
            push_aws_date(req, c.time - 3 * HOUR);
            req.extend_from_slice(b"\",\"endTime\":\"");
            push_aws_date(req, c.time);
            req.extend_from_slice(b"\",\"scanBy\":\"TimestampDescending\"}");
        }
        Op::CwDescribeAlarms => {
            req.extend_from_slice(b"{\"alarmNamePrefix\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-\",\"maxRecords\":100}");
        }
        Op::DdbDescribeTable => {
            req.push(b'{');
            push_kv(req, "tableName", c.app);
            req.push(b'}');
        }
        Op::DdbGetItem | Op::DdbPutItem | Op::DdbQuery => {
            req.push(b'{');
            push_kv(req, "tableName", c.app);
            match op {
                Op::DdbQuery => {
                    req.extend_from_slice(
                        b",\"indexName\":\"by-customer\",\"keyConditionExpression\":\"customerId = :c\",\"limit\":50",
                    );
                }
                _ => {
                    req.extend_from_slice(b",\"key\":{\"pk\":\"");
                    let upper = c.app.to_ascii_uppercase();
                    req.extend_from_slice(upper.as_bytes());
                    req.push(b'#');
                    push_u64(req, rng.gen_range(100_000..999_999));
                    req.extend_from_slice(b"\",\"sk\":\"META\"}");
                    if op == Op::DdbGetItem {
                        req.extend_from_slice(b",\"consistentRead\":false");
                    }
                }
            }
            req.push(b'}');
            let mut arn = Vec::with_capacity(80);
            arn.extend_from_slice(b"arn:aws:dynamodb:");
            arn.extend_from_slice(c.region.as_bytes());
            arn.push(b':');
            arn.extend_from_slice(c.acct.as_bytes());
            arn.extend_from_slice(b":table/");
            arn.extend_from_slice(c.app.as_bytes());
            push_resource(res, true, c.acct, "AWS::DynamoDB::Table", &arn);
            res.push(b']');
        }
        Op::SsmGetParameter => {
            req.extend_from_slice(b"{\"name\":\"/prod/");
            req.extend_from_slice(c.app.as_bytes());
            req.push(b'/');
            req.extend_from_slice(
                pick(
                    rng,
                    &[
                        "db_host",
                        "db_name",
                        "feature_flags",
                        "queue_url",
                        "api_base_url",
                    ],
                )
                .as_bytes(),
            );
            req.extend_from_slice(b"\",\"withDecryption\":true}");
        }
        Op::SsmGetParametersByPath => {
            req.extend_from_slice(b"{\"path\":\"/prod/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"/\",\"recursive\":true,\"withDecryption\":true}");
        }
        Op::SecretsGetSecretValue => {
            req.extend_from_slice(b"{\"secretId\":\"");
            push_secret_arn(req, c);
            req.extend_from_slice(b"\"}");
        }
        Op::SecretsDescribeSecret => {
            req.extend_from_slice(b"{\"secretId\":\"prod/");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"/db\"}");
        }
        Op::SecretsListSecrets => {
            if rng.gen_bool(0.5) {
                req.extend_from_slice(b"{\"maxResults\":100}");
            }
        }
        Op::EcrPutImage => {
            let tag_h: u64 = rng.r#gen();
            req.extend_from_slice(b"{\"repositoryName\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-api\",\"imageTag\":\"sha-");
            push_hex(req, 7, tag_h);
            req.extend_from_slice(b"\",\"registryId\":\"");
            req.extend_from_slice(c.acct.as_bytes());
            req.extend_from_slice(
                b"\",\"imageManifestMediaType\":\"application/vnd.oci.image.manifest.v1+json\"}",
            );
            resp.extend_from_slice(b"{\"image\":{\"registryId\":\"");
            resp.extend_from_slice(c.acct.as_bytes());
            resp.extend_from_slice(b"\",\"repositoryName\":\"");
            resp.extend_from_slice(c.app.as_bytes());
            resp.extend_from_slice(b"-api\",\"imageId\":{\"imageDigest\":\"sha256:");
            push_hex(resp, 64, rng.r#gen());
            resp.extend_from_slice(b"\",\"imageTag\":\"sha-");
            push_hex(resp, 7, tag_h);
            resp.extend_from_slice(
                b"\"},\"imageManifestMediaType\":\"application/vnd.oci.image.manifest.v1+json\"}}",
            );
            let mut arn = Vec::with_capacity(80);
            arn.extend_from_slice(b"arn:aws:ecr:");
            arn.extend_from_slice(c.region.as_bytes());
            arn.push(b':');
            arn.extend_from_slice(c.acct.as_bytes());
            arn.extend_from_slice(b":repository/");
            arn.extend_from_slice(c.app.as_bytes());
            arn.extend_from_slice(b"-api");
            push_resource(res, true, c.acct, "AWS::ECR::Repository", &arn);
            res.push(b']');
        }
        Op::EcsDescribeServices => {
            req.extend_from_slice(b"{\"cluster\":\"prod\",\"services\":[\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-api\"],\"include\":[\"TAGS\"]}");
        }
        Op::EcsUpdateService | Op::EcsRegisterTaskDefinition => {
            let rev = rng.gen_range(40..400);
            let mut td = Vec::with_capacity(96);
            td.extend_from_slice(b"arn:aws:ecs:");
            td.extend_from_slice(c.region.as_bytes());
            td.push(b':');
            td.extend_from_slice(c.acct.as_bytes());
            td.extend_from_slice(b":task-definition/");
            td.extend_from_slice(c.app.as_bytes());
            td.extend_from_slice(b"-api:");
            push_u64(&mut td, rev);
            if op == Op::EcsUpdateService {
                req.extend_from_slice(b"{\"cluster\":\"prod\",\"service\":\"");
                req.extend_from_slice(c.app.as_bytes());
                req.extend_from_slice(b"-api\",\"taskDefinition\":\"");
                req.extend_from_slice(c.app.as_bytes());
                req.extend_from_slice(b"-api:");
                push_u64(req, rev);
                req.extend_from_slice(b"\",\"forceNewDeployment\":false}");
                resp.extend_from_slice(b"{\"service\":{\"serviceArn\":\"arn:aws:ecs:");
                resp.extend_from_slice(c.region.as_bytes());
                resp.push(b':');
                resp.extend_from_slice(c.acct.as_bytes());
                resp.extend_from_slice(b":service/prod/");
                resp.extend_from_slice(c.app.as_bytes());
                resp.extend_from_slice(b"-api\",\"serviceName\":\"");
                resp.extend_from_slice(c.app.as_bytes());
                resp.extend_from_slice(b"-api\",\"status\":\"ACTIVE\",\"desiredCount\":3,\"runningCount\":3,\"pendingCount\":0,\"launchType\":\"FARGATE\",\"taskDefinition\":\"");
                resp.extend_from_slice(&td);
                resp.extend_from_slice(b"\",\"deploymentConfiguration\":{\"maximumPercent\":200,\"minimumHealthyPercent\":100}}}");
            } else {
                req.extend_from_slice(b"{\"family\":\"");
                req.extend_from_slice(c.app.as_bytes());
                req.extend_from_slice(b"-api\",\"networkMode\":\"awsvpc\",\"containerDefinitions\":[{\"name\":\"app\",\"image\":\"");
                req.extend_from_slice(c.acct.as_bytes());
                req.extend_from_slice(b".dkr.ecr.");
                req.extend_from_slice(c.region.as_bytes());
                req.extend_from_slice(b".amazonaws.com/");
                req.extend_from_slice(c.app.as_bytes());
                req.extend_from_slice(b"-api:sha-");
                push_hex(req, 7, rng.r#gen());
                req.extend_from_slice(b"\",\"cpu\":0,\"portMappings\":[{\"containerPort\":8080,\"protocol\":\"tcp\"}],\"essential\":true}],\"requiresCompatibilities\":[\"FARGATE\"],\"cpu\":\"512\",\"memory\":\"1024\"}");
                resp.extend_from_slice(b"{\"taskDefinition\":{\"taskDefinitionArn\":\"");
                resp.extend_from_slice(&td);
                resp.extend_from_slice(b"\",\"revision\":");
                push_u64(resp, rev);
                resp.extend_from_slice(b",\"status\":\"ACTIVE\"}}");
            }
        }
        Op::CfnDescribeStacks => {
            req.extend_from_slice(b"{\"stackName\":\"");
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-prod\"}");
        }
        Op::EksDescribeCluster => req.extend_from_slice(b"{\"name\":\"prod-eks\"}"),
        Op::EksListClusters => req.extend_from_slice(b"{\"maxResults\":100}"),
        Op::CtDescribeTrails => {
            req.extend_from_slice(b"{\"trailNameList\":[],\"includeShadowTrails\":false}")
        }
        Op::CtGetTrailStatus => {
            req.extend_from_slice(b"{\"name\":\"arn:aws:cloudtrail:us-east-1:");
            req.extend_from_slice(c.acct.as_bytes());
            req.extend_from_slice(b":trail/org-trail\"}");
        }
        Op::CtLookupEvents => {
            req.extend_from_slice(
                b"{\"lookupAttributes\":[{\"attributeKey\":\"ResourceName\",\"attributeValue\":\"",
            );
            req.extend_from_slice(c.app.as_bytes());
            req.extend_from_slice(b"-api\"}],\"startTime\":\"");
            push_aws_date(req, c.time - DAY);
            req.extend_from_slice(b"\",\"endTime\":\"");
            push_aws_date(req, c.time);
            req.extend_from_slice(b"\",\"maxResults\":50}");
        }
        Op::ConsoleLogin => {}
    }
}

/// Fills an `AssumeRole` made by an AWS service for `role_arn`.
pub(crate) fn fill_assume_role(
    s: &mut Scratch,
    acct: &str,
    role_arn: &str,
    session: &str,
    time: i64,
    rng: &mut SmallRng,
) {
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    s.req.push(b'{');
    push_kv(&mut s.req, "roleArn", role_arn);
    s.req.push(b',');
    push_kv(&mut s.req, "roleSessionName", session);
    s.req.extend_from_slice(b",\"durationSeconds\":3600}");
    s.resp
        .extend_from_slice(b"{\"credentials\":{\"accessKeyId\":\"");
    push_aws_id(&mut s.resp, "ASIA", rng.r#gen());
    s.resp
        .extend_from_slice(b"\",\"sessionToken\":\"IQoJb3JpZ2luX2VjE");
    let h: u64 = rng.r#gen();
    push_b64(&mut s.resp, 180, h);
    s.resp.extend_from_slice(b"\",\"expiration\":\"");
    push_aws_date(&mut s.resp, time + HOUR);
    s.resp
        .extend_from_slice(b"\"},\"assumedRoleUser\":{\"assumedRoleId\":\"");
    push_aws_id(&mut s.resp, "AROA", hash(&[str_hash(role_arn)]));
    s.resp.push(b':');
    push_escaped(&mut s.resp, session);
    s.resp.extend_from_slice(b"\",\"arn\":\"arn:aws:sts::");
    s.resp.extend_from_slice(acct.as_bytes());
    s.resp.extend_from_slice(b":assumed-role/");
    push_escaped(&mut s.resp, role_name);
    s.resp.push(b'/');
    push_escaped(&mut s.resp, session);
    s.resp.extend_from_slice(b"\"}}");
    push_resource(
        &mut s.res,
        true,
        acct,
        "AWS::IAM::Role",
        role_arn.as_bytes(),
    );
    s.res.push(b']');
    push_uuid(&mut s.shared, rng);
}

/// Writes an AccessDenied error message for `op` by `caller_arn`.
pub(crate) fn push_denied(buf: &mut Vec<u8>, meta: &Meta, caller_arn: &[u8]) {
    if meta.source == "s3.amazonaws.com" {
        buf.extend_from_slice(b"Access Denied");
        return;
    }
    if meta.prefix == "ec2" {
        buf.extend_from_slice(b"You are not authorized to perform this operation. ");
    }
    buf.extend_from_slice(b"User: ");
    buf.extend_from_slice(caller_arn);
    buf.extend_from_slice(b" is not authorized to perform: ");
    buf.extend_from_slice(meta.prefix.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(meta.action.as_bytes());
    buf.extend_from_slice(b" because no identity-based policy allows the ");
    buf.extend_from_slice(meta.prefix.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(meta.action.as_bytes());
    buf.extend_from_slice(b" action");
}

/// The error code for an AccessDenied on `meta`.
pub(crate) fn denied_code(meta: &Meta) -> &'static str {
    if meta.prefix == "ec2" {
        "Client.UnauthorizedOperation"
    } else if meta.json {
        "AccessDeniedException"
    } else {
        "AccessDenied"
    }
}

/// Appends an S3-style request id (16 upper-case hex digits) or a UUID.
pub(crate) fn push_request_id(buf: &mut Vec<u8>, meta: &Meta, rng: &mut SmallRng) {
    if meta.source == "s3.amazonaws.com" {
        push_hex_upper(buf, 16, rng.r#gen());
    } else if meta.source != "signin.amazonaws.com" {
        push_uuid(buf, rng);
    }
}
