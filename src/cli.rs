//! The command line, as clap structs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Catch and stop the misuse of privileged access in AWS as it happens.
#[derive(Debug, Parser)]
#[command(name = "trailhound", version, about)]
pub struct Cli {
    /// Log more (also: TRAILHOUND_LOG=debug).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Detect attacks in CloudTrail and session logs (files, folders, globs, or - for stdin).
    Detect(DetectArgs),
    /// List or test rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Write a simulated organisation's CloudTrail and session logs, with labelled attacks.
    Generate(GenerateArgs),
    /// Query the audit lake with SQL (tables events, alerts and actions; partition columns date and hour).
    Sql(SqlArgs),
    /// Replay the audit lake's events of a time range through the rules: what would have fired.
    Backtest(BacktestArgs),
    /// Send CloudTrail and session logs to Kafka's event topic (files, folders, globs, or - for stdin).
    Ingest(IngestArgs),
    /// Warm-start baselines from history, or show what a state folder has learnt.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Undo response actions: remove exactly what they added (by action id, or all on a principal).
    Release(ReleaseArgs),
}

#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// Action ids (as action records, the lake's actions table and alerts show them).
    #[arg(value_name = "ACTION_ID")]
    pub action_ids: Vec<String>,
    /// Release every action in place on this principal (an IAM user or role ARN).
    #[arg(long, value_name = "ARN")]
    pub principal: Option<String>,
    /// Settings file: `response:` (AWS settings, gateway API, ledger).
    #[arg(long, value_name = "FILE", env = "TRAILHOUND_CONFIG")]
    pub config: Option<PathBuf>,
    /// The detector's state folder (its ledger is `actions.json` there).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// The ledger file itself (instead of --state's).
    #[arg(long, value_name = "FILE")]
    pub ledger: Option<PathBuf>,
    /// Also record the releases in this audit lake's actions table.
    #[arg(long, value_name = "DIR")]
    pub lake: Option<PathBuf>,
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlFormat {
    /// A boxed table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per row.
    Json,
}

#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query; without one, an interactive prompt reads statements ending in `;` from standard input.
    #[arg(value_name = "QUERY")]
    pub query: Option<String>,
    /// The lake's root folder.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "lake",
        env = "TRAILHOUND_LAKE"
    )]
    pub lake: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = SqlFormat::Table)]
    pub format: SqlFormat,
}

/// How a backtest report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BacktestFormat {
    /// A line per rule that fired, then sample alerts.
    Table,
    /// The whole report as one JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Start of the range (included): RFC 3339, or UTC as 2026-11-02, 2026-11-02T10, 2026-11-02T10:30.
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// End of the range (excluded), written like --from.
    #[arg(long, value_name = "TIME")]
    pub to: String,
    /// The lake's root folder.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "lake",
        env = "TRAILHOUND_LAKE"
    )]
    pub lake: PathBuf,
    /// Report format on standard output.
    #[arg(long, value_enum, default_value_t = BacktestFormat::Table)]
    pub format: BacktestFormat,
    /// Sample alerts shown per rule.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub samples: usize,
    /// Also write every alert that would have been raised to this file (JSON lines, as `detect --format json`).
    #[arg(long, value_name = "FILE")]
    pub alerts: Option<PathBuf>,
    /// A global suppress list, as `detect --suppress`.
    #[arg(long, value_name = "FILE")]
    pub suppress: Option<PathBuf>,
    /// Allowed lateness for windows and sequences, as `detect --lateness`.
    #[arg(long, value_name = "PERIOD", default_value = "20m")]
    pub lateness: String,
    /// Rows per batch handed to the engine, as `detect --batch-rows`.
    #[arg(long, default_value_t = 1024)]
    pub batch_rows: usize,
}

/// How alerts are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AlertFormat {
    /// A short readable block per alert.
    Text,
    /// One JSON object per line.
    Json,
    /// One OCSF 1.1.0 Detection Finding (class 2004) per line, for security lakes.
    Ocsf,
}

