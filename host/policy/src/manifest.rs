//! `hyyve.toml`: who a plugin is and every capability it asks for. Anything not asked
//! for is denied; an empty list asks for nothing.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ManifestError;
use crate::pattern::HttpRule;

/// A plugin manifest, parsed and validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Identity and listing data.
    pub plugin: PluginInfo,
    /// What the plugin asks to use. Absent: nothing.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Resource limits the plugin asks for; absent fields get the platform defaults.
    #[serde(default)]
    pub limits: RequestedLimits,
    /// How the plugin appears in the marketplace. Absent: titled by its name, free.
    #[serde(default)]
    pub listing: Listing,
}

/// Marketplace presentation and price of a plugin.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Listing {
    /// Display title; absent: the plugin's name.
    #[serde(default)]
    pub title: Option<String>,
    /// A Markdown file beside `hyyve.toml`, packaged as the listing's readme.
    #[serde(default)]
    pub readme: Option<String>,
    /// A PNG or SVG file beside `hyyve.toml`, packaged as the listing's icon.
    #[serde(default)]
    pub icon: Option<String>,
    /// What installing workspaces pay.
    #[serde(default)]
    pub pricing: Pricing,
}

/// The pricing model of a listing; prices in USD micro-dollars (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "model", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Pricing {
    /// No charge.
    #[default]
    Free,
    /// Charged per successful invocation.
    PerInvocation {
        /// Price of one invocation.
        price_micros: u64,
    },
    /// Charged per subscribed workspace and month.
    Subscription {
        /// Price of one workspace-month.
        price_micros: u64,
    },
}

/// Identity and listing data of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginInfo {
    /// `namespace:name`, lowercase letters, digits and inner hyphens.
    pub id: PluginId,
    /// Semantic version of this release.
    #[schemars(with = "String")]
    pub version: semver::Version,
    /// Which world the component implements.
    pub kind: PluginKind,
    /// The publisher account that signs releases (same charset as a namespace).
    pub publisher: String,
    /// One paragraph for listings.
    pub description: String,
    /// Listing categories.
    #[serde(default)]
    pub categories: Vec<String>,
}

/// The world a plugin implements (`wit/worlds.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `node`: workflow node types.
    Node,
    /// Exports `provider`: AI model adapters.
    Provider,
    /// Exports `channel`: messaging channel adapters.
    Channel,
}

/// `namespace:name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PluginId {
    /// The publisher-owned namespace.
    pub namespace: String,
    /// The plugin's name within it.
    pub name: String,
}

impl FromStr for PluginId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}` is not `namespace:name`"))?;
        check_name(namespace).map_err(|e| format!("namespace {e}"))?;
        check_name(name).map_err(|e| format!("name {e}"))?;
        Ok(Self {
            namespace: namespace.into(),
            name: name.into(),
        })
    }
}

/// In `capabilities.models`: any alias the workspace binds.
pub const ANY_MODEL_ALIAS: &str = "*";

/// Namespaces, names and publishers: `[a-z][a-z0-9-]*`, at most 64 characters, no
/// trailing or doubled hyphen (they end up in URLs and file names).
pub fn check_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && !s.contains("--")
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` must be 1-64 lowercase letters, digits or single inner hyphens, starting with a letter"
        ))
    }
}

impl TryFrom<String> for PluginId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PluginId> for String {
    fn from(id: PluginId) -> String {
        id.to_string()
    }
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.namespace, self.name)
    }
}

impl JsonSchema for PluginId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PluginId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9-]{0,63}:[a-z][a-z0-9-]{0,63}$",
            "description": "`namespace:name`"
        })
    }
}

/// Capabilities a plugin requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outgoing HTTP through wasi:http.
    #[serde(default)]
    pub http: HttpRequest,
    /// Bytes of key-value storage (keys + values) per workspace install; 0 for none.
    #[serde(default)]
    pub kv_bytes: u64,
    /// Names of workspace secrets the plugin reads.
    #[serde(default)]
    pub secrets: BTreeSet<String>,
    /// Bytes of the per-install scratch directory (`/scratch`); 0 for none.
    #[serde(default)]
    pub scratch_bytes: u64,
    /// Whether the plugin starts other workflows.
    #[serde(default)]
    pub workflow_invoke: bool,
    /// Model aliases the plugin calls through `models` (`default-chat`), or `*` for any
    /// alias the workspace binds; a node calls no model it does not list.
    #[serde(default)]
    pub models: BTreeSet<String>,
}

/// Requested outgoing HTTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// Destinations: `scheme://host[:port]` (host may be `*.domain`) and methods.
    #[serde(default)]
    pub allow: Vec<HttpDestination>,
    /// Non-public networks (CIDR) the plugin must reach, e.g. an on-premises service.
    /// Without one, addresses in loopback, link-local, private and metadata ranges are
    /// refused whatever the host name.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub private_networks: Vec<IpNet>,
    /// Requests per invocation (platform default when absent).
    pub max_requests: Option<u64>,
    /// Request body bytes per invocation.
    pub max_request_bytes: Option<u64>,
    /// Response body bytes per invocation.
    pub max_response_bytes: Option<u64>,
}

/// One requested HTTP destination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpDestination {
    /// `scheme://host[:port]`.
    pub url: String,
    /// Methods used there, e.g. `["GET", "POST"]`.
    pub methods: Vec<String>,
}

