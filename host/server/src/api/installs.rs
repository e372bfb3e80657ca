//! `/v1/installs` and `/v1/policy`: plugins installed in the workspace and the
//! organization policy that bounds them.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_policy::AuditAction;
use hyyve_policy::OrgPolicy;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams};
use crate::error::{ApiError, ErrorBody};
use crate::installs::Install;
use crate::roles::Action;
use crate::tenancy::Principal;

/// An install request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInstall {
    /// `namespace:name`, each part lowercase letters, digits and single inner hyphens,
    /// starting with a letter.
    #[schema(
        max_length = 129,
        pattern = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*:[a-z][a-z0-9]*(-[a-z0-9]+)*$"
    )]
    pub plugin: String,
    /// A semver requirement (`^1.2`, `=1.0.0`); default `*`.
    #[serde(default = "any_version")]
    pub range: String,
    /// What the workspace accepts of the plugin's requests (absent: what the organization
    /// allows).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub accept: serde_json::Value,
}

fn any_version() -> String {
    "*".into()
}

/// The workspace's installs.
#[utoipa::path(get, path = "/v1/installs", tag = "installs",
    responses((status = 200, body = Vec<Install>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Vec<Install>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(state.installs.list(&principal.workspace_id).await?))
}

/// Installs (or upgrades) a registry plugin. 422: yanked (`version_yanked`), awaiting
/// the organization's review (`vetting_required`), refused by policy (`install_refused`),
/// an `accept` that is not a workspace grant (`invalid_policy`).
#[utoipa::path(post, path = "/v1/installs", tag = "installs", request_body = NewInstall,
    responses((status = 201, body = Install), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewInstall>,
) -> Result<(StatusCode, Json<Install>), ApiError> {
    principal.require(Action::Install)?;
    let install = state
        .installs
        .install(
            &principal,
            &body.plugin,
            &body.range,
            parse_policy(body.accept, "accept")?,
        )
        .await?;
    state.runs.installs_changed();
    tracing::info!(plugin = %install.plugin, version = %install.version, "installed");
    Ok((StatusCode::CREATED, Json(install)))
}

/// One install.
#[utoipa::path(get, path = "/v1/installs/{plugin}", tag = "installs",
    params(("plugin" = String, Path, description = "`namespace:name`")),
    responses((status = 200, body = Install), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(plugin): PathParams<String>,
) -> Result<Json<Install>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state.installs.get(&principal.workspace_id, &plugin).await?,
    ))
}

/// Uninstalls a plugin; workflows using it stop validating.
#[utoipa::path(delete, path = "/v1/installs/{plugin}", tag = "installs",
    params(("plugin" = String, Path, description = "`namespace:name`")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(plugin): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::Install)?;
    state.installs.uninstall(&principal, &plugin).await?;
    state.runs.installs_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// The organization's policy.
#[utoipa::path(get, path = "/v1/policy", tag = "installs",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_policy(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<OrgPolicy>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(state.installs.org_policy(&principal).await?))
}

/// Replaces the organization's policy (applies to installs made from now on). 422
/// `invalid_policy` names the field that is not a policy (a host pattern, a network, a
/// repeated set item, an unknown key).
#[utoipa::path(put, path = "/v1/policy", tag = "installs",
    request_body(content = Object, description = "An organization policy (`org.toml` as JSON)"),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn put_policy(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(policy): JsonBody<serde_json::Value>,
) -> Result<Json<OrgPolicy>, ApiError> {
    principal.require(Action::ManagePolicy)?;
    let policy: OrgPolicy = parse_policy(policy, "policy")?;
    let policy = state.installs.set_org_policy(&principal, policy).await?;
    let detail =
        serde_json::to_value(&policy).map_err(|e| ApiError::Internal(format!("policy: {e}")))?;
    state
        .audit
        .record(
            &principal,
            AuditAction::PolicyChange,
            &format!("org/{}", principal.org_name),
            detail,
        )
        .await?;
    Ok(Json(policy))
}

/// A policy document (`accept`, an organization policy) as its type. Policies are parsed
/// in two steps so that what JSON Schema cannot say (a host pattern, a network, a set's
/// items unique) is a 422 naming the field; a set that would silently drop a repeated
/// item is refused too.
fn parse_policy<T>(value: serde_json::Value, what: &str) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let invalid = |message: String| ApiError::unprocessable("invalid_policy", message);
    // An absent `accept` accepts what the organization allows.
    let value = match value {
        serde_json::Value::Null => serde_json::json!({}),
        value => value,
    };
    let parsed: T = serde_path_to_error::deserialize(&value)
        .map_err(|e| invalid(format!("{what}.{}: {}", e.path(), e.inner())))?;
    let reread =
        serde_json::to_value(&parsed).map_err(|e| ApiError::Internal(format!("{what}: {e}")))?;
    match collapsed_array(&value, &reread, what.to_owned()) {
        Some(path) => Err(invalid(format!("{path}: repeated items"))),
        None => Ok(parsed),
    }
}

/// The path of the first array of `input` that `parsed` holds fewer items of.
fn collapsed_array(
    input: &serde_json::Value,
    parsed: &serde_json::Value,
    path: String,
) -> Option<String> {
    use serde_json::Value;
    match (input, parsed) {
        (Value::Array(a), Value::Array(b)) if a.len() > b.len() => Some(path),
        (Value::Array(a), Value::Array(b)) => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| collapsed_array(x, y, format!("{path}[{i}]"))),
        (Value::Object(a), Value::Object(b)) => a.iter().find_map(|(key, x)| {
            b.get(key)
                .and_then(|y| collapsed_array(x, y, format!("{path}.{key}")))
        }),
        _ => None,
    }
}
