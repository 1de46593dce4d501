//! The simulated organisation: accounts, the people (IAM users who also log
//! in through the access gateway), the machine roles (CI/CD, applications,
//! monitoring), the AWS services acting on their behalf, the hosts behind
//! the gateway, and the resources they all touch.
//!
//! Everything here is derived from the seed only, so the same seed always
//! describes the same organisation.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::util::{alnum, aws_id, hash, hex, mix, pick, stream, uuid_from};

/// An AWS account of the organisation.
pub(crate) struct Account {
    /// The 12-digit account id.
    pub id: String,
    /// The regions its workloads run in; the first is home (and takes global services).
    pub regions: &'static [&'static str],
    /// The trail's S3 bucket (for `cloudtrail.amazonaws.com` calls).
    pub trail_bucket: String,
}

/// What a person mostly does, which shapes the calls they make.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Team {
    /// Infrastructure: EC2, EKS, Terraform, IAM reads.
    Platform,
    /// Application developers: logs, Lambda, DynamoDB, S3.
    Backend,
    /// Data engineers: S3 heavy.
    Data,
    /// Security engineers: IAM and CloudTrail reads.
    Security,
    /// Support staff: console reads.
    Support,
}

/// A person: an IAM user with MFA and an access key, and a gateway login of the same name.
pub(crate) struct Person {
    /// IAM user name, also the gateway login.
    pub name: String,
    /// Index into [`Org::accounts`].
    pub account: usize,
    /// `arn:aws:iam::ACCT:user/NAME`.
    pub arn: String,
    /// `AIDA...`.
    pub principal_id: String,
    /// The long-term `AKIA...` key used by the CLI and Terraform.
    pub access_key: String,
    /// Local time minus UTC, in minutes.
    pub tz_min: i64,
    /// Office egress address (one /24 per office).
    pub office_ip: String,
    /// Address when not in the office: a residential /24 of their own, or
    /// the corporate VPN's egress.
    pub home_ip: String,
    /// Share of work bursts done from [`Person::home_ip`]: 0 for people who
    /// only work in the office, 1 for remote workers.
    pub home_share: f64,
    /// Preferred region.
    pub region: &'static str,
    /// Fraction of work bursts spent in the console rather than the CLI.
    pub console_share: f64,
    /// Whether the person runs Terraform.
    pub terraform: bool,
    /// The OS part of their CLI user agent.
    pub cli_os: &'static str,
    /// Their browser user agent.
    pub browser: &'static str,
    /// Activity relative to the average principal.
    pub factor: f64,
    /// Indices into [`Org::hosts`] the person logs in to.
    pub hosts: Vec<usize>,
    /// What they mostly do.
    pub team: Team,
    /// Whether they run the AWS CLI on bastion hosts (through the gateway's
    /// linked role).
    pub aws_on_hosts: bool,
    /// The keys they leave vim with, always the same.
    pub vim_keys: &'static str,
    /// Whether they paste long commands (then press Enter themselves).
    pub paster: bool,
    /// The application they mostly work on.
    pub app: &'static str,
}

/// The kind of machine role, which fixes its call pattern.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RoleKind {
    /// GitHub Actions deploying: ECR pushes, ECS updates, S3 artifacts.
    CiDeploy,
    /// Terraform plan in CI: bursts of Describe/Get/List.
    CiPlan,
    /// An ECS service: S3, DynamoDB, KMS, Secrets Manager, SSM.
    EcsApp,
    /// An EC2 instance profile: S3, SSM, KMS, logs.
    Ec2App,
    /// A Lambda execution role: DynamoDB, S3, logs, KMS.
    Lambda,
    /// A third-party monitoring integration: Describe* and metrics, all day.
    Monitoring,
    /// A batch ETL job: S3 reads and writes in bulk at night.
    Etl,
    /// The role the access gateway links gateway users to: assumed with the
    /// user's login as session name and source identity, used by the AWS CLI
    /// on bastion hosts. It makes no calls of its own.
    GatewayLinked,
}

/// The SDK a machine principal calls AWS with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sdk {
    /// aws-sdk-go-v2.
    GoV2,
    /// Boto3.
    Boto3,
    /// AWS SDK for Java 2.
    Java,
    /// AWS SDK for JavaScript v3.
    Node,
    /// The AWS CLI (in CI).
    Cli,
    /// Terraform's AWS provider.
    Terraform,
}

