//! Routing: which alerts a sink takes.
//!
//! A [`Route`] has three conditions, all of which must hold: the alert's
//! severity is at least `min_severity`; when `tags_any` is not empty, the
//! alert has one of those tags (compared without regard to ASCII case); when
//! `rules` is not empty, the rule id matches one of those glob patterns (`*`,
//! `?`, `[a-z]`). So PagerDuty can take only `high` and up, and Slack only
//! what is tagged `baseline`. [`Routed`] puts a route in front of any other
//! sink (the configured `stdout` output uses it).

use trailhound_core::{Alert, Severity};

use super::NotifyError;
use crate::{AlertSink, SinkError};

/// Which alerts a sink takes (see the module page).
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// The lowest severity taken.
    pub min_severity: Severity,
    /// Tags of which an alert needs one; empty: any alert.
    pub tags_any: Vec<String>,
    /// Rule-id glob patterns of which one must match; empty: any rule.
    pub rules: Vec<glob::Pattern>,
}

impl Default for Route {
    fn default() -> Self {
        Self::all()
    }
}

impl Route {
    /// Every alert.
    pub fn all() -> Self {
        Self {
            min_severity: Severity::Informational,
            tags_any: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// A route from its parts; fails on a pattern that is not a valid glob.
    pub fn new(
        min_severity: Severity,
        tags_any: Vec<String>,
        rules: &[impl AsRef<str>],
    ) -> Result<Self, NotifyError> {
        let rules = rules
            .iter()
            .map(|p| {
                glob::Pattern::new(p.as_ref()).map_err(|e| NotifyError::InvalidPattern {
                    pattern: p.as_ref().to_string(),
                    reason: e.msg.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            min_severity,
            tags_any,
            rules,
        })
    }

    /// Whether the sink takes `alert`.
    pub fn matches(&self, alert: &Alert) -> bool {
        alert.severity >= self.min_severity
            && (self.tags_any.is_empty()
                || alert
                    .tags
                    .iter()
                    .any(|t| self.tags_any.iter().any(|w| w.eq_ignore_ascii_case(t))))
            && (self.rules.is_empty() || self.rules.iter().any(|p| p.matches(&alert.rule_id)))
    }
}

/// Any sink behind a route: alerts the route leaves out are counted, not sent.
pub struct Routed {
    route: Route,
    inner: Box<dyn AlertSink>,
    not_routed: u64,
}

impl Routed {
    /// `inner` taking only what `route` lets through.
    pub fn new(route: Route, inner: Box<dyn AlertSink>) -> Self {
        Self {
            route,
            inner,
            not_routed: 0,
        }
    }

    /// Alerts left out so far.
    pub fn not_routed(&self) -> u64 {
        self.not_routed
    }
}

impl AlertSink for Routed {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        if self.route.matches(alert) {
            self.inner.send(alert)
        } else {
            self.not_routed += 1;
            Ok(())
        }
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySink;

    fn alert(rule: &str, severity: Severity, tags: &[&str]) -> Alert {
        Alert {
            alert_id: "a".into(),
            rule_id: rule.into(),
            title: "t".into(),
            severity,
            principal: "p".into(),
            account_id: None,
            first_event_time: 0,
            last_event_time: 0,
            detected_at: 0,
            event_ids: vec![],
            event_count: 1,
            evidence: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            access_key_id: None,
            session_id: None,
            closes: None,
        }
    }

    #[test]
    fn severity_tags_and_rule_globs_all_apply() {
        let paging = Route::new(Severity::High, vec![], &[] as &[&str]).unwrap();
        assert!(paging.matches(&alert("r", Severity::Critical, &[])));
        assert!(paging.matches(&alert("r", Severity::High, &[])));
        assert!(!paging.matches(&alert("r", Severity::Medium, &[])));

        let chat = Route::new(
            Severity::Informational,
            vec!["Baseline".into()],
            &[] as &[&str],
        )
        .unwrap();
        assert!(chat.matches(&alert("r", Severity::Low, &["attack.t1078", "baseline"])));
        assert!(!chat.matches(&alert("r", Severity::Critical, &["attack.t1078"])));

        let rules = Route::new(Severity::Low, vec![], &["aws-iam-*", "gateway-?"]).unwrap();
        assert!(rules.matches(&alert("aws-iam-user-created", Severity::Low, &[])));
        assert!(rules.matches(&alert("gateway-x", Severity::Low, &[])));
        assert!(!rules.matches(&alert("aws-s3-public", Severity::Low, &[])));
        assert!(!rules.matches(&alert("aws-iam-user-created", Severity::Informational, &[])));

        assert!(Route::all().matches(&alert("r", Severity::Informational, &[])));
    }

    #[test]
    fn a_bad_glob_is_an_error_naming_it() {
        let e = Route::new(Severity::Low, vec![], &["aws-[iam"]).unwrap_err();
        assert!(e.to_string().contains("aws-[iam"), "{e}");
    }

    #[test]
    fn routed_counts_what_it_leaves_out() {
        let memory = MemorySink::new();
        let route = Route::new(Severity::High, vec![], &[] as &[&str]).unwrap();
        let mut routed = Routed::new(route, Box::new(memory.clone()));
        routed.send(&alert("r", Severity::Low, &[])).unwrap();
        routed.send(&alert("r", Severity::High, &[])).unwrap();
        assert_eq!(memory.alerts().len(), 1);
        assert_eq!(routed.not_routed(), 1);
    }
}
