//! Live run events, fanned out to Server-Sent Events streams. Events are a convenience
//! for watching: the database is the record, and a stream starts from a snapshot of it.

use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// Something that happened to a run.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunEvent {
    /// `run.started`, `node.started`, `node.finished` or `run.finished`.
    pub event: &'static str,
    /// The run.
    pub run_id: String,
    /// Event data (a node report, a status).
    pub data: serde_json::Value,
}

/// The fan-out.
#[derive(Clone)]
pub struct Events {
    sender: broadcast::Sender<Arc<RunEvent>>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    /// Sends an event to every subscriber (none listening costs nothing but the check).
    pub fn emit(
        &self,
        event: &'static str,
        run_id: &str,
        data: impl FnOnce() -> serde_json::Value,
    ) {
        if self.sender.receiver_count() > 0 {
            let _ = self.sender.send(Arc::new(RunEvent {
                event,
                run_id: run_id.to_owned(),
                data: data(),
            }));
        }
    }

    /// A new subscription to every run's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.sender.subscribe()
    }
}
