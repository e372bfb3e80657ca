//! What a component is, from its type alone: world, imports, exports.

use serde::Serialize;
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::channel::ChannelInfo;
use crate::engine::Runtime;
use crate::error::LoadError;
use crate::plugin::{Digest, LoadedPlugin, NodeType};
use crate::provider::ProviderInfo;

/// Which hyyve world a component implements, judged by its exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginWorld {
    /// Exports `hyyve:plugin/node`.
    Node,
    /// Exports `hyyve:plugin/provider`.
    Provider,
    /// Exports `hyyve:plugin/channel`.
    Channel,
    /// Exports none of the hyyve interfaces; holds what it exports instead.
    Other(Vec<String>),
}

impl PluginWorld {
    /// The world's name in `wit/worlds.wit`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Node => "node-plugin",
            Self::Provider => "provider-plugin",
            Self::Channel => "channel-plugin",
            Self::Other(_) => "none",
        }
    }

    /// A human description, for errors.
    pub fn describe(&self) -> String {
        match self {
            Self::Node => "a node-plugin".into(),
            Self::Provider => "a provider-plugin".into(),
            Self::Channel => "a channel-plugin".into(),
            Self::Other(exports) if exports.is_empty() => "it exports nothing".into(),
            Self::Other(exports) => format!("it exports only {}", exports.join(", ")),
        }
    }
}

/// Everything `hyyve plugin inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentInfo {
    /// sha256 of the bytes.
    pub digest: Digest,
    /// The world it implements.
    pub world: PluginWorld,
    /// Imported interface names.
    pub imports: Vec<String>,
    /// Exported interface names.
    pub exports: Vec<String>,
    /// For node plugins: the node types with their schemas.
    pub node_types: Vec<NodeType>,
    /// For provider plugins: what the provider described (its models among it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderInfo>,
    /// For channel plugins: what the channel described.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<ChannelInfo>,
}

const HYYVE_EXPORTS: [(&str, PluginWorld); 3] = [
    ("hyyve:plugin/node@", PluginWorld::Node),
    ("hyyve:plugin/provider@", PluginWorld::Provider),
    ("hyyve:plugin/channel@", PluginWorld::Channel),
];

pub(crate) fn world_of(engine: &Engine, component: &Component) -> PluginWorld {
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    for (prefix, world) in HYYVE_EXPORTS {
        if exports.iter().any(|e| e.starts_with(prefix)) {
            return world;
        }
    }
    PluginWorld::Other(exports)
}

impl Runtime {
    /// Describes a component without running it, except for its `describe` export.
    pub async fn inspect(&self, bytes: &[u8]) -> Result<ComponentInfo, LoadError> {
        let (digest, component) = self.compile(bytes)?;
        let ty = component.component_type();
        let imports = ty
            .imports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let exports = ty
            .exports(&self.engine)
            .map(|(n, _)| n.to_owned())
            .collect();
        let world = world_of(&self.engine, &component);
        let mut info = ComponentInfo {
            digest,
            world,
            imports,
            exports,
            node_types: Vec::new(),
            provider: None,
            channel: None,
        };
        if !matches!(info.world, PluginWorld::Other(_)) {
            match self.loaded_plugin(digest, &component).await? {
                LoadedPlugin::Node(p) => info.node_types = p.node_types,
                LoadedPlugin::Provider(p) => info.provider = Some(p.info),
                LoadedPlugin::Channel(p) => info.channel = Some(p.info),
            }
        }
        Ok(info)
    }
}
