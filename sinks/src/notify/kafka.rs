//! Kafka: every routed alert as a record on the alerts topic
//! (`<prefix>trailhound.alerts` unless configured), keyed by alert id, with
//! the `trailhound-schema: alert.v1+json` header and the alert's JSON as the
//! payload: the same records `trailhound_bus::RecordProducer::send_alerts`
//! writes, so a downstream consumer reads one format whoever produced it.
//!
//! The sink sits behind the same [`Delivery`] as the HTTP sinks: `send`
//! queues and returns; the worker sends one alert at a time and waits for the
//! broker's acknowledgement (idempotent producer, `acks=all`), at most the
//! policy's `request_timeout` (used as the producer's delivery timeout), then
//! retries with backoff; what cannot be delivered goes to the dead-letter file.

use trailhound_bus::{BusError, RecordProducer, TopicKind};

pub use trailhound_bus::BusConfig;
pub use trailhound_bus::config::is_secret_property;

use super::delivery::{Delivery, DeliveryPolicy, Job, Outcome, Transport};
use super::{NotifyError, Queued, Route, queued_sink};

/// Where a Kafka sink sends.
#[derive(Debug, Clone)]
pub struct KafkaSinkConfig {
    /// The sink's name (for logs, counters and dead letters).
    pub name: String,
    /// Brokers, client settings and topic names (the alerts topic is used).
    pub bus: BusConfig,
}

/// Sends every routed alert to the Kafka alerts topic.
#[derive(Debug)]
pub struct KafkaSink {
    inner: Queued,
    topic: String,
}

impl KafkaSink {
    /// Creates the producer and starts the sink's delivery thread. No broker
    /// needs to be reachable yet: the producer connects in the background.
    pub fn new(
        config: KafkaSinkConfig,
        route: Route,
        policy: DeliveryPolicy,
    ) -> Result<Self, NotifyError> {
        let invalid = |reason: String| NotifyError::Invalid {
            sink: config.name.clone(),
            reason,
        };
        let mut bus = config.bus.clone();
        bus.delivery_timeout_ms = u64::try_from(policy.request_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        bus.validate().map_err(|e| invalid(e.to_string()))?;
        let producer = RecordProducer::new(&bus).map_err(|e| invalid(e.to_string()))?;
        let topic = bus.topic(TopicKind::Alerts);
        let delivery =
            Delivery::start_transport(&config.name, "kafka", Box::new(Kafka { producer }), policy)?;
        Ok(Self {
            inner: Queued {
                kind: "kafka",
                route,
                delivery,
            },
            topic,
        })
    }

    /// The topic alerts go to (prefix included).
    pub fn topic(&self) -> &str {
        &self.topic
    }
}

queued_sink!(KafkaSink);

struct Kafka {
    producer: RecordProducer,
}

impl Transport for Kafka {
    fn attempt(&mut self, job: &Job) -> Outcome {
        let Job::Alert(alert) = job else {
            return Outcome::Unencodable("a Kafka sink has no resolve events".into());
        };
        match self
            .producer
            .send_alerts(std::slice::from_ref(alert.as_ref()))
        {
            Ok(_) => Outcome::Delivered,
            Err(e @ BusError::Encode { .. }) => Outcome::Unencodable(e.to_string()),
            Err(e @ BusError::Config(_)) => Outcome::Rejected(e.to_string()),
            // Unreachable brokers, timeouts, a topic not there yet, a full
            // local queue: all may pass.
            Err(e) => Outcome::Retry {
                detail: e.to_string(),
                retry_after: None,
            },
        }
    }
}
