//! The JSON Schema of the workflow format, generated from the Rust types. The committed
//! `workflow.schema.json` is checked against it by the tests.

use crate::Workflow;

/// The workflow format's JSON Schema (draft 2020-12), pretty-printed.
pub fn workflow_json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<Workflow>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
