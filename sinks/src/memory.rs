//! An in-memory sink, shared by handle: the demo and tests read alerts back from it.

use std::sync::{Arc, Mutex};

use trailhound_core::Alert;

use crate::{AlertSink, SinkError};

/// Keeps every alert in a shared vector.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    alerts: Arc<Mutex<Vec<Alert>>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the alerts so far.
    pub fn alerts(&self) -> Vec<Alert> {
        match self.alerts.lock() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl AlertSink for MemorySink {
    fn name(&self) -> &'static str {
        "memory"
    }
    fn send(&mut self, alert: &Alert) -> Result<(), SinkError> {
        match self.alerts.lock() {
            Ok(mut a) => a.push(alert.clone()),
            Err(poisoned) => poisoned.into_inner().push(alert.clone()),
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}
