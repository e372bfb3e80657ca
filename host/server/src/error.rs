//! The one error type of the API and its JSON form:
//! `{"error": {"code", "message", "details", "requestId"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyyve_registry::RegistryError;
use serde::Serialize;
use utoipa::ToSchema;

/// What went wrong with a request; each variant has its status and stable code.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter is malformed, of the wrong type or has unknown fields.
    #[error("{0}")]
    BadRequest(String),
    /// No API key, an unknown one, or a revoked one.
    #[error("a valid API key is required (Authorization: Bearer <key>)")]
    Unauthenticated,
    /// The key's role may not do this.
    #[error("role `{role}` may not {action}")]
    Forbidden {
        /// The caller's role.
        role: &'static str,
        /// What was attempted.
        action: &'static str,
    },
    /// Absent, or belongs to another workspace (never told apart).
    #[error("{0} not found")]
    NotFound(String),
    /// Conflicts with what exists (a duplicate name, a published version).
    #[error("{message}")]
    Conflict {
        /// Stable machine-readable code.
        code: String,
        /// For people.
        message: String,
    },
    /// The body is over the limit.
    #[error("request body over {0} bytes")]
    TooLarge(usize),
    /// Well-formed but refused by a rule, with its own code (e.g. a registry rejection).
    #[error("{message}")]
    Unprocessable {
        /// Stable machine-readable code.
        code: String,
        /// For people.
        message: String,
        /// Where and what exactly (e.g. the node and field of an invalid workflow), or null.
        details: serde_json::Value,
    },
    /// A plan quota is used up for this month.
    #[error("{message}")]
    QuotaExceeded {
        /// For people: which quota, its limit and when it resets.
        message: String,
        /// `{quota, limit, used, plan, resetsAt}`.
        details: serde_json::Value,
    },
    /// A failure of ours; logged, never shown in detail.
    #[error("internal error")]
    Internal(String),
}

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `version_exists`.
    pub code: String,
    /// For people.
    pub message: String,
    /// Extra structured information, or null.
    pub details: serde_json::Value,
    /// The request's id (also the `x-request-id` response header).
    pub request_id: String,
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 422 without details.
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable {
            code: code.into(),
            message: message.into(),
            details: serde_json::Value::Null,
        }
    }

    /// The structured details of the error body.
    fn details(&self) -> serde_json::Value {
        match self {
            ApiError::Unprocessable { details, .. } | ApiError::QuotaExceeded { details, .. } => {
                details.clone()
            }
            _ => serde_json::Value::Null,
        }
    }

    /// The stable code.
    pub fn code(&self) -> String {
        match self {
            ApiError::BadRequest(_) => "bad_request".into(),
            ApiError::Unauthenticated => "unauthenticated".into(),
            ApiError::Forbidden { .. } => "forbidden".into(),
            ApiError::NotFound(_) => "not_found".into(),
            ApiError::Conflict { code, .. } => code.clone(),
            ApiError::TooLarge(_) => "body_too_large".into(),
            ApiError::Unprocessable { code, .. } => code.clone(),
            ApiError::QuotaExceeded { .. } => "quota_exceeded".into(),
            ApiError::Internal(_) => "internal".into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(format!("database: {e}"))
    }
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        match e.code() {
            "not_found" => ApiError::NotFound(e.to_string()),
            "storage_failed" | "config_invalid" => ApiError::Internal(e.to_string()),
            "package_too_large" => ApiError::unprocessable(e.code(), e.to_string()),
            "version_exists" | "already_registered" | "not_pending" => ApiError::Conflict {
                code: e.code().into(),
                message: e.to_string(),
            },
            code => ApiError::unprocessable(code, e.to_string()),
        }
    }
}

tokio::task_local! {
    /// The id of the request being served, for error bodies.
    pub static REQUEST_ID: String;
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let request_id = REQUEST_ID.try_with(Clone::clone).unwrap_or_default();
        let message = match &self {
            ApiError::Internal(detail) => {
                tracing::error!(request_id, %detail, "request failed");
                self.to_string()
            }
            other => other.to_string(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                details: self.details(),
                request_id,
            },
        };
        (self.status(), Json(body)).into_response()
    }
}