/// Where rules come from.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleArgs {
    /// A folder or file of rule YAML, added to the built-in pack (a rule with a built-in id replaces it). Repeatable.
    #[arg(long = "rules", value_name = "DIR")]
    pub rules: Vec<PathBuf>,
    /// Leave the built-in pack out: only --rules.
    #[arg(long)]
    pub no_builtin: bool,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// Inputs: files, folders (read recursively), globs, or - for standard input.
    #[arg(value_name = "PATHS")]
    pub paths: Vec<String>,
    /// Generate a small organisation with attacks in memory and detect them.
    #[arg(long, conflicts_with = "paths")]
    pub demo: bool,
    /// Score the run against a generated organisation's labels.json: scenarios detected, credential misuse flagged by behavioural rules, background alerts per 100,000 events (on standard error; exit 1 when a scenario is missed).
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    pub labels: Option<PathBuf>,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Alert output format on standard output.
    #[arg(long, value_enum, default_value_t = AlertFormat::Text)]
    pub format: AlertFormat,
    /// Where records that cannot be parsed are written (JSON lines; created only when needed).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "trailhound.deadletter.jsonl"
    )]
    pub dead_letters: PathBuf,
    /// Threads reading inputs (default: one per core, at most 8). With fewer
    /// inputs than this, the spare ones parse pieces of a large CloudTrail
    /// line file beside its reader.
    #[arg(long)]
    pub readers: Option<usize>,
    /// Close a batch at this many events.
    #[arg(long, default_value_t = 1024)]
    pub batch_rows: usize,
    /// Close a batch when its oldest event waited this many milliseconds.
    #[arg(long, default_value_t = 10)]
    pub batch_ms: u64,
    /// A global suppress list: YAML shaped like a rule's `suppress:` (principals with * wildcards, accounts, source_networks CIDRs); matches from these never alert.
    #[arg(long, value_name = "FILE")]
    pub suppress: Option<PathBuf>,
    /// Also write every event and alert to the Parquet audit lake in this folder (see docs/lake.md).
    #[arg(long, value_name = "DIR")]
    pub lake: Option<PathBuf>,
    /// Publish a lake file once it holds this many MiB.
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    pub lake_file_mib: u64,
    /// Publish a lake file once it has been open this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub lake_file_secs: u64,
    /// Settings file (YAML): alert sinks under `notify:` (Slack, PagerDuty, signed webhooks,
    /// stdout) with routes, retries and a dead-letter file; see docs/configuration.md.
    #[arg(long, value_name = "FILE", env = "TRAILHOUND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Keep state in this folder: resume from its checkpoint (skipping inputs read before,
    /// resuming a partly read one after its last record), checkpoint every --checkpoint-secs
    /// and at the end. Windows still open at the end are kept for the next run unless --flush.
    /// With --kafka: a folder, or an object store URL shared by detectors on several
    /// machines (s3://bucket/prefix, with the standard AWS_* variables; file:///path).
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Seconds between checkpoints during a run (with --state).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub checkpoint_secs: u64,
    /// With --state: the input is complete, close every window at the end.
    #[arg(long, requires = "state")]
    pub flush: bool,
    /// How late (behind the newest event time) an event may be and still count in windows
    /// and sequences: a number followed by s, m, h or d.
    #[arg(long, value_name = "PERIOD", default_value = "20m")]
    pub lateness: String,
    /// Serve Prometheus metrics on this address (GET /metrics, GET /healthz), e.g.
    /// 127.0.0.1:9464; port 0 picks a free port. Absent: no endpoint.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// With --metrics: keep serving this many seconds after the input ends, so that
    /// Prometheus can scrape the final values of a short run (Ctrl-C ends it early).
    #[arg(long, value_name = "SECS", default_value_t = 0, requires = "metrics")]
    pub metrics_linger: u64,
    /// With --metrics: allow an address beyond loopback (the endpoint has no authentication;
    /// without this flag such an address is refused).
    #[arg(long, requires = "metrics")]
    pub metrics_allow_remote: bool,
    /// No summary and no progress bar on standard error.
    #[arg(long, short)]
    pub quiet: bool,
    /// Consume the event topic of this Kafka cluster (bootstrap brokers, host:port,...) as a
    /// member of --group instead of reading files; the `kafka:` section of --config and
    /// TRAILHOUND_KAFKA_* variables give the other settings. State follows partitions in --state.
    #[arg(long, value_name = "BROKERS", conflicts_with_all = ["paths", "demo"])]
    pub kafka: Option<String>,
    /// With --kafka: the consumer group; its members share the partitions.
    #[arg(long, value_name = "NAME", requires = "kafka")]
    pub group: Option<String>,
    /// With --kafka: close every window and exit after this many seconds without an event
    /// (bounded runs and tests).
    #[arg(long, value_name = "SECS", requires = "kafka")]
    pub exit_when_idle: Option<u64>,
    /// With --kafka: most records taken per poll (smaller batches: lower latency, less throughput).
    #[arg(long, value_name = "N", default_value_t = 4096)]
    pub poll_records: usize,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Inputs: files, folders (read recursively, in time order), globs, or - for standard input.
    #[arg(value_name = "PATHS", required_unless_present_any = ["sqs", "listen", "lookup", "trail"])]
    pub paths: Vec<String>,
    /// PATHS are gateway logs on this machine (Teleport audit log, Cowrie JSON, session JSON
    /// lines): follow them as they grow and through rotation (rename or truncation), like
    /// `tail -F`; with --state each log's position is kept there and a restart goes on from it.
    #[arg(long, conflicts_with_all = ["sqs", "listen", "lookup", "trail"])]
    pub follow: bool,
    /// Read CloudTrail files announced on this SQS queue (S3 notifications, directly or through
    /// SNS or EventBridge) instead of PATHS; a message is deleted once the broker acknowledged
    /// every event of its objects.
    #[arg(long, value_name = "QUEUE_URL", conflicts_with = "paths")]
    pub sqs: Option<String>,
    /// With --sqs: stop after this many empty long polls in a row; with --follow, after this
    /// many passes over the logs that found nothing new (default: run until stopped).
    #[arg(long, value_name = "N")]
    pub idle_polls: Option<u32>,
    /// With --sqs: seconds each long poll waits for a message (0 to 20; shorter answers sooner
    /// when idle, at the price of more requests).
    #[arg(long, value_name = "SECS", default_value_t = 20,
          value_parser = clap::value_parser!(i32).range(0..=20))]
    pub wait_secs: i32,
    /// With --sqs or --trail: objects read at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Run the gateway receiver on this address (host:port) instead of reading PATHS: gateways
    /// POST session events to /v1/sessions with a bearer token (`receiver.tokens` in --config,
    /// or TRAILHOUND_RECEIVER_TOKENS) and get 200 once the broker has them.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["paths", "sqs", "lookup"])]
    pub listen: Option<std::net::SocketAddr>,
    /// Read the log files of this trail (found with DescribeTrails: bucket, prefix, organisation
    /// trail or not) as they appear, instead of PATHS; without NAME, the account's only trail.
    /// With --state the files done are kept there.
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "",
          conflicts_with_all = ["paths", "sqs", "lookup", "listen"])]
    pub trail: Option<String>,
    /// Read CloudTrail's LookupEvents (accounts without a trail bucket) instead of PATHS; with
    /// --state the per-region cursor is kept there.
    #[arg(long, conflicts_with_all = ["paths", "sqs"])]
    pub lookup: bool,
    /// With --lookup: the regions to read (default: the configured region).
    #[arg(
        long,
        value_name = "REGION,...",
        value_delimiter = ',',
        requires = "lookup"
    )]
    pub lookup_regions: Vec<String>,
    /// With --lookup or --trail: seconds between polls (default 60); with --follow, between
    /// passes over the logs that found nothing new (default 1).
    #[arg(long, value_name = "SECS")]
    pub poll_secs: Option<u64>,
    /// With --lookup, --trail or --follow: stop after this many polls (default: run until stopped).
    #[arg(long, value_name = "N")]
    pub polls: Option<u32>,
    #[command(flatten)]
    pub aws: AwsArgs,
    /// The Kafka cluster's bootstrap brokers (host:port,...); the `kafka:` section of --config
    /// and TRAILHOUND_KAFKA_* variables give the other settings.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: String,
    /// Keep a ledger of the inputs the broker acknowledged in this folder; a later run skips them.
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// Where records that cannot be parsed are written (JSON lines; created only when needed),
    /// besides the dead-letter topic.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "trailhound.deadletter.jsonl"
    )]
    pub dead_letters: PathBuf,
    /// Settings file (YAML); its `kafka:` section is read.
    #[arg(long, value_name = "FILE", env = "TRAILHOUND_CONFIG")]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (GET /metrics): records not yet acknowledged by
    /// the broker (the backlog of an outage), producers replaced after an outage, dead letters.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// With --metrics: allow an address beyond loopback (the endpoint has no authentication).
    #[arg(long, requires = "metrics")]
    pub metrics_allow_remote: bool,
    /// No summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Where and as whom to reach AWS; the `aws:` section of --config gives the same, and the
