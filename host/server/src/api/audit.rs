//! `/v1/audit`: the workspace's audit log, newest first, and a check of its hash chain.

use axum::Json;
use axum::extract::State;

use crate::AppState;
use crate::api::extract::QueryParams;
use crate::audit::{AuditQuery, AuditRecord, ChainCheck};
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::tenancy::{ListPage, Principal};

/// Entries of the workspace's audit log, newest first: installs, grants, policy
/// changes, vetting decisions, keys, members, secrets (names only) and the capabilities
/// plugins were denied during runs.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = ListPage<AuditRecord>), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(query): QueryParams<AuditQuery>,
) -> Result<Json<ListPage<AuditRecord>>, ApiError> {
    principal.require(Action::ReadAudit)?;
    Ok(Json(
        state.audit.list(&principal.workspace_id, query).await?,
    ))
}

/// Re-checks the whole chain: each entry follows the previous one and matches its hash,
/// so an entry edited, removed or reordered in the database is found.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses((status = 200, body = ChainCheck), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ChainCheck>, ApiError> {
    principal.require(Action::ReadAudit)?;
    Ok(Json(state.audit.verify(&principal.workspace_id).await?))
}
