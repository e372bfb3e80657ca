//! `/v1/workflows`: workflows with immutable versions, validated against the
//! workspace's installs before they are stored.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_workflow::Workflow;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::tenancy::{ListPage, PageRequest, Principal};
use crate::workflows::{WorkflowSummary, WorkflowVersion};

/// The workspace's workflows.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows", params(PageRequest),
    responses((status = 200, body = ListPage<WorkflowSummary>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(page): QueryParams<PageRequest>,
) -> Result<Json<ListPage<WorkflowSummary>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state.workflows.list(&principal.workspace_id, page).await?,
    ))
}

/// Creates a workflow (version 1). 422 `workflow_invalid` lists each problem with its
/// node and field.
#[utoipa::path(post, path = "/v1/workflows", tag = "workflows",
    request_body(content = Object, description = "A workflow (the workflow JSON format)"),
    responses((status = 201, body = WorkflowVersion), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(workflow): JsonBody<Workflow>,
) -> Result<(StatusCode, Json<WorkflowVersion>), ApiError> {
    principal.require(Action::WriteWorkflows)?;
    state
        .runs
        .validate(&principal.workspace_id, &workflow)
        .await?;
    let created = state
        .workflows
        .create(&principal.workspace_id, &workflow, &principal.key_name)
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// A workflow's latest version.
#[utoipa::path(get, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "`wf_…`")),
    responses((status = 200, body = WorkflowVersion), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state
            .workflows
            .version(&principal.workspace_id, &id, None)
            .await?,
    ))
}

/// Adds a version (earlier versions never change; runs keep naming theirs).
#[utoipa::path(put, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "`wf_…`")),
    request_body(content = Object, description = "A workflow (the workflow JSON format)"),
    responses((status = 200, body = WorkflowVersion), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    JsonBody(workflow): JsonBody<Workflow>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    principal.require(Action::WriteWorkflows)?;
    state.workflows.get(&principal.workspace_id, &id).await?;
    state
        .runs
        .validate(&principal.workspace_id, &workflow)
        .await?;
    Ok(Json(
        state
            .workflows
            .add_version(&principal.workspace_id, &id, &workflow, &principal.key_name)
            .await?,
    ))
}

/// Deletes a workflow and its versions (finished runs keep their reports).
#[utoipa::path(delete, path = "/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "`wf_…`")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::WriteWorkflows)?;
    state.workflows.delete(&principal.workspace_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every version of a workflow, oldest first.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions", tag = "workflows",
    params(("id" = String, Path, description = "`wf_…`")),
    responses((status = 200, body = Vec<WorkflowVersion>), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn versions(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<Vec<WorkflowVersion>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state
            .workflows
            .versions(&principal.workspace_id, &id)
            .await?,
    ))
}

/// One version.
#[utoipa::path(get, path = "/v1/workflows/{id}/versions/{version}", tag = "workflows",
    params(("id" = String, Path, description = "`wf_…`"), ("version" = i64, Path)),
    responses((status = 200, body = WorkflowVersion), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn version(
    State(state): State<AppState>,
    principal: Principal,
    PathParams((id, version)): PathParams<(String, String)>,
) -> Result<Json<WorkflowVersion>, ApiError> {
    principal.require(Action::Read)?;
    let version: i64 = version.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "version `{version}`: a version is a number (1, 2, …)"
        ))
    })?;
    Ok(Json(
        state
            .workflows
            .version(&principal.workspace_id, &id, Some(version))
            .await?,
    ))
}
