//! `log`: plugin log lines into tracing, tagged with the invocation's ids.

use crate::bindings::log::{Host, Level};
use crate::state::HostState;

/// Longer messages are cut so a plugin cannot flood the host's logs.
const MAX_MESSAGE_CHARS: usize = 4096;

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.meter.host_calls += 1;
        let message: String = message.chars().take(MAX_MESSAGE_CHARS).collect();
        let ids = &self.ids;
        let (run, node) = (ids.run_id.as_str(), ids.node_id.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "plugin", run, node, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", run, node, "{message}"),
            Level::Info => tracing::info!(target: "plugin", run, node, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", run, node, "{message}"),
            Level::Error => tracing::error!(target: "plugin", run, node, "{message}"),
        }
        Ok(())
    }
}
