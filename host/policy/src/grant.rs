//! The effective grant of an install: the manifest's request cut by platform caps, the
//! organization policy and the workspace grant, with the reason for every cut.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::layers::{OrgPolicy, PlatformConfig, WorkspaceGrant};
use crate::manifest::{ANY_MODEL_ALIAS, Manifest};
use crate::pattern::{HostPattern, HttpRule, Scheme, non_public_range};

/// What one install may do. Stored with the install; the runtime enforces it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    /// Outgoing HTTP.
    pub http: HttpGrant,
    /// KV bytes (keys + values) for the install; 0: no KV.
    pub kv_bytes: u64,
    /// Secret names the plugin may read.
    pub secrets: BTreeSet<String>,
    /// Scratch directory bytes; 0: no scratch directory.
    pub scratch_bytes: u64,
    /// Files and directories the scratch directory may hold (grants stored before this
    /// field existed get the platform default).
    #[serde(default = "default_scratch_entries")]
    pub scratch_entries: u64,
    /// Whether the plugin may start workflows.
    pub workflow_invoke: bool,
    /// Model aliases the plugin may call (grants stored before this field existed call
    /// none).
    #[serde(default)]
    pub models: BTreeSet<String>,
    /// Resource limits per invocation.
    pub limits: GrantedLimits,
}

/// Outgoing HTTP allowed to an install.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpGrant {
    /// Allowed destinations.
    pub rules: Vec<HttpRule>,
    /// Hosts refused even when a rule matches (organization block list).
    pub blocked: Vec<HostPattern>,
    /// Non-public networks that may be reached.
    pub private_networks: Vec<IpNet>,
    /// Requests per invocation.
    pub max_requests: u64,
    /// Request body bytes per invocation.
    pub max_request_bytes: u64,
    /// Response body bytes per invocation.
    pub max_response_bytes: u64,
}

/// Resource limits per invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantedLimits {
    /// Linear memory, bytes.
    pub memory_bytes: u64,
    /// Fuel units.
    pub fuel: u64,
    /// Wall-clock deadline, milliseconds.
    pub timeout_ms: u64,
    /// Host-side resources held at once (grants stored before these fields existed get
    /// the platform defaults).
    #[serde(default = "default_host_resources")]
    pub host_resources: u64,
    /// Log lines per invocation.
    #[serde(default = "default_log_lines")]
    pub log_lines: u64,
    /// Log message bytes per invocation.
    #[serde(default = "default_log_bytes")]
    pub log_bytes: u64,
}

fn default_scratch_entries() -> u64 {
    crate::layers::PlatformDefaults::default().scratch_entries
}

fn default_host_resources() -> u64 {
    crate::layers::PlatformDefaults::default().host_resources
}

fn default_log_lines() -> u64 {
    crate::layers::PlatformCaps::default().log_lines
}

fn default_log_bytes() -> u64 {
    crate::layers::PlatformCaps::default().log_bytes
}

impl Grant {
    /// Nothing granted; the platform's default limits.
    pub fn nothing(platform: &PlatformConfig) -> Self {
        let d = &platform.defaults;
        Self {
            http: HttpGrant {
                rules: Vec::new(),
                blocked: Vec::new(),
                private_networks: Vec::new(),
                max_requests: 0,
                max_request_bytes: 0,
                max_response_bytes: 0,
            },
            kv_bytes: 0,
            secrets: BTreeSet::new(),
            scratch_bytes: 0,
            // Meaningful only with scratch bytes; the default, under the platform cap.
            scratch_entries: d.scratch_entries.min(platform.caps.scratch_entries),
            workflow_invoke: false,
            models: BTreeSet::new(),
            limits: GrantedLimits {
                memory_bytes: d.memory_bytes,
                fuel: d.fuel,
                timeout_ms: d.timeout_ms,
                host_resources: d.host_resources.min(platform.caps.host_resources),
                log_lines: platform.caps.log_lines,
                log_bytes: platform.caps.log_bytes,
            },
        }
    }
}

impl Grant {
    /// Whether a plugin under this grant can only compute: no HTTP, KV, secrets, scratch
    /// files, workflow starts or model calls, so its outputs depend on its config and inputs alone and
    /// may be reused from a result cache.
    pub fn is_pure(&self) -> bool {
        self.http.rules.is_empty()
            && self.kv_bytes == 0
            && self.secrets.is_empty()
            && self.scratch_bytes == 0
            && !self.workflow_invoke
            && self.models.is_empty()
    }
}

