//! `trailhound.yaml`: the settings file of `trailhound detect --config FILE`
//! (or `TRAILHOUND_CONFIG=FILE`). `docs/configuration.md` is the guide.
//!
//! Today it holds `notify:`, the alert sinks beside standard output:
//! `slack`, `pagerduty`, `webhook`, `kafka` (each behind a route and a
//! delivery queue with retries and a dead-letter file, see
//! `trailhound_sinks::notify`) and
//! `stdout` (which then takes the place of the `--format` output). Secrets
//! (`url` of Slack, `routing_key`, `secret`) may be written `env:VAR_NAME` so
//! that the file holds none. Unknown keys are errors; every error names the
//! file and the key. `kafka:` (the bus settings) is read by `ingest --kafka`
//! and `detect --kafka`; `response:` (automated response, see
//! `trailhound_respond::config`) by `detect` and `release`; `metrics:` is
//! accepted and not read yet.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use trailhound_core::Severity;
use trailhound_sinks::notify::delivery::DEFAULT_DEAD_LETTERS;
use trailhound_sinks::notify::kafka::{BusConfig, is_secret_property};
use trailhound_sinks::notify::pagerduty::DEFAULT_BASE_URL;
use trailhound_sinks::notify::{
    DeliveryPolicy, KafkaSink, KafkaSinkConfig, PagerDutyConfig, PagerDutySink, Route, Routed,
    SlackConfig, SlackSink, StatsHandle, WebhookConfig, WebhookFormat, WebhookSink,
};
use trailhound_sinks::{AlertSink, JsonLinesSink, OcsfLinesSink, TextSink};

/// A settings file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {}: {cause}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file is not YAML of the expected shape (serde's message names the key and line).
    #[error("config file {}: {message}", .path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        message: String,
    },
    /// A value is missing, out of range or not usable.
    #[error("config file {}: {key}: {message}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, as a path (`notify.sinks[1].url`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Alert sinks.
    #[serde(default)]
    pub notify: NotifyConfig,
    /// Kafka settings (`trailhound_bus::BusConfig`), read by `ingest --kafka`
    /// and `detect --kafka`.
    #[serde(default)]
    pub kafka: Option<serde_yaml::Value>,
    /// Metrics settings: read by later versions; accepted and not used yet.
    #[serde(default)]
    #[allow(dead_code, reason = "read by later versions")]
    pub metrics: Option<serde_yaml::Value>,
    /// Automated response (`trailhound_respond::ResponseConfig`): modes,
    /// policy, guardrails, AWS and gateway settings. Absent: shadow mode
    /// with the defaults.
    #[serde(default)]
    pub response: Option<trailhound_respond::ResponseConfig>,
    /// AWS access for the sources (`trailhound_aws::AwsSettings`): region,
    /// profile, endpoint, role to assume; `ingest --sqs` reads it, flags win.
    #[serde(default)]
    pub aws: Option<trailhound_aws::AwsSettings>,
    /// The gateway receiver (`trailhound_receive::ReceiverSettings`):
    /// tokens, body limits; `ingest --listen` reads it.
    #[serde(default)]
    pub receiver: Option<trailhound_receive::ReceiverSettings>,
    /// Just-in-time grants (`trailhound_detector::grants::GrantConfig`):
    /// privileged and managed roles, gateway roles, Identity Center names;
    /// `detect` reads it.
    #[serde(default)]
    pub grants: Option<trailhound_detector::grants::GrantConfig>,
}

/// `notify:`: the sinks, and defaults every sink may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// The dead-letter file of sinks that do not name their own.
    #[serde(default)]
    pub dead_letters: Option<PathBuf>,
    /// The queue length of sinks that do not set their own.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Retry limits of every sink (each key may be overridden per sink).
    #[serde(default)]
    pub retry: RetrySpec,
    /// The sinks.
    #[serde(default)]
    pub sinks: Vec<SinkSpec>,
}

/// What a sink is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    Pagerduty,
    /// Any HTTP endpoint, signed.
    Webhook,
    /// Standard output.
    Stdout,
    /// The Kafka alerts topic.
    Kafka,
}

impl SinkKind {
    fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::Pagerduty => "pagerduty",
            SinkKind::Webhook => "webhook",
            SinkKind::Stdout => "stdout",
            SinkKind::Kafka => "kafka",
        }
    }
}

