//! Ending and locking a gateway session through the gateway's HTTP API:
//! a configurable URL, method, headers, bearer token and body template.
//! Gateways that listen on Kafka instead read the action record itself
//! from the actions topic (kind `end-gateway-session`, mode `enforce`,
//! `details.session_id`).

use std::time::Duration;

use crate::config::GatewaySettings;

/// Everything a template may name.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// The gateway session.
    pub session_id: &'a str,
    /// The alert's principal.
    pub principal: &'a str,
    /// The gateway login (the principal without `gateway:`).
    pub login: &'a str,
    /// The alert.
    pub alert_id: &'a str,
    /// The rule.
    pub rule_id: &'a str,
}

/// Fills `{session_id}`, `{principal}`, `{login}`, `{alert_id}`, `{rule_id}`;
/// `json` escapes the values for a JSON string.
pub fn fill(template: &str, f: &Fields<'_>, json: bool) -> String {
    let esc = |v: &str| {
        if json {
            let quoted = serde_json::Value::String(v.to_string()).to_string();
            quoted[1..quoted.len() - 1].to_string()
        } else {
            v.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.~:@".contains(c) {
                        c.to_string()
                    } else {
                        let mut buf = [0u8; 4];
                        c.encode_utf8(&mut buf)
                            .bytes()
                            .map(|b| format!("%{b:02X}"))
                            .collect()
                    }
                })
                .collect()
        }
    };
    template
        .replace("{session_id}", &esc(f.session_id))
        .replace("{principal}", &esc(f.principal))
        .replace("{login}", &esc(f.login))
        .replace("{alert_id}", &esc(f.alert_id))
        .replace("{rule_id}", &esc(f.rule_id))
}

/// A value that may be `env:VAR`.
pub fn secret(value: &str) -> Result<String, String> {
    match value.strip_prefix("env:") {
        Some(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
        }
        None => Ok(value.to_string()),
    }
}

/// The gateway's API.
pub struct Gateway {
    settings: GatewaySettings,
    agent: ureq::Agent,
}

impl Gateway {
    /// A client for `settings`.
    pub fn new(settings: GatewaySettings) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(settings.timeout))
            .max_redirects(0)
            .user_agent(format!("trailhound/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Self { settings, agent }
    }

    /// Ends and locks the session; `attempts` tries on transient failures
    /// (connection errors, 408, 429, 5xx) with doubling waits.
    pub fn end_session(&self, f: &Fields<'_>, attempts: u32) -> Result<String, String> {
        let body = match &self.settings.body {
            Some(t) => fill(t, f, true),
            None => serde_json::json!({
                "session_id": f.session_id,
                "login": f.login,
                "lock": true,
                "reason": format!("trailhound alert {} ({})", f.alert_id, f.rule_id),
            })
            .to_string(),
        };
        let url = fill(&self.settings.url, f, false);
        self.call(&self.settings.method, &url, body, attempts)
    }

    /// Unlocks, when a release URL is configured; `Ok(None)` when not.
    pub fn unlock(&self, f: &Fields<'_>, attempts: u32) -> Result<Option<String>, String> {
        let Some(t) = &self.settings.release_url else {
            return Ok(None);
        };
        let url = fill(t, f, false);
        let body = serde_json::json!({"session_id": f.session_id, "login": f.login, "lock": false})
            .to_string();
        self.call(&self.settings.method, &url, body, attempts)
            .map(Some)
    }

    fn call(&self, method: &str, url: &str, body: String, attempts: u32) -> Result<String, String> {
        let mut wait = Duration::from_millis(200);
        let mut last = String::new();
        for attempt in 0..attempts.max(1) {
            if attempt > 0 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            let mut req = ureq::http::Request::builder()
                .method(method)
                .uri(url)
                .header("content-type", "application/json");
            for (name, value) in &self.settings.headers {
                req = req.header(name.as_str(), secret(value)?);
            }
            if let Some(token) = &self.settings.token {
                req = req.header("authorization", format!("Bearer {}", secret(token)?));
            }
            let req = req
                .body(body.clone())
                .map_err(|e| format!("gateway request to {} is not valid: {e}", redact(url)))?;
            match self.agent.run(req) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let text = response
                        .body_mut()
                        .with_config()
                        .limit(4096)
                        .read_to_string()
                        .unwrap_or_default();
                    let detail = format!("HTTP {status} from {}", redact(url));
                    match status {
                        200..=299 => return Ok(detail),
                        408 | 429 | 500..=599 => last = format!("{detail}: {}", short(&text)),
                        _ => return Err(format!("{detail}: {}", short(&text))),
                    }
                }
                Err(e) => last = format!("gateway {}: {e}", redact(url)),
            }
        }
        Err(format!("{last} (after {} attempts)", attempts.max(1)))
    }
}

/// A URL without its query (tokens sometimes ride there) for messages.
fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn short(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_for_urls_and_json() {
        let f = Fields {
            session_id: "s 1/\"x\"",
            principal: "gateway:bob",
            login: "bob",
            alert_id: "a1",
            rule_id: "r",
        };
        assert_eq!(
            fill("http://gw/sessions/{session_id}/lock", &f, false),
            "http://gw/sessions/s%201%2F%22x%22/lock"
        );
        assert_eq!(
            fill("{\"id\":\"{session_id}\",\"who\":\"{login}\"}", &f, true),
            "{\"id\":\"s 1/\\\"x\\\"\",\"who\":\"bob\"}"
        );
        assert_eq!(redact("http://gw/x?token=abc"), "http://gw/x");
    }
}
