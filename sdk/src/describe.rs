//! Node types described from Rust types, and the typed execute wrapper.

use schemars::generate::SchemaSettings;
use serde_json::Value;

use crate::__private::bindings::hyyve::plugin::types::Port;
use crate::__private::{Invocation, NodeType, PluginError};
use crate::{Context, Node};

fn schema_of<T: schemars::JsonSchema>() -> Value {
    // Inlined subschemas keep each port's schema self-contained once split out.
    SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

/// The node type record for `N`.
pub fn describe<N: Node>() -> NodeType {
    NodeType {
        name: N::NAME.into(),
        title: N::TITLE.into(),
        description: N::DESCRIPTION.into(),
        category: N::CATEGORY.into(),
        inputs: ports(schema_of::<N::Inputs>()),
        outputs: ports(schema_of::<N::Outputs>()),
        config_schema: schema_of::<N::Config>().to_string(),
    }
}

/// One port per top-level property of an object schema.
fn ports(schema: Value) -> Vec<Port> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let defs = schema.get("$defs");
    properties
        .iter()
        .map(|(name, sub)| {
            let text = |key: &str| sub.get(key).and_then(Value::as_str).map(str::to_owned);
            let mut port_schema = sub.clone();
            // Recursive types still reference `$defs`; carry them along.
            if let (Some(defs), Some(obj)) = (defs, port_schema.as_object_mut()) {
                obj.insert("$defs".into(), defs.clone());
            }
            Port {
                title: text("title").unwrap_or_else(|| name.clone()),
                description: text("description").unwrap_or_default(),
                schema: port_schema.to_string(),
                required: required.contains(&name.as_str()),
                name: name.clone(),
            }
        })
        .collect()
}

/// Decodes, runs and encodes one call of `N`.
pub fn execute<N: Node>(
    config: &str,
    inputs: &str,
    ctx: Invocation,
) -> Result<String, PluginError> {
    let config: N::Config = serde_json::from_str(config)
        .map_err(|e| PluginError::InvalidInput(format!("config: {e}")))?;
    let inputs: N::Inputs = serde_json::from_str(inputs)
        .map_err(|e| PluginError::InvalidInput(format!("inputs: {e}")))?;
    let ctx = Context::new(ctx.run_id, ctx.node_id, ctx.attempt);
    let outputs = N::run(config, inputs, &ctx)?;
    serde_json::to_string(&outputs).map_err(|e| PluginError::Failed(format!("outputs: {e}")))
}

/// The error for a node type this component does not export.
pub fn unknown_node_type(name: &str) -> PluginError {
    PluginError::InvalidInput(format!("unknown node type `{name}`"))
}