/// A machine role and how its sessions look.
pub(crate) struct Role {
    /// Role name.
    pub name: String,
    /// `arn:aws:iam::ACCT:role/PATH/NAME`.
    pub arn: String,
    /// `AROA...`.
    pub role_id: String,
    /// Index into [`Org::accounts`].
    pub account: usize,
    /// What it is.
    pub kind: RoleKind,
    /// Where it runs.
    pub region: &'static str,
    /// Its SDK.
    pub sdk: Sdk,
    /// Activity relative to the average principal.
    pub factor: f64,
    /// Source addresses it calls from.
    pub ips: Vec<String>,
    /// VPC endpoint it calls through, if any.
    pub vpce: Option<String>,
    /// The application it serves (names its resources).
    pub app: &'static str,
    /// Session names it uses in turn (instance ids, task ids, function names...).
    pub sessions: Vec<String>,
    /// How long one set of credentials lives, in microseconds.
    pub session_period: i64,
}

/// An AWS service acting for the organisation (`AWSService` identity).
pub(crate) struct Service {
    /// The `invokedBy` name, also the event-model principal.
    pub invoked_by: &'static str,
    /// Index into [`Org::accounts`].
    pub account: usize,
    /// The roles it assumes: (role ARN, session name).
    pub targets: Vec<(String, String)>,
    /// Activity relative to the average principal.
    pub factor: f64,
}

/// A host behind the access gateway.
pub(crate) struct Host {
    /// Host name.
    pub name: String,
    /// Private address.
    pub ip: String,
    /// What runs there, for plausible commands.
    pub role: HostRole,
}

/// What a gateway host is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HostRole {
    /// A jump host with kubectl and the AWS CLI.
    Bastion,
    /// A web server running nginx and the app.
    Web,
    /// A PostgreSQL server.
    Db,
    /// A batch worker.
    Worker,
}

/// The whole organisation.
pub(crate) struct Org {
    /// The generator seed.
    pub seed: u64,
    /// Accounts; the first is production and holds the people.
    pub accounts: Vec<Account>,
    /// People.
    pub people: Vec<Person>,
    /// Machine roles.
    pub roles: Vec<Role>,
    /// AWS services.
    pub services: Vec<Service>,
    /// Gateway hosts.
    pub hosts: Vec<Host>,
    /// Index into [`Org::roles`] of the gateway's linked role, when there is one.
    pub linked_role: Option<usize>,
}

/// The applications resources are named after.
pub(crate) const APPS: &[&str] = &[
    "orders",
    "payments",
    "inventory",
    "search",
    "reports",
    "notify",
    "billing",
    "catalog",
    "shipping",
    "auth",
];

const FIRST: &[&str] = &[
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
    "nina", "oscar", "peggy", "rupert", "sybil", "trent", "uma", "victor", "wendy", "xavier",
    "yusuf", "zoe", "amir", "bianca", "chen", "dmitri", "elena", "farah", "goran", "hana", "ines",
    "jonas", "kenji", "lena", "mateo", "noor", "olga", "priya", "quentin", "rosa", "sanjay",
    "tomas", "ulla", "vera", "wei", "yara", "zainab",
];
const LAST: &[&str] = &[
    "nguyen",
    "smith",
    "garcia",
    "muller",
    "kowalski",
    "rossi",
    "tanaka",
    "okafor",
    "silva",
    "johansson",
    "dubois",
    "novak",
    "schmidt",
    "kim",
    "patel",
    "haddad",
    "fischer",
    "moreau",
    "ivanova",
    "costa",
    "lindqvist",
    "ozturk",
    "mensah",
    "reyes",
    "wagner",
    "sato",
    "horvat",
    "kaur",
    "byrne",
    "almeida",
];

const CLI_OS: &[&str] = &[
    "os/macos#23.6.0 md/arch#arm64",
    "os/macos#24.1.0 md/arch#arm64",
    "os/linux#6.8.0-48-generic md/arch#x86_64",
    "os/windows#10 md/arch#amd64",
];

const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/129.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
];

/// Offices: (UTC offset in minutes, weight, egress /24 network).
const OFFICES: &[(i64, u32, &str)] = &[
    (-300, 50, "198.51.100"),
    (60, 25, "198.18.10"),
    (-480, 15, "198.18.20"),
    (330, 10, "198.18.30"),
];

/// The corporate VPN's egress network, shared by everyone who uses it.
const VPN_NET: &str = "192.0.2";

