//! Secrets over the API (write-only values that reach only a plugin granted them) and
//! the audit log (every security-relevant change and each capability denial, in a hash
//! chain per workspace that finds an edited row).

use axum::http::{Method, StatusCode};
use hyyve_registry::signing::KeyPair;
use hyyve_server::roles::Role;
use hyyve_tests::packages::signed_guest;
use serde_json::{Value, json};

use crate::{Api, Db};

const VALUE: &str = "s3cr3t-value-for-alpha";

/// Publishes the secret-reading guest as `probe:secret`, declaring the secret `API_KEY`.
async fn publish_probe(api: &Api) {
    let probe = KeyPair::generate("probe").unwrap();
    api.registry
        .add_publisher("probe", &probe.public_file(), "test-admin")
        .await
        .unwrap();
    let extra = "[capabilities]\nsecrets = [\"API_KEY\"]\n";
    api.registry
        .publish(&signed_guest(
            "guest-secret",
            "probe:secret",
            "1.0.0",
            &probe,
            extra,
        ))
        .await
        .unwrap();
}

/// A one-node workflow reading the secret `name`.
fn read_secret(name: &str) -> Value {
    json!({
        "name": format!("read {name}"),
        "nodes": [{ "id": "s", "plugin": "probe:secret", "type": "read",
                    "config": { "name": name } }]
    })
}

