//! `/v1/secrets`: the workspace's secrets. Names are listed; values are written and
//! deleted but never read back over the API (only a plugin whose grant names a secret
//! reads it, at run time).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_platform::audit::secret_subject;
use hyyve_policy::AuditAction;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::tenancy::Principal;

/// A secret as listed: its name only.
#[derive(Serialize, ToSchema)]
pub struct SecretName {
    /// `[A-Za-z_][A-Za-z0-9_]*`.
    pub name: String,
}

/// A value to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretBody {
    /// The value (1 byte to 64 KiB of UTF-8); never returned.
    #[schema(min_length = 1, max_length = 65536)]
    pub value: String,
}

/// Names of the workspace's secrets.
#[utoipa::path(get, path = "/v1/secrets", tag = "secrets",
    responses((status = 200, body = Vec<SecretName>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<SecretName>>, ApiError> {
    principal.require(Action::Read)?;
    let names = state.secrets.names(&principal.workspace_id).await?;
    Ok(Json(
        names.into_iter().map(|name| SecretName { name }).collect(),
    ))
}

/// Sets or replaces a secret: 201 when new, 204 when replaced. The response never
/// holds the value.
#[utoipa::path(put, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "Letters, digits and underscores, not starting with a digit",
        max_length = 128, pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")),
    request_body = SecretBody,
    responses((status = 201), (status = 204), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<SecretBody>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::ManageSecrets)?;
    let replaced = state
        .secrets
        .set(&principal.workspace_id, &name, body.value)
        .await?;
    let (status, action) = match replaced {
        true => (StatusCode::NO_CONTENT, AuditAction::SecretReplace),
        false => (StatusCode::CREATED, AuditAction::SecretSet),
    };
    state
        .audit
        .record(
            &principal,
            action,
            &secret_subject(&name),
            serde_json::json!({}),
        )
        .await?;
    Ok(status)
}

/// Deletes a secret; plugins reading it are denied from then on.
#[utoipa::path(delete, path = "/v1/secrets/{name}", tag = "secrets",
    params(("name" = String, Path, description = "The secret's name")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::ManageSecrets)?;
    state.secrets.delete(&principal.workspace_id, &name).await?;
    state
        .audit
        .record(
            &principal,
            AuditAction::SecretDelete,
            &secret_subject(&name),
            serde_json::json!({}),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
