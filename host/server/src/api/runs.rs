//! `/v1/workflows/{id}/runs` and `/v1/runs`: start (202), read with per-node status,
//! outputs, errors and metering, follow as Server-Sent Events, cancel.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::runs::Run;
use crate::tenancy::{ListPage, PageRequest, Principal};

/// One server-sent event of a run's stream, as the `text/event-stream` lines carry it.
/// Documents the wire format only; the stream itself is written by `runs::events`.
#[derive(ToSchema)]
pub struct RunEvent {
    /// `snapshot`, `run.started`, `node.started`, `node.finished` or `run.finished`.
    pub event: String,
    /// The event's JSON (for `snapshot`: the run view), as text.
    pub data: String,
    /// The event's position in the run's history, when it has one.
    pub id: Option<String>,
}

/// A run request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRun {
    /// Run inputs by name (absent: none).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: serde_json::Map<String, serde_json::Value>,
    /// The version to run; default the latest.
    #[schema(minimum = 1)]
    pub version: Option<i64>,
}

/// Starts a run: 202 with the queued run. 422 when the workflow no longer validates,
/// a pinned plugin was yanked or the input is wrong; 429 when a plan quota is used up.
#[utoipa::path(post, path = "/v1/workflows/{id}/runs", tag = "runs",
    params(("id" = String, Path, description = "`wf_…`")), request_body = NewRun,
    responses((status = 202, body = Run), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn start(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<NewRun>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    principal.require(Action::Run)?;
    let run = state
        .runs
        .submit(&principal, &id, body.version, body.input.into())
        .await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// The workspace's runs, newest first (without node reports).
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(PageRequest),
    responses((status = 200, body = ListPage<Run>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(page): QueryParams<PageRequest>,
) -> Result<Json<ListPage<Run>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(state.runs.list(&principal.workspace_id, page).await?))
}

/// A run with each node's status, outputs, error, attempts and metering, and the run's
/// metering totals.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "`run_…`")),
    responses((status = 200, body = Run), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<Run>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(state.runs.get(&principal.workspace_id, &id).await?))
}

/// Cancels a queued or running run (409 `run_finished` when it is already over).
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = String, Path, description = "`run_…`")),
    responses((status = 202, body = Run), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<Run>), ApiError> {
    principal.require(Action::Run)?;
    let run = state.runs.cancel(&principal.workspace_id, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)))
}

/// Server-Sent Events of a run: first `snapshot` (the run as `GET /v1/runs/{id}` shows
/// it), then `run.started`, `node.started`, `node.finished`, and `run.finished`, after
/// which the stream ends. A finished run's stream is its snapshot alone.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "`run_…`")),
    responses((status = 200, content_type = "text/event-stream", body = RunEvent),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn events(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    principal.require(Action::Read)?;
    // Subscribe before the snapshot, so nothing between the two is missed.
    let receiver = state.runs.events().subscribe();
    let snapshot = state.runs.get(&principal.workspace_id, &id).await?;
    let over = snapshot.status.is_final();
    let first = Event::default()
        .event("snapshot")
        .json_data(&snapshot)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let live = stream::unfold(
        (receiver, id, over),
        |(mut receiver, id, over)| async move {
            if over {
                return None;
            }
            loop {
                match receiver.recv().await {
                    Ok(event) if event.run_id == id => {
                        let last = event.event == "run.finished";
                        let sse = Event::default()
                            .event(event.event)
                            .json_data(&event.data)
                            .unwrap_or_default();
                        return Some((Ok(sse), (receiver, id, last)));
                    }
                    Ok(_) => continue,
                    // Too slow a reader: say so, the client re-reads the run.
                    Err(RecvError::Lagged(missed)) => {
                        let sse = Event::default().event("lagged").data(missed.to_string());
                        return Some((Ok(sse), (receiver, id, false)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::StreamExt::chain(stream::once(async { Ok(first) }), live);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
