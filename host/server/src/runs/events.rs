//! Live run events, fanned out to Server-Sent Events streams. Events are a convenience
//! for watching: the database is the record, and a stream starts from a snapshot of it.
//! So that a stream misses nothing between its snapshot and the live events, an event
//! about a write is emitted only once that write has committed (the run writer emits
//! [`Pending`] events after their batch): a stream subscribes before it reads the
//! snapshot, so whatever the snapshot did not see reaches it live.

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

/// An event emitted later, once what it reports is committed; its data is made only if
/// someone listens then.
pub struct Pending {
    event: &'static str,
    run_id: String,
    data: Box<dyn FnOnce() -> serde_json::Value + Send + Sync>,
}

impl Pending {
    /// `event` of `run_id`, with the data `data` makes.
    pub fn new(
        event: &'static str,
        run_id: &str,
        data: impl FnOnce() -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        Self {
            event,
            run_id: run_id.to_owned(),
            data: Box::new(data),
        }
    }
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

    /// Emits an event that was waiting for its commit.
    pub fn emit_pending(&self, pending: Pending) {
        self.emit(pending.event, &pending.run_id, pending.data);
    }

    /// A new subscription to every run's events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<RunEvent>> {
        self.sender.subscribe()
    }
}
