//! The metering record every invocation yields, success or not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::denial::Denial;

/// What one invocation consumed. Produced for failed invocations too: a plugin that runs
/// out of fuel has still spent it.
///
/// Serialized in camelCase like the API around it; records stored before (snake_case)
/// still read through the aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeteringRecord {
    /// Fuel units consumed, instantiation included.
    pub fuel: u64,
    /// Wall time from store creation to result, in microseconds.
    #[serde(alias = "wall_time_us")]
    pub wall_time_us: u64,
    /// Peak sum of linear memory sizes, in bytes.
    #[serde(alias = "peak_memory_bytes")]
    pub peak_memory_bytes: u64,
    /// Calls into hyyve host interfaces (log, kv, secrets, usage, outgoing HTTP).
    #[serde(alias = "host_calls")]
    pub host_calls: u64,
    /// Custom billable units reported by the plugin through `usage`.
    pub usage: BTreeMap<String, u64>,
    /// Outgoing HTTP requests admitted by the policy.
    #[serde(alias = "http_requests")]
    pub http_requests: u64,
    /// Request body bytes sent.
    #[serde(alias = "http_bytes_sent")]
    pub http_bytes_sent: u64,
    /// Response body bytes received.
    #[serde(alias = "http_bytes_received")]
    pub http_bytes_received: u64,
    /// Bytes in the install's scratch directory at the end (as counted by the quota).
    #[serde(alias = "scratch_bytes")]
    pub scratch_bytes: u64,
    /// Files and directories in the install's scratch directory at the end.
    #[serde(default, alias = "scratch_entries")]
    pub scratch_entries: u64,
    /// Log lines the host did not write: past the invocation's budget or the
    /// workspace's rate.
    #[serde(default, alias = "logs_dropped")]
    pub logs_dropped: u64,
    /// Capabilities refused and quotas hit during the invocation, in order.
    pub denials: Vec<Denial>,
    /// The error kind that ended the invocation (`fuel_exhausted`, `secret_denied`, ...),
    /// `None` when it succeeded.
    pub failure: Option<String>,
    /// Provider invocations this node's model calls made, each metered on its own
    /// record (the provider's fuel, HTTP and tokens), in call order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_calls: Vec<ModelCall>,
}

/// One provider invocation made for a node's model call: which alias target ran and what
/// it consumed. Billed to the provider install, attributed to the calling run and node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCall {
    /// 1 for the invocation's first provider call, counting fallbacks and retries.
    pub seq: u32,
    /// The alias the node called.
    pub alias: String,
    /// The provider install that ran (`hyyve:openai`).
    pub provider: String,
    /// The model asked of it.
    pub model: String,
    /// The provider invocation's own record.
    pub metering: MeteringRecord,
}

impl ModelCall {
    /// The node id its metering record is kept under: `<node>/models/<seq>`, apart from
    /// the node's own record and from every other call (node ids cannot hold `/`).
    pub fn record_node_id(&self, node_id: &str) -> String {
        format!("{node_id}/models/{}", self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_camel_case_and_stored_snake_case_ones_still_read() {
        let record = MeteringRecord {
            wall_time_us: 7,
            logs_dropped: 2,
            ..MeteringRecord::default()
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["wallTimeUs"], 7);
        assert_eq!(json["logsDropped"], 2);
        assert!(json.get("wall_time_us").is_none());
        let stored = serde_json::json!({
            "fuel": 1, "wall_time_us": 7, "peak_memory_bytes": 3, "host_calls": 0,
            "usage": {}, "http_requests": 0, "http_bytes_sent": 0,
            "http_bytes_received": 0, "scratch_bytes": 0, "denials": [], "failure": null
        });
        let read: MeteringRecord = serde_json::from_value(stored).unwrap();
        assert_eq!((read.wall_time_us, read.peak_memory_bytes), (7, 3));
    }
}
