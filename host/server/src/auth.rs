//! The caller of a request: `Authorization: Bearer <API key>` resolved to a
//! [`Principal`], and role checks against the permission matrix.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;
use crate::roles::{Action, Role, allows};
use crate::tenancy::Principal;

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let secret = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(ApiError::Unauthenticated)?;
        let principal = state
            .tenancy
            .authenticate(secret)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        tracing::Span::current().record("workspace", principal.workspace_id.as_str());
        Ok(principal)
    }
}

impl Principal {
    /// Ok when the principal's role may do `action`; 403 otherwise.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        match allows(self.role, action) {
            true => Ok(()),
            false => Err(ApiError::Forbidden {
                role: self.role.as_str(),
                action: action.describe(),
            }),
        }
    }

    /// Ok when the principal may hand out `role` (to a key or a member): never above its own.
    pub fn may_grant(&self, role: Role) -> Result<(), ApiError> {
        match self.role.at_least(role) {
            true => Ok(()),
            false => Err(ApiError::Forbidden {
                role: self.role.as_str(),
                action: "grant a role above its own",
            }),
        }
    }
}