impl Default for Grant {
    fn default() -> Self {
        Self::nothing(&PlatformConfig::default())
    }
}

impl HttpGrant {
    /// Whether `method scheme://host:port` may be requested; the error says why not.
    pub fn check_destination(
        &self,
        scheme: Scheme,
        host: &str,
        port: u16,
        method: &str,
    ) -> Result<(), String> {
        if let Some(block) = self.blocked.iter().find(|b| b.matches(host)) {
            return Err(format!(
                "host `{host}` is blocked by organization policy (`{block}`)"
            ));
        }
        if self
            .rules
            .iter()
            .any(|r| r.allows(scheme, host, port, method))
        {
            return Ok(());
        }
        Err(format!(
            "{method} {scheme}://{host}:{port} is not granted to this plugin"
        ))
    }

    /// Whether a resolved address may be connected to; the error says why not.
    pub fn check_address(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        match non_public_range(ip) {
            Some(range) if !self.private_networks.iter().any(|n| n.contains(&ip)) => Err(format!(
                "`{host}` resolves to {ip}, a {range} address, and no private network grant covers it"
            )),
            _ => Ok(()),
        }
    }
}

/// Which layer cut a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// Platform caps (operator configuration).
    Platform,
    /// Organization policy.
    Organization,
    /// Workspace grant at install.
    Workspace,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Platform => "platform caps",
            Self::Organization => "organization policy",
            Self::Workspace => "workspace grant",
        })
    }
}

/// One reduction of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cut {
    /// Who cut.
    pub layer: Layer,
    /// What and why.
    pub reason: String,
}

/// One capability: requested, cut, granted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainedCapability {
    /// e.g. `http https://api.example.com:443 [GET]`, `secret API_KEY`, `limit fuel`.
    pub capability: String,
    /// What the manifest asked for.
    pub requested: String,
    /// Reductions, in layer order.
    pub cuts: Vec<Cut>,
    /// What remains.
    pub granted: String,
}

/// The result of intersecting the layers for one plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// `namespace:name@version`.
    pub plugin: String,
    /// Set when the install is refused outright (e.g. publisher not allowed).
    pub refused: Option<String>,
    /// Per capability.
    pub capabilities: Vec<ExplainedCapability>,
    /// The effective grant, absent when refused.
    pub grant: Option<Grant>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plugin {}", self.plugin)?;
        if let Some(why) = &self.refused {
            return writeln!(f, "  REFUSED: {why}");
        }
        if self.capabilities.is_empty() {
            writeln!(f, "  requests nothing")?;
        }
        for c in &self.capabilities {
            writeln!(f, "  {}", c.capability)?;
            writeln!(f, "    requested: {}", c.requested)?;
            for cut in &c.cuts {
                writeln!(f, "    cut by {}: {}", cut.layer, cut.reason)?;
            }
            writeln!(f, "    granted:   {}", c.granted)?;
        }
        Ok(())
    }
}

