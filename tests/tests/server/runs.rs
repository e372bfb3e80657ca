//! Installs, workflows with immutable versions, and runs through the API: accepted with
//! 202, executed by the worker pool, every node report and metering record persisted,
//! streamed as Server-Sent Events, cancelled, retried, dead-lettered, refused by quota.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use hyyve_registry::signing::{KeyPair, yank_message};
use hyyve_server::roles::Role;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::secrets_audit::{actions, audit_entries};
use crate::{Answer, Api, Db};

/// Three json nodes in a chain: `a` → `b` → `c`.
pub fn chain() -> Value {
    json!({
        "name": "chain",
        "inputs": { "data": { "type": "object" } },
        "nodes": [
            { "id": "a", "plugin": "acme:json", "type": "query", "config": { "expression": "items" } },
            { "id": "b", "plugin": "acme:json", "type": "query", "config": { "expression": "[?n > `1`]" } },
            { "id": "c", "plugin": "acme:json", "type": "query", "config": { "expression": "length(@)" } }
        ],
        "edges": [
            { "from": "$input.data", "to": "a.data" },
            { "from": "a.result", "to": "b.data" },
            { "from": "b.result", "to": "c.data" }
        ]
    })
}

/// One node of the flaky guest.
fn flaky(node_type: &str) -> Value {
    json!({
        "name": node_type,
        "nodes": [{ "id": "h", "plugin": "acme:flaky", "type": node_type }]
    })
}

