//! `response:` in the settings file: what triggers which responder, the
//! guardrails, and how to reach AWS and the gateway. Every default is the
//! safe one: shadow mode, caps on, a time to live, root and AWS services
//! never touched.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use trailhound_core::{ActionMode, Severity};
use trailhound_rules::rule::{ResponseName, SeverityName};

/// `response:`: the whole response configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseConfig {
    /// `off`, `shadow` (record what would be done, do nothing; the default)
    /// or `enforce`.
    pub mode: ActionMode,
    /// Principals never acted on: ARNs or names, `*` and `?` wildcards
    /// (`arn:aws:iam::*:role/break-glass-*`, the detector's own role).
    pub allow: Vec<String>,
    /// Whether the `respond:` list of a rule file counts (it does by default).
    pub rule_responses: bool,
    /// Responders triggered by rule ids or severities, beside the rules' own lists.
    pub policy: Vec<PolicyEntry>,
    /// At most this many actions in enforce mode per `window`; one more trips
    /// the circuit breaker.
    pub max_actions: u32,
    /// The window of `max_actions`, like `1h` or `15m`.
    #[serde(with = "duration_text")]
    pub window: Duration,
    /// How long a tripped breaker keeps enforce mode in shadow.
    #[serde(with = "duration_text")]
    pub cooldown: Duration,
    /// Actions taken are released after this long (`0s`: never).
    #[serde(with = "duration_text")]
    pub ttl: Duration,
    /// The ledger of actions in place (what `release` undoes). Default:
    /// `actions.json` in the detector's `--state` folder, else in the
    /// working folder.
    pub ledger: Option<PathBuf>,
    /// Attempts per AWS or gateway call on throttling and transient errors.
    pub attempts: u32,
    /// How to reach IAM.
    pub aws: AwsSettings,
    /// How to end a gateway session, when the gateway has an API.
    pub gateway: Option<GatewaySettings>,
    /// Name prefix of the inline policies trailhound adds.
    pub policy_prefix: String,
    /// Alerts waiting for a responder at most; beyond, they are recorded as skipped.
    pub queue: usize,
}

impl Default for ResponseConfig {
    fn default() -> Self {
        Self {
            mode: ActionMode::Shadow,
            allow: Vec::new(),
            rule_responses: true,
            policy: Vec::new(),
            max_actions: 10,
            window: Duration::from_secs(3600),
            cooldown: Duration::from_secs(3600),
            ttl: Duration::from_secs(24 * 3600),
            ledger: None,
            attempts: 4,
            aws: AwsSettings::default(),
            gateway: None,
            policy_prefix: "trailhound".into(),
            queue: 10_000,
        }
    }
}

/// One entry of `response.policy`: alerts of these rules (wildcards) at or
/// above this severity trigger these responders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// Rule ids, `*` wildcards; empty or absent: every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// The lowest severity that triggers.
    #[serde(default)]
    pub min_severity: Option<SeverityName>,
    /// Tags of which the alert must carry one (`attack.t1098`); empty: any.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The responders.
    pub respond: Vec<ResponseName>,
}

impl PolicyEntry {
    /// Whether an alert of `rule_id`, `severity` and `tags` is covered.
    pub fn covers(&self, rule_id: &str, severity: Severity, tags: &[String]) -> bool {
        let rule_ok = self.rules.is_empty() || self.rules.iter().any(|p| wildcard(p, rule_id));
        let severity_ok = self.min_severity.is_none_or(|m| severity >= m.0);
        let tags_ok = self.tags.is_empty() || self.tags.iter().any(|t| tags.contains(t));
        rule_ok && severity_ok && tags_ok
    }
}

/// `response.aws`: the standard AWS settings. Credentials come from the
/// default chain (environment, profile, SSO, web identity, instance or
/// container role).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSettings {
    /// The region of the IAM client (IAM is global; this picks the endpoint
    /// partition). Default: the chain's, else `us-east-1`.
    pub region: Option<String>,
    /// A named profile of `~/.aws/config`.
    pub profile: Option<String>,
    /// Another endpoint: an emulator or a private endpoint.
    pub endpoint_url: Option<String>,
}

