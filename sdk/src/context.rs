//! What a running node can reach: its ids and the host interfaces.

use crate::__private::bindings::hyyve::plugin as host;

/// The invocation a node runs in.
#[derive(Debug, Clone)]
pub struct Context {
    run_id: String,
    node_id: String,
    attempt: u32,
}

impl Context {
    pub(crate) fn new(run_id: String, node_id: String, attempt: u32) -> Self {
        Self {
            run_id,
            node_id,
            attempt,
        }
    }

    /// The workflow run.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// This node's id in the workflow.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// 1 on the first try, more on retries.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

/// Log lines into the host's logs, tagged with run and node.
pub mod log {
    use super::host::log::{Level, log};

    /// Debug line.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Info line.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Warning line.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Error line.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// Key-value storage private to this install in this workspace.
pub mod kv {
    pub use super::host::kv::KvError;

    /// The value under `key`.
    pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
        super::host::kv::get(key)
    }
    /// Store `value` under `key`.
    pub fn set(key: &str, value: &[u8]) -> Result<(), KvError> {
        super::host::kv::set(key, value)
    }
    /// Remove `key`.
    pub fn delete(key: &str) -> Result<(), KvError> {
        super::host::kv::delete(key)
    }
}

/// Secrets declared by the plugin and granted by the workspace.
pub mod secrets {
    pub use super::host::secrets::SecretError;

    /// The secret `name`.
    pub fn get(name: &str) -> Result<String, SecretError> {
        super::host::secrets::get(name)
    }
}

/// Billable units for the metering record.
pub mod usage {
    /// Add `quantity` of `unit`, e.g. `report("llm.output-tokens", 512)`.
    pub fn report(unit: &str, quantity: u64) {
        super::host::usage::report(unit, quantity);
    }
}
