//! A loaded node plugin: validated, linked, described once.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use wasmtime::component::{Component, InstancePre};

use crate::bindings::{NodePluginPre, types as wit};
use crate::channel::ChannelPlugin;
use crate::engine::Runtime;
use crate::error::LoadError;
use crate::inspect::{PluginWorld, world_of};
use crate::provider::{ProviderPlugin, describe_failed};
use crate::schema::Schema;
use crate::state::HostState;

/// sha256 of a component's bytes: what pins a plugin version and keys caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lower-case hex, without prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An input or output of a node type, with its schema parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Port {
    /// Identifier used by edges.
    pub name: String,
    /// Human title.
    pub title: String,
    /// What flows through it.
    pub description: String,
    /// JSON Schema of its values.
    pub schema: Schema,
    /// Whether a value is required (inputs) or always emitted (outputs).
    pub required: bool,
}

/// A node type as the plugin described it, with schemas parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeType {
    /// Identifier within the component.
    pub name: String,
    /// Human title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// Palette group.
    pub category: String,
    /// Input ports.
    pub inputs: Vec<Port>,
    /// Output ports.
    pub outputs: Vec<Port>,
    /// JSON Schema of the configuration object.
    pub config_schema: Schema,
}

impl NodeType {
    /// The input port called `name`.
    pub fn input(&self, name: &str) -> Option<&Port> {
        self.inputs.iter().find(|p| p.name == name)
    }

    /// The output port called `name`.
    pub fn output(&self, name: &str) -> Option<&Port> {
        self.outputs.iter().find(|p| p.name == name)
    }
}

/// A node component ready to instantiate: compiled, linked, described.
pub struct NodePlugin {
    pub(crate) digest: Digest,
    pub(crate) pre: NodePluginPre<crate::state::HostState>,
    pub(crate) node_types: Vec<NodeType>,
}

impl NodePlugin {
    /// The component's sha256.
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The node types it offers.
    pub fn node_types(&self) -> &[NodeType] {
        &self.node_types
    }

    /// The node type called `name`.
    pub fn node_type(&self, name: &str) -> Option<&NodeType> {
        self.node_types.iter().find(|t| t.name == name)
    }
}

