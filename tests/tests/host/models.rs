//! Model calls end to end: the `hyyve:llm` nodes call aliases through the host, which
//! runs the `hyyve:openai` / `hyyve:anthropic` providers in their own instances against
//! the loopback fake of both wire formats. The stores are local mode's (data directory
//! files), the providers installed under their own grants from manifests that grant the
//! fake's loopback address.

use std::sync::{Arc, Mutex};

use hyyve_runtime::{DenialKind, MeteringRecord};
use hyyve_tests::fake_llm::fake_llm;
use hyyve_tests::model_workspace::ModelWorkspace;
use hyyve_workflow::{
    Executor, ExecutorConfig, NodeReport, NodeStatus, PluginSet, RunObserver, RunRequest, Workflow,
};
use serde_json::{Value, json};

/// The local-mode fixture, with the one-node runner these tests use.
struct Workspace(ModelWorkspace);

impl std::ops::Deref for Workspace {
    type Target = ModelWorkspace;
    fn deref(&self) -> &ModelWorkspace {
        &self.0
    }
}

impl Workspace {
    async fn new(name: &str) -> Self {
        Self(ModelWorkspace::new(name).await)
    }

    /// Runs one `hyyve:llm` node of `node_type` with `config` and `inputs`.
    async fn run(
        &self,
        node_type: &str,
        config: Value,
        inputs: Value,
    ) -> (NodeReport, Vec<String>) {
        let runtime = hyyve_tests::runtime();
        let llm = self.llm().await;
        let plugins = PluginSet::from([("hyyve:llm".to_owned(), llm)]);
        let workflow = Workflow::from_json(
            &json!({ "name": "model call", "nodes": [{
                "id": "ask", "plugin": "hyyve:llm", "type": node_type,
                "config": config, "inputs": inputs }] })
            .to_string(),
        )
        .unwrap();
        let plan = Arc::new(hyyve_workflow::validate(&workflow, &plugins).unwrap());
        let routes = self.routes(runtime.clone());
        let config = ExecutorConfig {
            workspace: self.name.clone(),
            retries: 0,
            ..ExecutorConfig::default()
        };
        let observer = Arc::new(Deltas::default());
        let report = Executor::new(runtime, config)
            .with_models(Arc::new(routes))
            .run_with(RunRequest {
                plan,
                run_id: "model-run",
                workspace: &self.name,
                input: &json!({}),
                finished: Vec::new(),
                observer: observer.clone(),
            })
            .await
            .unwrap();
        let deltas = observer.0.lock().unwrap().clone();
        (report.nodes[0].clone(), deltas)
    }
}

/// Collects `node.progress` deltas.
#[derive(Default)]
struct Deltas(Mutex<Vec<String>>);

impl RunObserver for Deltas {
    fn node_progress(&self, _node_id: &str, _attempt: u32, delta: &str) {
        self.0.lock().unwrap().push(delta.to_owned());
    }
}

fn chat(alias: &str, extra: Value) -> Value {
    let mut config =
        json!({ "alias": alias, "system": "Be brief.", "prompt": "Say hi to {{ name }}" });
    if let (Some(config), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        config.extend(extra.clone());
    }
    config
}

fn tokens(record: &MeteringRecord) -> (Option<u64>, Option<u64>) {
    (
        record.usage.get("llm.input-tokens").copied(),
        record.usage.get("llm.output-tokens").copied(),
    )
}

