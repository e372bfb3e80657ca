//! `/v1/workspace` and `/v1/projects`: the caller's workspace and its projects.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::tenancy::{ListPage, PageRequest, Principal, Project};

/// The calling key's workspace, organization and role.
#[utoipa::path(get, path = "/v1/workspace", tag = "tenancy",
    responses((status = 200, body = Principal), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn workspace(principal: Principal) -> Result<Json<Principal>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(principal))
}

/// Lists the workspace's projects.
#[utoipa::path(get, path = "/v1/projects", tag = "tenancy", params(PageRequest),
    responses((status = 200, body = ListPage<Project>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(page): QueryParams<PageRequest>,
) -> Result<Json<ListPage<Project>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state
            .tenancy
            .projects(&principal.workspace_id, page)
            .await?,
    ))
}

/// A new project.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    /// 1 to 100 characters, not only spaces, unique in the workspace.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// Changes to a project; absent fields are kept.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectChanges {
    /// A new name (as for a new project).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: Option<String>,
    /// A new description.
    pub description: Option<String>,
}

fn check_name(name: &str) -> Result<(), ApiError> {
    match crate::api::extract::blank(name) || name.chars().count() > 100 {
        true => Err(ApiError::BadRequest(
            "name: 1 to 100 characters, not only spaces".into(),
        )),
        false => Ok(()),
    }
}

/// Creates a project.
#[utoipa::path(post, path = "/v1/projects", tag = "tenancy", request_body = NewProject,
    responses((status = 201, body = Project), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewProject>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    principal.require(Action::WriteProjects)?;
    check_name(&body.name)?;
    let project = state
        .tenancy
        .create_project(&principal.workspace_id, &body.name, &body.description)
        .await?;
    Ok((StatusCode::CREATED, Json(project)))
}

/// One project.
#[utoipa::path(get, path = "/v1/projects/{id}", tag = "tenancy",
    params(("id" = String, Path, description = "`prj_…`")),
    responses((status = 200, body = Project), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<Project>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state.tenancy.project(&principal.workspace_id, &id).await?,
    ))
}

/// Renames or re-describes a project.
#[utoipa::path(patch, path = "/v1/projects/{id}", tag = "tenancy", request_body = ProjectChanges,
    params(("id" = String, Path, description = "`prj_…`")),
    responses((status = 200, body = Project), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ProjectChanges>,
) -> Result<Json<Project>, ApiError> {
    principal.require(Action::WriteProjects)?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let project = state
        .tenancy
        .update_project(
            &principal.workspace_id,
            &id,
            body.name.as_deref(),
            body.description.as_deref(),
        )
        .await?;
    Ok(Json(project))
}

/// Deletes a project.
#[utoipa::path(delete, path = "/v1/projects/{id}", tag = "tenancy",
    params(("id" = String, Path, description = "`prj_…`")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::WriteProjects)?;
    state
        .tenancy
        .delete_project(&principal.workspace_id, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