/// Limits the plugin asks for; each is capped by the platform and the organization.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestedLimits {
    /// Linear memory, bytes.
    pub memory_bytes: Option<u64>,
    /// Fuel units per invocation.
    pub fuel: Option<u64>,
    /// Wall-clock deadline per invocation, milliseconds.
    pub timeout_ms: Option<u64>,
    /// Host-side resources (header maps, requests, bodies, streams, pollables, file
    /// descriptors) held at once.
    pub host_resources: Option<u64>,
}

impl Manifest {
    /// Parses and validates `hyyve.toml` text. Errors name the offending key.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ManifestError::Toml(e.to_string()))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Checks what the types alone do not.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |key: &str, message: String| ManifestError::Invalid {
            key: key.to_owned(),
            message,
        };
        check_name(&self.plugin.publisher).map_err(|m| invalid("plugin.publisher", m))?;
        if self.plugin.description.trim().is_empty() {
            return Err(invalid("plugin.description", "is empty".into()));
        }
        for (i, c) in self.plugin.categories.iter().enumerate() {
            check_name(c).map_err(|m| invalid(&format!("plugin.categories[{i}]"), m))?;
        }
        self.http_rules()?;
        if let Some(title) = &self.listing.title
            && (title.trim().is_empty() || title.len() > 100)
        {
            return Err(invalid(
                "listing.title",
                "must be 1 to 100 characters".into(),
            ));
        }
        for (key, file) in [
            ("listing.readme", &self.listing.readme),
            ("listing.icon", &self.listing.icon),
        ] {
            if let Some(file) = file
                && (file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.'))
            {
                return Err(invalid(key, "must name a file beside hyyve.toml".into()));
            }
        }
        if let Some(icon) = &self.listing.icon
            && !(icon.ends_with(".png") || icon.ends_with(".svg"))
        {
            return Err(invalid(
                "listing.icon",
                "must be a .png or .svg file".into(),
            ));
        }
        for name in &self.capabilities.secrets {
            check_secret_name(name).map_err(|m| invalid("capabilities.secrets", m))?;
        }
        for alias in &self.capabilities.models {
            if alias != ANY_MODEL_ALIAS {
                check_name(alias).map_err(|m| invalid("capabilities.models", m))?;
            }
        }
        for (key, value) in [
            ("limits.memory_bytes", self.limits.memory_bytes),
            ("limits.fuel", self.limits.fuel),
            ("limits.timeout_ms", self.limits.timeout_ms),
            ("limits.host_resources", self.limits.host_resources),
        ] {
            if value == Some(0) {
                return Err(invalid(key, "must be greater than 0".into()));
            }
        }
        Ok(())
    }

    /// The requested destinations as rules.
    pub fn http_rules(&self) -> Result<Vec<HttpRule>, ManifestError> {
        self.capabilities
            .http
            .allow
            .iter()
            .enumerate()
            .map(|(i, d)| {
                HttpRule::parse(&d.url, &d.methods).map_err(|message| ManifestError::Invalid {
                    key: format!("capabilities.http.allow[{i}]"),
                    message,
                })
            })
            .collect()
    }

    /// The JSON Schema of the manifest (committed as `manifest.schema.json`).
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Manifest)).unwrap_or_default()
    }
}

/// Secret names: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
pub fn check_secret_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "secret name `{name}` must be letters, digits and underscores, not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[plugin]
id = "acme:weather"
version = "1.2.0"
kind = "node"
publisher = "acme"
description = "Weather lookups"
categories = ["data"]

[capabilities]
secrets = ["WEATHER_KEY"]
kv_bytes = 1024

[[capabilities.http.allow]]
url = "https://api.weather.example"
methods = ["GET"]

[limits]
timeout_ms = 2000
"#;

    #[test]
    fn a_full_manifest_parses() {
        let m = Manifest::parse(GOOD).unwrap();
        assert_eq!(m.plugin.id.to_string(), "acme:weather");
        assert_eq!(m.http_rules().unwrap()[0].port, 443);
        assert!(m.capabilities.secrets.contains("WEATHER_KEY"));
    }

    fn error_of(text: &str) -> String {
        Manifest::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_offending_key() {
        let unknown = GOOD.replace("kv_bytes = 1024", "kv_bytes = 1024\nsockets = true");
        assert!(error_of(&unknown).contains("unknown field `sockets`"));
        let bad_id = GOOD.replace("acme:weather", "Acme:weather");
        let e = error_of(&bad_id);
        assert!(e.contains("plugin.id") || e.contains("namespace"), "{e}");
        let bad_version = GOOD.replace("1.2.0", "1.2");
        assert!(error_of(&bad_version).contains("version"));
        let bad_url = GOOD.replace(
            "https://api.weather.example",
            "https://api.weather.example/v1",
        );
        assert!(error_of(&bad_url).contains("capabilities.http.allow[0]"));
        let bad_secret = GOOD.replace("WEATHER_KEY", "WEATHER-KEY");
        assert!(error_of(&bad_secret).contains("capabilities.secrets"));
        let zero = GOOD.replace("timeout_ms = 2000", "timeout_ms = 0");
        assert!(error_of(&zero).contains("limits.timeout_ms"));
        let bad_kind = GOOD.replace("kind = \"node\"", "kind = \"daemon\"");
        assert!(error_of(&bad_kind).contains("kind"));
    }

    #[test]
    fn a_bare_manifest_requests_nothing() {
        let m = Manifest::parse(
            "[plugin]\nid = \"a:b\"\nversion = \"0.1.0\"\nkind = \"node\"\npublisher = \"a\"\ndescription = \"x\"\n",
        )
        .unwrap();
        assert_eq!(m.capabilities, Capabilities::default());
        assert!(m.http_rules().unwrap().is_empty());
    }
}
