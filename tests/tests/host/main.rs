//! Host integration tests, one binary, a module per area.

mod bad_input;
mod capabilities;
mod hostile;
mod runtime;
mod workflow;

use hyyve_runtime::{
    InvocationIds, InvocationOutcome, InvocationRequest, KvScope, Limits, NodePlugin,
};
use serde_json::Value;

/// Invokes `node_type` of `plugin` with default ids in workspace `ws`.
pub async fn invoke_in(
    plugin: &NodePlugin,
    node_type: &str,
    config: Value,
    inputs: Value,
    limits: Limits,
    ws: &str,
) -> InvocationOutcome {
    hyyve_tests::runtime()
        .invoke(
            plugin,
            InvocationRequest {
                node_type,
                config: &config,
                inputs: &inputs,
                ids: InvocationIds {
                    run_id: "test-run".into(),
                    node_id: node_type.into(),
                    attempt: 1,
                },
                scope: KvScope {
                    workspace: ws.into(),
                    install: "test-install".into(),
                },
                limits,
            },
        )
        .await
}

/// Invokes with default limits in workspace `ws-a`.
pub async fn invoke(
    plugin: &NodePlugin,
    node_type: &str,
    config: Value,
    inputs: Value,
) -> InvocationOutcome {
    invoke_in(plugin, node_type, config, inputs, Limits::default(), "ws-a").await
}
