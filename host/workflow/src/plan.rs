//! Validation: a workflow plus its resolved plugins becomes a [`Plan`] (nodes in
//! topological order, every input's source known, every schema compiled), or the complete
//! list of what is wrong with it. Nothing runs before this succeeds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use hyyve_policy::Grant;
use hyyve_runtime::{NodePlugin, NodeType, Schema};
use serde_json::Value;

use crate::error::ValidationError;
use crate::format::{Endpoint, Workflow};

/// A plugin as installed in the workspace that runs the workflow: its loaded component
/// and the effective grant computed at install.
#[derive(Clone)]
pub struct Installed {
    /// The install's id in its workspace (scopes KV, secrets and scratch files).
    pub id: String,
    /// The loaded component.
    pub plugin: Arc<NodePlugin>,
    /// What it may do.
    pub grant: Arc<Grant>,
}

impl Installed {
    /// An install granted nothing beyond the platform's default limits.
    pub fn ungranted(id: impl Into<String>, plugin: Arc<NodePlugin>) -> Self {
        Self {
            id: id.into(),
            plugin,
            grant: Arc::new(Grant::default()),
        }
    }
}

/// Installed plugins by the reference workflows use for them.
pub type PluginSet = HashMap<String, Installed>;

/// Where an input port's value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A literal in the node definition.
    Literal(Value),
    /// A run input.
    RunInput(String),
    /// Another node's output port (node index in plan order).
    Port { node: usize, port: String },
}

/// A node ready to execute.
pub(crate) struct PlannedNode {
    pub(crate) id: String,
    pub(crate) install: Installed,
    pub(crate) node_type: NodeType,
    pub(crate) config: Value,
    pub(crate) sources: BTreeMap<String, Source>,
    /// Plan indices of the nodes this one reads from.
    pub(crate) upstream: BTreeSet<usize>,
}

/// A validated workflow, ready to run any number of times.
pub struct Plan {
    pub(crate) nodes: Vec<PlannedNode>,
    pub(crate) run_inputs: BTreeMap<String, Schema>,
}

