//! `/v1/vetting`: the organization's review queue. An organization that requires
//! vetting installs a third-party version only once its owner approved it here (or
//! co-signed it in the registry); installing queues the request.

use axum::Json;
use axum::extract::State;
use hyyve_policy::AuditAction;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::tenancy::Principal;

/// Which requests to list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QueueParams {
    /// Include decided requests (default: pending only).
    #[serde(default)]
    pub all: bool,
}

/// A decision.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Why: kept with the request, shown to whoever installs; not only spaces.
    #[schema(min_length = 1, pattern = r"\S")]
    pub reason: String,
}

/// The organization's requests, oldest first, each with the capabilities the version
/// asks for and the change from the last approved version.
#[utoipa::path(get, path = "/v1/vetting", tag = "vetting", params(QueueParams),
    responses((status = 200, body = Vec<Object>), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn queue(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<QueueParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(Action::Vet)?;
    let requests = state
        .registry
        .vetting_queue(&principal.org_name, params.all)
        .await?;
    Ok(Json(to_json(&requests)?))
}

/// Approves a pending request: the version becomes installable in every workspace of
/// the organization. 409 `not_pending` once decided.
#[utoipa::path(post, path = "/v1/vetting/{id}/approve", tag = "vetting",
    params(("id" = i64, Path, description = "Request id")), request_body = Decision,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<i64>,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&state, &principal, id, &decision, Verdict::Approve).await
}

/// Rejects a pending request. 409 `not_pending` once decided.
#[utoipa::path(post, path = "/v1/vetting/{id}/reject", tag = "vetting",
    params(("id" = i64, Path, description = "Request id")), request_body = Decision,
    responses((status = 200, body = Object), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<i64>,
    JsonBody(decision): JsonBody<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    decide(&state, &principal, id, &decision, Verdict::Reject).await
}

enum Verdict {
    Approve,
    Reject,
}

/// Records the owner's decision in the registry, then in the audit log.
async fn decide(
    state: &AppState,
    principal: &Principal,
    id: i64,
    decision: &Decision,
    verdict: Verdict,
) -> Result<Json<serde_json::Value>, ApiError> {
    principal.require(Action::Vet)?;
    let reason = reason(decision)?;
    let (org, actor) = (&principal.org_name, &principal.key_name);
    let (request, action) = match verdict {
        Verdict::Approve => (
            state.registry.approve(org, id, actor, reason, None).await?,
            AuditAction::VettingApprove,
        ),
        Verdict::Reject => (
            state.registry.reject(org, id, actor, reason).await?,
            AuditAction::VettingReject,
        ),
    };
    let subject = format!("{}@{}", request.plugin, request.version);
    let detail = serde_json::json!({
        "request": request.id,
        "digest": request.component_digest,
        "reason": reason,
    });
    state
        .audit
        .record(principal, action, &subject, detail)
        .await?;
    Ok(Json(to_json(&request)?))
}

/// A decision must say why.
fn reason(decision: &Decision) -> Result<&str, ApiError> {
    let reason = decision.reason.trim();
    if crate::api::extract::blank(&decision.reason) {
        return Err(ApiError::BadRequest("reason: must not be empty".into()));
    }
    Ok(reason)
}

fn to_json(value: &impl serde::Serialize) -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::Internal(format!("vetting request: {e}")))
}