/// Intersects the manifest's request with the three layers.
pub fn effective_grant(
    manifest: &Manifest,
    platform: &PlatformConfig,
    org: &OrgPolicy,
    workspace: &WorkspaceGrant,
) -> Explanation {
    let plugin = format!("{}@{}", manifest.plugin.id, manifest.plugin.version);
    if let Some(allowed) = &org.publishers
        && !allowed.contains(&manifest.plugin.publisher)
    {
        return Explanation {
            plugin,
            refused: Some(format!(
                "organization policy does not allow publisher `{}`",
                manifest.plugin.publisher
            )),
            capabilities: Vec::new(),
            grant: None,
        };
    }
    let mut items = Vec::new();
    let mut grant = Grant::nothing(platform);
    let caps = &platform.caps;
    let defaults = &platform.defaults;
    let req = &manifest.capabilities;

    // HTTP destinations.
    let rules = manifest.http_rules().unwrap_or_default();
    for (rule, dest) in rules.iter().zip(&req.http.allow) {
        let mut cuts = Vec::new();
        if let Some(allow) = &org.http.allow
            && !allow.iter().any(|p| p.covers(&rule.host))
        {
            cuts.push(cut(
                Layer::Organization,
                format!("host `{}` is outside the allowed host patterns", rule.host),
            ));
        }
        if let Some(block) = org.http.block.iter().find(|b| b.covers(&rule.host)) {
            cuts.push(cut(Layer::Organization, format!("blocked by `{block}`")));
        }
        if let Some(accepted) = &workspace.http
            && !accepted.contains(&dest.url)
            && !accepted.contains(&rule.url())
        {
            cuts.push(cut(Layer::Workspace, "not accepted at install".into()));
        }
        let granted = if cuts.is_empty() {
            let partial: Vec<_> = org
                .http
                .block
                .iter()
                .filter(|b| b.overlaps(&rule.host))
                .map(|b| format!("`{b}`"))
                .collect();
            grant.http.rules.push(rule.clone());
            if partial.is_empty() {
                "yes".into()
            } else {
                format!("yes, except hosts matching {}", partial.join(", "))
            }
        } else {
            "no".into()
        };
        items.push(ExplainedCapability {
            capability: format!("http {rule}"),
            requested: "yes".into(),
            cuts,
            granted,
        });
    }
    grant.http.blocked = org.http.block.clone();

    for net in &req.http.private_networks {
        let mut cuts = Vec::new();
        if !org.http.private_networks.iter().any(|n| n.contains(net)) {
            cuts.push(cut(
                Layer::Organization,
                "not inside a private network the organization allows".into(),
            ));
        }
        if let Some(accepted) = &workspace.private_networks
            && !accepted.iter().any(|n| n.contains(net))
        {
            cuts.push(cut(Layer::Workspace, "not accepted at install".into()));
        }
        if cuts.is_empty() {
            grant.http.private_networks.push(*net);
        }
        items.push(yes_no(format!("private network {net}"), cuts));
    }

    if !grant.http.rules.is_empty() {
        let http = &req.http;
        grant.http.max_requests = numeric(
            &mut items,
            "http requests per invocation",
            http.max_requests,
            defaults.http_requests,
            [
                Some(caps.http_requests),
                org.caps.http_requests,
                workspace.caps.http_requests,
            ],
        );
        grant.http.max_request_bytes = numeric(
            &mut items,
            "http request bytes per invocation",
            http.max_request_bytes,
            defaults.http_request_bytes,
            [
                Some(caps.http_request_bytes),
                org.caps.http_request_bytes,
                workspace.caps.http_request_bytes,
            ],
        );
        grant.http.max_response_bytes = numeric(
            &mut items,
            "http response bytes per invocation",
            http.max_response_bytes,
            defaults.http_response_bytes,
            [
                Some(caps.http_response_bytes),
                org.caps.http_response_bytes,
                workspace.caps.http_response_bytes,
            ],
        );
    }

    // Secrets.
    for name in &req.secrets {
        let mut cuts = Vec::new();
        if !org.secrets {
            cuts.push(cut(Layer::Organization, "secrets are not allowed".into()));
        }
        if let Some(accepted) = &workspace.secrets
            && !accepted.contains(name)
        {
            cuts.push(cut(Layer::Workspace, "not accepted at install".into()));
        }
        if cuts.is_empty() {
            grant.secrets.insert(name.clone());
        }
        items.push(yes_no(format!("secret {name}"), cuts));
    }

    // Storage.
    if req.kv_bytes > 0 {
        grant.kv_bytes = if org.kv {
            numeric(
                &mut items,
                "kv bytes",
                Some(req.kv_bytes),
                0,
                [
                    Some(caps.kv_bytes),
                    org.caps.kv_bytes,
                    workspace.caps.kv_bytes,
                ],
            )
        } else {
            items.push(forbidden(
                "kv bytes",
                req.kv_bytes,
                "KV storage is not allowed",
            ));
            0
        };
    }
    if req.scratch_bytes > 0 {
        grant.scratch_bytes = if org.filesystem {
            numeric(
                &mut items,
                "scratch bytes",
                Some(req.scratch_bytes),
                0,
                [
                    Some(caps.scratch_bytes),
                    org.caps.scratch_bytes,
                    workspace.caps.scratch_bytes,
                ],
            )
        } else {
            items.push(forbidden(
                "scratch bytes",
                req.scratch_bytes,
                "a scratch filesystem is not allowed",
            ));
            0
        };
        if grant.scratch_bytes > 0 {
            grant.scratch_entries = numeric(
                &mut items,
                "scratch entries",
                None,
                defaults.scratch_entries,
                [
                    Some(caps.scratch_entries),
                    org.caps.scratch_entries,
                    workspace.caps.scratch_entries,
                ],
            );
        }
    }
    if req.workflow_invoke {
        let mut cuts = Vec::new();
        if !org.workflow_invoke {
            cuts.push(cut(
                Layer::Organization,
                "workflow invocation is not allowed".into(),
            ));
        }
        if workspace.workflow_invoke == Some(false) {
            cuts.push(cut(Layer::Workspace, "not accepted at install".into()));
        }
        grant.workflow_invoke = cuts.is_empty();
        items.push(yes_no("workflow invocation".into(), cuts));
    }

    // Model aliases. A workspace accepting named aliases narrows `*` to them.
    let requested_models: BTreeSet<String> =
        match (&workspace.models, req.models.contains(ANY_MODEL_ALIAS)) {
            (Some(accepted), true) => accepted.clone(),
            _ => req.models.clone(),
        };
    for alias in &requested_models {
        let mut cuts = Vec::new();
        if !org.models {
            cuts.push(cut(
                Layer::Organization,
                "model calls are not allowed".into(),
            ));
        }
        if let Some(accepted) = &workspace.models
            && !accepted.contains(alias)
        {
            cuts.push(cut(Layer::Workspace, "not accepted at install".into()));
        }
        if cuts.is_empty() {
            grant.models.insert(alias.clone());
        }
        items.push(yes_no(format!("model alias {alias}"), cuts));
    }

    // Limits.
    let limits = &manifest.limits;
    grant.limits.memory_bytes = numeric(
        &mut items,
        "limit memory bytes",
        limits.memory_bytes,
        defaults.memory_bytes,
        [
            Some(caps.memory_bytes),
            org.caps.memory_bytes,
            workspace.caps.memory_bytes,
        ],
    );
    grant.limits.fuel = numeric(
        &mut items,
        "limit fuel",
        limits.fuel,
        defaults.fuel,
        [Some(caps.fuel), org.caps.fuel, workspace.caps.fuel],
    );
    grant.limits.timeout_ms = numeric(
        &mut items,
        "limit timeout ms",
        limits.timeout_ms,
        defaults.timeout_ms,
        [
            Some(caps.timeout_ms),
            org.caps.timeout_ms,
            workspace.caps.timeout_ms,
        ],
    );
    grant.limits.host_resources = numeric(
        &mut items,
        "limit host resources",
        limits.host_resources,
        defaults.host_resources,
        [
            Some(caps.host_resources),
            org.caps.host_resources,
            workspace.caps.host_resources,
        ],
    );
    // Log budgets are the operator's: no layer below the platform changes them.
    grant.limits.log_lines = caps.log_lines;
    grant.limits.log_bytes = caps.log_bytes;

    Explanation {
        plugin,
        refused: None,
        capabilities: items,
        grant: Some(grant),
    }
}