impl Plan {
    /// Node ids in execution (topological) order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.nodes.iter().map(|n| n.id.as_str())
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// What validation needs of an installed plugin: its node types. Implemented by loaded
/// components ([`NodePlugin`], [`Installed`]) and by anything else that knows node types
/// (a test's table, a catalog of installs), so the rules are checked without wasm.
pub trait NodeTypes {
    /// The node type called `name`.
    fn node_type(&self, name: &str) -> Option<&NodeType>;
}

impl NodeTypes for NodePlugin {
    fn node_type(&self, name: &str) -> Option<&NodeType> {
        NodePlugin::node_type(self, name)
    }
}

impl NodeTypes for Installed {
    fn node_type(&self, name: &str) -> Option<&NodeType> {
        self.plugin.node_type(name)
    }
}

/// Validates `workflow` against the node types of `plugins`, reporting every problem.
pub fn validate(workflow: &Workflow, plugins: &PluginSet) -> Result<Plan, Vec<ValidationError>> {
    let checked = check(workflow, plugins)?;
    Ok(build_plan(workflow, checked))
}

/// Validates `workflow` against node types only, reporting every problem: the same rules
/// as [`validate`], without loaded components.
pub fn validate_types<I: NodeTypes + Clone>(
    workflow: &Workflow,
    plugins: &HashMap<String, I>,
) -> Result<(), Vec<ValidationError>> {
    check(workflow, plugins).map(drop)
}

/// A workflow that passed every check: its nodes resolved (by position in the file),
/// their input sources, an execution order, and the run inputs' schemas.
struct Checked<I> {
    resolved: Vec<Option<(I, NodeType)>>,
    sources: Vec<BTreeMap<String, Source>>,
    order: Vec<usize>,
    run_inputs: BTreeMap<String, Schema>,
}

fn check<I: NodeTypes + Clone>(
    workflow: &Workflow,
    plugins: &HashMap<String, I>,
) -> Result<Checked<I>, Vec<ValidationError>> {
    let mut errors = Vec::new();

    let mut run_inputs = BTreeMap::new();
    for (name, schema) in &workflow.inputs {
        match Schema::compile(schema.clone()) {
            Ok(compiled) => {
                run_inputs.insert(name.clone(), compiled);
            }
            Err(message) => errors.push(ValidationError::InvalidInputSchema {
                name: name.clone(),
                message,
            }),
        }
    }

    // Nodes whose plugin and type resolve; index = position in `workflow.nodes`.
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut resolved: Vec<Option<(I, NodeType)>> = Vec::new();
    for (i, node) in workflow.nodes.iter().enumerate() {
        if !valid_id(&node.id) || index.insert(&node.id, i).is_some() {
            errors.push(ValidationError::InvalidNodeId {
                node: node.id.clone(),
            });
        }
        resolved.push(resolve_node(node, plugins, &mut errors));
    }

    let mut sources: Vec<BTreeMap<String, Source>> = vec![BTreeMap::new(); workflow.nodes.len()];
    for (i, node) in workflow.nodes.iter().enumerate() {
        let Some((_, ty)) = &resolved[i] else {
            continue;
        };
        for (port, value) in &node.inputs {
            match ty.input(port) {
                None => errors.push(ValidationError::UnknownPort {
                    node: node.id.clone(),
                    direction: "input",
                    port: port.clone(),
                }),
                Some(p) => {
                    if let Some(v) = p.schema.violation(value) {
                        errors.push(ValidationError::InvalidLiteralInput {
                            node: node.id.clone(),
                            port: port.clone(),
                            field: v.field,
                            message: v.message,
                        });
                    }
                    sources[i].insert(port.clone(), Source::Literal(value.clone()));
                }
            }
        }
    }

    for edge in &workflow.edges {
        let malformed = |message: &str| ValidationError::MalformedEdge {
            from: edge.from.clone(),
            to: edge.to.clone(),
            message: message.to_owned(),
        };
        let (
            Some(from),
            Some(Endpoint::Port {
                node: to_node,
                port: to_port,
            }),
        ) = (Endpoint::parse(&edge.from), Endpoint::parse(&edge.to))
        else {
            errors.push(malformed(
                "ends must be `node.port` (source may be `$input.name`)",
            ));
            continue;
        };
        let Some(&to_index) = index.get(to_node.as_str()) else {
            errors.push(ValidationError::DanglingEdge {
                from: edge.from.clone(),
                to: edge.to.clone(),
                node: to_node,
            });
            continue;
        };
        let source = match &from {
            Endpoint::RunInput(name) => {
                if !workflow.inputs.contains_key(name) {
                    errors.push(ValidationError::UnknownRunInput {
                        from: edge.from.clone(),
                        to: edge.to.clone(),
                        name: name.clone(),
                    });
                    continue;
                }
                Source::RunInput(name.clone())
            }
            Endpoint::Port { node, port } => {
                let Some(&from_index) = index.get(node.as_str()) else {
                    errors.push(ValidationError::DanglingEdge {
                        from: edge.from.clone(),
                        to: edge.to.clone(),
                        node: node.clone(),
                    });
                    continue;
                };
                if let Some((_, ty)) = &resolved[from_index]
                    && ty.output(port).is_none()
                {
                    errors.push(ValidationError::UnknownPort {
                        node: node.clone(),
                        direction: "output",
                        port: port.clone(),
                    });
                    continue;
                }
                Source::Port {
                    node: from_index,
                    port: port.clone(),
                }
            }
        };
        let Some((_, to_ty)) = &resolved[to_index] else {
            continue;
        };
        let Some(to_schema) = to_ty.input(&to_port).map(|p| &*p.schema) else {
            errors.push(ValidationError::UnknownPort {
                node: to_node,
                direction: "input",
                port: to_port,
            });
            continue;
        };
        let from_schema = match &source {
            Source::RunInput(name) => workflow.inputs.get(name),
            Source::Port { node, port } => resolved[*node]
                .as_ref()
                .and_then(|(_, t)| t.output(port))
                .map(|p| &*p.schema),
            Source::Literal(_) => None,
        };
        if let Some(message) = from_schema.and_then(|f| incompatible(f, to_schema)) {
            errors.push(ValidationError::IncompatiblePorts {
                from: edge.from.clone(),
                to: edge.to.clone(),
                message,
            });
        }
        if sources[to_index].insert(to_port.clone(), source).is_some() {
            errors.push(ValidationError::DuplicateInput {
                node: to_node,
                port: to_port,
            });
        }
    }

    for (i, node) in workflow.nodes.iter().enumerate() {
        let Some((_, ty)) = &resolved[i] else {
            continue;
        };
        for port in ty.inputs.iter().filter(|p| p.required) {
            if !sources[i].contains_key(&port.name) {
                errors.push(ValidationError::MissingRequiredInput {
                    node: node.id.clone(),
                    port: port.name.clone(),
                });
            }
        }
    }

    let order = match topological_order(workflow, &sources) {
        Ok(order) => order,
        Err(cycle) => {
            errors.push(ValidationError::Cycle { nodes: cycle });
            return Err(errors);
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Checked {
        resolved,
        sources,
        order,
        run_inputs,
    })
}

fn resolve_node<I: NodeTypes + Clone>(
    node: &crate::NodeSpec,
    plugins: &HashMap<String, I>,
    errors: &mut Vec<ValidationError>,
) -> Option<(I, NodeType)> {
    let Some(install) = plugins.get(&node.plugin) else {
        errors.push(ValidationError::UnknownPlugin {
            node: node.id.clone(),
            plugin: node.plugin.clone(),
        });
        return None;
    };
    let Some(ty) = install.node_type(&node.node_type) else {
        errors.push(ValidationError::UnknownNodeType {
            node: node.id.clone(),
            plugin: node.plugin.clone(),
            node_type: node.node_type.clone(),
        });
        return None;
    };
    if let Some(v) = ty.config_schema.violation(&node.config) {
        errors.push(ValidationError::InvalidConfig {
            node: node.id.clone(),
            field: v.field,
            message: v.message,
        });
    }
    Some((install.clone(), ty.clone()))
}

/// The JSON types a schema allows, when it says so with `type`.
fn declared_types(schema: &Value) -> Option<BTreeSet<&str>> {
    match schema.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.as_str()])),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