/// How alerts are written (`stdout`) or posted (`webhook`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A readable block per alert (`stdout` only).
    Text,
    /// The alert as JSON.
    Json,
    /// An OCSF Detection Finding.
    Ocsf,
}

/// One entry of `notify.sinks`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// What it is.
    pub kind: SinkKind,
    /// Its name in logs, counters and dead letters (default: the kind; must be unique).
    #[serde(default)]
    pub name: Option<String>,
    /// Slack: the webhook URL (secret); webhook: the endpoint; pagerduty: the API base URL.
    #[serde(default)]
    pub url: Option<String>,
    /// PagerDuty: the integration key (secret).
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Webhook: the signing secret.
    #[serde(default)]
    pub secret: Option<String>,
    /// Webhook: `json` (default) or `ocsf`; stdout: `text` (default), `json` or `ocsf`.
    #[serde(default)]
    pub format: Option<Format>,
    /// PagerDuty: allow resolve events.
    #[serde(default)]
    pub resolve: bool,
    /// Kafka: the bootstrap brokers (`host:port,...`; `env:VAR` allowed).
    #[serde(default)]
    pub brokers: Option<String>,
    /// Kafka: the topic alerts go to (default `trailhound.alerts`).
    #[serde(default)]
    pub topic: Option<String>,
    /// Kafka: librdkafka properties passed through (`security.protocol`,
    /// `sasl.password: env:KAFKA_PASSWORD`, ...).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Which alerts it takes.
    #[serde(default)]
    pub route: RouteSpec,
    /// Overrides of `notify.retry`.
    #[serde(default)]
    pub retry: RetrySpec,
    /// Override of `notify.queue_size`.
    #[serde(default)]
    pub queue_size: Option<usize>,
    /// Override of `notify.dead_letters`.
    #[serde(default)]
    pub dead_letters: Option<PathBuf>,
}

/// `route:` of a sink.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The lowest severity taken (`informational`/`info`, `low`, `medium`, `high`, `critical`).
    #[serde(default)]
    pub min_severity: Option<String>,
    /// Tags of which an alert needs one.
    #[serde(default)]
    pub tags_any: Vec<String>,
    /// Rule-id globs of which one must match.
    #[serde(default)]
    pub rules: Vec<String>,
}

/// `retry:`: limits of retrying, each optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts per alert at most.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Give an alert up once it is this old.
    #[serde(default)]
    pub give_up_after: Option<Period>,
    /// The first backoff step.
    #[serde(default)]
    pub initial_backoff: Option<Period>,
    /// The largest backoff step.
    #[serde(default)]
    pub max_backoff: Option<Period>,
    /// The longest `Retry-After` honoured.
    #[serde(default)]
    pub max_retry_after: Option<Period>,
    /// One request's time limit.
    #[serde(default)]
    pub request_timeout: Option<Period>,
    /// How long flushing and shutdown wait for the queue.
    #[serde(default)]
    pub flush_timeout: Option<Period>,
}

impl RetrySpec {
    /// `self` with `over`'s keys where `over` sets them.
    fn merged(&self, over: &RetrySpec) -> RetrySpec {
        RetrySpec {
            max_attempts: over.max_attempts.or(self.max_attempts),
            give_up_after: over.give_up_after.or(self.give_up_after),
            initial_backoff: over.initial_backoff.or(self.initial_backoff),
            max_backoff: over.max_backoff.or(self.max_backoff),
            max_retry_after: over.max_retry_after.or(self.max_retry_after),
            request_timeout: over.request_timeout.or(self.request_timeout),
            flush_timeout: over.flush_timeout.or(self.flush_timeout),
        }
    }

    fn is_empty(&self) -> bool {
        self.max_attempts.is_none()
            && self.give_up_after.is_none()
            && self.initial_backoff.is_none()
            && self.max_backoff.is_none()
            && self.max_retry_after.is_none()
            && self.request_timeout.is_none()
            && self.flush_timeout.is_none()
    }
}

/// A duration written `250ms`, `30s`, `5m` or `1h` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period(pub Duration);