/// Business hours of the CI roles: they run in the main office's day
/// (UTC-5), so their jobs start between 13:00 and 22:30 UTC.
pub(crate) const CI_TZ_MIN: i64 = -300;

/// How people leave vim; each person always does it the same way.
const VIM_KEYS: &[&str] = &[":q\r", ":wq\r", "/listen\r:q\r", ":x\r"];

const ACCOUNT_IDS: &[&str] = &["111122223333", "444455556666", "777788889999"];
const ACCOUNT_REGIONS: &[&[&str]] = &[
    &["us-east-1", "eu-west-1"],
    &["us-east-1"],
    &["us-east-1", "us-west-2"],
];

/// Role templates: (name, IAM path, kind, SDK).
const ROLE_TEMPLATES: &[(&str, &str, RoleKind, Sdk)] = &[
    ("github-actions-deploy", "/", RoleKind::CiDeploy, Sdk::Cli),
    ("orders-api-task", "/", RoleKind::EcsApp, Sdk::GoV2),
    ("payments-worker", "/", RoleKind::Ec2App, Sdk::Java),
    (
        "reports-builder",
        "/service-role/",
        RoleKind::Lambda,
        Sdk::Boto3,
    ),
    ("terraform-plan", "/ci/", RoleKind::CiPlan, Sdk::Terraform),
    ("datadog-integration", "/", RoleKind::Monitoring, Sdk::GoV2),
    ("data-lake-etl", "/", RoleKind::Etl, Sdk::Boto3),
    (
        "inventory-sync",
        "/service-role/",
        RoleKind::Lambda,
        Sdk::Node,
    ),
    ("search-indexer-task", "/", RoleKind::EcsApp, Sdk::Java),
    ("notify-api-task", "/", RoleKind::EcsApp, Sdk::Node),
    ("billing-batch", "/", RoleKind::Ec2App, Sdk::Boto3),
    ("catalog-api-task", "/", RoleKind::EcsApp, Sdk::GoV2),
];

/// Services and the role kinds they assume.
const SERVICE_TEMPLATES: &[(&str, Option<RoleKind>, &str)] = &[
    (
        "lambda.amazonaws.com",
        Some(RoleKind::Lambda),
        "/service-role/lambda-basic-exec",
    ),
    (
        "ecs-tasks.amazonaws.com",
        Some(RoleKind::EcsApp),
        "/ecsTaskExecutionRole",
    ),
    (
        "ec2.amazonaws.com",
        Some(RoleKind::Ec2App),
        "/ec2-ssm-instance",
    ),
    ("cloudtrail.amazonaws.com", None, ""),
    (
        "config.amazonaws.com",
        None,
        "/aws-service-role/config.amazonaws.com/AWSServiceRoleForConfig",
    ),
    (
        "events.amazonaws.com",
        None,
        "/service-role/Amazon_EventBridge_Invoke_Lambda_1204",
    ),
    (
        "ssm.amazonaws.com",
        None,
        "/service-role/AmazonSSMAutomationRole",
    ),
];