impl Api {
    /// Installs `plugin` in alpha as its admin.
    pub async fn install(&self, plugin: &str) {
        let answer = self
            .json(
                Method::POST,
                "/v1/installs",
                Some(self.alpha.key(Role::Admin)),
                Some(json!({ "plugin": plugin })),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }

    /// Creates a workflow in alpha; its id.
    pub async fn workflow(&self, definition: Value) -> String {
        let answer = self
            .json(
                Method::POST,
                "/v1/workflows",
                Some(self.alpha.key(Role::Member)),
                Some(definition),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["workflowId"].as_str().unwrap().to_owned()
    }

    /// Starts a run of `workflow` in alpha; the 202 answer.
    pub async fn start(&self, workflow: &str, input: Value) -> Answer {
        self.json(
            Method::POST,
            &format!("/v1/workflows/{workflow}/runs"),
            Some(self.alpha.key(Role::Member)),
            Some(json!({ "input": input })),
        )
        .await
    }

    /// Polls a run of alpha until it is final (at most 20 s).
    pub async fn finished(&self, run: &str) -> Value {
        for _ in 0..2000 {
            let answer = self
                .json(
                    Method::GET,
                    &format!("/v1/runs/{run}"),
                    Some(self.alpha.key(Role::Viewer)),
                    None,
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
            if !matches!(answer.body["status"].as_str(), Some("queued" | "running")) {
                return answer.body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("run {run} did not finish");
    }
}

async fn lifecycle(db: Db) {
    let api = Api::new(db).await;
    // Installing is an admin's act.
    let refused = api
        .json(
            Method::POST,
            "/v1/installs",
            Some(api.alpha.key(Role::Member)),
            Some(json!({ "plugin": "acme:json" })),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    api.install("acme:json").await;
    let installs = api
        .json(
            Method::GET,
            "/v1/installs",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(installs.body[0]["plugin"], "acme:json");
    assert_eq!(installs.body[0]["version"], "1.0.0");

    let id = api.workflow(chain()).await;
    // A new version leaves version 1 as it was.
    let mut edited = chain();
    edited["nodes"][1]["config"]["expression"] = json!("[?n > `2`]");
    let v2 = api
        .json(
            Method::PUT,
            &format!("/v1/workflows/{id}"),
            Some(api.alpha.key(Role::Member)),
            Some(edited),
        )
        .await;
    assert_eq!(v2.status, StatusCode::OK, "{}", v2.body);
    assert_eq!(v2.body["version"], 2);
    let v1 = api
        .json(
            Method::GET,
            &format!("/v1/workflows/{id}/versions/1"),
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(v1.body["definition"], chain());
    let not_a_number = api
        .json(
            Method::GET,
            &format!("/v1/workflows/{id}/versions/latest"),
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(not_a_number.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_a_number.code(), "bad_request");

    let input = json!({ "data": { "items": [{ "n": 1 }, { "n": 2 }, { "n": 3 }] } });
    let accepted = api.start(&id, input.clone()).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "queued");
    assert_eq!(accepted.body["workflowVersion"], 2);
    let run = api.finished(accepted.body["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let nodes = run["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    let c = nodes.iter().find(|n| n["id"] == "c").unwrap();
    assert_eq!(
        c["outputs"]["result"], 1,
        "only n = 3 passes version 2's filter"
    );
    assert_eq!(run["metering"]["invocations"], 3);
    assert!(run["metering"]["fuel"].as_i64().unwrap() > 0);

    // Version 1 still runs as written.
    let old = api
        .json(
            Method::POST,
            &format!("/v1/workflows/{id}/runs"),
            Some(api.alpha.key(Role::Member)),
            Some(json!({ "input": input, "version": 1 })),
        )
        .await;
    let old = api.finished(old.body["id"].as_str().unwrap()).await;
    let c = old["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "c")
        .unwrap()
        .clone();
    assert_eq!(c["outputs"]["result"], 2);

    // Another workspace sees none of it.
    let beta = api.beta.key(Role::Owner);
    for path in [
        format!("/v1/runs/{}", run["id"].as_str().unwrap()),
        format!("/v1/workflows/{id}"),
        "/v1/installs/acme:json".to_owned(),
    ] {
        let answer = api.json(Method::GET, &path, Some(beta), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    let started = api
        .json(
            Method::POST,
            &format!("/v1/workflows/{id}/runs"),
            Some(beta),
            Some(json!({ "input": input })),
        )
        .await;
    assert_eq!(started.status, StatusCode::NOT_FOUND);

    // Usage: six invocations of acme:json today, in JSON and CSV.
    let usage = api
        .json(
            Method::GET,
            "/v1/usage",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(usage.status, StatusCode::OK, "{}", usage.body);
    let rows = usage.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{}", usage.body);
    assert_eq!(rows[0]["plugin"], "acme:json");
    assert_eq!(rows[0]["invocations"], 6);
    assert_eq!(usage.body["plan"], "team");
    let csv = text(&api, "/v1/usage/export", api.alpha.key(Role::Viewer)).await;
    assert!(
        csv.starts_with("day,plugin,unit,quantity,invocations,"),
        "{csv}"
    );
    assert!(csv.contains(",acme:json,,,6,0,"), "{csv}");
    assert_eq!(usage.body["units"], json!([]), "acme:json reports no units");
    let beta_usage = api.json(Method::GET, "/v1/usage", Some(beta), None).await;
    assert_eq!(beta_usage.body["rows"], json!([]));

    // Creator payouts read the same records.
    let payout = api
        .registry
        .compute_payout("acme", &hyyve_registry::marketplace::today()[..7])
        .await
        .unwrap();
    assert_eq!(payout.lines.iter().map(|l| l.invocations).sum::<i64>(), 6);

    let metrics = text(&api, "/metrics", "").await;
    assert!(
        metrics.contains("hyyve_invocations_total{plugin=\"acme:json\",outcome=\"ok\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("hyyve_runs_total{status=\"succeeded\"} 2"));
    assert!(metrics.contains("hyyve_queue_depth"));
}

/// GET as text (no key when empty).
pub async fn text(api: &Api, path: &str, key: &str) -> String {
    let mut request = Request::builder().uri(path);
    if !key.is_empty() {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = api
        .app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn workflows_runs_usage_on_sqlite() {
    lifecycle(Db::Sqlite).await;
}

#[tokio::test]
async fn workflows_runs_usage_on_postgres() {
    lifecycle(Db::Postgres).await;
}

/// A plan cached for one workspace's run is not another workspace's to start: naming
/// the version (which skips reading the workflow) still finds nothing there.
#[tokio::test]
async fn another_workspace_cannot_start_a_cached_workflow() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:json").await;
    let id = api.workflow(chain()).await;
    let run = api.start(&id, json!({ "data": { "items": [] } })).await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "{}", run.body);
    api.finished(run.body["id"].as_str().unwrap()).await;
    for body in [
        json!({ "input": { "data": { "items": [] } }, "version": 1 }),
        json!({ "input": { "data": { "items": [] } } }),
    ] {
        let answer = api
            .json(
                Method::POST,
                &format!("/v1/workflows/{id}/runs"),
                Some(api.beta.key(Role::Owner)),
                Some(body),
            )
            .await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
    }
    let runs = api
        .json(
            Method::GET,
            "/v1/runs",
            Some(api.beta.key(Role::Owner)),
            None,
        )
        .await;
    assert_eq!(runs.body["meta"]["total"], 0, "{}", runs.body);
}

#[tokio::test]
async fn events_stream_from_snapshot_to_finish() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:json").await;
    let id = api.workflow(chain()).await;
    let run = api
        .start(&id, json!({ "data": { "items": [{ "n": 5 }] } }))
        .await;
    let run_id = run.body["id"].as_str().unwrap();
    // The stream ends by itself after `run.finished`; a finished run's stream is its
    // snapshot alone. Either way the body completes.
    let stream = text(
        &api,
        &format!("/v1/runs/{run_id}/events"),
        api.alpha.key(Role::Viewer),
    )
    .await;
    assert!(stream.starts_with("event: snapshot\n"), "{stream}");
    let finished = api.finished(run_id).await;
    let live = stream.contains("event: run.finished");
    let snapshot_final = stream.contains("\"status\":\"succeeded\"");
    assert!(live || snapshot_final, "{stream}");
    if live {
        assert_eq!(
            stream.matches("event: node.finished").count(),
            3,
            "{stream}"
        );
    }
    assert_eq!(finished["status"], "succeeded");
    // Once finished, the stream is the final snapshot.
    let again = text(
        &api,
        &format!("/v1/runs/{run_id}/events"),
        api.alpha.key(Role::Viewer),
    )
    .await;
    assert_eq!(again.matches("event: ").count(), 1, "{again}");
    assert!(again.contains("\"status\":\"succeeded\""));
    // Another workspace's run has no stream.
    let other = api
        .json(
            Method::GET,
            &format!("/v1/runs/{run_id}/events"),
            Some(api.beta.key(Role::Owner)),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

// Plugins execute on the runtime's threads: a cancel must get through while one spins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_letter_timeouts_and_cancel() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:flaky").await;

    // A retryable failure is tried 1 + 2 times, each attempt metered, then dead-lettered.
    let retrying = api.workflow(flaky("retryable")).await;
    let run = api.start(&retrying, json!({})).await;
    let run = api.finished(run.body["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "dead_lettered", "{run}");
    assert_eq!(run["nodes"][0]["attempts"], 3);
    assert_eq!(run["metering"]["invocations"], 3);

    // A node past its deadline fails with its kind; the run fails (not dead-lettered).
    let looping = api.workflow(flaky("spin")).await;
    let run = api.start(&looping, json!({})).await;
    let run = api.finished(run.body["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed", "{run}");
    let kind = run["nodes"][0]["error"]["kind"].as_str().unwrap();
    assert!(kind == "timeout" || kind == "fuel_exhausted", "{kind}");

    // Cancel while running: the loop is abandoned at once.
    let run = api.start(&looping, json!({})).await;
    let id = run.body["id"].as_str().unwrap().to_owned();
    let cancel = loop {
        let current = api
            .json(
                Method::GET,
                &format!("/v1/runs/{id}"),
                Some(api.alpha.key(Role::Viewer)),
                None,
            )
            .await;
        if current.body["status"] == "running" {
            break api
                .json(
                    Method::POST,
                    &format!("/v1/runs/{id}/cancel"),
                    Some(api.alpha.key(Role::Member)),
                    None,
                )
                .await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    };
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.body);
    let run = api.finished(&id).await;
    assert_eq!(run["status"], "cancelled", "{run}");
    // A finished run cannot be cancelled; a viewer cannot cancel at all.
    let again = api
        .json(
            Method::POST,
            &format!("/v1/runs/{id}/cancel"),
            Some(api.alpha.key(Role::Member)),
            None,
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "run_finished");
    let viewer = api
        .json(
            Method::POST,
            &format!("/v1/runs/{id}/cancel"),
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn refusals_invalid_workflow_input_yanked_unvetted_quota() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:json").await;

    // Invalid workflow: 422 naming the node and the field.
    let mut bad = chain();
    bad["nodes"][1]["config"] = json!({ "expression": 42 });
    let answer = api
        .json(
            Method::POST,
            "/v1/workflows",
            Some(api.alpha.key(Role::Member)),
            Some(bad),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "workflow_invalid");
    assert_eq!(answer.body["error"]["details"][0]["node"], "b");
    assert_eq!(
        answer.body["error"]["details"][0]["field"],
        "/config/expression"
    );
    let mut missing = chain();
    missing["nodes"][0]["plugin"] = json!("acme:flaky");
    let answer = api
        .json(
            Method::POST,
            "/v1/workflows",
            Some(api.alpha.key(Role::Member)),
            Some(missing),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.body["error"]["details"][0]["node"], "a");
    assert_eq!(answer.body["error"]["details"][0]["field"], "/plugin");
    let listed = api
        .json(
            Method::GET,
            "/v1/workflows",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(listed.body["meta"]["total"], 0, "nothing stored on refusal");

    // Wrong run input: 422 naming the input (checked before the quota or the queue).
    let id = api.workflow(chain()).await;
    let answer = api.start(&id, json!({ "data": [1, 2] })).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "run_input_invalid");
    assert_eq!(answer.body["error"]["details"]["input"], "data");

    // A yanked version pinned by an install keeps running (the audit record of the yank
    // says so); a new install of it is refused.
    let unrun = api.workflow(chain()).await;
    yank_by_its_publisher_only(&api).await;
    let answer = api
        .start(&unrun, json!({ "data": { "items": [{ "n": 1 }] } }))
        .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let run_id = answer.body["id"].as_str().unwrap().to_owned();
    let run = api.finished(&run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let answer = api
        .json(
            Method::POST,
            "/v1/installs",
            Some(api.alpha.key(Role::Admin)),
            Some(json!({ "plugin": "acme:json" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "version_yanked");

    // An organization requiring vetting: installing an unreviewed package is refused
    // and queues a review. Only an owner changes the policy.
    let policy = json!({ "require_vetting": true });
    let admin = api
        .json(
            Method::PUT,
            "/v1/policy",
            Some(api.alpha.key(Role::Admin)),
            Some(policy.clone()),
        )
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    let owner = api
        .json(
            Method::PUT,
            "/v1/policy",
            Some(api.alpha.key(Role::Owner)),
            Some(policy),
        )
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert_eq!(owner.body["name"], "alpha");
    let answer = api
        .json(
            Method::POST,
            "/v1/installs",
            Some(api.alpha.key(Role::Admin)),
            Some(json!({ "plugin": "acme:flaky" })),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "vetting_required");
    let request = answer.body["error"]["details"]["vettingRequest"]
        .as_i64()
        .unwrap();

    // The review queue over HTTP: the organization's owner reads and decides it; an
    // admin may not; another organization's owner sees no such request.
    let queue = api
        .json(
            Method::GET,
            "/v1/vetting",
            Some(api.alpha.key(Role::Owner)),
            None,
        )
        .await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert_eq!(queue.body.as_array().unwrap().len(), 1);
    assert_eq!(queue.body[0]["id"], request);
    assert_eq!(queue.body[0]["plugin"], "acme:flaky");
    // A rejection is final for its request: approving it later is a conflict.
    let rejected = api
        .json(
            Method::POST,
            &format!("/v1/vetting/{request}/reject"),
            Some(api.alpha.key(Role::Owner)),
            Some(json!({ "reason": "asks for more than it needs" })),
        )
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.body);
    assert_eq!(rejected.body["status"], "rejected");
    assert_eq!(rejected.body["reason"], "asks for more than it needs");
    let reason = json!({ "reason": "reviewed: pure compute" });
    let again = api
        .json(
            Method::POST,
            &format!("/v1/vetting/{request}/approve"),
            Some(api.alpha.key(Role::Owner)),
            Some(reason.clone()),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "not_pending");

    // Asking again queues a new request; only alpha's owner approves it.
    let install = || {
        api.json(
            Method::POST,
            "/v1/installs",
            Some(api.alpha.key(Role::Admin)),
            Some(json!({ "plugin": "acme:flaky" })),
        )
    };
    let asked = install().await;
    assert_eq!(asked.code(), "vetting_required", "{}", asked.body);
    let second = asked.body["error"]["details"]["vettingRequest"]
        .as_i64()
        .unwrap();
    assert_ne!(second, request);
    let approve = format!("/v1/vetting/{second}/approve");
    let admin = api
        .json(
            Method::POST,
            &approve,
            Some(api.alpha.key(Role::Admin)),
            Some(reason.clone()),
        )
        .await;
    assert_eq!(admin.status, StatusCode::FORBIDDEN);
    let listed = api
        .json(
            Method::GET,
            "/v1/vetting",
            Some(api.alpha.key(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN);
    let other = api
        .json(
            Method::POST,
            &approve,
            Some(api.beta.key(Role::Owner)),
            Some(reason.clone()),
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.body);
    let empty = api
        .json(
            Method::POST,
            &approve,
            Some(api.alpha.key(Role::Owner)),
            Some(json!({ "reason": " " })),
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    let approved = api
        .json(
            Method::POST,
            &approve,
            Some(api.alpha.key(Role::Owner)),
            Some(reason),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["status"], "approved");
    let pending = api
        .json(
            Method::GET,
            "/v1/vetting",
            Some(api.alpha.key(Role::Owner)),
            None,
        )
        .await;
    assert_eq!(pending.body.as_array().unwrap().len(), 0);
    let installed = install().await;
    assert_eq!(installed.status, StatusCode::CREATED, "{}", installed.body);

    // Quota: beta is on the free plan (10,000 invocations a month). Spend them with
    // metering records as the workers write them, then the next run is a 429.
    let beta = api.beta.key(Role::Owner);
    let installed = api
        .json(
            Method::POST,
            "/v1/installs",
            Some(beta),
            Some(json!({ "plugin": "acme:flaky" })),
        )
        .await;
    assert_eq!(installed.status, StatusCode::CREATED, "{}", installed.body);
    let created = api
        .json(
            Method::POST,
            "/v1/workflows",
            Some(beta),
            Some(flaky("retryable")),
        )
        .await;
    let flow = created.body["workflowId"].as_str().unwrap().to_owned();
    let run_path = format!("/v1/workflows/{flow}/runs");
    spend_invocations(&api, &api.beta.id, 9_999).await;
    let last = api
        .json(Method::POST, &run_path, Some(beta), Some(json!({})))
        .await;
    assert_eq!(
        last.status,
        StatusCode::ACCEPTED,
        "the 10,000th fits: {}",
        last.body
    );
    let refused = api
        .json(Method::POST, &run_path, Some(beta), Some(json!({})))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.code(), "quota_exceeded");
    assert_eq!(refused.body["error"]["details"]["quota"], "invocations");
    assert_eq!(refused.body["error"]["details"]["limit"], 10_000);
    assert_eq!(refused.body["error"]["details"]["plan"], "free");
    // Alpha (team plan, another organization) is unaffected.
    let alpha_run = api.start(&unrun, json!({ "data": {} })).await;
    assert_eq!(
        alpha_run.status,
        StatusCode::ACCEPTED,
        "alpha is not refused: {}",
        alpha_run.body
    );
}

/// Yanking over HTTP takes a publishing role and the publisher's signature over exactly
/// this version and reason; `acme:json@1.0.0` ends yanked.
async fn yank_by_its_publisher_only(api: &Api) {
    let path = "/v1/registry/listings/acme:json/versions/1.0.0/yank";
    let version = semver::Version::new(1, 0, 0);
    let signed = |key: &KeyPair, reason: &str, signed_reason: &str| {
        let message = yank_message("acme:json", &version, signed_reason);
        json!({ "reason": reason, "keyId": key.public().id(), "signature": key.sign(&message) })
    };
    let member = Some(api.alpha.key(Role::Member));
    let genuine = signed(&api.acme, "leaks data", "leaks data");

    let viewer = api
        .json(
            Method::POST,
            path,
            Some(api.alpha.key(Role::Viewer)),
            Some(genuine.clone()),
        )
        .await;
    assert_eq!(viewer.status, StatusCode::FORBIDDEN, "{}", viewer.body);
    let evil = KeyPair::generate("evil").unwrap();
    api.registry
        .add_publisher("evil", &evil.public_file(), "test-admin")
        .await
        .unwrap();
    let unregistered = KeyPair::generate("acme").unwrap();
    for (body, status, code) in [
        (
            signed(&evil, "leaks data", "leaks data"),
            422,
            "foreign_key",
        ),
        (
            signed(&api.acme, "leaks data", "harmless"),
            422,
            "bad_signature",
        ),
        (
            signed(&unregistered, "leaks data", "leaks data"),
            422,
            "unknown_key",
        ),
        (signed(&api.acme, "", ""), 400, "bad_request"),
        (
            json!({ "reason": "x", "keyId": "k", "signature": "s", "extra": 1 }),
            400,
            "bad_request",
        ),
    ] {
        let answer = api.json(Method::POST, path, member, Some(body)).await;
        assert_eq!(answer.status.as_u16(), status, "{}", answer.body);
        assert_eq!(answer.code(), code, "{}", answer.body);
    }
    for (other, status) in [
        ("/v1/registry/listings/acme:json/versions/9.9.9/yank", 404),
        (
            "/v1/registry/listings/acme:nothing/versions/1.0.0/yank",
            404,
        ),
        ("/v1/registry/listings/acme:json/versions/latest/yank", 400),
    ] {
        let answer = api
            .json(Method::POST, other, member, Some(genuine.clone()))
            .await;
        assert_eq!(answer.status.as_u16(), status, "{other}: {}", answer.body);
    }
    let still = api.registry.version("acme:json", &version).await.unwrap();
    assert_eq!(still.yanked_at, None, "no refusal yanked anything");

    let answer = api.json(Method::POST, path, member, Some(genuine)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["yankReason"], "leaks data");
    assert!(answer.body["yankedAt"].as_str().unwrap().ends_with('Z'));
    // The listing shows it yanked, in the API's conventions (camelCase, ISO-8601).
    let listing = api
        .json(
            Method::GET,
            "/v1/registry/listings/acme:json",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
    assert_eq!(listing.body["latestVersion"], "1.0.0");
    assert_eq!(listing.body["pricing"]["model"], "free");
    let shown = &listing.body["versions"][0];
    assert_eq!(shown["yankReason"], "leaks data");
    assert_eq!(shown["yankedAt"], answer.body["yankedAt"]);
    assert!(shown["publishedAt"].as_str().unwrap().ends_with('Z'));
    assert!(shown["manifest"].as_str().unwrap().contains("acme:json"));
    let found = api
        .json(
            Method::GET,
            "/v1/registry/listings?publisher=acme&pageSize=1",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(found.body["meta"]["total"], 2, "{}", found.body);
    assert_eq!(found.body["meta"]["hasMore"], true);
    assert_eq!(found.body["data"][0]["publisher"], "acme");
    assert!(found.body["data"][0]["latestVersion"].is_string());
    let entries = audit_entries(api).await;
    let actions = actions(&entries);
    assert!(actions.contains(&"package.yank"), "{actions:?}");
    let yank = entries
        .iter()
        .find(|e| e["action"] == "package.yank")
        .unwrap();
    assert_eq!(
        yank["detail"]["effect"], "new installs refused; pinned installs keep running",
        "{yank}"
    );
}

/// The organization of `workspace`.
pub async fn org_of(api: &Api, workspace: &str) -> String {
    sqlx::query_scalar("SELECT org_id FROM workspaces WHERE id = $1")
        .bind(workspace)
        .fetch_one(api.tenancy.pool())
        .await
        .unwrap()
}

/// Writes `n` metering records for `workspace` dated today.
async fn spend_invocations(api: &Api, workspace: &str, n: usize) {
    let org = org_of(api, workspace).await;
    let day = hyyve_registry::marketplace::today();
    for i in 0..n {
        metering_record(
            api.tenancy.pool(),
            "spent",
            &format!("n{i}"),
            workspace,
            &org,
            &day,
        )
        .await;
    }
}

/// Metering written by another process sharing the database counts against the quota
/// once this one reads usage again (at every reservation under the tests' config).
#[tokio::test]
async fn usage_written_by_another_process_counts_against_the_quota() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:json").await;
    let id = api.workflow(chain()).await;
    let input = json!({ "data": { "items": [] } });
    let first = api.start(&id, input.clone()).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);

    // Another process spends the team plan's monthly fuel (10^13) in one record.
    let pool = api.tenancy.pool();
    let org = org_of(&api, &api.alpha.id).await;
    let day = hyyve_registry::marketplace::today();
    metering_record(pool, "run_elsewhere", "a", &api.alpha.id, &org, &day).await;
    sqlx::query("UPDATE metering_records SET fuel = 10000000000000 WHERE run_id = 'run_elsewhere'")
        .execute(pool)
        .await
        .unwrap();

    let refused = api.start(&id, input).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.body["error"]["details"]["quota"], "fuel");
}

/// Units a plugin reports (LLM tokens) are aggregated per day, plugin and unit in
/// `/v1/usage` and its export, and a plan's monthly quota on a unit refuses new runs.
#[tokio::test]
async fn reported_units_are_billed_and_limited_by_the_plan() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:flaky").await;
    let id = api
        .workflow(json!({
            "name": "tokens",
            "nodes": [{ "id": "llm", "plugin": "acme:flaky", "type": "tokens" }]
        }))
        .await;
    for _ in 0..2 {
        let started = api.start(&id, json!({})).await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        let run = api.finished(started.body["id"].as_str().unwrap()).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let record = &run["nodes"][0]["metering"];
        assert_eq!(record["usage"]["llm.input-tokens"], 1234, "{run}");
    }
    let usage = api
        .json(
            Method::GET,
            "/v1/usage",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    let day = hyyve_registry::marketplace::today();
    assert_eq!(
        usage.body["units"],
        json!([
            { "day": day, "plugin": "acme:flaky", "unit": "llm.input-tokens", "quantity": 2468 },
            { "day": day, "plugin": "acme:flaky", "unit": "llm.output-tokens", "quantity": 600 },
        ]),
        "{}",
        usage.body
    );
    assert_eq!(
        usage.body["limits"]["monthlyUnits"][1],
        json!({ "unit": "llm.output-tokens", "limit": 250_000_000 })
    );
    let csv = text(&api, "/v1/usage/export", api.alpha.key(Role::Viewer)).await;
    assert!(
        csv.contains(&format!("{day},acme:flaky,llm.output-tokens,600,,,,,,\n")),
        "{csv}"
    );

    // Another process spends the rest of the team plan's output tokens.
    let org = org_of(&api, &api.alpha.id).await;
    sqlx::query(
        "INSERT INTO metering_units (run_id, node_id, attempt, workspace_id, org_id, \
         plugin_id, day, unit, quantity) VALUES ('run_elsewhere', 'llm', 1, $1, $2, \
         'acme:flaky', $3, 'llm.output-tokens', 249999400)",
    )
    .bind(&api.alpha.id)
    .bind(&org)
    .bind(&day)
    .execute(api.tenancy.pool())
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
        "llm.output-tokens"
    );
    assert_eq!(refused.body["error"]["details"]["used"], 250_000_000);
}

/// Inserts one successful attempt-1 record of `acme:flaky` (fuel 7) as a worker would.
async fn metering_record(
    pool: &sqlx::AnyPool,
    run: &str,
    node: &str,
    workspace: &str,
    org: &str,
    day: &str,
) {
    sqlx::query(
        "INSERT INTO metering_records (run_id, node_id, attempt, workspace_id, org_id, \
         plugin_id, day, fuel, wall_time_us, peak_memory_bytes, host_calls, http_requests, \
         denials, failure, record, recorded_at) \
         VALUES ($1, $2, 1, $3, $4, 'acme:flaky', $5, 7, 1, 0, 0, 0, 0, NULL, '{}', 0)",
    )
    .bind(run)
    .bind(node)
    .bind(workspace)
    .bind(org)
    .bind(day)
    .execute(pool)
    .await
    .unwrap();
}

/// Servers sharing a database hand runs over through leases: a restarted instance
/// resumes at once what it held, nobody touches what a live instance holds (it renews
/// its leases), and a lease that lapses is taken over by another instance.
#[tokio::test]
async fn instances_share_runs_through_leases_on_sqlite() {
    instances_share_runs(Db::Sqlite).await;
}

#[tokio::test]
async fn instances_share_runs_through_leases_on_postgres() {
    instances_share_runs(Db::Postgres).await;
}

async fn instances_share_runs(db: Db) {
    let api = Api::new(db).await;
    api.install("acme:json").await;
    let id = api.workflow(chain()).await;
    let pool = api.tenancy.pool().clone();
    let org = org_of(&api, &api.alpha.id).await;
    let now = hyyve_server::ids::now_ms();
    let workspace = api.alpha.id.clone();
    let insert = |run: &'static str, status: &'static str, owner: &'static str, lease: i64| {
        let (pool, org, id, workspace) = (pool.clone(), org.clone(), id.clone(), workspace.clone());
        async move {
            let input = json!({ "data": { "items": [{ "n": 2 }] } });
            sqlx::query(
                "INSERT INTO runs (id, workspace_id, org_id, workflow_id, workflow_version, \
                 status, input, executions, created_by, created_at, owner, lease_until) \
                 VALUES ($1, $2, $3, $4, 1, $5, $6, $7, 'test', 0, $8, $9)",
            )
            .bind(run)
            .bind(workspace)
            .bind(org)
            .bind(id)
            .bind(status)
            .bind(input.to_string())
            .bind(i64::from(status == "running"))
            .bind(owner)
            .bind(lease)
            .execute(&pool)
            .await
            .unwrap();
        }
    };
    // Instance `b` died holding `run_mine`; `other` lives on with two runs and stops
    // renewing a third.
    insert("run_mine", "running", "b", now + 60_000).await;
    insert("run_live", "running", "other", now + 60_000).await;
    insert("run_live_queued", "queued", "other", now + 60_000).await;
    insert("run_lapsing", "running", "other", now + 500).await;

    let api = api.restarted_as("b").await;
    for run in ["run_mine", "run_lapsing"] {
        let done = api.finished(run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        assert_eq!(done["executions"], 2, "{done}");
    }

    // `b` lives and holds `run_held`: an instance started beside it leaves it alone for
    // longer than a lease, because `b` keeps renewing it.
    insert("run_held", "running", "b", now_plus(500)).await;
    let api = api.restarted_as("watcher").await;
    tokio::time::sleep(crate::LEASE * 5 / 2).await;
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT id, status, executions, lease_until FROM runs \
         WHERE id IN ('run_held', 'run_live', 'run_live_queued') ORDER BY id",
    )
    .fetch_all(api.tenancy.pool())
    .await
    .unwrap();
    let later = hyyve_server::ids::now_ms();
    let states: Vec<(&str, &str, i64)> = rows
        .iter()
        .map(|(id, status, executions, _)| (id.as_str(), status.as_str(), *executions))
        .collect();
    assert_eq!(
        states,
        [
            ("run_held", "running", 1),
            ("run_live", "running", 1),
            ("run_live_queued", "queued", 0)
        ]
    );
    assert!(rows[0].3 > later, "b renewed its lease: {rows:?}");
}

fn now_plus(ms: i64) -> i64 {
    hyyve_server::ids::now_ms() + ms
}

#[tokio::test]
async fn a_restart_resumes_or_fails_every_open_run() {
    let api = Api::new(Db::Sqlite).await;
    api.install("acme:json").await;
    let id = api.workflow(chain()).await;
    let input = json!({ "data": { "items": [{ "n": 2 }, { "n": 3 }] } });
    let done = api.start(&id, input.clone()).await;
    let done = api.finished(done.body["id"].as_str().unwrap()).await;
    let node_a = done["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "a")
        .unwrap()
        .clone();

    // What a process killed with SIGKILL leaves: a run executing (node `a` finished and
    // metered), a run accepted but never picked up, and a run that kept crashing.
    let pool = api.tenancy.pool();
    let org = org_of(&api, &api.alpha.id).await;
    for (run, status, executions) in [
        ("run_crashed", "running", 1),
        ("run_waiting", "queued", 0),
        ("run_poison", "running", 3),
    ] {
        sqlx::query(
            "INSERT INTO runs (id, workspace_id, org_id, workflow_id, workflow_version, status, \
             input, executions, created_by, created_at) VALUES ($1, $2, $3, $4, 1, $5, $6, $7, 'test', 0)",
        )
        .bind(run)
        .bind(&api.alpha.id)
        .bind(&org)
        .bind(&id)
        .bind(status)
        .bind(input.to_string())
        .bind(executions as i64)
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("INSERT INTO run_nodes (run_id, node_id, report) VALUES ('run_crashed', 'a', $1)")
        .bind(node_a.to_string())
        .execute(pool)
        .await
        .unwrap();
    metering_record(pool, "run_crashed", "a", &api.alpha.id, &org, "2026-01-01").await;

    let api = api.restarted().await;
    let crashed = api.finished("run_crashed").await;
    assert_eq!(crashed["status"], "succeeded", "{crashed}");
    assert_eq!(crashed["executions"], 2);
    assert_eq!(
        crashed["metering"]["invocations"], 3,
        "a (before the crash), b, c: {crashed}"
    );
    assert_eq!(
        crashed["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "a")
            .unwrap(),
        &node_a,
        "a finished before the crash and is not executed again"
    );
    let attempts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT node_id, attempt FROM metering_records WHERE run_id = 'run_crashed' ORDER BY node_id",
    )
    .fetch_all(api.tenancy.pool())
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [("a".into(), 1), ("b".into(), 2), ("c".into(), 2)],
        "attempts after the restart are numbered after the last metered one"
    );
    let waiting = api.finished("run_waiting").await;
    assert_eq!(waiting["status"], "succeeded");
    assert_eq!(waiting["executions"], 1);
    let poison = api.finished("run_poison").await;
    assert_eq!(poison["status"], "failed");
    assert!(
        poison["error"]
            .as_str()
            .unwrap()
            .contains("interrupted 3 times"),
        "{poison}"
    );
}
