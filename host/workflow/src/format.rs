//! The workflow file format (see `workflow.schema.json` and the README).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow: nodes wired by edges, plus the inputs a run must supply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workflow {
    /// Human name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Run inputs by name, each with the JSON Schema its value must satisfy. Edges read
    /// them as `$input.<name>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
    /// The node instances.
    pub nodes: Vec<NodeSpec>,
    /// Connections from an output port (or a run input) to an input port.
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// One node instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// Identifier, unique in the workflow: letters, digits, `_` and `-`.
    pub id: String,
    /// The plugin offering the node type: `namespace:name`, or a path to a `.wasm` file.
    pub plugin: String,
    /// The node type within the plugin.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Configuration, valid against the node type's config schema.
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Literal values for input ports not fed by an edge.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, Value>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// `from` → `to`. `from` is `node.port` or `$input.name`; `to` is `node.port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Source: `node.port` or `$input.name`.
    pub from: String,
    /// Target: `node.port`.
    pub to: String,
}

/// One end of an edge, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A node's port.
    Port {
        /// Node id.
        node: String,
        /// Port name.
        port: String,
    },
    /// A run input.
    RunInput(String),
}

impl Endpoint {
    /// Parses `node.port` or `$input.name`; `None` when malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let (left, right) = text.split_once('.')?;
        if left.is_empty() || right.is_empty() {
            return None;
        }
        if left == "$input" {
            return Some(Self::RunInput(right.to_owned()));
        }
        Some(Self::Port {
            node: left.to_owned(),
            port: right.to_owned(),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Port { node, port } => write!(f, "{node}.{port}"),
            Self::RunInput(name) => write!(f, "$input.{name}"),
        }
    }
}

impl Workflow {
    /// Parses workflow JSON; unknown fields are errors.
    pub fn from_json(text: &str) -> Result<Self, crate::ValidationError> {
        serde_json::from_str(text).map_err(|e| crate::ValidationError::Malformed(e.to_string()))
    }

    /// Every distinct plugin reference, in first-use order.
    pub fn plugin_refs(&self) -> Vec<&str> {
        let mut refs: Vec<&str> = Vec::new();
        for node in &self.nodes {
            if !refs.contains(&node.plugin.as_str()) {
                refs.push(&node.plugin);
            }
        }
        refs
    }
}
