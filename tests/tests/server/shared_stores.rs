//! Server mode keeps plugin KV and workspace secrets in its database. KV: scoped by
//! workspace and install, bounded by the install's quota under concurrent writers, kept
//! across a restart and shared by every process on the database. Secrets: sealed, read by
//! every process holding the same key, by no other.

use std::sync::Arc;

use axum::http::StatusCode;
use hyyve_database::Database;
use hyyve_runtime::{InstallScope, KvError, KvStore};
use hyyve_secrets::{SecretError, SecretKey, SecretStore, SecretValue};
use hyyve_server::kv::SqlKv;
use hyyve_server::secrets::SqlSecretStore;
use hyyve_tests::packages::signed_guest;
use serde_json::json;

use super::{Api, Db};

fn scope(workspace: &str, install: &str) -> InstallScope {
    InstallScope {
        workspace: workspace.into(),
        install: install.into(),
    }
}

async fn store(db: Db, dir: &std::path::Path) -> (SqlKv, String) {
    let url = db.fresh_url(dir).await;
    let pool = Database::open(&url).await.unwrap().pool;
    (SqlKv::new(pool), url)
}

async fn scopes_quota_and_persistence(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (kv, url) = store(db, dir.path()).await;
    let mine = scope("ws_a", "acme:probe");
    kv.set(&mine, "k", b"value".to_vec(), 100).await.unwrap();
    assert_eq!(kv.get(&mine, "k").await.unwrap(), Some(b"value".to_vec()));
    // Another install of the same workspace, and the same install elsewhere, see nothing.
    for other in [scope("ws_a", "acme:other"), scope("ws_b", "acme:probe")] {
        assert_eq!(kv.get(&other, "k").await.unwrap(), None, "{other:?}");
    }

    // Quota: keys + values. "k" + 5 = 6 bytes used; 95 more would make 101 > 100.
    let refused = kv.set(&mine, "j", vec![0; 94], 100).await;
    assert_eq!(refused, Err(KvError::QuotaExceeded { quota_bytes: 100 }));
    assert_eq!(
        kv.get(&mine, "j").await.unwrap(),
        None,
        "nothing half-written"
    );
    kv.set(&mine, "j", vec![0; 93], 100).await.unwrap();
    // Replacing a value counts only the difference; deleting frees its bytes.
    kv.set(&mine, "k", b"v".to_vec(), 100).await.unwrap();
    kv.set(&mine, "j", vec![0; 97], 100).await.unwrap();
    assert!(kv.set(&mine, "i", vec![], 100).await.is_err(), "full");
    kv.delete(&mine, "j").await.unwrap();
    kv.delete(&mine, "never-set").await.unwrap();
    kv.set(&mine, "i", vec![1; 90], 100).await.unwrap();

    // A new pool on the same database (a restart, or another process) sees the values.
    let pool = Database::open(&url).await.unwrap().pool;
    let again = SqlKv::new(pool);
    assert_eq!(again.get(&mine, "k").await.unwrap(), Some(b"v".to_vec()));
    assert_eq!(again.get(&mine, "j").await.unwrap(), None);
    assert_eq!(again.get(&mine, "i").await.unwrap(), Some(vec![1; 90]));
}

#[tokio::test]
async fn scopes_quota_and_persistence_on_sqlite() {
    scopes_quota_and_persistence(Db::Sqlite).await;
}

#[tokio::test]
async fn scopes_quota_and_persistence_on_postgres() {
    scopes_quota_and_persistence(Db::Postgres).await;
}

