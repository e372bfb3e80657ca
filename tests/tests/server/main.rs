//! The HTTP API in process (no socket): every endpoint × role × own/other workspace,
//! bad input with its status and code, the OpenAPI document and the permission matrix,
//! on SQLite and on PostgreSQL.

mod bad_input;
mod matrix;
mod models;
mod runs;
mod secrets_audit;
mod shared_stores;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use hyyve_database::Database;
use hyyve_registry::signing::KeyPair;
use hyyve_registry::storage::Blobs;
use hyyve_registry::{Registry, RegistryConfig};
use hyyve_runtime::Runtime;
use hyyve_secrets::SecretKey;
use hyyve_server::kv::SqlKv;
use hyyve_server::roles::Role;
use hyyve_server::runs::SchedulerConfig;
use hyyve_server::secrets::SqlSecretStore;
use hyyve_server::tenancy::Plan;
use hyyve_server::{AppState, ServerConfig, Tenancy};
use hyyve_tests::databases::Db;
use hyyve_tests::packages::signed_guest;
use hyyve_tests::{runtime, runtime_with_stores};
use sqlx::AnyPool;
use tower::ServiceExt;

/// Package limit of the test server: small, so the 413 test sends little.
pub const MAX_PACKAGE_BYTES: usize = 256 * 1024;

/// Two organizations, `alpha` and `beta`, each with one workspace; alpha has a key of
/// every role, beta an owner key.
pub struct Api {
    pub app: axum::Router,
    pub tenancy: Tenancy,
    /// Holds `acme:json` and `acme:flaky` 1.0.0, published by `acme`.
    pub registry: Arc<Registry>,
    /// The database every store of the server shares.
    pub db: AnyPool,
    /// The `acme` publisher's key.
    pub acme: KeyPair,
    pub alpha: Workspace,
    pub beta: Workspace,
    _dir: tempfile::TempDir,
}

/// A workspace of the fixture with its keys by role.
pub struct Workspace {
    pub id: String,
    pub keys: Vec<(Role, String)>,
}

impl Workspace {
    pub fn key(&self, role: Role) -> &str {
        &self
            .keys
            .iter()
            .find(|(r, _)| *r == role)
            .expect("a key of that role")
            .1
    }
}

/// A response: status, JSON body (Null when empty, a string when not JSON), headers.
pub struct Answer {
    pub status: StatusCode,
    pub body: serde_json::Value,
    pub headers: HeaderMap,
}

impl Answer {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Run leases of the test servers: short, so a lapsed lease is taken over within a test.
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(2);

/// Four workers, short retry delays and leases.
fn test_config() -> ServerConfig {
    ServerConfig {
        max_package_bytes: MAX_PACKAGE_BYTES,
        platform: Default::default(),
        scheduler: SchedulerConfig {
            workers: 4,
            retry_backoff: std::time::Duration::from_millis(5),
            instance: "test".into(),
            lease: LEASE,
            // Usage read from the records at every reservation: what "another process"
            // (a test writing records) spent counts at once.
            usage_refresh: std::time::Duration::ZERO,
            ..SchedulerConfig::default()
        },
    }
}

impl Api {
    /// The same database served by a new server, as after the process was killed and
    /// started again (the old one's queue is abandoned).
    pub async fn restarted(self) -> Self {
        self.restarted_as("test").await
    }

    /// The same database served by a new server of instance `instance` (the old one
    /// keeps running in the background, as another process would).
    pub async fn restarted_as(mut self, instance: &str) -> Self {
        let mut config = test_config();
        config.scheduler.instance = instance.into();
        let state = AppState::start(self.db.clone(), self.registry.clone(), config)
            .await
            .unwrap();
        self.app = hyyve_server::app(state);
        self
    }

    pub async fn new(db: Db) -> Self {
        Self::with_runtime(db, |_| runtime()).await
    }

    /// The fixture as `hyyve serve` composes it: plugin KV and workspace secrets in the
    /// server's database.
    pub async fn with_database_stores(db: Db) -> Self {
        Self::with_runtime(db, |pool| {
            runtime_with_stores(
                Arc::new(SqlKv::new(pool.clone())),
                Arc::new(SqlSecretStore::new(pool.clone(), SecretKey::generate())),
            )
        })
        .await
    }