fn cut(layer: Layer, reason: String) -> Cut {
    Cut { layer, reason }
}

fn yes_no(capability: String, cuts: Vec<Cut>) -> ExplainedCapability {
    let granted = if cuts.is_empty() { "yes" } else { "no" }.into();
    ExplainedCapability {
        capability,
        requested: "yes".into(),
        cuts,
        granted,
    }
}

fn forbidden(capability: &str, requested: u64, reason: &str) -> ExplainedCapability {
    ExplainedCapability {
        capability: capability.into(),
        requested: requested.to_string(),
        cuts: vec![cut(Layer::Organization, reason.into())],
        granted: "0".into(),
    }
}

/// The requested (or default) amount, lowered by each layer's cap in turn.
fn numeric(
    items: &mut Vec<ExplainedCapability>,
    capability: &str,
    requested: Option<u64>,
    default: u64,
    caps: [Option<u64>; 3],
) -> u64 {
    let mut value = requested.unwrap_or(default);
    let mut cuts = Vec::new();
    let layers = [Layer::Platform, Layer::Organization, Layer::Workspace];
    for (layer, cap) in layers.into_iter().zip(caps) {
        if let Some(cap) = cap
            && value > cap
        {
            cuts.push(cut(layer, format!("capped at {cap}")));
            value = cap;
        }
    }
    items.push(ExplainedCapability {
        capability: capability.into(),
        requested: match requested {
            Some(r) => r.to_string(),
            None => format!("default ({default})"),
        },
        cuts,
        granted: value.to_string(),
    });
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
[plugin]
id = "acme:fetch"
version = "1.0.0"
kind = "node"
publisher = "acme"
description = "fetches"

[capabilities]
secrets = ["TOKEN", "OTHER"]
kv_bytes = 1000000000
scratch_bytes = 4096

[capabilities.http]
private_networks = ["10.1.0.0/16", "192.168.0.0/16"]

[[capabilities.http.allow]]
url = "https://api.acme.example"
methods = ["GET"]

[[capabilities.http.allow]]
url = "https://*.evil.example"
methods = ["POST"]

[[capabilities.http.allow]]
url = "https://*.mixed.example"
methods = ["GET"]

[limits]
memory_bytes = 1073741824
"#,
        )
        .unwrap()
    }

    #[test]
    fn everything_requested_is_granted_under_permissive_layers() {
        let e = effective_grant(
            &manifest(),
            &PlatformConfig::default(),
            &OrgPolicy {
                http: crate::layers::OrgHttp {
                    private_networks: vec!["0.0.0.0/0".parse().unwrap()],
                    ..Default::default()
                },
                ..Default::default()
            },
            &WorkspaceGrant::default(),
        );
        let g = e.grant.unwrap();
        assert_eq!(g.http.rules.len(), 3);
        assert_eq!(g.http.private_networks.len(), 2);
        assert_eq!(g.secrets.len(), 2);
        assert_eq!(g.scratch_bytes, 4096);
        // Platform caps still apply.
        assert_eq!(g.kv_bytes, PlatformConfig::default().caps.kv_bytes);
        assert_eq!(g.limits.memory_bytes, 256 << 20);
    }

    #[test]
    fn each_layer_cuts_and_says_so() {
        let org: OrgPolicy = toml::from_str(
            r#"
secrets = true
filesystem = false
[http]
block = ["*.evil.example", "bad.mixed.example"]
private_networks = ["10.0.0.0/8"]
[caps]
memory_bytes = 134217728
"#,
        )
        .unwrap();
        let ws: WorkspaceGrant = toml::from_str(
            r#"
secrets = ["TOKEN"]
[caps]
memory_bytes = 67108864
"#,
        )
        .unwrap();
        let e = effective_grant(&manifest(), &PlatformConfig::default(), &org, &ws);
        let g = e.grant.clone().unwrap();
        let urls: Vec<_> = g.http.rules.iter().map(|r| r.url()).collect();
        assert_eq!(
            urls,
            [
                "https://api.acme.example:443",
                "https://*.mixed.example:443"
            ]
        );
        assert!(
            g.http
                .check_destination(Scheme::Https, "bad.mixed.example", 443, "GET")
                .is_err()
        );
        assert!(
            g.http
                .check_destination(Scheme::Https, "ok.mixed.example", 443, "GET")
                .is_ok()
        );
        assert_eq!(
            g.http.private_networks,
            vec!["10.1.0.0/16".parse::<IpNet>().unwrap()]
        );
        assert_eq!(g.secrets, BTreeSet::from(["TOKEN".to_string()]));
        assert_eq!(g.scratch_bytes, 0);
        assert_eq!(g.limits.memory_bytes, 64 << 20);
        let text = e.to_string();
        assert!(
            text.contains("cut by organization policy: blocked by `*.evil.example`"),
            "{text}"
        );
        assert!(
            text.contains("yes, except hosts matching `bad.mixed.example`"),
            "{text}"
        );
        assert!(
            text.contains("cut by platform caps: capped at 268435456"),
            "{text}"
        );
        assert!(
            text.contains("cut by organization policy: capped at 134217728"),
            "{text}"
        );
        assert!(
            text.contains("cut by workspace grant: capped at 67108864"),
            "{text}"
        );
        assert!(
            text.contains("a scratch filesystem is not allowed"),
            "{text}"
        );
    }

    #[test]
    fn publisher_allowlist_refuses_the_install() {
        let org = OrgPolicy {
            publishers: Some(BTreeSet::from(["hyyve".to_string()])),
            ..Default::default()
        };
        let e = effective_grant(
            &manifest(),
            &PlatformConfig::default(),
            &org,
            &Default::default(),
        );
        assert!(e.grant.is_none());
        assert!(e.refused.unwrap().contains("acme"));
    }

    #[test]
    fn addresses_outside_public_ranges_need_a_private_network() {
        let mut g = Grant::default().http;
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(
            g.check_address("localhost", lo)
                .unwrap_err()
                .contains("loopback")
        );
        g.private_networks.push("127.0.0.0/8".parse().unwrap());
        assert!(g.check_address("localhost", lo).is_ok());
        let md: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(g.check_address("x", md).unwrap_err().contains("metadata"));
    }
}
