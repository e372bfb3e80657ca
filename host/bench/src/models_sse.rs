//! `hyyve-bench --models`, second part: the first streamed token on the SSE stream. An
//! in-process server on a loopback port (SQLite, the registry, the worker pool) with the
//! OpenAI-compatible provider and the AI nodes published, installed and bound; each run's
//! `GET /v1/runs/{id}/events` is read as it arrives, and the first `node.progress` event
//! is timed against the fake's write of the first delta.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyyve_registry::signing::KeyPair;
use hyyve_registry::storage::Blobs;
use hyyve_registry::{Registry, RegistryConfig};
use hyyve_server::runs::SchedulerConfig;
use hyyve_server::tenancy::Plan;
use hyyve_server::{AppState, ServerConfig};
use hyyve_tests::fake_llm::{OPENAI_KEY, fake_llm};
use hyyve_tests::guest_bytes;
use hyyve_tests::packages::{manifest, package, sign};
use serde_json::{Value, json};

/// A signed package of `guest` as `acme:<name>` of `kind`.
fn signed(guest: &str, name: &str, kind: &str, extra: &str, key: &KeyPair) -> Vec<u8> {
    let text = manifest(&format!("acme:{name}"), "1.0.0", "acme", extra)
        .replace("kind = \"node\"", &format!("kind = \"{kind}\""));
    let mut p = package(&text, guest_bytes(guest));
    sign(&mut p, key);
    p.to_bytes()
}

/// Time from the fake's first delta to the first `node.progress` on the stream, per run.
pub async fn first_token_on_the_stream(runs: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("hyyve.db").display());
    let pool = hyyve_database::Database::open(&url).await?.pool;
    let registry = Registry::new(
        pool.clone(),
        RegistryConfig {
            blobs: Blobs::local(&dir.path().join("blobs"))?,
            max_package_bytes: hyyve_registry::DEFAULT_MAX_PACKAGE_BYTES,
        },
        hyyve_tests::runtime(),
    );
    let acme = KeyPair::generate("acme")?;
    registry
        .add_publisher("acme", &acme.public_file(), "bench")
        .await?;
    let provider = format!(
        "[capabilities]\nsecrets = [\"OPENAI_API_KEY\"]\n[capabilities.http]\n\
         private_networks = [\"127.0.0.0/8\"]\n[[capabilities.http.allow]]\n\
         url = \"http://127.0.0.1:{}\"\nmethods = [\"POST\"]\n",
        fake_llm().port
    );
    registry
        .publish(&signed(
            "hyyve-plugin-openai",
            "openai",
            "provider",
            &provider,
            &acme,
        ))
        .await?;
    let nodes = "[capabilities]\nmodels = [\"*\"]\nkv_bytes = 65536\n";
    registry
        .publish(&signed("hyyve-plugin-llm", "llm", "node", nodes, &acme))
        .await?;
    let config = ServerConfig {
        max_package_bytes: usize::try_from(hyyve_registry::DEFAULT_MAX_PACKAGE_BYTES)?,
        platform: Default::default(),
        scheduler: SchedulerConfig::default(),
    };
    let state = AppState::start(pool, Arc::new(registry), config).await?;
    let owner = state
        .tenancy
        .bootstrap("bench", "main", "ada", Plan::Enterprise)
        .await?
        .key
        .secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(hyyve_server::serve(listener, state, std::future::pending()));

    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&owner);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            anyhow::ensure!(status.is_success(), "{status}: {text}");
            Ok::<Value, anyhow::Error>(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    };
    use reqwest::Method;
    call(
        Method::PUT,
        "/v1/policy",
        Some(json!({ "http": { "private_networks": ["127.0.0.0/8"] } })),
    )
    .await?;
    for plugin in ["acme:openai", "acme:llm"] {
        call(
            Method::POST,
            "/v1/installs",
            Some(json!({ "plugin": plugin })),
        )
        .await?;
    }
    call(
        Method::PUT,
        "/v1/secrets/OPENAI_API_KEY",
        Some(json!({ "value": OPENAI_KEY })),
    )
    .await?;
    let binding = json!({ "targets": [{ "provider": "acme:openai", "model": "slow",
        "config": { "baseUrl": format!("{}/v1", fake_llm().base()) } }] });
    call(
        Method::PUT,
        "/v1/models/aliases/default-chat",
        Some(binding),
    )
    .await?;
    let workflow = call(
        Method::POST,
        "/v1/workflows",
        Some(
            json!({ "name": "ask", "nodes": [{ "id": "ask", "plugin": "acme:llm",
            "type": "llm-chat", "config": { "prompt": "Hi" } }] }),
        ),
    )
    .await?;
    let workflow = workflow["workflowId"]
        .as_str()
        .context("workflow id")?
        .to_owned();

    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let run = call(
            Method::POST,
            &format!("/v1/workflows/{workflow}/runs"),
            Some(json!({ "input": {} })),
        )
        .await?;
        let run = run["id"].as_str().context("run id")?.to_owned();
        // The fake holds the first delta 300 ms: the stream is open well before it.
        let mut events = client
            .get(format!("{base}/v1/runs/{run}/events"))
            .bearer_auth(&owner)
            .send()
            .await?;
        let mut seen = String::new();
        let arrived = loop {
            let chunk = events
                .chunk()
                .await?
                .context("the stream ended before a delta")?;
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: node.progress") {
                break Instant::now();
            }
        };
        let written = fake_llm()
            .last_first_delta("slow")
            .context("the fake streamed nothing")?;
        samples.push(arrived.saturating_duration_since(written));
        // Let the run finish before the next one.
        while events.chunk().await?.is_some() {}
    }
    Ok(samples)
}