/// Every entry of alpha's audit log, newest first.
pub async fn audit_entries(api: &Api) -> Vec<Value> {
    let answer = api
        .json(
            Method::GET,
            "/v1/audit?pageSize=100",
            Some(api.alpha.key(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["data"].as_array().unwrap().clone()
}

pub fn actions(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect()
}

async fn secrets_and_audit(db: Db) {
    // Composed as `hyyve serve` is: the secrets plugins read are the database's.
    let api = Api::with_database_stores(db).await;
    publish_probe(&api).await;
    let path = "/v1/secrets/API_KEY";
    let body = json!({ "value": VALUE });

    // Writing is for admins and owners.
    for role in [Role::Viewer, Role::Member] {
        let answer = api
            .json(
                Method::PUT,
                path,
                Some(api.alpha.key(role)),
                Some(body.clone()),
            )
            .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{role:?}");
    }
    let admin = api.alpha.key(Role::Admin);
    let answer = api
        .json(Method::PUT, path, Some(admin), Some(body.clone()))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert!(answer.body.is_null(), "the value is never echoed");
    let answer = api
        .json(Method::PUT, path, Some(admin), Some(body.clone()))
        .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);

    // Bad names and values are 400, and nothing is stored.
    let bad = [
        ("/v1/secrets/BAD-NAME", json!({ "value": "x" })),
        ("/v1/secrets/GOOD", json!({ "value": "" })),
        ("/v1/secrets/GOOD", json!({ "value": "x", "note": 1 })),
        ("/v1/secrets/GOOD", json!({ "value": 42 })),
    ];
    for (path, body) in bad {
        let answer = api.json(Method::PUT, path, Some(admin), Some(body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{path}");
    }

    // Names are listed to every role; the value never is.
    let listed = api
        .json(
            Method::GET,
            "/v1/secrets",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body, json!([{ "name": "API_KEY" }]));
    assert!(!listed.body.to_string().contains(VALUE));

    // Another workspace sees none of it.
    let beta = api.beta.key(Role::Owner);
    let theirs = api.json(Method::GET, "/v1/secrets", Some(beta), None).await;
    assert_eq!(theirs.body, json!([]));
    let answer = api.json(Method::DELETE, path, Some(beta), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // The granted plugin reads the value at run time; a name it did not declare is
    // denied, and the denial is audited.
    api.install("probe:secret").await;
    let granted = api.workflow(read_secret("API_KEY")).await;
    let run = api.start(&granted, json!({})).await;
    let run = api.finished(run.body["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["nodes"][0]["outputs"]["value"], VALUE);
    let undeclared = api.workflow(read_secret("OTHER")).await;
    let run = api.start(&undeclared, json!({})).await;
    let run_id = run.body["id"].as_str().unwrap().to_owned();
    let run = api.finished(&run_id).await;
    assert_eq!(run["status"], "failed", "{run}");

    // Deleting it: gone from the list, and a second delete is 404.
    let answer = api.json(Method::DELETE, path, Some(admin), None).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let answer = api.json(Method::DELETE, path, Some(admin), None).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let listed = api
        .json(Method::GET, "/v1/secrets", Some(admin), None)
        .await;
    assert_eq!(listed.body, json!([]));

    // The audit log: admins read it, members do not.
    let answer = api
        .json(
            Method::GET,
            "/v1/audit",
            Some(api.alpha.key(Role::Member)),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // The denial is appended off the run's path: wait for it.
    let mut entries = audit_entries(&api).await;
    for _ in 0..200 {
        if actions(&entries).contains(&"capability.denied") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        entries = audit_entries(&api).await;
    }
    assert_eq!(
        actions(&entries),
        [
            "secret.delete",
            "capability.denied",
            "plugin.install",
            "secret.replace",
            "secret.set"
        ]
    );
    let denied = &entries[1];
    assert_eq!(denied["actor"], "plugin:probe:secret");
    assert_eq!(denied["subject"], format!("run/{run_id}/node/s"));
    assert_eq!(denied["detail"]["kind"], "secret_denied");
    assert_eq!(denied["detail"]["capability"], "secrets");
    let install = &entries[2];
    assert!(
        install["actor"]
            .as_str()
            .unwrap()
            .starts_with("admin (key_")
    );
    assert_eq!(install["subject"], "install/probe:secret");
    assert_eq!(install["detail"]["grant"]["secrets"], json!(["API_KEY"]));
    assert!(
        !entries.iter().any(|e| e.to_string().contains(VALUE)),
        "no entry holds the value"
    );
    let filtered = api
        .json(
            Method::GET,
            "/v1/audit?action=secret.set",
            Some(admin),
            None,
        )
        .await;
    assert_eq!(filtered.body["meta"]["total"], 1);
    let answer = api
        .json(Method::GET, "/v1/audit?since=yesterday", Some(admin), None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // The chain holds, and beta's log holds none of alpha's entries.
    let verify = |key| api.json(Method::GET, "/v1/audit/verify", Some(key), None);
    let check = verify(admin).await;
    assert_eq!(check.body["intact"], true, "{}", check.body);
    assert_eq!(check.body["entries"], 5);
    let check = verify(beta).await;
    assert_eq!(check.body["entries"], 0);

    // An entry edited in the database breaks the chain at that entry.
    let stored: String =
        sqlx::query_scalar("SELECT entry FROM audit_log WHERE workspace_id = $1 AND seq = 2")
            .bind(&api.alpha.id)
            .fetch_one(&api.db)
            .await
            .unwrap();
    let forged = stored.replace("secret.replace", "secret.rotate");
    assert_ne!(forged, stored);
    sqlx::query("UPDATE audit_log SET entry = $1 WHERE workspace_id = $2 AND seq = 2")
        .bind(&forged)
        .bind(&api.alpha.id)
        .execute(&api.db)
        .await
        .unwrap();
    let check = verify(admin).await;
    assert_eq!(check.body["intact"], false);
    assert_eq!(check.body["brokenAt"], 2);
}

#[tokio::test]
async fn secrets_and_audit_on_sqlite() {
    secrets_and_audit(Db::Sqlite).await;
}

#[tokio::test]
async fn secrets_and_audit_on_postgres() {
    secrets_and_audit(Db::Postgres).await;
}

/// Concurrent appends to one workspace each get their own number: no fork, no gap.
#[tokio::test]
async fn concurrent_changes_chain_without_gaps() {
    let api = Api::new(Db::Postgres).await;
    let admin = api.alpha.key(Role::Admin);
    let paths: Vec<String> = (0..20).map(|i| format!("/v1/secrets/S{i}")).collect();
    let writes = paths.iter().map(|path| {
        api.json(
            Method::PUT,
            path,
            Some(admin),
            Some(json!({ "value": "v" })),
        )
    });
    for answer in futures_util::future::join_all(writes).await {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }
    let check = api
        .json(Method::GET, "/v1/audit/verify", Some(admin), None)
        .await;
    assert_eq!(check.body["intact"], true, "{}", check.body);
    assert_eq!(check.body["entries"], 20);
}
