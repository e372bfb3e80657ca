//! Model aliases over the API and model calls in server runs: a provider and the AI
//! nodes published to the registry and installed, the key a workspace secret, the alias
//! bound with `PUT /v1/models/aliases/{alias}`; tokens stream as `node.progress` events
//! and are billed to the provider; the plan's workspace token budget refuses with 429.

use axum::http::{Method, StatusCode};
use hyyve_platform::models::TokenBudget;
use hyyve_server::models::PlanBudget;
use hyyve_server::roles::Role;
use hyyve_tests::databases::Db;
use hyyve_tests::fake_llm::{OPENAI_KEY, fake_llm};
use hyyve_tests::guest_bytes;
use hyyve_tests::packages::{manifest, package, sign};
use serde_json::json;

use crate::Api;

async fn publish(api: &Api, guest: &str, id: &str, kind: &str, extra: &str) {
    let text = manifest(id, "1.0.0", "acme", extra)
        .replace("kind = \"node\"", &format!("kind = \"{kind}\""));
    let mut p = package(&text, guest_bytes(guest));
    sign(&mut p, &api.acme);
    api.registry.publish(&p.to_bytes()).await.unwrap();
}

/// alpha with `acme:openai` granted the fake, `acme:llm`, the key and `default-chat`.
async fn with_models() -> Api {
    let api = Api::new(Db::Sqlite).await;
    let provider = format!(
        "[capabilities]\nsecrets = [\"OPENAI_API_KEY\"]\n[capabilities.http]\n\
         private_networks = [\"127.0.0.0/8\"]\n[[capabilities.http.allow]]\n\
         url = \"http://127.0.0.1:{}\"\nmethods = [\"POST\"]\n",
        fake_llm().port
    );
    publish(
        &api,
        "hyyve-plugin-openai",
        "acme:openai",
        "provider",
        &provider,
    )
    .await;
    publish(
        &api,
        "hyyve-plugin-llm",
        "acme:llm",
        "node",
        "[capabilities]\nmodels = [\"*\"]\nkv_bytes = 65536\n",
    )
    .await;
    let owner = api.alpha.key(Role::Owner);
    let policy = api
        .json(
            Method::PUT,
            "/v1/policy",
            Some(owner),
            Some(json!({ "http": { "private_networks": ["127.0.0.0/8"] } })),
        )
        .await;
    assert_eq!(policy.status, StatusCode::OK, "{}", policy.body);
    api.install("acme:openai").await;
    api.install("acme:llm").await;
    let secret = api
        .json(
            Method::PUT,
            "/v1/secrets/OPENAI_API_KEY",
            Some(owner),
            Some(json!({ "value": OPENAI_KEY })),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.body);
    api
}

fn binding(provider: &str, model: &str) -> serde_json::Value {
    json!({ "targets": [{ "provider": provider, "model": model,
                          "config": { "baseUrl": format!("{}/v1", fake_llm().base()) } }] })
}