impl Period {
    /// Parses `250ms`, `30s`, `5m`, `1h` or a number of seconds.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: u64 = digits.parse().ok()?;
        let d = match unit.trim() {
            "ms" => Duration::from_millis(n),
            "" | "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            _ => return None,
        };
        Some(Period(d))
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Period;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as 250ms, 30s, 5m or 1h")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Period, E> {
                Ok(Period(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Period, E> {
                u64::try_from(v)
                    .map(|v| Period(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Period, E> {
                Period::parse(v).ok_or_else(|| {
                    E::custom(format!(
                        "{v:?} is not a duration such as 250ms, 30s, 5m or 1h"
                    ))
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl Config {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text`, naming `path` in errors. An empty file is an empty config.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        serde_yaml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// The sinks a config file asks for, started.
pub struct NotifySinks {
    /// The sinks, in the file's order.
    pub sinks: Vec<Box<dyn AlertSink>>,
    /// Counters of the HTTP sinks, readable after the sinks are gone.
    pub stats: Vec<StatsHandle>,
    /// Whether the file configures standard output (which then replaces `--format`'s).
    pub replaces_stdout: bool,
}

/// `response:` of the settings file, or the defaults (shadow mode) when
/// there is no file or no such section.
pub fn load_response(
    path: Option<&Path>,
) -> Result<trailhound_respond::ResponseConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(trailhound_respond::ResponseConfig::default());
    };
    let config = Config::load(path)?;
    let response = config.response.unwrap_or_default();
    if response.max_actions == 0 {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "response.max_actions".into(),
            message: "must be at least 1 (set mode: shadow to take no action)".into(),
        });
    }
    if let Some(g) = &response.gateway
        && url_scheme_unusable(&g.url)
    {
        return Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            key: "response.gateway.url".into(),
            message: "must be an http:// or https:// URL".into(),
        });
    }
    Ok(response)
}

/// `grants:` of the settings file, or the defaults when there is no file or
/// no such section.
pub fn load_grants(
    path: Option<&Path>,
) -> Result<trailhound_detector::grants::GrantConfig, ConfigError> {
    let Some(path) = path else {
        return Ok(trailhound_detector::grants::GrantConfig::default());
    };
    Ok(Config::load(path)?.grants.unwrap_or_default())
}

fn url_scheme_unusable(url: &str) -> bool {
    !(url.starts_with("http://") || url.starts_with("https://"))
}

/// Reads `path`, when given, and starts the sinks of its `notify:` section.
pub fn load_notify(path: Option<&Path>) -> Result<Option<NotifySinks>, ConfigError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let config = Config::load(path)?;
    config
        .notify
        .build(path, |name| std::env::var(name).ok())
        .map(Some)
}

impl NotifyConfig {
    /// Starts every sink; `env` looks up the variables of `env:NAME` values.
    pub fn build(
        &self,
        path: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<NotifySinks, ConfigError> {
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            message,
        };
        let mut out = NotifySinks {
            sinks: Vec::new(),
            stats: Vec::new(),
            replaces_stdout: false,
        };
        let mut names = BTreeSet::new();
        for (i, spec) in self.sinks.iter().enumerate() {
            let at = format!("notify.sinks[{i}]");
            let kind = spec.kind.as_str();
            let name = spec.name.clone().unwrap_or_else(|| kind.to_string());
            if name.trim().is_empty() {
                return Err(invalid(format!("{at}.name"), "is empty".into()));
            }
            if !names.insert(name.clone()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("two sinks are named {name:?}: give each its own name"),
                ));
            }
            // Keys a kind does not use are errors, not silently ignored.
            let unused = |key: &str, set: bool| -> Result<(), ConfigError> {
                if set {
                    Err(invalid(
                        format!("{at}.{key}"),
                        format!("not used by a {kind} sink"),
                    ))
                } else {
                    Ok(())
                }
            };
            let required = |key: &str, value: &Option<String>| -> Result<String, ConfigError> {
                value.clone().ok_or_else(|| {
                    invalid(format!("{at}.{key}"), format!("a {kind} sink needs it"))
                })
            };
            // `secret`: warn when the value is written in the file itself.
            let resolve = |key: &str, value: String, secret: bool| -> Result<String, ConfigError> {
                let key = format!("{at}.{key}");
                let v = resolve_secret(&value, &env).map_err(|m| invalid(key.clone(), m))?;
                if secret && !value.starts_with("env:") {
                    tracing::warn!(
                        "{}: {key} is a secret written in the file itself; env:VAR_NAME keeps it out of the file.",
                        path.display()
                    );
                }
                Ok(v)
            };
            let route = self.route(spec, &at, path)?;
            let policy = || self.policy(spec, &at, path);
            if spec.kind != SinkKind::Kafka {
                unused("brokers", spec.brokers.is_some())?;
                unused("topic", spec.topic.is_some())?;
                unused("properties", !spec.properties.is_empty())?;
            }
            match spec.kind {
                SinkKind::Slack => {
                    unused("routing_key", spec.routing_key.is_some())?;
                    unused("secret", spec.secret.is_some())?;
                    unused("format", spec.format.is_some())?;
                    unused("resolve", spec.resolve)?;
                    let url = resolve("url", required("url", &spec.url)?, true)?;
                    let sink = SlackSink::new(
                        SlackConfig {
                            name,
                            webhook_url: url,
                        },
                        route,
                        policy()?,
                    )
                    .map_err(|e| invalid(format!("{at}.url"), e.to_string()))?;
                    out.stats.push(sink.stats_handle());
                    out.sinks.push(Box::new(sink));
                }
                SinkKind::Pagerduty => {
                    unused("secret", spec.secret.is_some())?;
                    unused("format", spec.format.is_some())?;
                    let key = resolve(
                        "routing_key",
                        required("routing_key", &spec.routing_key)?,
                        true,
                    )?;
                    let config = PagerDutyConfig {
                        name,
                        routing_key: key,
                        base_url: spec.url.clone().unwrap_or_else(|| DEFAULT_BASE_URL.into()),
                        resolve: spec.resolve,
                    };
                    let sink = PagerDutySink::new(config, route, policy()?)
                        .map_err(|e| invalid(at.clone(), e.to_string()))?;
                    out.stats.push(sink.stats_handle());
                    out.sinks.push(Box::new(sink));
                }
                SinkKind::Webhook => {
                    unused("routing_key", spec.routing_key.is_some())?;
                    unused("resolve", spec.resolve)?;
                    let format = match spec.format.unwrap_or(Format::Json) {
                        Format::Json => WebhookFormat::Alert,
                        Format::Ocsf => WebhookFormat::Ocsf,
                        Format::Text => {
                            return Err(invalid(
                                format!("{at}.format"),
                                "a webhook posts json or ocsf".into(),
                            ));
                        }
                    };
                    let url = resolve("url", required("url", &spec.url)?, false)?;
                    let secret = resolve("secret", required("secret", &spec.secret)?, true)?;
                    let sink = WebhookSink::new(
                        WebhookConfig {
                            name,
                            url,
                            secret: secret.into_bytes(),
                            format,
                        },
                        route,
                        policy()?,
                    )
                    .map_err(|e| invalid(at.clone(), e.to_string()))?;
                    out.stats.push(sink.stats_handle());
                    out.sinks.push(Box::new(sink));
                }
                SinkKind::Stdout => {
                    unused("url", spec.url.is_some())?;
                    unused("routing_key", spec.routing_key.is_some())?;
                    unused("secret", spec.secret.is_some())?;
                    unused("resolve", spec.resolve)?;
                    unused("retry", !spec.retry.is_empty())?;
                    unused("queue_size", spec.queue_size.is_some())?;
                    unused("dead_letters", spec.dead_letters.is_some())?;
                    let inner: Box<dyn AlertSink> = match spec.format.unwrap_or(Format::Text) {
                        Format::Text => Box::new(TextSink::new(std::io::stdout())),
                        Format::Json => Box::new(JsonLinesSink::new(std::io::stdout())),
                        Format::Ocsf => Box::new(OcsfLinesSink::new(std::io::stdout())),
                    };
                    out.replaces_stdout = true;
                    out.sinks.push(Box::new(Routed::new(route, inner)));
                }
                SinkKind::Kafka => {
                    unused("url", spec.url.is_some())?;
                    unused("routing_key", spec.routing_key.is_some())?;
                    unused("secret", spec.secret.is_some())?;
                    unused("format", spec.format.is_some())?;
                    unused("resolve", spec.resolve)?;
                    let brokers = resolve("brokers", required("brokers", &spec.brokers)?, false)?;
                    let mut bus = BusConfig::new(brokers);
                    if let Some(topic) = &spec.topic {
                        if topic.trim().is_empty() {
                            return Err(invalid(format!("{at}.topic"), "is empty".into()));
                        }
                        bus.topics.alerts = topic.clone();
                    }
                    for (key, value) in &spec.properties {
                        let value = resolve(
                            &format!("properties.{key}"),
                            value.clone(),
                            is_secret_property(key),
                        )?;
                        bus.properties.insert(key.clone(), value);
                    }
                    let sink = KafkaSink::new(KafkaSinkConfig { name, bus }, route, policy()?)
                        .map_err(|e| invalid(at.clone(), e.to_string()))?;
                    out.stats.push(sink.stats_handle());
                    out.sinks.push(Box::new(sink));
                }
            }
        }
        Ok(out)
    }

    fn route(&self, spec: &SinkSpec, at: &str, path: &Path) -> Result<Route, ConfigError> {
        let min_severity = match &spec.route.min_severity {
            Some(s) => s
                .parse::<Severity>()
                .map_err(|message| ConfigError::Invalid {
                    path: path.to_path_buf(),
                    key: format!("{at}.route.min_severity"),
                    message,
                })?,
            None => Severity::Informational,
        };
        Route::new(min_severity, spec.route.tags_any.clone(), &spec.route.rules).map_err(|e| {
            ConfigError::Invalid {
                path: path.to_path_buf(),
                key: format!("{at}.route.rules"),
                message: e.to_string(),
            }
        })
    }

    fn policy(
        &self,
        spec: &SinkSpec,
        at: &str,
        path: &Path,
    ) -> Result<DeliveryPolicy, ConfigError> {
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: format!("{at}.{key}"),
            message: message.to_string(),
        };
        let retry = self.retry.merged(&spec.retry);
        let mut p = DeliveryPolicy {
            dead_letters: spec
                .dead_letters
                .clone()
                .or_else(|| self.dead_letters.clone())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DEAD_LETTERS)),
            ..DeliveryPolicy::default()
        };
        if let Some(n) = spec.queue_size.or(self.queue_size) {
            if n == 0 {
                return Err(invalid("queue_size", "must be at least 1"));
            }
            p.queue_size = n;
        }
        if let Some(n) = retry.max_attempts {
            if n == 0 {
                return Err(invalid("retry.max_attempts", "must be at least 1"));
            }
            p.max_attempts = n;
        }
        let set = |slot: &mut Duration, v: Option<Period>| {
            if let Some(Period(d)) = v {
                *slot = d;
            }
        };
        set(&mut p.give_up_after, retry.give_up_after);
        set(&mut p.initial_backoff, retry.initial_backoff);
        set(&mut p.max_backoff, retry.max_backoff);
        set(&mut p.max_retry_after, retry.max_retry_after);
        set(&mut p.request_timeout, retry.request_timeout);
        set(&mut p.flush_timeout, retry.flush_timeout);
        if p.request_timeout.is_zero() {
            return Err(invalid("retry.request_timeout", "must be more than 0"));
        }
        if p.initial_backoff > p.max_backoff {
            return Err(invalid(
                "retry.initial_backoff",
                "is larger than retry.max_backoff",
            ));
        }
        Ok(p)
    }
}

/// The value of a setting that may be secret: `env:NAME` is read from the
/// environment; anything else is the value itself.
fn resolve_secret(value: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    match value.strip_prefix("env:") {
        Some(var) => {
            let var = var.trim();
            if var.is_empty() {
                return Err("env: needs a variable name (env:VAR_NAME)".into());
            }
            match env(var) {
                Some(v) if !v.is_empty() => Ok(v),
                Some(_) => Err(format!("environment variable {var} is empty")),
                None => Err(format!("environment variable {var} is not set")),
            }
        }
        None if value.is_empty() => Err("is empty".into()),
        None => Ok(value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("trailhound.yaml"))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn a_full_file_parses_and_builds_every_kind() {
        let dir = tempfile::tempdir().unwrap();
        let dl = dir.path().join("dl.jsonl");
        let text = format!(
            r#"
notify:
  dead_letters: {dl}
  queue_size: 500
  retry: {{max_attempts: 5, give_up_after: 10m, initial_backoff: 500ms, max_backoff: 30s}}
  sinks:
    - kind: pagerduty
      name: oncall
      routing_key: env:PD_KEY
      url: http://127.0.0.1:9
      resolve: true
      route: {{min_severity: high}}
      retry: {{max_attempts: 8}}
    - kind: slack
      url: env:SLACK_URL
      route: {{tags_any: [baseline], rules: ["aws-*"]}}
    - kind: webhook
      url: http://127.0.0.1:9/hook
      secret: env:HOOK_SECRET
      format: ocsf
      queue_size: 10
    - kind: stdout
      format: json
      route: {{min_severity: info}}
kafka: {{brokers: "localhost:9092"}}
metrics: {{}}
response: ~
"#,
            dl = dl.display()
        );
        let config = parse(&text).unwrap();
        assert_eq!(config.notify.sinks.len(), 4);
        let env = |name: &str| match name {
            "PD_KEY" => Some("k".to_string()),
            "SLACK_URL" => Some("http://127.0.0.1:9/services/x".to_string()),
            "HOOK_SECRET" => Some("s".to_string()),
            _ => None,
        };
        let p = config
            .notify
            .policy(&config.notify.sinks[0], "x", Path::new("f"))
            .unwrap();
        assert_eq!(p.max_attempts, 8);
        assert_eq!(p.give_up_after, Duration::from_secs(600));
        assert_eq!(p.initial_backoff, Duration::from_millis(500));
        assert_eq!(p.queue_size, 500);
        assert_eq!(p.dead_letters, dl);
        let built = config
            .notify
            .build(Path::new("trailhound.yaml"), env)
            .unwrap();
        assert_eq!(built.sinks.len(), 4);
        assert_eq!(built.stats.len(), 3);
        assert!(built.replaces_stdout);
        let names: Vec<&str> = built.stats.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["oncall", "slack", "webhook"]);
    }

    #[test]
    fn a_kafka_sink_takes_brokers_topic_and_properties() {
        let text = "notify:\n  sinks:\n    - kind: kafka\n      name: bus\n      \
                    brokers: env:BROKERS\n      topic: soc.alerts\n      \
                    properties: {security.protocol: plaintext}\n      \
                    route: {min_severity: high}\n";
        let env = |name: &str| (name == "BROKERS").then(|| "127.0.0.1:9".to_string());
        let built = parse(text)
            .unwrap()
            .notify
            .build(Path::new("trailhound.yaml"), env)
            .unwrap();
        assert_eq!(built.sinks.len(), 1);
        assert_eq!(built.sinks[0].name(), "kafka");
        assert_eq!(built.stats[0].name(), "bus");

        let build = |text: &str| {
            parse(text)
                .unwrap()
                .notify
                .build(Path::new("trailhound.yaml"), no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let m = build("notify:\n  sinks:\n    - kind: kafka\n");
        assert!(m.contains("notify.sinks[0].brokers"), "{m}");
        let m = build("notify:\n  sinks:\n    - kind: kafka\n      brokers: b:9\n      url: x\n");
        assert!(
            m.contains("notify.sinks[0].url") && m.contains("not used"),
            "{m}"
        );
        let m = build("notify:\n  sinks:\n    - kind: stdout\n      topic: t\n");
        assert!(
            m.contains("notify.sinks[0].topic") && m.contains("not used"),
            "{m}"
        );
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let e = parse("notify:\n  sinks:\n    - kind: slack\n      urll: x\n").unwrap_err();
        let m = e.to_string();
        assert!(m.contains("trailhound.yaml") && m.contains("urll"), "{m}");
        assert!(m.contains("notify.sinks[0]"), "{m}");

        let e = parse("notify:\n  sinks:\n    - kind: email\n").unwrap_err();
        assert!(e.to_string().contains("email"), "{e}");

        let e = parse("notfy: {}\n").unwrap_err();
        assert!(e.to_string().contains("notfy"), "{e}");

        let e = parse("notify:\n  retry: {give_up_after: soon}\n").unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");

        let build = |text: &str| {
            parse(text)
                .unwrap()
                .notify
                .build(Path::new("trailhound.yaml"), no_env)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let m = build("notify:\n  sinks:\n    - kind: slack\n      url: env:SLACK_URL\n");
        assert!(
            m.contains(
                "trailhound.yaml: notify.sinks[0].url: environment variable SLACK_URL is not set"
            ),
            "{m}"
        );
        let m = build("notify:\n  sinks:\n    - kind: webhook\n      url: http://127.0.0.1:9/\n");
        assert!(
            m.contains("notify.sinks[0].secret: a webhook sink needs it"),
            "{m}"
        );
        let m = build(
            "notify:\n  sinks:\n    - kind: slack\n      url: http://127.0.0.1:9/\n      routing_key: k\n",
        );
        assert!(
            m.contains("notify.sinks[0].routing_key: not used by a slack sink"),
            "{m}"
        );
        let m = build("notify:\n  sinks:\n    - kind: stdout\n    - kind: stdout\n");
        assert!(
            m.contains("notify.sinks[1].name: two sinks are named \"stdout\""),
            "{m}"
        );
        let m =
            build("notify:\n  sinks:\n    - kind: stdout\n      route: {min_severity: severe}\n");
        assert!(m.contains("notify.sinks[0].route.min_severity"), "{m}");
        let m = build("notify:\n  sinks:\n    - kind: stdout\n      route: {rules: ['aws-[']}\n");
        assert!(m.contains("notify.sinks[0].route.rules"), "{m}");
        let m = build(
            "notify:\n  sinks:\n    - kind: webhook\n      url: http://127.0.0.1:9/\n      secret: s\n      queue_size: 0\n",
        );
        assert!(
            m.contains("notify.sinks[0].queue_size: must be at least 1"),
            "{m}"
        );
    }

    #[test]
    fn grants_take_roles_gateway_roles_and_identity_center_names() {
        let text = "grants:\n  privileged_roles: [\"arn:aws:iam::*:role/break-glass-*\"]\n  \
                    gateway_roles: {aws-admin: [\"arn:aws:iam::1:role/admin\"]}\n  \
                    identity_center:\n    users: {u-1: alice}\n  outlived_within: 6h\n";
        let grants = parse(text).unwrap().grants.unwrap_or_default();
        assert_eq!(grants.privileged_roles.len(), 1);
        assert_eq!(
            grants.gateway_roles["aws-admin"],
            ["arn:aws:iam::1:role/admin"]
        );
        assert_eq!(grants.identity_center.users["u-1"], "alice");
        assert_eq!(grants.outlived_within_micros, 6 * 3_600_000_000);
        assert_eq!(grants.retention_micros, 7 * 86_400_000_000);
        let e = parse("grants:\n  privileged_role: [x]\n").unwrap_err();
        assert!(e.to_string().contains("privileged_role"), "{e}");
        let e = parse("grants:\n  retention: soon\n").unwrap_err();
        assert!(e.to_string().contains("soon"), "{e}");
    }

    #[test]
    fn periods_take_units_or_seconds() {
        assert_eq!(
            Period::parse("250ms"),
            Some(Period(Duration::from_millis(250)))
        );
        assert_eq!(Period::parse("30s"), Some(Period(Duration::from_secs(30))));
        assert_eq!(Period::parse("5m"), Some(Period(Duration::from_secs(300))));
        assert_eq!(Period::parse("2h"), Some(Period(Duration::from_secs(7200))));
        assert_eq!(Period::parse("7"), Some(Period(Duration::from_secs(7))));
        assert_eq!(Period::parse("1d"), None);
        assert_eq!(Period::parse("m"), None);
        let c = parse("notify:\n  retry: {flush_timeout: 3}\n").unwrap();
        assert_eq!(
            c.notify.retry.flush_timeout,
            Some(Period(Duration::from_secs(3)))
        );
    }

    #[test]
    fn an_empty_file_is_an_empty_config() {
        let c = parse("\n").unwrap();
        assert!(c.notify.sinks.is_empty());
        let built = c.notify.build(Path::new("f"), no_env).unwrap();
        assert!(built.sinks.is_empty() && !built.replaces_stdout);
    }
}
