//! The metering record every invocation yields, success or not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::denial::Denial;

/// What one invocation consumed. Produced for failed invocations too: a plugin that runs
/// out of fuel has still spent it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeteringRecord {
    /// Fuel units consumed, instantiation included.
    pub fuel: u64,
    /// Wall time from store creation to result, in microseconds.
    pub wall_time_us: u64,
    /// Peak sum of linear memory sizes, in bytes.
    pub peak_memory_bytes: u64,
    /// Calls into hyyve host interfaces (log, kv, secrets, usage, outgoing HTTP).
    pub host_calls: u64,
    /// Custom billable units reported by the plugin through `usage`.
    pub usage: BTreeMap<String, u64>,
    /// Outgoing HTTP requests admitted by the policy.
    pub http_requests: u64,
    /// Request body bytes sent.
    pub http_bytes_sent: u64,
    /// Response body bytes received.
    pub http_bytes_received: u64,
    /// Bytes in the install's scratch directory at the end (as counted by the quota).
    pub scratch_bytes: u64,
    /// Files and directories in the install's scratch directory at the end.
    #[serde(default)]
    pub scratch_entries: u64,
    /// Log lines the host did not write: past the invocation's budget or the
    /// workspace's rate.
    #[serde(default)]
    pub logs_dropped: u64,
    /// Capabilities refused and quotas hit during the invocation, in order.
    pub denials: Vec<Denial>,
    /// The error kind that ended the invocation (`fuel_exhausted`, `secret_denied`, ...),
    /// `None` when it succeeded.
    pub failure: Option<String>,
}