#[tokio::test]
async fn a_streamed_openai_chat_reaches_the_node_and_its_tokens_are_metered_on_the_provider() {
    let ws = Workspace::new("models-openai-stream").await;
    ws.bind("default-chat", &[("openai", "ok-stream")]).await;
    let (report, deltas) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({})),
            json!({ "data": { "name": "Ada" } }),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let outputs = report.outputs.unwrap();
    assert_eq!(outputs["text"], "Hello!");
    assert_eq!(
        outputs["usage"],
        json!({ "input_tokens": 12, "output_tokens": 5 })
    );
    assert_eq!(deltas, ["Hel", "lo", "!"]);
    let calls = &report.metering.model_calls;
    assert_eq!(calls.len(), 1);
    assert_eq!(
        (calls[0].provider.as_str(), calls[0].model.as_str()),
        ("openai.wasm", "ok-stream")
    );
    assert_eq!(tokens(&calls[0].metering), (Some(12), Some(5)));
    assert!(calls[0].metering.fuel > 0 && calls[0].metering.http_requests == 1);
    assert!(
        report.metering.usage.is_empty(),
        "tokens are the provider's, not the node's"
    );
    let request = fake_llm().seen("ok-stream").pop().unwrap().body;
    assert_eq!(
        request["messages"][0],
        json!({ "role": "system", "content": "Be brief." })
    );
    assert_eq!(request["messages"][1]["content"], "Say hi to Ada");
    assert_eq!(request["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn anthropic_structured_output_is_the_forced_tools_input_checked_by_the_host() {
    let ws = Workspace::new("models-anthropic-json").await;
    ws.bind("smart", &[("anthropic", "json")]).await;
    let schema = json!({ "type": "object", "properties": { "answer": { "type": "integer" } }, "required": ["answer"] });
    let config = chat(
        "smart",
        json!({ "output_schema": schema, "stream": false, "max_tokens": 64 }),
    );
    let (report, _) = ws
        .run("llm-chat", config, json!({ "data": { "name": "Ada" } }))
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.outputs.unwrap()["json"], json!({ "answer": 42 }));
    let seen = fake_llm().seen("json");
    let request = &seen
        .iter()
        .rev()
        .find(|s| s.path == "/v1/messages")
        .unwrap()
        .body;
    assert_eq!(request["system"], "Be brief.");
    assert_eq!(request["max_tokens"], 64);
    assert_eq!(request["tool_choice"]["name"], "structured_output");
    assert_eq!(request["messages"][0]["role"], "user");
    assert_eq!(
        tokens(&report.metering.model_calls[0].metering),
        (Some(12), Some(5))
    );
}

