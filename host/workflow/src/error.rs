//! Why a workflow was rejected before running. Each error names the node and field.

/// One reason a workflow cannot run. Validation reports all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The file is not valid workflow JSON.
    #[error("malformed workflow: {0}")]
    Malformed(String),
    /// A node id is empty, repeated or uses other characters than `[A-Za-z0-9_-]`.
    #[error("node `{node}`: invalid or duplicate id")]
    InvalidNodeId {
        /// The offending id.
        node: String,
    },
    /// The node's plugin is not available.
    #[error("node `{node}`: unknown plugin `{plugin}`")]
    UnknownPlugin {
        /// The node.
        node: String,
        /// The plugin reference.
        plugin: String,
    },
    /// The plugin has no such node type.
    #[error("node `{node}`: plugin `{plugin}` has no node type `{node_type}`")]
    UnknownNodeType {
        /// The node.
        node: String,
        /// The plugin reference.
        plugin: String,
        /// The missing node type.
        node_type: String,
    },
    /// The configuration fails the node type's config schema.
    #[error("node `{node}`: config{field}: {message}")]
    InvalidConfig {
        /// The node.
        node: String,
        /// JSON Pointer of the offending field within the config (`""` = whole config).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An edge end is not `node.port` / `$input.name`.
    #[error("edge {from} -> {to}: {message}")]
    MalformedEdge {
        /// Edge source as written.
        from: String,
        /// Edge target as written.
        to: String,
        /// What is wrong.
        message: String,
    },
    /// An edge points at a node that does not exist.
    #[error("edge {from} -> {to}: no node `{node}`")]
    DanglingEdge {
        /// Edge source as written.
        from: String,
        /// Edge target as written.
        to: String,
        /// The missing node.
        node: String,
    },
    /// An edge reads a run input the workflow does not declare.
    #[error("edge {from} -> {to}: run input `{name}` is not declared in `inputs`")]
    UnknownRunInput {
        /// Edge source as written.
        from: String,
        /// Edge target as written.
        to: String,
        /// The undeclared input.
        name: String,
    },
    /// A port name the node type does not have.
    #[error("node `{node}`: no {direction} port `{port}`")]
    UnknownPort {
        /// The node.
        node: String,
        /// `input` or `output`.
        direction: &'static str,
        /// The missing port.
        port: String,
    },
    /// Two sources (edges or a literal) feed the same input port.
    #[error("node `{node}`: input `{port}` has more than one source")]
    DuplicateInput {
        /// The node.
        node: String,
        /// The port.
        port: String,
    },
    /// A required input port has no source.
    #[error("node `{node}`: required input `{port}` is not connected")]
    MissingRequiredInput {
        /// The node.
        node: String,
        /// The port.
        port: String,
    },
    /// A literal input value fails the port's schema.
    #[error("node `{node}`: input `{port}`{field}: {message}")]
    InvalidLiteralInput {
        /// The node.
        node: String,
        /// The port.
        port: String,
        /// JSON Pointer within the value.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The two ends of an edge can never carry the same value (disjoint JSON types).
    #[error("edge {from} -> {to}: {message}")]
    IncompatiblePorts {
        /// Edge source.
        from: String,
        /// Edge target.
        to: String,
        /// Why they cannot match.
        message: String,
    },
    /// The edges form a cycle through these nodes.
    #[error("cycle through nodes {}", nodes.join(" -> "))]
    Cycle {
        /// The nodes on the cycle.
        nodes: Vec<String>,
    },
    /// A declared run input schema is not a valid JSON Schema.
    #[error("run input `{name}`: invalid schema: {message}")]
    InvalidInputSchema {
        /// The input.
        name: String,
        /// What is wrong.
        message: String,
    },
}

impl ValidationError {
    /// The node the error is about, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Self::InvalidNodeId { node }
            | Self::UnknownPlugin { node, .. }
            | Self::UnknownNodeType { node, .. }
            | Self::InvalidConfig { node, .. }
            | Self::UnknownPort { node, .. }
            | Self::DuplicateInput { node, .. }
            | Self::MissingRequiredInput { node, .. }
            | Self::InvalidLiteralInput { node, .. }
            | Self::DanglingEdge { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Where in the node the error is, as a JSON Pointer into its definition (`/config/x`,
    /// `/inputs/text`, `/type`), if it is about one field.
    pub fn field(&self) -> Option<String> {
        match self {
            Self::UnknownPlugin { .. } => Some("/plugin".into()),
            Self::UnknownNodeType { .. } => Some("/type".into()),
            Self::InvalidConfig { field, .. } => Some(format!("/config{field}")),
            Self::UnknownPort {
                port, direction, ..
            } => Some(format!("/{direction}s/{port}")),
            Self::DuplicateInput { port, .. } | Self::MissingRequiredInput { port, .. } => {
                Some(format!("/inputs/{port}"))
            }
            Self::InvalidLiteralInput { port, field, .. } => Some(format!("/inputs/{port}{field}")),
            _ => None,
        }
    }
}
