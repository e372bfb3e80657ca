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

/// Model calls by alias (chat completions, embeddings). The node's manifest lists the
/// aliases it calls (`capabilities.models`); the workspace binds each to a provider.
pub mod models {
    pub use super::host::llm::{
        ChatMessage, ChatResponse, EmbedResponse, FinishReason, Role, TokenUsage, ToolCall,
        ToolDefinition,
    };
    pub use super::host::models::{ChatCall, ModelError};

    /// A chat completion through `call.alias`.
    pub fn chat(call: &ChatCall) -> Result<ChatResponse, ModelError> {
        super::host::models::chat(call)
    }

    /// Embeddings of `inputs` through `alias`, one vector per input.
    pub fn embed(alias: &str, inputs: &[String]) -> Result<EmbedResponse, ModelError> {
        super::host::models::embed(alias, inputs)
    }

    /// A message of `role` with text `content`.
    pub fn message(role: Role, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// Partial output passed on as it is produced: the host shows it as `node.progress`
/// events of the node being executed.
pub mod progress {
    /// Pass `text` on.
    pub fn delta(text: &str) {
        super::host::progress::delta(text);
    }
}
