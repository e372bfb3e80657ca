//! `hyyve-bench --models`: what a model call through the host adds. An `llm-chat`
//! invocation (node instance → `models` → provider instance → HTTP through wasi:http →
//! the loopback fake) against the same request made raw to the fake, alternately in one
//! loop; and the time from the fake writing a stream's first delta to that delta
//! reaching the node's progress sink (where the server's `node.progress` fan-out starts)
//! and an SSE client of an in-process server (`models_sse`).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyyve_runtime::{InstallScope, InvocationIds, InvocationRequest, Limits, ProgressSink};
use hyyve_tests::fake_llm::{OPENAI_KEY, fake_llm};
use hyyve_tests::model_workspace::ModelWorkspace;
use serde_json::json;

use crate::instance::{percentile, us};

/// Remembers when the first delta arrived.
#[derive(Default)]
struct FirstDelta(Mutex<Option<Instant>>);

impl ProgressSink for FirstDelta {
    fn delta(&self, _text: &str) {
        let mut first = self.0.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(Instant::now);
    }
}

fn summary(name: &str, samples: &mut [Duration]) -> String {
    samples.sort();
    format!(
        "{name}: median {}, p99 {}, min {} ({} calls)",
        us(percentile(samples, 0.5)),
        us(percentile(samples, 0.99)),
        us(samples[0]),
        samples.len()
    )
}

/// Runs both figures with `iterations` calls each.
pub async fn run(iterations: usize) -> anyhow::Result<String> {
    let runtime = hyyve_tests::runtime();
    let workspace = ModelWorkspace::new("bench-models").await;
    workspace.bind("default-chat", &[("openai", "ok")]).await;
    workspace.bind("streamed", &[("openai", "ttft")]).await;
    let llm = workspace.llm().await;
    let routes: Arc<dyn hyyve_runtime::ModelRoutes> = Arc::new(workspace.routes(runtime.clone()));
    let client = reqwest::Client::new();
    let url = format!("{}/v1/chat/completions", fake_llm().base());
    let raw_body =
        json!({ "model": "ok", "messages": [{ "role": "user", "content": "Hi" }] }).to_string();

    let invoke = |alias: &str, stream: bool, progress: Option<Arc<dyn ProgressSink>>| {
        let config = json!({ "alias": alias, "prompt": "Hi", "stream": stream });
        let (runtime, llm, routes, workspace) = (
            runtime.clone(),
            llm.clone(),
            routes.clone(),
            workspace.name.clone(),
        );
        async move {
            let outcome = runtime
                .invoke(
                    &llm.plugin,
                    InvocationRequest {
                        node_type: "llm-chat",
                        config: &config,
                        inputs: &json!({}),
                        ids: InvocationIds {
                            run_id: "bench".into(),
                            node_id: "ask".into(),
                            attempt: 1,
                        },
                        scope: InstallScope {
                            workspace,
                            install: llm.id.clone(),
                        },
                        grant: llm.grant.clone(),
                        limits: Limits::granted(&llm.grant.limits),
                        models: Some(routes),
                        progress,
                    },
                )
                .await;
            outcome.result.map(drop).map_err(|e| anyhow::anyhow!("{e}"))
        }
    };

    // Warm up: compile caches, connections, the provider's first install.
    for _ in 0..20 {
        invoke("default-chat", false, None).await?;
        client
            .post(&url)
            .bearer_auth(OPENAI_KEY)
            .header("content-type", "application/json")
            .body(raw_body.clone())
            .send()
            .await?
            .bytes()
            .await?;
    }
    let (mut raw, mut hosted) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let started = Instant::now();
        invoke("default-chat", false, None).await?;
        hosted.push(started.elapsed());
        let started = Instant::now();
        client
            .post(&url)
            .bearer_auth(OPENAI_KEY)
            .header("content-type", "application/json")
            .body(raw_body.clone())
            .send()
            .await?
            .bytes()
            .await?;
        raw.push(started.elapsed());
    }
    let mut first = Vec::new();
    for _ in 0..iterations {
        let sink = Arc::new(FirstDelta::default());
        invoke("streamed", true, Some(sink.clone())).await?;
        let written = fake_llm()
            .last_first_delta("ttft")
            .ok_or_else(|| anyhow::anyhow!("the fake streamed nothing"))?;
        let arrived = sink
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ok_or_else(|| anyhow::anyhow!("no delta reached the sink"))?;
        first.push(arrived.saturating_duration_since(written));
    }
    let mut on_stream = crate::models_sse::first_token_on_the_stream(30).await?;
    let mut out = String::new();
    let _ = writeln!(out, "model calls (loopback fake, OpenAI format)");
    let _ = writeln!(out, "  {}", summary("raw HTTP call to the fake", &mut raw));
    let _ = writeln!(
        out,
        "  {}",
        summary("llm-chat through the host", &mut hosted)
    );
    let added = percentile(&hosted, 0.5).saturating_sub(percentile(&raw, 0.5));
    let _ = writeln!(out, "  added per call (median − median): {}", us(added));
    let _ = writeln!(
        out,
        "  {}",
        summary(
            "first delta: fake began writing it → node's progress sink",
            &mut first
        )
    );
    let _ = writeln!(
        out,
        "  {}",
        summary(
            "first delta: fake began writing it → `node.progress` read on the SSE stream",
            &mut on_stream
        )
    );
    Ok(out)
}
