//! `hyyve serve`: the multi-tenant HTTP API. Organizations → workspaces → projects,
//! members and API keys with roles ([`roles`]); every request is authenticated by a key
//! scoped to one workspace and sees nothing of any other. The registry and marketplace
//! are served over REST; the OpenAPI document is generated from the handlers and served
//! at `/openapi.json`.

pub mod api;
pub mod audit;
pub mod auth;
pub mod error;
pub mod ids;
pub mod installs;
pub mod kv;
pub mod metrics;
pub mod models;
pub mod roles;
pub mod runs;
pub mod secrets;
pub mod tenancy;
pub mod workflows;

use std::sync::Arc;

use audit::Audit;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::ListenerExt as _;
use hyyve_policy::PlatformConfig;
use hyyve_registry::Registry;
use installs::Installs;
use metrics::{Metrics, RefusalLabels};
use runs::{Runs, SchedulerConfig};
use secrets::Secrets;
use sqlx::AnyPool;
use workflows::Workflows;

pub use error::ApiError;
pub use tenancy::Tenancy;

/// Largest JSON body accepted (413 beyond).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest package accepted by the publish route.
    pub max_package_bytes: usize,
    /// Platform caps and defaults every install is bounded by.
    pub platform: PlatformConfig,
    /// The worker pool.
    pub scheduler: SchedulerConfig,
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Organizations, workspaces, projects, members, keys.
    pub tenancy: Tenancy,
    /// Packages, listings, vetting.
    pub registry: Arc<Registry>,
    /// Plugins installed in workspaces, organization policies.
    pub installs: Arc<Installs>,
    /// Workflows and their versions.
    pub workflows: Workflows,
    /// Runs and the scheduler.
    pub runs: Arc<Runs>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// The audit log of every workspace.
    pub audit: Arc<Audit>,
    /// Workspace secrets (write-only over the API).
    pub secrets: Secrets,
    /// The workspaces' model aliases.
    pub aliases: Arc<models::SqlAliases>,
    /// Largest package accepted by the publish route.
    pub max_package_bytes: usize,
}

impl AppState {
    /// Over the host's database and a registry on it (whose runtime runs the plugins),
    /// with the worker pool started after every run a previous process left open was
    /// queued again.
    pub async fn start(
        db: AnyPool,
        registry: Arc<Registry>,
        config: ServerConfig,
    ) -> Result<Self, ApiError> {
        let registry_secrets = registry.runtime().secrets().clone();
        let metrics = Arc::new(Metrics::default());
        let audit = Arc::new(Audit::new(db.clone()));
        let installs = Arc::new(Installs::new(
            db.clone(),
            registry.clone(),
            config.platform,
            audit.clone(),
        ));
        let runs = Arc::new(Runs::new(
            db.clone(),
            installs.clone(),
            metrics.clone(),
            audit.clone(),
            registry.runtime().clone(),
            config.scheduler,
        ));
        let recovered = runs.start().await?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "runs left open by the previous process queued again"
            );
        }
        Ok(Self {
            tenancy: Tenancy::new(db.clone()),
            aliases: Arc::new(models::SqlAliases::new(db.clone())),
            workflows: Workflows::new(db),
            registry,
            installs,
            runs,
            metrics,
            audit,
            secrets: Secrets::new(registry_secrets),
            max_package_bytes: config.max_package_bytes,
        })
    }
}

/// The application: routes, `/openapi.json`, request ids and tracing spans.
pub fn app(state: AppState) -> Router {
    let (router, mut openapi) = api::routes(state.max_package_bytes).split_for_parts();
    api::contract::complete(&mut openapi);
    let openapi = Arc::new(openapi);
    router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let openapi = openapi.clone();
                async move { axum::Json(openapi.as_ref().clone()) }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            request_context,
        ))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then finishes the requests
/// in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Without TCP_NODELAY, each small write that follows another (the events of a run's
    // stream, a response's head then its body) waits for the peer's delayed ACK: 40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set on a connection");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Gives every request an id (the caller's `x-request-id` if it is short and plain),
/// a tracing span carrying it, and echoes it in the response.
async fn request_context(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| ids::new_id("req"));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        workspace = tracing::field::Empty,
    );
    // A cheap clone (shared string): it is only spelled out for a refusal.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let started = std::time::Instant::now();
    let mut response = tracing::Instrument::instrument(
        error::REQUEST_ID.scope(id.clone(), next.run(request)),
        span.clone(),
    )
    .await;
    // The access log, at info: off under the default filter.
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "request"
        )
    });
    let status = response.status();
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        let labels = RefusalLabels {
            status: status.as_u16().to_string(),
            route: route.map_or("unmatched".into(), |path| path.as_str().to_owned()),
        };
        metrics.refusals.get_or_create(&labels).inc();
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