impl Org {
    /// Builds the organisation for a seed and a principal count.
    pub fn new(seed: u64, principals: usize) -> Org {
        let mut rng = stream(seed, 1);
        let principals = principals.max(3);
        let n_services = (principals / 10).min(SERVICE_TEMPLATES.len());
        let n_roles = ((principals * 35) / 100).max(1);
        let n_people = principals.saturating_sub(n_services + n_roles).max(2);
        let n_accounts = match principals {
            0..=11 => 1,
            12..=39 => 2,
            _ => 3,
        };
        let accounts = (0..n_accounts)
            .map(|i| {
                let id = ACCOUNT_IDS
                    .get(i)
                    .copied()
                    .unwrap_or("111122223333")
                    .to_string();
                Account {
                    trail_bucket: format!("acme-cloudtrail-{id}"),
                    id,
                    regions: ACCOUNT_REGIONS.get(i).copied().unwrap_or(&["us-east-1"]),
                }
            })
            .collect::<Vec<_>>();

        let n_hosts = (n_people / 3).clamp(4, 40);
        let hosts = (0..n_hosts)
            .map(|i| {
                let role = match i % 5 {
                    0 => HostRole::Bastion,
                    1 | 3 => HostRole::Web,
                    2 => HostRole::Db,
                    _ => HostRole::Worker,
                };
                let stem = match role {
                    HostRole::Bastion => "bastion",
                    HostRole::Web => "web",
                    HostRole::Db => "db",
                    HostRole::Worker => "worker",
                };
                Host {
                    name: format!("{stem}-{:02}", i / 5 + 1 + usize::from(i % 5 == 3)),
                    ip: format!("10.0.{}.{}", 10 + i / 200, 10 + i % 200),
                    role,
                }
            })
            .collect::<Vec<_>>();

        let mut people = Vec::with_capacity(n_people);
        let mut taken = std::collections::BTreeSet::new();
        for i in 0..n_people {
            let first = pick(&mut rng, FIRST);
            let last = pick(&mut rng, LAST);
            let mut name = format!("{first}.{last}");
            let mut n = 2;
            while taken.contains(&name) {
                name = format!("{first}.{last}{n}");
                n += 1;
            }
            taken.insert(name.clone());
            let account = 0;
            let acct = accounts
                .first()
                .map(|a| a.id.as_str())
                .unwrap_or("111122223333");
            let total: u32 = OFFICES.iter().map(|o| o.1).sum();
            let mut roll = rng.gen_range(0..total);
            let mut office = OFFICES.first().copied().unwrap_or((0, 1, "198.51.100.1"));
            for o in OFFICES {
                if roll < o.1 {
                    office = *o;
                    break;
                }
                roll -= o.1;
            }
            let team = match rng.gen_range(0..10) {
                0..=2 => Team::Backend,
                3..=5 => Team::Platform,
                6 | 7 => Team::Data,
                8 => Team::Security,
                _ => Team::Support,
            };
            let mut my_hosts: Vec<usize> = (0..rng.gen_range(1..=3))
                .map(|_| rng.gen_range(0..hosts.len()))
                .collect();
            my_hosts.sort_unstable();
            my_hosts.dedup();
            // Traits drawn from the person's own stream, so that adding one
            // never changes anyone else's.
            let mut own = SmallRng::seed_from_u64(hash(&[seed, 12, i as u64]));
            let office_ip = format!("{}.{}", office.2, 10 + rng.gen_range(0..10));
            let home_host = rng.gen_range(10..250);
            let home_ip = if own.gen_bool(0.25) {
                format!("{VPN_NET}.{home_host}")
            } else {
                // A residential network of their own (carrier-grade NAT space).
                let h = hash(&[seed, 13, i as u64]);
                format!("100.{}.{}.{home_host}", 64 + h % 64, (h >> 8) % 256)
            };
            let home_share = match own.gen_range(0..20) {
                0..=2 => 0.0,
                3..=6 => 1.0,
                _ => own.gen_range(0.3..0.6),
            };
            let bastion = my_hosts
                .iter()
                .any(|h| hosts.get(*h).is_some_and(|h| h.role == HostRole::Bastion));
            let aws_on_hosts = bastion
                && matches!(team, Team::Platform | Team::Backend | Team::Data)
                && own.gen_bool(0.8);
            people.push(Person {
                arn: format!("arn:aws:iam::{acct}:user/{name}"),
                principal_id: aws_id("AIDA", hash(&[seed, 10, i as u64])),
                access_key: aws_id("AKIA", hash(&[seed, 11, i as u64])),
                tz_min: office.0,
                office_ip,
                home_ip,
                home_share,
                aws_on_hosts,
                vim_keys: pick(&mut own, VIM_KEYS),
                paster: own.gen_bool(0.3),
                app: pick(&mut own, APPS),
                region: if office.0 == 60 && accounts.first().is_some_and(|a| a.regions.len() > 1) {
                    "eu-west-1"
                } else {
                    "us-east-1"
                },
                console_share: match team {
                    Team::Support => 0.9,
                    Team::Security => 0.6,
                    Team::Platform => 0.3,
                    _ => 0.5,
                },
                terraform: team == Team::Platform,
                cli_os: pick(&mut rng, CLI_OS),
                browser: pick(&mut rng, BROWSERS),
                factor: rng.gen_range(0.6..1.4),
                hosts: my_hosts,
                team,
                name,
                account,
            });
        }

        let mut roles = Vec::with_capacity(n_roles);
        // One role slot goes to the gateway's linked role once there are a few.
        let n_machine = if n_roles >= 3 { n_roles - 1 } else { n_roles };
        for i in 0..n_machine {
            let (base, path, kind, sdk) = ROLE_TEMPLATES
                .get(i % ROLE_TEMPLATES.len())
                .copied()
                .unwrap_or(("app-task", "/", RoleKind::EcsApp, Sdk::GoV2));
            let round = i / ROLE_TEMPLATES.len();
            let name = if round == 0 {
                base.to_string()
            } else {
                format!("{base}-{}", round + 1)
            };
            let account = i % n_accounts;
            let acct = accounts
                .get(account)
                .map(|a| a.id.as_str())
                .unwrap_or("111122223333");
            let regions = accounts
                .get(account)
                .map(|a| a.regions)
                .unwrap_or(&["us-east-1"]);
            let region = if kind == RoleKind::Monitoring || kind == RoleKind::CiPlan {
                regions.first().copied().unwrap_or("us-east-1")
            } else {
                pick(&mut rng, regions)
            };
            let app = APPS
                .iter()
                .copied()
                .find(|a| name.starts_with(a))
                .unwrap_or_else(|| pick(&mut rng, APPS));
            let h = hash(&[seed, 20, i as u64]);
            let (ips, vpce) = match kind {
                RoleKind::CiDeploy | RoleKind::CiPlan => (
                    (0..6)
                        .map(|k| format!("198.51.100.{}", 130 + (h as usize + k * 17) % 100))
                        .collect(),
                    None,
                ),
                RoleKind::Monitoring => (
                    (0..3)
                        .map(|k| format!("198.51.100.{}", 235 + (h as usize + k) % 15))
                        .collect(),
                    None,
                ),
                _ => (
                    (0..4)
                        .map(|k| {
                            format!(
                                "10.{}.{}.{}",
                                account,
                                (h as usize >> 8) % 200 + k,
                                (h as usize + k * 37) % 250 + 3
                            )
                        })
                        .collect(),
                    Some(format!("vpce-0{}", hex(16, mix(h ^ 0x7670_6365)))),
                ),
            };
            let sessions: Vec<String> = match kind {
                RoleKind::CiDeploy => (0..8)
                    .map(|k| format!("GitHubActions-{}", 11_400_000_000 + (h % 9_000_000) + k * 7))
                    .collect(),
                RoleKind::CiPlan => (0..8)
                    .map(|k| format!("terraform-plan-{}", hex(8, h ^ k)))
                    .collect(),
                RoleKind::EcsApp => (0..4).map(|k| hex(32, h.wrapping_add(k))).collect(),
                RoleKind::Ec2App | RoleKind::Etl => (0..3)
                    .map(|k| format!("i-0{}", hex(16, h.wrapping_add(k * 3))))
                    .collect(),
                RoleKind::Lambda => vec![format!("{app}-handler")],
                RoleKind::Monitoring => vec!["DatadogAWSIntegration".to_string()],
                // Session names are the gateway logins.
                RoleKind::GatewayLinked => Vec::new(),
            };
            roles.push(Role {
                arn: format!("arn:aws:iam::{acct}:role{path}{name}"),
                role_id: aws_id("AROA", h),
                account,
                kind,
                region,
                sdk,
                factor: rng.gen_range(0.7..1.3),
                ips,
                vpce,
                app,
                sessions,
                session_period: match kind {
                    RoleKind::CiDeploy | RoleKind::CiPlan => 20 * 60 * 1_000_000,
                    RoleKind::Lambda => 15 * 60 * 1_000_000,
                    _ => 60 * 60 * 1_000_000,
                },
                name,
            });
        }

        let linked_role = (n_machine < n_roles).then(|| {
            let acct = accounts
                .first()
                .map(|a| a.id.as_str())
                .unwrap_or("111122223333");
            let h = hash(&[seed, 21]);
            roles.push(Role {
                name: "gateway-ops".to_string(),
                arn: format!("arn:aws:iam::{acct}:role/gateway/gateway-ops"),
                role_id: aws_id("AROA", h),
                account: 0,
                kind: RoleKind::GatewayLinked,
                region: accounts
                    .first()
                    .and_then(|a| a.regions.first().copied())
                    .unwrap_or("us-east-1"),
                sdk: Sdk::Cli,
                factor: 1.0,
                // Bastions reach AWS through a VPC endpoint: their own addresses.
                ips: Vec::new(),
                vpce: Some(format!("vpce-0{}", hex(16, mix(h ^ 0x7670_6365)))),
                app: "orders",
                sessions: Vec::new(),
                session_period: 60 * 60 * 1_000_000,
            });
            roles.len() - 1
        });

        let services = (0..n_services)
            .map(|i| {
                let (invoked_by, kind, fallback) = SERVICE_TEMPLATES.get(i).copied().unwrap_or((
                    "lambda.amazonaws.com",
                    Some(RoleKind::Lambda),
                    "",
                ));
                let mut targets: Vec<(String, String)> = roles
                    .iter()
                    .filter(|r| Some(r.kind) == kind)
                    .map(|r| {
                        let session = r.sessions.first().cloned().unwrap_or_default();
                        (r.arn.clone(), session)
                    })
                    .collect();
                let account = i % n_accounts;
                let acct = accounts
                    .get(account)
                    .map(|a| a.id.as_str())
                    .unwrap_or("111122223333");
                if targets.is_empty() && !fallback.is_empty() {
                    let session = match invoked_by {
                        "ec2.amazonaws.com" => {
                            format!("i-0{}", hex(16, hash(&[seed, 30, i as u64])))
                        }
                        "ecs-tasks.amazonaws.com" => hex(32, hash(&[seed, 31, i as u64])),
                        "config.amazonaws.com" => "AWSConfig-Describe".to_string(),
                        "events.amazonaws.com" => alnum(32, hash(&[seed, 32, i as u64])),
                        _ => "AutomationExecution".to_string(),
                    };
                    targets.push((format!("arn:aws:iam::{acct}:role{fallback}"), session));
                }
                Service {
                    invoked_by,
                    account,
                    targets,
                    factor: rng.gen_range(0.7..1.3),
                }
            })
            .collect();

        Org {
            seed,
            accounts,
            people,
            roles,
            services,
            hosts,
            linked_role,
        }
    }