#[tokio::test]
async fn aliases_are_checked_listed_and_removed_by_role() {
    let api = with_models().await;
    let admin = api.alpha.key(Role::Admin);
    let path = "/v1/models/aliases/default-chat";
    let viewer = api
        .json(
            Method::PUT,
            path,
            Some(api.alpha.key(Role::Viewer)),
            Some(binding("acme:openai", "ok")),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
    for (bad, why) in [
        (binding("acme:llm", "ok"), "a node is no provider"),
        (binding("acme:missing", "ok"), "not installed"),
        (json!({ "targets": [] }), "no targets"),
        (
            json!({ "targets": [{ "provider": "acme:openai", "model": "ok", "config": { "nope": 1 } }] }),
            "config refused by the provider's schema",
        ),
    ] {
        let answer = api.json(Method::PUT, path, Some(admin), Some(bad)).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{why}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_alias", "{why}");
    }
    let bound = api
        .json(
            Method::PUT,
            path,
            Some(admin),
            Some(binding("acme:openai", "ok")),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
    let list = api
        .json(
            Method::GET,
            "/v1/models/aliases",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(list.body[0]["name"], "default-chat");
    assert_eq!(list.body[0]["targets"][0]["model"], "ok");
    let other = api
        .json(
            Method::GET,
            "/v1/models/aliases",
            Some(api.beta.key(Role::Owner)),
            None,
        )
        .await;
    assert_eq!(
        other.body,
        json!([]),
        "another workspace's aliases are not listed"
    );
    assert_eq!(
        api.json(Method::DELETE, path, Some(admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.json(Method::DELETE, path, Some(admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let audit = api
        .json(
            Method::GET,
            "/v1/audit",
            Some(api.alpha.key(Role::Owner)),
            None,
        )
        .await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"model_alias.set") && actions.contains(&"model_alias.remove"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_run_streams_tokens_as_node_progress_and_bills_them_to_the_provider() {
    let api = with_models().await;
    let bound = api
        .json(
            Method::PUT,
            "/v1/models/aliases/default-chat",
            Some(api.alpha.key(Role::Admin)),
            Some(binding("acme:openai", "slow")),
        )
        .await;
    assert_eq!(bound.status, StatusCode::OK, "{}", bound.body);
    let id = api
        .workflow(json!({ "name": "ask", "nodes": [{ "id": "ask", "plugin": "acme:llm", "type": "llm-chat",
            "config": { "prompt": "Hi" } }] }))
        .await;
    let started = api.start(&id, json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let run_id = started.body["id"].as_str().unwrap();
    let stream = crate::runs::text(
        &api,
        &format!("/v1/runs/{run_id}/events"),
        api.alpha.key(Role::Viewer),
    )
    .await;
    let deltas: Vec<&str> = stream
        .split("\n\n")
        .filter(|e| e.starts_with("event: node.progress"))
        .filter_map(|e| e.split("\"delta\":\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(deltas, ["Hel", "lo", "!"], "{stream}");
    let run = api.finished(run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let node = &run["nodes"][0];
    assert_eq!(node["outputs"]["text"], "Hello!");
    assert_eq!(node["metering"]["modelCalls"][0]["provider"], "acme:openai");
    let usage = api
        .json(
            Method::GET,
            "/v1/usage",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    let units = usage.body["units"].as_array().unwrap();
    assert!(
        units.iter().any(|u| u["plugin"] == "acme:openai"
            && u["unit"] == "llm.input-tokens"
            && u["quantity"] == 12),
        "{}",
        usage.body
    );
    // The provider invocation has its own record, under the node's run and attempt.
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT node_id, plugin_id FROM metering_records WHERE run_id = $1 ORDER BY node_id",
    )
    .bind(run_id)
    .fetch_all(&api.db)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            ("ask".into(), "acme:llm".into()),
            ("ask/models/1".into(), "acme:openai".into())
        ]
    );
}

#[tokio::test]
async fn a_spent_workspace_token_budget_refuses_runs_and_model_calls_with_429() {
    let api = with_models().await;
    let id = api
        .workflow(json!({ "name": "ask", "nodes": [{ "id": "ask", "plugin": "acme:llm", "type": "llm-chat",
            "config": { "prompt": "Hi" } }] }))
        .await;
    let org = crate::runs::org_of(&api, &api.alpha.id).await;
    let day = hyyve_registry::marketplace::today();
    // Another process spent the team plan's 500M workspace tokens (within the org's 1G).
    sqlx::query(
        "INSERT INTO metering_units (run_id, node_id, attempt, workspace_id, org_id, \
         plugin_id, day, unit, quantity) VALUES ('elsewhere', 'ask/models/1', 1, $1, $2, \
         'acme:openai', $3, 'llm.input-tokens', 500000000)",
    )
    .bind(&api.alpha.id)
    .bind(&org)
    .bind(&day)
    .execute(&api.db)
    .await
    .unwrap();
    let refused = api.start(&id, json!({})).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(
        refused.body["error"]["details"]["quota"],
        "workspace_tokens"
    );
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token budget")
    );
    let budget = PlanBudget {
        db: api.db.clone(),
        ledger: std::sync::Arc::new(hyyve_server::runs::quota::Ledger::new(
            std::time::Duration::ZERO,
        )),
    };
    let why = budget.admit(&api.alpha.id).await.unwrap_err();
    assert!(why.contains("token budget"), "{why}");
    assert_eq!(
        budget.admit(&api.beta.id).await,
        Ok(()),
        "another workspace's budget is its own"
    );
}
