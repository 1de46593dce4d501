//! A generic webhook: the alert as JSON, signed, to any HTTP endpoint.
//!
//! The body is the alert exactly as `--format json` prints it, or its OCSF
//! Detection Finding ([`crate::ocsf`]) with [`WebhookFormat::Ocsf`]. Every
//! request carries:
//!
//! - `X-Trailhound-Signature: sha256=<hex>`: HMAC-SHA256 of the body bytes
//!   with the shared secret. A receiver recomputes it over the raw body and
//!   compares in constant time ([`verify`] does).
//! - `X-Trailhound-Timestamp`: Unix seconds when the attempt was made (a
//!   retry carries a new one). It is not covered by the signature; receivers
//!   that want to bound replays should also drop alert ids they have seen.
//! - `X-Trailhound-Alert-Id`: the alert's id, stable across replays.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::delivery::{Delivery, DeliveryPolicy, Encode, Job, Request};
use super::{NotifyError, Queued, Route, check_url, queued_sink};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Trailhound-Signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "X-Trailhound-Timestamp";
/// The alert id header.
pub const ALERT_ID_HEADER: &str = "X-Trailhound-Alert-Id";

type HmacSha256 = Hmac<Sha256>;

/// What the body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// The alert as trailhound writes it (`--format json`).
    #[default]
    Alert,
    /// An OCSF Detection Finding (class 2004).
    Ocsf,
}

/// Where a webhook sink posts and how it signs.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The sink's name (for logs, counters and dead letters).
    pub name: String,
    /// The endpoint.
    pub url: String,
    /// The shared secret of the signature.
    pub secret: Vec<u8>,
    /// What the body holds.
    pub format: WebhookFormat,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &super::redact_url(&self.url))
            .field("secret", &"(hidden)")
            .field("format", &self.format)
            .finish()
    }
}

/// Posts every routed alert to an HTTP endpoint, signed.
#[derive(Debug)]
pub struct WebhookSink {
    inner: Queued,
}

impl WebhookSink {
    /// Starts the sink's delivery thread. The secret must not be empty.
    pub fn new(
        config: WebhookConfig,
        route: Route,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        check_url(&config.name, &config.url)?;
        if config.secret.is_empty() {
            return Err(NotifyError::Invalid {
                sink: config.name,
                reason: "the signing secret is empty".into(),
            });
        }
        let encoder = WebhookEncoder {
            url: config.url,
            secret: config.secret,
            format: config.format,
        };
        let delivery = Delivery::start(&config.name, "webhook", Box::new(encoder), policy)?;
        Ok(Self {
            inner: Queued {
                kind: "webhook",
                route,
                delivery,
            },
        })
    }
}

queued_sink!(WebhookSink);

struct WebhookEncoder {
    url: String,
    secret: Vec<u8>,
    format: WebhookFormat,
}

impl Encode for WebhookEncoder {
    fn encode(&self, job: &Job) -> Result<Request, String> {
        let Job::Alert(alert) = job else {
            return Err("webhook deliveries cannot be resolved".into());
        };
        let body = match self.format {
            WebhookFormat::Alert => serde_json::to_vec(alert.as_ref()),
            WebhookFormat::Ocsf => serde_json::to_vec(&crate::ocsf::detection_finding(alert)),
        }
        .map_err(|e| e.to_string())?;
        let signature = sign(&self.secret, &body).ok_or("the secret cannot key HMAC-SHA256")?;
        let now = chrono::Utc::now().timestamp();
        Ok(Request {
            url: self.url.clone(),
            headers: vec![
                ("Content-Type", "application/json".into()),
                (SIGNATURE_HEADER, signature),
                (TIMESTAMP_HEADER, now.to_string()),
                (ALERT_ID_HEADER, alert.alert_id.clone()),
            ],
            body,
        })
    }
}

/// `sha256=<lower-case hex of HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    Some(out)
}

/// Whether `header` (`sha256=<hex>`) is the signature of `body` under `secret`; compares in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_rfc_4231_hmac_in_hex() {
        // RFC 4231, test case 2.
        let sig = sign(b"Jefe", b"what do ya want for nothing?").unwrap();
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"Jefe", b"x", "sha256=zz"));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
    }
}