/// Writers of one scope racing (as the invocations of concurrent runs do) never pass
/// the quota together, and the scope's count stays the sum of what is stored.
async fn concurrent_writers_stay_within_the_quota(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let (kv, _) = store(db, dir.path()).await;
    let kv = Arc::new(kv);
    let shared = scope("ws_a", "acme:probe");
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let kv = kv.clone();
            let shared = shared.clone();
            // 16 entries of 2 + 98 = 100 bytes against a 1,000-byte quota: 10 fit.
            tokio::spawn(
                async move { kv.set(&shared, &format!("{i:02}"), vec![7; 98], 1000).await },
            )
        })
        .collect();
    let mut stored = 0;
    for writer in writers {
        match writer.await.unwrap() {
            Ok(()) => stored += 1,
            Err(KvError::QuotaExceeded { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(stored, 10, "exactly what fits");
    let mut found = 0;
    for i in 0..16 {
        found += usize::from(kv.get(&shared, &format!("{i:02}")).await.unwrap().is_some());
    }
    assert_eq!(found, stored);
}

#[tokio::test]
async fn concurrent_writers_stay_within_the_quota_on_sqlite() {
    concurrent_writers_stay_within_the_quota(Db::Sqlite).await;
}

#[tokio::test]
async fn concurrent_writers_stay_within_the_quota_on_postgres() {
    concurrent_writers_stay_within_the_quota(Db::Postgres).await;
}

/// Through the API, as `hyyve serve` composes it: a plugin's counter keeps counting
/// across a server restart, and its quota is the install's grant.
#[tokio::test]
async fn a_plugins_kv_survives_a_restart() {
    let api = Api::with_database_stores(Db::Sqlite).await;
    api.registry
        .publish(&signed_guest(
            "guest-counter",
            "acme:counter",
            "1.0.0",
            &api.acme,
            "[capabilities]\nkv_bytes = 100000\n",
        ))
        .await
        .unwrap();
    api.install("acme:counter").await;
    let counter = api
        .workflow(json!({
            "name": "counter",
            "nodes": [{ "id": "count", "plugin": "acme:counter", "type": "count" }]
        }))
        .await;
    let flood = api
        .workflow(json!({
            "name": "flood",
            "nodes": [{ "id": "fill", "plugin": "acme:counter", "type": "fill" }]
        }))
        .await;
    let first = run_once(&api, &counter).await;
    assert_eq!(first["nodes"][0]["outputs"]["count"], 1, "{first}");
    let api = api.restarted().await;
    let second = run_once(&api, &counter).await;
    assert_eq!(second["nodes"][0]["outputs"]["count"], 2, "{second}");

    // The count is a row of the server's database, not process memory (the restarted
    // server above shares this process's runtime, so only the row proves it).
    let stored: Vec<u8> = sqlx::query_scalar(
        "SELECT value FROM kv_entries WHERE install = 'acme:counter' AND entry_key = 'counter'",
    )
    .fetch_one(api.tenancy.pool())
    .await
    .unwrap();
    assert_eq!(stored, 2u64.to_le_bytes());

    // 64 KiB values against a 100,000-byte grant (the counter holds 15 of them): the
    // second write is refused, with its denial.
    let flooded = run_once(&api, &flood).await;
    assert_eq!(flooded["status"], "failed", "{flooded}");
    assert_eq!(
        flooded["nodes"][0]["error"]["kind"], "kv_quota_exceeded",
        "{flooded}"
    );
    assert!(flooded.to_string().contains("after 1 writes"), "{flooded}");
}

async fn run_once(api: &Api, workflow: &str) -> serde_json::Value {
    let started = api.start(workflow, json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    api.finished(started.body["id"].as_str().unwrap()).await
}

/// Two processes on one database with the same key read each other's secrets; a process
/// with another key reads none; the table holds no clear text.
async fn secrets_are_sealed_and_shared_by_key(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let url = db.fresh_url(dir.path()).await;
    let key = SecretKey::generate();
    let open = |key: SecretKey| {
        let url = url.clone();
        async move { SqlSecretStore::new(Database::open(&url).await.unwrap().pool, key) }
    };
    let first = open(SecretKey::from_hex(&key.to_hex()).unwrap()).await;
    let second = open(key).await;
    let value = SecretValue::new("sk-live-0123456789".into());
    first.put("ws_a", "OPENAI_KEY", &value).await.unwrap();
    first.put("ws_a", "A_FIRST", &value).await.unwrap();
    let read = second.get("ws_a", "OPENAI_KEY").await.unwrap().unwrap();
    assert_eq!(read.expose(), "sk-live-0123456789");
    assert_eq!(
        second.names("ws_a").await.unwrap(),
        ["A_FIRST", "OPENAI_KEY"]
    );
    assert!(second.get("ws_b", "OPENAI_KEY").await.unwrap().is_none());
    assert!(second.names("ws_b").await.unwrap().is_empty());

    // Replaced by one process, seen by the other.
    let replaced = SecretValue::new("sk-live-rotated".into());
    second.put("ws_a", "OPENAI_KEY", &replaced).await.unwrap();
    let read = first.get("ws_a", "OPENAI_KEY").await.unwrap().unwrap();
    assert_eq!(read.expose(), "sk-live-rotated");

    let stranger = open(SecretKey::generate()).await;
    assert!(matches!(
        stranger.get("ws_a", "OPENAI_KEY").await,
        Err(SecretError::Undecryptable { .. })
    ));
    let pool = Database::open(&url).await.unwrap().pool;
    let stored: Vec<String> = sqlx::query_scalar("SELECT sealed FROM workspace_secrets")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored.iter().all(|s| !s.contains("sk-live")), "{stored:?}");

    assert!(first.delete("ws_a", "OPENAI_KEY").await.unwrap());
    assert!(!second.delete("ws_a", "OPENAI_KEY").await.unwrap());
    assert!(second.get("ws_a", "OPENAI_KEY").await.unwrap().is_none());
}

#[tokio::test]
async fn secrets_are_sealed_and_shared_by_key_on_sqlite() {
    secrets_are_sealed_and_shared_by_key(Db::Sqlite).await;
}

#[tokio::test]
async fn secrets_are_sealed_and_shared_by_key_on_postgres() {
    secrets_are_sealed_and_shared_by_key(Db::Postgres).await;
}
