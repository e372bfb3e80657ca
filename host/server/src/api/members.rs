//! `/v1/members`: people of the workspace and their roles.

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
use crate::tenancy::{ListPage, Member, PageRequest, Principal};

/// Lists members.
#[utoipa::path(get, path = "/v1/members", tag = "tenancy", params(PageRequest),
    responses((status = 200, body = ListPage<Member>), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(page): QueryParams<PageRequest>,
) -> Result<Json<ListPage<Member>>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(
        state.tenancy.members(&principal.workspace_id, page).await?,
    ))
}

/// A new member.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    /// Handle or e-mail, unique in the workspace: 1 to 200 characters, not only spaces.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Not above the caller's own.
    pub role: Role,
}

/// A role change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    /// Not above the caller's own.
    pub role: Role,
}

/// Adds a member.
#[utoipa::path(post, path = "/v1/members", tag = "tenancy", request_body = NewMember,
    responses((status = 201, body = Member), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add(
    State(state): State<AppState>,
    principal: Principal,
    JsonBody(body): JsonBody<NewMember>,
) -> Result<(StatusCode, Json<Member>), ApiError> {
    principal.require(Action::ManageMembers)?;
    principal.may_grant(body.role)?;
    if crate::api::extract::blank(&body.name) || body.name.chars().count() > 200 {
        return Err(ApiError::BadRequest("name: 1 to 200 characters".into()));
    }
    let member = state
        .tenancy
        .add_member(&principal.workspace_id, &body.name, body.role)
        .await?;
    let detail = serde_json::json!({ "name": member.name, "role": member.role });
    state
        .audit
        .record(
            &principal,
            AuditAction::MemberAdd,
            &format!("member/{}", member.id),
            detail,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(member)))
}

/// Changes a member's role (neither the old nor the new role above the caller's).
#[utoipa::path(patch, path = "/v1/members/{id}", tag = "tenancy", request_body = RoleChange,
    params(("id" = String, Path, description = "`mem_…`")),
    responses((status = 200, body = Member), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_role(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<RoleChange>,
) -> Result<Json<Member>, ApiError> {
    principal.require(Action::ManageMembers)?;
    let current = state.tenancy.member(&principal.workspace_id, &id).await?;
    principal.may_grant(current.role)?;
    principal.may_grant(body.role)?;
    let member = state
        .tenancy
        .set_member_role(&principal.workspace_id, &id, body.role)
        .await?;
    let detail =
        serde_json::json!({ "name": member.name, "from": current.role, "to": member.role });
    state
        .audit
        .record(
            &principal,
            AuditAction::MemberRole,
            &format!("member/{id}"),
            detail,
        )
        .await?;
    Ok(Json(member))
}

/// Removes a member (not one above the caller's role).
#[utoipa::path(delete, path = "/v1/members/{id}", tag = "tenancy",
    params(("id" = String, Path, description = "`mem_…`")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    principal.require(Action::ManageMembers)?;
    let current = state.tenancy.member(&principal.workspace_id, &id).await?;
    principal.may_grant(current.role)?;
    state
        .tenancy
        .remove_member(&principal.workspace_id, &id)
        .await?;
    let detail = serde_json::json!({ "name": current.name, "role": current.role });
    state
        .audit
        .record(
            &principal,
            AuditAction::MemberRemove,
            &format!("member/{id}"),
            detail,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