    /// The gateway's linked role, when there is one.
    pub fn linked(&self) -> Option<&Role> {
        self.linked_role.and_then(|i| self.roles.get(i))
    }

    /// The account id at an index (the first account when out of range).
    pub fn account_id(&self, i: usize) -> &str {
        self.accounts
            .get(i)
            .or_else(|| self.accounts.first())
            .map(|a| a.id.as_str())
            .unwrap_or("111122223333")
    }

    /// The home region of an account.
    pub fn home_region(&self, i: usize) -> &'static str {
        self.accounts
            .get(i)
            .and_then(|a| a.regions.first().copied())
            .unwrap_or("us-east-1")
    }

    /// A stable KMS key id for an app in an account.
    pub fn kms_key(&self, account: usize, app: &str) -> String {
        uuid_from(hash(&[self.seed, 40, account as u64, str_hash(app)]))
    }

    /// A stable six-character suffix Secrets Manager adds to secret ARNs.
    pub fn secret_suffix(&self, account: usize, app: &str) -> String {
        alnum(6, hash(&[self.seed, 41, account as u64, str_hash(app)]))
    }

    /// A stable security group id for an app.
    pub fn security_group(&self, account: usize, app: &str) -> String {
        format!(
            "sg-0{}",
            hex(16, hash(&[self.seed, 42, account as u64, str_hash(app)]))
        )
    }

    /// A stable instance id for an app host.
    pub fn instance(&self, account: usize, app: &str, n: u64) -> String {
        format!(
            "i-0{}",
            hex(16, hash(&[self.seed, 43, account as u64, str_hash(app), n]))
        )
    }

    /// A stable EBS snapshot id for an app.
    pub fn snapshot(&self, account: usize, app: &str) -> String {
        format!(
            "snap-0{}",
            hex(16, hash(&[self.seed, 44, account as u64, str_hash(app)]))
        )
    }

    /// A stable VPC id for an account.
    pub fn vpc(&self, account: usize) -> String {
        format!("vpc-0{}", hex(16, hash(&[self.seed, 45, account as u64])))
    }
}

/// A stable hash of a string, for deriving ids from names.
pub(crate) fn str_hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x1000_0000_01b3)
    })
}

/// Draws a bucket name for an app in an account.
pub(crate) fn bucket(account_id: &str, app: &str, kind: u32) -> String {
    match kind % 3 {
        0 => format!("acme-{app}-data-{account_id}"),
        1 => format!("acme-{app}-exports"),
        _ => format!("acme-{app}-artifacts"),
    }
}

/// Picks an app for a person or a random call.
pub(crate) fn any_app(rng: &mut SmallRng) -> &'static str {
    pick(rng, APPS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_requested_number_of_principals() {
        let org = Org::new(7, 20);
        let total = org.people.len() + org.roles.len() + org.services.len();
        assert_eq!(total, 20);
        assert!(org.people.len() >= 2);
        let mut names: Vec<_> = org.people.iter().map(|p| p.name.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), org.people.len());
    }
}
