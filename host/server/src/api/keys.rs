//! `/v1/keys`: API keys of the workspace. A secret is shown once, at creation.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_policy::AuditAction;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::{Action, Role};
use crate::tenancy::{ApiKey, ListPage, NewApiKey, PageRequest, Principal};

/// Lists keys (without secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "tenancy", params(PageRequest),
    responses((status = 200, body = ListPage<ApiKey>), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(page): QueryParams<PageRequest>,
) -> Result<Json<ListPage<ApiKey>>, ApiError> {
    principal.require(Action::ListKeys)?;
    Ok(Json(
        state.tenancy.keys(&principal.workspace_id, page).await?,
    ))
}

/// A key to make.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    /// What it is for (1 to 100 characters, not only spaces).
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// Not above the caller's own.
    pub role: Role,
}

/// Makes a key; the response holds its secret, which is never shown again.
#[utoipa::path(post, path = "/v1/keys", tag = "tenancy", request_body = KeyRequest,
    responses((status = 201, body = NewApiKey), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<KeyRequest>,
) -> Result<(StatusCode, Json<NewApiKey>), ApiError> {
    principal.require(Action::ManageKeys)?;
    principal.may_grant(body.role)?;
    if crate::api::extract::blank(&body.name) || body.name.chars().count() > 100 {
        return Err(ApiError::BadRequest("name: 1 to 100 characters".into()));
    }
    let key = state
        .tenancy
        .create_key(
            &principal.workspace_id,
            &body.name,
            body.role,
            &principal.key_name,
        )
        .await?;
    let detail = serde_json::json!({ "name": key.key.name, "role": key.key.role });
    state
        .audit
        .record(
            &principal,
            AuditAction::ApiKeyCreate,
            &format!("key/{}", key.key.id),
            detail,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revokes a key (not one above the caller's role); it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "tenancy",
    params(("id" = String, Path, description = "`key_…`")),
    responses((status = 200, body = ApiKey), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<ApiKey>, ApiError> {
    principal.require(Action::ManageKeys)?;
    let key = state.tenancy.key(&principal.workspace_id, &id).await?;
    principal.may_grant(key.role)?;
    let revoked = state
        .tenancy
        .revoke_key(&principal.workspace_id, &id)
        .await?;
    let detail = serde_json::json!({ "name": revoked.name, "role": revoked.role });
    state
        .audit
        .record(
            &principal,
            AuditAction::ApiKeyRevoke,
            &format!("key/{id}"),
            detail,
        )
        .await?;
    Ok(Json(revoked))
}