/// Why no value can satisfy both schemas, when that is decidable from `type` alone.
fn incompatible(from: &Value, to: &Value) -> Option<String> {
    let (Some(a), Some(b)) = (declared_types(from), declared_types(to)) else {
        return None;
    };
    let numeric = |t: &str| t == "integer" || t == "number";
    let overlap = a
        .iter()
        .any(|x| b.iter().any(|y| x == y || (numeric(x) && numeric(y))));
    (!overlap).then(|| format!("source carries {a:?}, target accepts {b:?}"))
}

/// Kahn's algorithm; on a cycle, returns the node ids along one cycle.
fn topological_order(
    workflow: &Workflow,
    sources: &[BTreeMap<String, Source>],
) -> Result<Vec<usize>, Vec<String>> {
    let n = workflow.nodes.len();
    let upstream: Vec<BTreeSet<usize>> = sources.iter().map(upstream_of).collect();
    let mut remaining: Vec<usize> = upstream.iter().map(BTreeSet::len).collect();
    let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(n);
    while let Some(i) = ready.pop() {
        order.push(i);
        for j in 0..n {
            if upstream[j].contains(&i) {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    ready.push(j);
                }
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Every node left has a predecessor that is also left: walk back until one repeats.
    let mut at = (0..n).find(|&i| remaining[i] > 0).unwrap_or(0);
    let mut path: Vec<usize> = Vec::new();
    while !path.contains(&at) {
        path.push(at);
        at = upstream[at]
            .iter()
            .copied()
            .find(|&u| remaining[u] > 0)
            .unwrap_or(at);
    }
    let start = path.iter().position(|&p| p == at).unwrap_or(0);
    let mut cycle: Vec<String> = path[start..]
        .iter()
        .rev()
        .map(|&i| workflow.nodes[i].id.clone())
        .collect();
    cycle.push(cycle[0].clone());
    Err(cycle)
}

fn upstream_of(sources: &BTreeMap<String, Source>) -> BTreeSet<usize> {
    sources
        .values()
        .filter_map(|s| match s {
            Source::Port { node, .. } => Some(*node),
            _ => None,
        })
        .collect()
}

fn build_plan(workflow: &Workflow, checked: Checked<Installed>) -> Plan {
    let Checked {
        resolved,
        sources,
        order,
        run_inputs,
    } = checked;
    // Renumber from file order to plan order.
    let mut position = vec![0; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut resolved = resolved;
    let nodes = order
        .iter()
        .map(|&i| {
            let spec = &workflow.nodes[i];
            let (install, node_type) = resolved[i].take().expect("validated: every node resolved");
            let sources: BTreeMap<String, Source> = sources[i]
                .iter()
                .map(|(port, s)| {
                    let s = match s {
                        Source::Port { node, port } => Source::Port {
                            node: position[*node],
                            port: port.clone(),
                        },
                        other => other.clone(),
                    };
                    (port.clone(), s)
                })
                .collect();
            PlannedNode {
                id: spec.id.clone(),
                upstream: upstream_of(&sources),
                install,
                node_type,
                config: spec.config.clone(),
                sources,
            }
        })
        .collect();
    Plan { nodes, run_inputs }
}

#[cfg(test)]
mod tests {
    use hyyve_runtime::Port;
    use serde_json::json;

    use super::*;

    /// Node types known without a component: validation's other implementation.
    #[derive(Clone)]
    struct Types(Vec<NodeType>);

    impl NodeTypes for Types {
        fn node_type(&self, name: &str) -> Option<&NodeType> {
            self.0.iter().find(|t| t.name == name)
        }
    }

    fn port(name: &str, schema: Value, required: bool) -> Port {
        Port {
            name: name.into(),
            title: name.into(),
            description: String::new(),
            schema: Schema::compile(schema).unwrap(),
            required,
        }
    }

    fn node_type(name: &str, input: Value, output: Value) -> NodeType {
        NodeType {
            name: name.into(),
            title: name.into(),
            description: String::new(),
            category: "test".into(),
            inputs: vec![port("in", input, true)],
            outputs: vec![port("out", output, true)],
            config_schema: Schema::compile(json!({
                "type": "object",
                "properties": { "n": { "type": "integer" } },
                "additionalProperties": false
            }))
            .unwrap(),
        }
    }

    fn catalog() -> HashMap<String, Types> {
        let types = Types(vec![
            node_type(
                "text-to-text",
                json!({"type": "string"}),
                json!({"type": "string"}),
            ),
            node_type(
                "number-to-number",
                json!({"type": "number"}),
                json!({"type": "number"}),
            ),
        ]);
        HashMap::from([("acme:probe".to_string(), types)])
    }

    fn workflow(nodes: Value, edges: Value) -> Workflow {
        serde_json::from_value(json!({ "name": "w", "nodes": nodes, "edges": edges })).unwrap()
    }

    #[test]
    fn a_chain_of_compatible_ports_validates_without_a_component() {
        let w = workflow(
            json!([
                { "id": "a", "plugin": "acme:probe", "type": "text-to-text", "inputs": { "in": "hi" } },
                { "id": "b", "plugin": "acme:probe", "type": "text-to-text", "config": { "n": 1 } }
            ]),
            json!([{ "from": "a.out", "to": "b.in" }]),
        );
        assert_eq!(validate_types(&w, &catalog()), Ok(()));
    }

    #[test]
    fn every_problem_is_reported_with_the_node_it_is_on() {
        let w = workflow(
            json!([
                { "id": "a", "plugin": "acme:probe", "type": "text-to-text", "inputs": { "in": "hi" } },
                { "id": "b", "plugin": "acme:probe", "type": "number-to-number" },
                { "id": "c", "plugin": "acme:probe", "type": "nope" },
                { "id": "d", "plugin": "acme:missing", "type": "x" },
                { "id": "e", "plugin": "acme:probe", "type": "text-to-text",
                  "inputs": { "in": "x" }, "config": { "n": "one" } }
            ]),
            json!([{ "from": "a.out", "to": "b.in" }]),
        );
        let errors = validate_types(&w, &catalog()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let about = |node: &str| text.iter().any(|t| t.contains(&format!("`{node}`")));
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ValidationError::IncompatiblePorts { .. })),
            "{text:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ValidationError::UnknownNodeType { node, .. } if node == "c")),
            "{text:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ValidationError::UnknownPlugin { node, .. } if node == "d")),
            "{text:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| matches!(e, ValidationError::InvalidConfig { node, .. } if node == "e")),
            "{text:?}"
        );
        assert!(about("c") && about("d"), "{text:?}");
    }
}