impl Runtime {
    /// Reads and loads a node plugin from a `.wasm` file.
    pub async fn load_node_plugin_file(&self, path: &Path) -> Result<NodePlugin, LoadError> {
        let bytes = tokio::fs::read(path).await.map_err(|e| LoadError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.load_node_plugin(&bytes).await
    }

    /// Validates `bytes` as a node-plugin component, links it, and asks it to describe
    /// its node types (in a fresh, limited instance like any invocation).
    pub async fn load_node_plugin(&self, bytes: &[u8]) -> Result<NodePlugin, LoadError> {
        let (digest, component) = self.compile(bytes)?;
        self.node_plugin(digest, &component).await
    }

    /// A compiled component as a node plugin: linked and described.
    pub(crate) async fn node_plugin(
        &self,
        digest: Digest,
        component: &Component,
    ) -> Result<NodePlugin, LoadError> {
        let instance_pre = self.link(component, PluginWorld::Node)?;
        let pre = NodePluginPre::new(instance_pre).map_err(|e| LoadError::WrongWorld {
            expected: "node-plugin",
            found: format!("{e:#}"),
        })?;
        let raw = self.describe(&pre).await.map_err(describe_failed)?;
        let node_types = parse_node_types(raw)?;
        Ok(NodePlugin {
            digest,
            pre,
            node_types,
        })
    }

    /// Loads a component of any kind, judged by what it exports.
    pub async fn load_plugin(&self, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let (digest, component) = self.compile(bytes)?;
        self.loaded_plugin(digest, &component).await
    }

    /// A compiled component loaded as the kind its exports say, compiled only once.
    pub(crate) async fn loaded_plugin(
        &self,
        digest: Digest,
        component: &Component,
    ) -> Result<LoadedPlugin, LoadError> {
        match world_of(&self.engine, component) {
            PluginWorld::Node => self
                .node_plugin(digest, component)
                .await
                .map(LoadedPlugin::Node),
            PluginWorld::Provider => self
                .provider_plugin(digest, component)
                .await
                .map(LoadedPlugin::Provider),
            PluginWorld::Channel => self
                .channel_plugin(digest, component)
                .await
                .map(LoadedPlugin::Channel),
            other => Err(LoadError::WrongWorld {
                expected: "node-plugin, provider-plugin or channel-plugin",
                found: other.describe(),
            }),
        }
    }

    /// Checks a compiled component implements `world` and links its imports.
    pub(crate) fn link(
        &self,
        component: &Component,
        world: PluginWorld,
    ) -> Result<InstancePre<HostState>, LoadError> {
        let found = world_of(&self.engine, component);
        if found != world {
            return Err(LoadError::WrongWorld {
                expected: world.name(),
                found: found.describe(),
            });
        }
        self.linker
            .instantiate_pre(component)
            .map_err(|e| LoadError::UnsatisfiedImport(format!("{e:#}")))
    }
}

/// A loaded component of one of the three kinds.
pub enum LoadedPlugin {
    /// Workflow node types.
    Node(NodePlugin),
    /// An AI model adapter.
    Provider(ProviderPlugin),
    /// A messaging channel adapter.
    Channel(ChannelPlugin),
}

impl LoadedPlugin {
    /// The component's sha256.
    pub fn digest(&self) -> Digest {
        match self {
            Self::Node(p) => p.digest(),
            Self::Provider(p) => p.digest(),
            Self::Channel(p) => p.digest(),
        }
    }

    /// The world it implements.
    pub fn world(&self) -> PluginWorld {
        match self {
            Self::Node(_) => PluginWorld::Node,
            Self::Provider(_) => PluginWorld::Provider,
            Self::Channel(_) => PluginWorld::Channel,
        }
    }
}

fn parse_node_types(raw: Vec<wit::NodeType>) -> Result<Vec<NodeType>, LoadError> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for t in raw {
        if t.name.is_empty() || !seen.insert(t.name.clone()) {
            return Err(LoadError::Describe(format!(
                "node type name `{}` is empty or repeated",
                t.name
            )));
        }
        let context = format!("node type `{}`", t.name);
        let node = NodeType {
            config_schema: parse_schema(&t.config_schema, &format!("{context} config"))?,
            inputs: parse_ports(t.inputs, &format!("{context} input"))?,
            outputs: parse_ports(t.outputs, &format!("{context} output"))?,
            name: t.name,
            title: t.title,
            description: t.description,
            category: t.category,
        };
        out.push(node);
    }
    Ok(out)
}

fn parse_ports(ports: Vec<wit::Port>, context: &str) -> Result<Vec<Port>, LoadError> {
    let mut seen = HashSet::new();
    ports
        .into_iter()
        .map(|p| {
            if p.name.is_empty() || !seen.insert(p.name.clone()) {
                return Err(LoadError::Describe(format!(
                    "{context} port name `{}` is empty or repeated",
                    p.name
                )));
            }
            Ok(Port {
                schema: parse_schema(&p.schema, &format!("{context} `{}`", p.name))?,
                name: p.name,
                title: p.title,
                description: p.description,
                required: p.required,
            })
        })
        .collect()
}

pub(crate) fn parse_schema(text: &str, context: &str) -> Result<Schema, LoadError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| LoadError::Describe(format!("{context} schema is not JSON: {e}")))?;
    if !(value.is_object() || value.is_boolean()) {
        return Err(LoadError::Describe(format!(
            "{context} schema must be an object or a boolean"
        )));
    }
    Schema::compile(value)
        .map_err(|e| LoadError::Describe(format!("{context} schema is invalid: {e}")))
}
