//! Host integration tests, one binary, a module per area.

mod bad_input;
mod budgets;
mod capabilities;
mod contained;
mod hostile;
mod models;
mod policy;
mod runtime;
mod workflow;

use std::sync::Arc;

use hyyve_policy::{Grant, HttpRule};
use hyyve_runtime::{
    InstallScope, InvocationIds, InvocationOutcome, InvocationRequest, Limits, NodePlugin,
};
use serde_json::Value;

/// The grant of the tests that are not about grants: nothing but 16 MiB of KV.
pub fn kv_grant() -> Grant {
    Grant {
        kv_bytes: 16 << 20,
        ..Grant::default()
    }
}

/// A grant of `methods` on the loopback test server under the name `host`, with
/// `requests` per invocation and `bytes` each way; `loopback` grants 127.0.0.0/8.
pub fn test_server_grant(
    host: &str,
    methods: &[&str],
    loopback: bool,
    requests: u64,
    bytes: u64,
) -> Grant {
    let mut grant = Grant::default();
    let url = format!("http://{host}:{}", hyyve_tests::http_server::server().port);
    let methods: Vec<String> = methods.iter().map(|m| m.to_string()).collect();
    let rule = HttpRule::parse(&url, &methods).expect("test rule is valid");
    grant.http.rules.push(rule);
    if loopback {
        grant
            .http
            .private_networks
            .push("127.0.0.0/8".parse().unwrap());
    }
    grant.http.max_requests = requests;
    grant.http.max_request_bytes = bytes;
    grant.http.max_response_bytes = bytes;
    grant
}

/// Invokes `node_type` of `plugin` with default ids in workspace `ws`.
pub async fn invoke_in(
    plugin: &NodePlugin,
    node_type: &str,
    config: Value,
    inputs: Value,
    limits: Limits,
    ws: &str,
) -> InvocationOutcome {
    invoke_granted(plugin, node_type, config, inputs, limits, ws, kv_grant()).await
}

/// Invokes under `grant`, as install `test-install` of workspace `ws`.
pub async fn invoke_granted(
    plugin: &NodePlugin,
    node_type: &str,
    config: Value,
    inputs: Value,
    limits: Limits,
    ws: &str,
    grant: Grant,
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
                scope: InstallScope {
                    workspace: ws.into(),
                    install: "test-install".into(),
                },
                grant: Arc::new(grant),
                limits,
                models: None,
                progress: None,
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