/// standard chain (AWS_* variables, ~/.aws, SSO, instance and container roles) the rest.
#[derive(Debug, Args, Default)]
pub struct AwsArgs {
    /// AWS region (default: the chain's, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// A named profile of ~/.aws/config.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Another AWS endpoint: an emulator or a private (VPC) endpoint.
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// A role to assume with the chain's credentials.
    #[arg(long, value_name = "ROLE_ARN")]
    pub assume_role: Option<String>,
    /// The external id the role's trust policy asks for.
    #[arg(long, value_name = "ID", requires = "assume_role")]
    pub external_id: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// List the rules that would run.
    List {
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Run every rule's inline tests: a table of rules with passed/total, failing tests under their rule.
    Test {
        /// Folders or files of rules (own format or Sigma), added like --rules.
        #[arg(value_name = "DIR")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        rules: RuleArgs,
    },
    /// Check rule files one by one and report every problem (errors and warnings).
    Lint {
        /// Folders or files of rules (own format or Sigma), added like --rules.
        #[arg(value_name = "DIR")]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        rules: RuleArgs,
        /// Show errors only.
        #[arg(long)]
        errors_only: bool,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write into (created if missing).
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Random seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Number of principals (people, roles, services) in the organisation; 500 or more for measuring baselines.
    #[arg(long, default_value_t = 20)]
    pub principals: usize,
    /// Days of activity (the credential-misuse scenarios need at least 9: 7 of history first).
    #[arg(long, default_value_t = 1)]
    pub days: u32,
    /// Average CloudTrail events per principal per day.
    #[arg(long, default_value_t = 150)]
    pub events_per_principal_per_day: u32,
    /// First day, as YYYY-MM-DD (UTC).
    #[arg(long, default_value = "2026-11-02")]
    pub start: String,
    /// Attack scenarios to inject: comma-separated scenario ids and sets: `demo` (the 12 known-bad ones), `credential-misuse` (5 that only baselines see), `grants` (a session outliving its just-in-time grant), `all` (every one), `none`.
    #[arg(long, visible_alias = "scenarios", default_value = "demo")]
    pub attacks: String,
    /// No gateway session logs.
    #[arg(long)]
    pub no_sessions: bool,
    /// Write CloudTrail files uncompressed.
    #[arg(long)]
    pub no_gzip: bool,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Learn the baselines from past CloudTrail and session logs into a state folder, without
    /// alerting; `trailhound detect --state DIR` then starts live with them learnt.
    Build(BaselineBuildArgs),
    /// Show what the checkpoint in a state folder holds: keys per baseline rule, inputs read.
    Show {
        /// The state folder (as given to `detect --state` or `baseline build --state`).
        #[arg(long, value_name = "DIR")]
        state: PathBuf,
        #[command(flatten)]
        rules: RuleArgs,
    },
}

#[derive(Debug, Args)]
pub struct BaselineBuildArgs {
    /// History to learn from: files, folders (read recursively), globs, or - for standard input
    /// (after the lake's events, when --lake is given too).
    #[arg(value_name = "PATHS", required_unless_present = "lake")]
    pub paths: Vec<String>,
    /// Also learn from the audit lake's events in this folder (oldest first, hour by hour).
    #[arg(long, value_name = "DIR")]
    pub lake: Option<PathBuf>,
    /// With --lake: the first event time to learn from (RFC 3339, or UTC as 2026-11-02,
    /// 2026-11-02T10, 2026-11-02T10:30). Default: the lake's beginning.
    #[arg(long, value_name = "TIME", requires = "lake")]
    pub from: Option<String>,
    /// With --lake: learn from events before this time (written like --from). Default: all.
    #[arg(long, value_name = "TIME", requires = "lake")]
    pub to: Option<String>,
    /// The state folder to write (created if missing; an existing checkpoint there is resumed
    /// and added to, inputs it has read already are skipped).
    #[arg(long, value_name = "DIR")]
    pub state: PathBuf,
    #[command(flatten)]
    pub rules: RuleArgs,
    /// Where records that cannot be parsed are written (JSON lines; created only when needed).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "trailhound.deadletter.jsonl"
    )]
    pub dead_letters: PathBuf,
    /// Threads reading inputs (default: one per core, at most 8). With fewer
    /// inputs than this, the spare ones parse pieces of a large CloudTrail
    /// line file beside its reader.
    #[arg(long)]
    pub readers: Option<usize>,
    /// Seconds between checkpoints during the build.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub checkpoint_secs: u64,
    /// How late (behind the newest event time) an event may be: a number followed by s, m, h or d.
    #[arg(long, value_name = "PERIOD", default_value = "20m")]
    pub lateness: String,
    /// No summary on standard error.
    #[arg(long, short)]
    pub quiet: bool,
}