    async fn with_runtime(db: Db, runtime: impl FnOnce(&AnyPool) -> Arc<Runtime>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pool = Database::open(&db.fresh_url(dir.path()).await)
            .await
            .unwrap()
            .pool;
        let registry = Registry::new(
            pool.clone(),
            RegistryConfig {
                blobs: Blobs::local(&dir.path().join("blobs")).unwrap(),
                max_package_bytes: hyyve_registry::DEFAULT_MAX_PACKAGE_BYTES,
            },
            runtime(&pool),
        );
        let acme = KeyPair::generate("acme").unwrap();
        registry
            .add_publisher("acme", &acme.public_file(), "test-admin")
            .await
            .unwrap();
        let registry = Arc::new(registry);
        for (guest, id) in [
            ("hyyve-plugin-json", "acme:json"),
            ("guest-flaky", "acme:flaky"),
        ] {
            registry
                .publish(&signed_guest(guest, id, "1.0.0", &acme, ""))
                .await
                .unwrap();
        }
        let state = AppState::start(pool.clone(), registry.clone(), test_config())
            .await
            .unwrap();
        let tenancy = state.tenancy.clone();
        let alpha = tenancy
            .bootstrap("alpha", "main", "ada", Plan::Team)
            .await
            .unwrap();
        let mut keys = vec![(Role::Owner, alpha.key.secret.clone())];
        for role in [Role::Admin, Role::Member, Role::Viewer] {
            let key = tenancy
                .create_key(&alpha.workspace_id, role.as_str(), role, "test")
                .await
                .unwrap();
            keys.push((role, key.secret));
        }
        let beta = tenancy
            .bootstrap("beta", "main", "bob", Plan::Free)
            .await
            .unwrap();
        Api {
            app: hyyve_server::app(state),
            tenancy,
            registry,
            db: pool,
            acme,
            alpha: Workspace {
                id: alpha.workspace_id,
                keys,
            },
            beta: Workspace {
                id: beta.workspace_id,
                keys: vec![(Role::Owner, beta.key.secret)],
            },
            _dir: dir,
        }
    }

    /// Sends a request with an optional bearer key and body (JSON unless `raw`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Body>,
        content_type: &str,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(key) = key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        if body.is_some() {
            request = request.header("content-type", content_type);
        }
        let request = request.body(body.unwrap_or_else(Body::empty)).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        // CSV exports and event streams come back as a string.
        let body = match bytes.is_empty() {
            true => serde_json::Value::Null,
            false => serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            }),
        };
        Answer {
            status,
            body,
            headers,
        }
    }

    /// A JSON request.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let body = body.map(|b| Body::from(b.to_string()));
        self.send(method, path, key, body, "application/json").await
    }
}

#[tokio::test]
async fn health_openapi_and_the_documented_matrix() {
    let api = Api::new(Db::Sqlite).await;
    for path in ["/healthz", "/readyz"] {
        let answer = api.json(Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        assert_eq!(answer.body["status"], "ok");
    }
    let doc = api.json(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    for path in [
        "/healthz",
        "/readyz",
        "/v1/workspace",
        "/v1/projects",
        "/v1/projects/{id}",
        "/v1/members",
        "/v1/members/{id}",
        "/v1/keys",
        "/v1/keys/{id}",
        "/v1/registry/listings",
        "/v1/registry/listings/{id}",
        "/v1/registry/packages",
        "/v1/registry/listings/{id}/versions/{version}/yank",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert_eq!(
        doc.body["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    assert!(doc.body["components"]["schemas"]["ErrorBody"].is_object());
    // What extractors and middleware answer is documented on every operation, and list
    // parameters are in the query, not the path.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            if secured {
                assert!(responses.contains_key("401"), "{method} {path}: 401");
            }
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let place = parameter["in"].as_str().unwrap();
                let in_path = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    place == "path",
                    in_path,
                    "{method} {path}: {name} in {place}"
                );
                assert!(responses.contains_key("400"), "{method} {path}: 400");
                if in_path {
                    assert!(responses.contains_key("404"), "{method} {path}: 404");
                }
            }
            if operation.get("requestBody").is_some() {
                assert!(responses.contains_key("400"), "{method} {path}: 400");
                assert!(responses.contains_key("413"), "{method} {path}: 413");
            }
        }
    }

    let committed = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/permissions.md"),
    )
    .expect("docs/permissions.md");
    assert_eq!(
        committed,
        hyyve_server::roles::matrix_markdown(),
        "docs/permissions.md is stale: hyyve admin permissions > docs/permissions.md"
    );
}
