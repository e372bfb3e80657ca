//! The three layers that bound a manifest's request: platform caps (operator config),
//! organization policy (security team) and the workspace grant (at install).

use std::collections::BTreeSet;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::pattern::HostPattern;

/// Numeric ceilings. In the platform file every field has a value; in an organization
/// policy an absent field leaves the platform's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Caps {
    /// Linear memory per instance, bytes.
    pub memory_bytes: Option<u64>,
    /// Fuel per invocation.
    pub fuel: Option<u64>,
    /// Deadline per invocation, milliseconds.
    pub timeout_ms: Option<u64>,
    /// KV bytes per install.
    pub kv_bytes: Option<u64>,
    /// Scratch directory bytes per install.
    pub scratch_bytes: Option<u64>,
    /// Outgoing requests per invocation.
    pub http_requests: Option<u64>,
    /// Request body bytes per invocation.
    pub http_request_bytes: Option<u64>,
    /// Response body bytes per invocation.
    pub http_response_bytes: Option<u64>,
    /// Host-side resources (handles) one invocation may hold at once.
    pub host_resources: Option<u64>,
    /// Files and directories in an install's scratch directory.
    pub scratch_entries: Option<u64>,
}

/// Operator configuration: the hard ceilings and the defaults for what a manifest leaves
/// unspecified.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PlatformConfig {
    /// Nothing is granted above these.
    pub caps: PlatformCaps,
    /// What a manifest that names no limit gets.
    pub defaults: PlatformDefaults,
}

/// Hard ceilings of this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct PlatformCaps {
    pub memory_bytes: u64,
    pub fuel: u64,
    pub timeout_ms: u64,
    pub kv_bytes: u64,
    pub scratch_bytes: u64,
    pub http_requests: u64,
    pub http_request_bytes: u64,
    pub http_response_bytes: u64,
    /// Host-side resources one invocation may hold at once (resource-table entries:
    /// header maps, requests, bodies, streams, pollables, descriptors). Each is bounded
    /// in bytes by the runtime, so this also bounds the host memory it can cause.
    pub host_resources: u64,
    /// Files and directories in one install's scratch directory.
    pub scratch_entries: u64,
    /// Log lines one invocation may write; more are dropped and counted.
    pub log_lines: u64,
    /// Log bytes (messages) one invocation may write; more are dropped and counted.
    pub log_bytes: u64,
}

impl Default for PlatformCaps {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            fuel: 20_000_000_000,
            timeout_ms: 60_000,
            kv_bytes: 64 << 20,
            scratch_bytes: 256 << 20,
            http_requests: 100,
            http_request_bytes: 8 << 20,
            http_response_bytes: 32 << 20,
            host_resources: 10_000,
            scratch_entries: 100_000,
            log_lines: 1_000,
            log_bytes: 256 << 10,
        }
    }
}

/// Limits given when a manifest names none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
#[allow(missing_docs)]
pub struct PlatformDefaults {
    pub memory_bytes: u64,
    pub fuel: u64,
    pub timeout_ms: u64,
    pub http_requests: u64,
    pub http_request_bytes: u64,
    pub http_response_bytes: u64,
    pub host_resources: u64,
    pub scratch_entries: u64,
}

impl Default for PlatformDefaults {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            fuel: 2_000_000_000,
            timeout_ms: 10_000,
            http_requests: 16,
            http_request_bytes: 1 << 20,
            http_response_bytes: 4 << 20,
            host_resources: 1_000,
            scratch_entries: 10_000,
        }
    }
}

/// An organization's security policy. Every field bounds; none grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrgPolicy {
    /// The organization's account name in the registry (vetting queue, co-signatures).
    pub name: String,
    /// Whether registry packages need this organization's approval (or co-signature)
    /// before a workspace installs them.
    pub require_vetting: bool,
    /// Publishers whose packages need no vetting (e.g. the organization's own).
    pub trusted_publishers: BTreeSet<String>,
    /// Publishers whose packages may be installed; absent: any publisher.
    pub publishers: Option<BTreeSet<String>>,
    /// Whether plugins may read secrets at all.
    pub secrets: bool,
    /// Whether plugins may have a scratch directory at all.
    pub filesystem: bool,
    /// Whether plugins may use KV storage at all.
    pub kv: bool,
    /// Whether plugins may start workflows.
    pub workflow_invoke: bool,
    /// Whether nodes may call model aliases (`models`) at all.
    pub models: bool,
    /// Outgoing HTTP bounds.
    pub http: OrgHttp,
    /// Ceilings below the platform's.
    pub caps: Caps,
}

impl Default for OrgPolicy {
    fn default() -> Self {
        Self {
            name: "default".into(),
            require_vetting: false,
            trusted_publishers: BTreeSet::new(),
            publishers: None,
            secrets: true,
            filesystem: true,
            kv: true,
            workflow_invoke: true,
            models: true,
            http: OrgHttp::default(),
            caps: Caps::default(),
        }
    }
}

/// An organization's outgoing HTTP bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OrgHttp {
    /// Host patterns plugins may reach; absent: any host a manifest requests.
    pub allow: Option<Vec<HostPattern>>,
    /// Host patterns no plugin may reach, checked on every request.
    pub block: Vec<HostPattern>,
    /// Non-public networks (CIDR) plugins may reach when their manifest asks.
    #[schemars(with = "Vec<String>")]
    pub private_networks: Vec<IpNet>,
}

/// What a workspace accepts at install. Absent fields accept what the organization
/// left; present ones narrow it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WorkspaceGrant {
    /// Requested destinations accepted, by their URL as written in the manifest.
    pub http: Option<BTreeSet<String>>,
    /// Private networks accepted.
    #[schemars(with = "Option<Vec<String>>")]
    pub private_networks: Option<Vec<IpNet>>,
    /// Secrets accepted.
    pub secrets: Option<BTreeSet<String>>,
    /// Whether workflow invocation is accepted.
    pub workflow_invoke: Option<bool>,
    /// Model aliases accepted.
    pub models: Option<BTreeSet<String>>,
    /// Ceilings for this install.
    pub caps: Caps,
}

/// Reads one of the layer files (TOML). Errors name the file and the key.
pub fn load_toml<T: DeserializeOwned>(path: &std::path::Path) -> Result<T, PolicyError> {
    let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    toml::from_str(&text).map_err(|e| PolicyError::Parse {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}