/// `response.gateway`: the gateway's API for ending and locking a session.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The URL; `{session_id}`, `{principal}`, `{login}`, `{alert_id}`,
    /// `{rule_id}` are filled in.
    pub url: String,
    /// The HTTP method (default `POST`).
    #[serde(default = "post")]
    pub method: String,
    /// Extra headers; values may be `env:VAR` to keep secrets out of the file.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A bearer token (or `env:VAR`).
    #[serde(default)]
    pub token: Option<String>,
    /// The body template (same placeholders); default a JSON object with
    /// the session id, `lock: true` and the alert id.
    #[serde(default)]
    pub body: Option<String>,
    /// The URL that unlocks on release (same placeholders); absent: a
    /// release of a gateway action only records that it cannot be undone here.
    #[serde(default)]
    pub release_url: Option<String>,
    /// Request timeout, like `10s`.
    #[serde(default = "ten_seconds", with = "duration_text")]
    pub timeout: Duration,
}

fn post() -> String {
    "POST".into()
}

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

/// Which responders an alert's rule and the policy ask for, in a stable
/// order without repeats; `notify` is not a responder and is dropped.
pub fn responders_for(
    config: &ResponseConfig,
    rule_list: &[ResponseName],
    rule_id: &str,
    severity: Severity,
    tags: &[String],
) -> Vec<ResponseName> {
    let mut out: Vec<ResponseName> = Vec::new();
    let from_rule = rule_list.iter().filter(|_| config.rule_responses);
    let from_policy = config
        .policy
        .iter()
        .filter(|p| p.covers(rule_id, severity, tags))
        .flat_map(|p| p.respond.iter());
    for r in from_rule.chain(from_policy) {
        if *r != ResponseName::Notify && !out.contains(r) {
            out.push(*r);
        }
    }
    out
}

pub use trailhound_core::wildcard;

/// Durations written as `90s`, `15m`, `1h`, `2d` or a plain number of seconds.
pub mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses `90s`, `15m`, `1h`, `2d`, `250ms` or seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a duration like 90s, 15m, 1h or 2d"))?;
        let secs = |m: u64| Duration::from_secs(n.saturating_mul(m));
        match unit.trim() {
            "" | "s" => Ok(secs(1)),
            "ms" => Ok(Duration::from_millis(n)),
            "m" => Ok(secs(60)),
            "h" => Ok(secs(3600)),
            "d" => Ok(secs(86_400)),
            other => Err(format!(
                "`{text}`: unknown unit `{other}` (use ms, s, m, h or d)"
            )),
        }
    }

    /// serde: a duration from text or a number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_text() {
        assert!(wildcard(
            "arn:aws:iam::*:role/break-glass-*",
            "arn:aws:iam::111122223333:role/break-glass-admin"
        ));
        assert!(!wildcard(
            "arn:aws:iam::*:role/break-glass-*",
            "arn:aws:iam::111122223333:role/admin"
        ));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "abbc"));
        assert!(wildcard("*", ""));
        assert!(wildcard("*x*y", "axbxy"));
        assert!(!wildcard("abc", "abcd"));
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(duration_text::parse("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration_text::parse("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(duration_text::parse("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(duration_text::parse("30"), Ok(Duration::from_secs(30)));
        assert!(duration_text::parse("1w").is_err());
        assert!(duration_text::parse("soon").is_err());
    }

    #[test]
    fn rule_lists_and_policy_entries_combine_without_repeats() {
        let yaml = "mode: enforce\npolicy:\n  - rules: ['aws-iam-*']\n    min_severity: high\n    respond: [quarantine-principal, revoke-sessions]\n";
        let config: ResponseConfig = serde_yaml_ng(yaml);
        let got = responders_for(
            &config,
            &[ResponseName::QuarantinePrincipal, ResponseName::Notify],
            "aws-iam-backdoor",
            Severity::Critical,
            &[],
        );
        assert_eq!(
            got,
            vec![
                ResponseName::QuarantinePrincipal,
                ResponseName::RevokeSessions
            ]
        );
        let low = responders_for(&config, &[], "aws-iam-backdoor", Severity::Low, &[]);
        assert!(low.is_empty());
        let other = responders_for(&config, &[], "aws-s3-exfil", Severity::Critical, &[]);
        assert!(other.is_empty());
    }

    #[test]
    fn defaults_are_the_safe_ones() {
        let c = ResponseConfig::default();
        assert_eq!(c.mode, ActionMode::Shadow);
        assert!(c.max_actions > 0);
        assert!(c.ttl > Duration::ZERO);
    }

    fn serde_yaml_ng(yaml: &str) -> ResponseConfig {
        serde_yaml::from_str(yaml).unwrap_or_default()
    }
}