#[tokio::test]
async fn an_answer_breaking_the_output_schema_fails_the_node() {
    let ws = Workspace::new("models-bad-json").await;
    ws.bind("default-chat", &[("openai", "bad-json")]).await;
    let schema = json!({ "type": "object", "properties": { "answer": { "type": "integer" } } });
    let (report, _) = ws
        .run(
            "llm-chat",
            chat(
                "default-chat",
                json!({ "output_schema": schema, "stream": false }),
            ),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    let error = report.error.unwrap();
    assert!(error.message.contains("response schema"), "{error:?}");
    assert_eq!(
        report.metering.model_calls.len(),
        1,
        "the tokens were spent and billed"
    );
}

#[tokio::test]
async fn anthropic_streams_through_message_events_and_meters_the_cumulative_usage() {
    let ws = Workspace::new("models-anthropic-stream").await;
    ws.bind("default-chat", &[("anthropic", "ok")]).await;
    let (report, deltas) = ws
        .run("llm-chat", chat("default-chat", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    assert_eq!(report.outputs.unwrap()["text"], "Hello!");
    assert_eq!(deltas, ["Hel", "lo", "!"]);
    assert_eq!(
        tokens(&report.metering.model_calls[0].metering),
        (Some(12), Some(5))
    );
}

#[tokio::test]
async fn a_failing_target_falls_back_to_the_next() {
    let ws = Workspace::new("models-fallback").await;
    ws.bind(
        "default-chat",
        &[("openai", "fail-500"), ("anthropic", "ok")],
    )
    .await;
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let calls = &report.metering.model_calls;
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].metering.failure.as_deref(),
        Some("provider_unavailable")
    );
    assert_eq!(
        tokens(&calls[0].metering),
        (None, None),
        "nothing billed for the 500"
    );
    assert_eq!(
        (
            calls[1].provider.as_str(),
            calls[1].metering.failure.as_deref()
        ),
        ("anthropic.wasm", None)
    );
}

#[tokio::test]
async fn a_rate_limit_is_waited_out_as_retry_after_asks() {
    let ws = Workspace::new("models-retry-after").await;
    ws.bind("default-chat", &[("openai", "limited-once-a")])
        .await;
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let seen = fake_llm().seen("limited-once-a");
    assert_eq!(seen.len(), 2);
    assert!(seen[1].at - seen[0].at >= std::time::Duration::from_millis(50));
    let failures: Vec<_> = report
        .metering
        .model_calls
        .iter()
        .map(|c| c.metering.failure.clone())
        .collect();
    assert_eq!(failures, [Some("provider_rate_limited".to_owned()), None]);
}

#[tokio::test]
async fn a_rate_limit_past_the_hosts_wait_fails_as_unavailable_and_is_retryable() {
    let ws = Workspace::new("models-limited").await;
    ws.bind("default-chat", &[("openai", "limited")]).await;
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    assert_eq!(report.error.unwrap().kind, "retryable");
    assert_eq!(
        report.metering.model_calls.len(),
        1,
        "a 30 s retry-after is not waited for"
    );
}

#[tokio::test]
async fn a_malformed_answer_fails_and_bills_nothing() {
    let ws = Workspace::new("models-malformed").await;
    ws.bind("default-chat", &[("openai", "malformed")]).await;
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    let call = &report.metering.model_calls[0];
    assert_eq!(call.metering.failure.as_deref(), Some("provider_malformed"));
    assert!(call.metering.usage.is_empty());
}

#[tokio::test]
async fn a_cut_stream_meters_the_deltas_it_delivered_and_says_so() {
    let ws = Workspace::new("models-cut").await;
    ws.bind("default-chat", &[("openai", "cut")]).await;
    let (report, deltas) = ws
        .run("llm-chat", chat("default-chat", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    assert_eq!(deltas, ["Hel", "lo"]);
    let call = &report.metering.model_calls[0];
    assert_eq!(
        call.metering.failure.as_deref(),
        Some("provider_unavailable")
    );
    assert_eq!(
        tokens(&call.metering),
        (None, Some(2)),
        "one token per delivered chunk"
    );
    assert!(report.error.unwrap().message.contains("stream"));
}

#[tokio::test]
async fn an_anthropic_stream_error_event_fails_after_metering_what_was_charged() {
    let ws = Workspace::new("models-overloaded").await;
    ws.bind("default-chat", &[("anthropic", "overloaded")])
        .await;
    let (report, deltas) = ws
        .run("llm-chat", chat("default-chat", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    assert_eq!(deltas, ["Hel"]);
    let call = &report.metering.model_calls[0];
    assert_eq!(
        call.metering.failure.as_deref(),
        Some("provider_unavailable")
    );
    assert_eq!(
        tokens(&call.metering),
        (Some(12), Some(1)),
        "as of message_start"
    );
}

#[tokio::test]
async fn absurd_usage_is_refused_by_the_unit_rules_and_not_billed() {
    let ws = Workspace::new("models-absurd").await;
    ws.bind("default-chat", &[("openai", "absurd")]).await;
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let call = &report.metering.model_calls[0];
    assert_eq!(tokens(&call.metering), (None, Some(5)));
    let kinds: Vec<DenialKind> = call.metering.denials.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DenialKind::UsageQuantityExceeded]);
}

#[tokio::test]
async fn tool_calls_come_back_to_the_node() {
    let ws = Workspace::new("models-tools").await;
    ws.bind("default-chat", &[("openai", "tools")]).await;
    let tools =
        json!([{ "name": "lookup", "description": "Look up", "parameters": { "type": "object" } }]);
    let (report, _) = ws
        .run(
            "llm-chat",
            chat("default-chat", json!({ "tools": tools, "stream": false })),
            json!({}),
        )
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let outputs = report.outputs.unwrap();
    assert_eq!(
        outputs["tool_calls"],
        json!([{ "id": "call_1", "name": "lookup", "arguments": { "q": "x" } }])
    );
    assert_eq!(outputs["finish_reason"], "tool-calls");
    let request = fake_llm().seen("tools").pop().unwrap().body;
    assert_eq!(request["tools"][0]["function"]["name"], "lookup");
}

#[tokio::test]
async fn embeddings_come_back_one_vector_per_text() {
    let ws = Workspace::new("models-embed").await;
    ws.bind("default-embedding", &[("openai", "embedder")])
        .await;
    let (report, _) = ws
        .run("embed", json!({}), json!({ "texts": ["a", "b"] }))
        .await;
    assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    let outputs = report.outputs.unwrap();
    assert_eq!(outputs["vectors"], json!([[0.0, 0.5], [1.0, 0.5]]));
    assert_eq!(
        tokens(&report.metering.model_calls[0].metering),
        (Some(6), Some(0))
    );
}

#[tokio::test]
async fn an_alias_the_workspace_did_not_accept_is_refused_before_any_provider_runs() {
    let ws = Workspace::new("models-not-granted").await;
    ws.bind("default-chat", &[("openai", "never-called")]).await;
    std::fs::write(
        ws.dir.path().join("policy/grants/hyyve-llm.toml"),
        "models = [\"other\"]\n",
    )
    .unwrap();
    let (report, _) = ws
        .run("llm-chat", chat("default-chat", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    assert_eq!(report.error.unwrap().kind, "model_denied");
    assert!(report.metering.model_calls.is_empty());
    assert!(fake_llm().seen("never-called").is_empty());
}

#[tokio::test]
async fn an_unbound_alias_fails_clearly() {
    let ws = Workspace::new("models-unbound").await;
    let (report, _) = ws
        .run("llm-chat", chat("nowhere", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    assert!(report.error.unwrap().message.contains("nowhere"));
}

#[tokio::test]
async fn a_provider_reaching_beyond_its_grant_is_denied_and_the_node_fails() {
    let ws = Workspace::new("models-provider-grant").await;
    // The first-party manifest grants the public API hosts only, not the fake.
    let real = std::fs::read_to_string(hyyve::build::repo_root().join("plugins/openai/hyyve.toml"))
        .unwrap();
    std::fs::write(ws.dir.path().join("openai.hyyve.toml"), real).unwrap();
    ws.bind("default-chat", &[("openai", "ok-denied")]).await;
    let (report, _) = ws
        .run("llm-chat", chat("default-chat", json!({})), json!({}))
        .await;
    assert_eq!(report.status, NodeStatus::Failed);
    let call = &report.metering.model_calls[0];
    let kinds: Vec<DenialKind> = call.metering.denials.iter().map(|d| d.kind).collect();
    assert_eq!(kinds, [DenialKind::HttpDestinationDenied]);
    assert!(fake_llm().seen("ok-denied").is_empty());
}

#[tokio::test]
async fn a_node_cannot_read_the_providers_key() {
    let ws = Workspace::new("models-key").await;
    let outcome = super::invoke_granted(
        &*hyyve_tests::plugin("guest-secret").await,
        "read",
        json!({ "name": "OPENAI_API_KEY" }),
        json!({}),
        hyyve_runtime::Limits::default(),
        &ws.name,
        hyyve_policy::Grant::default(),
    )
    .await;
    let error = outcome.result.unwrap_err();
    assert_eq!(error.kind(), "secret_denied", "{error}");
}

#[tokio::test]
async fn conversation_memory_in_kv_becomes_the_next_calls_history() {
    let ws = Workspace::new("models-memory").await;
    ws.bind("default-chat", &[("openai", "remember")]).await;
    let config = chat("default-chat", json!({ "memory": true, "stream": false }));
    for who in ["Ada", "Grace"] {
        let inputs = json!({ "data": { "name": who }, "conversation": "chat-7" });
        let (report, _) = ws.run("llm-chat", config.clone(), inputs).await;
        assert_eq!(report.status, NodeStatus::Succeeded, "{:?}", report.error);
    }
    let second = fake_llm().seen("remember").pop().unwrap().body;
    let messages: Vec<(&str, &str)> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [
            ("system", "Be brief."),
            ("user", "Say hi to Ada"),
            ("assistant", "Hello!"),
            ("user", "Say hi to Grace"),
        ]
    );
    let (report, _) = ws
        .run("llm-chat", config, json!({ "data": { "name": "x" } }))
        .await;
    assert_eq!(
        report.error.unwrap().kind,
        "invalid_input",
        "memory needs a conversation"
    );
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled_from_their_pieces_for_both_providers() {
    let ws = Workspace::new("models-stream-tools").await;
    let tools =
        json!([{ "name": "lookup", "description": "Look up", "parameters": { "type": "object" } }]);
    for provider in ["openai", "anthropic"] {
        ws.bind("default-chat", &[(provider, "tools-streamed")])
            .await;
        let (report, _) = ws
            .run(
                "llm-chat",
                chat("default-chat", json!({ "tools": tools })),
                json!({}),
            )
            .await;
        assert_eq!(
            report.status,
            NodeStatus::Succeeded,
            "{provider}: {:?}",
            report.error
        );
        let outputs = report.outputs.unwrap();
        assert_eq!(outputs["tool_calls"][0]["name"], "lookup", "{provider}");
        assert_eq!(
            outputs["tool_calls"][0]["arguments"],
            json!({ "q": "x" }),
            "{provider}"
        );
        assert_eq!(outputs["finish_reason"], "tool-calls", "{provider}");
    }
}
