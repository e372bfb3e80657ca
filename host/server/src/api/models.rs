//! `/v1/models/aliases`: the names nodes call through `models`, each bound to provider
//! installs and models in the order to try them. Binding is checked (each target an
//! installed provider, its config valid against the provider's schema) and audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_platform::models::{AliasError, AliasStore, AliasTarget, Aliases, ModelAlias};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::installs::acting;
use crate::roles::Action;
use crate::tenancy::Principal;

/// One target of an alias.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// The provider install, e.g. `hyyve:openai`.
    #[schema(max_length = 129)]
    pub provider: String,
    /// The model asked of it, e.g. `gpt-4o-mini`.
    #[schema(min_length = 1, max_length = 200)]
    pub model: String,
    /// Provider configuration (base URL, ...), valid against the provider's schema.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub config: serde_json::Value,
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// What an alias routes to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// The primary target first, then the fallbacks (1 to 8).
    #[schema(min_items = 1, max_items = 8)]
    pub targets: Vec<Target>,
}

/// A bound alias.
#[derive(Serialize, ToSchema)]
pub struct Alias {
    /// The name nodes call.
    pub name: String,
    /// What it routes to, in order.
    pub targets: Vec<Target>,
}

impl From<ModelAlias> for Alias {
    fn from(alias: ModelAlias) -> Self {
        Self {
            name: alias.name,
            targets: alias
                .targets
                .into_iter()
                .map(|t| Target {
                    provider: t.provider,
                    model: t.model,
                    config: t.config,
                })
                .collect(),
        }
    }
}

impl From<AliasError> for ApiError {
    fn from(e: AliasError) -> Self {
        match e {
            AliasError::Invalid { .. } => ApiError::unprocessable("invalid_alias", e.to_string()),
            AliasError::NotFound(name) => ApiError::NotFound(format!("model alias {name}")),
            AliasError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

fn aliases(state: &AppState) -> Aliases<'_> {
    Aliases {
        store: state.aliases.as_ref(),
        providers: state.installs.as_ref(),
        audit: state.audit.as_ref(),
    }
}

/// The workspace's model aliases, by name.
#[utoipa::path(get, path = "/v1/models/aliases", tag = "models",
    responses((status = 200, body = Vec<Alias>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<Alias>>, ApiError> {
    principal.require(Action::Read)?;
    let list = state
        .aliases
        .list(&principal.workspace_id)
        .await
        .map_err(AliasError::from)?;
    Ok(Json(list.into_iter().map(Alias::from).collect()))
}

/// Binds (or rebinds) an alias. 422 `invalid_alias`: a target that is not an installed
/// provider, a config its schema refuses, no targets or more than 8.
#[utoipa::path(put, path = "/v1/models/aliases/{alias}", tag = "models",
    params(("alias" = String, Path, description = "Lowercase letters, digits and single inner hyphens",
        max_length = 64, pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")),
    request_body = Binding,
    responses((status = 200, body = Alias), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
    JsonBody(body): JsonBody<Binding>,
) -> Result<Json<Alias>, ApiError> {
    principal.require(Action::Install)?;
    let alias = ModelAlias {
        name,
        targets: body
            .targets
            .into_iter()
            .map(|t| AliasTarget {
                provider: t.provider,
                model: t.model,
                config: t.config,
            })
            .collect(),
    };
    aliases(&state).bind(&acting(&principal), &alias).await?;
    Ok(Json(alias.into()))
}

/// Removes an alias; nodes calling it fail with `unknown-alias` from then on.
#[utoipa::path(delete, path = "/v1/models/aliases/{alias}", tag = "models",
    params(("alias" = String, Path, description = "The alias")),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(name): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::Install)?;
    aliases(&state).unbind(&acting(&principal), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
