//! `/v1/registry`: the marketplace (search, show), publishing signed packages and
//! yanking versions at their publisher's signed request.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use hyyve_policy::AuditAction;
use hyyve_policy::PluginKind;
use hyyve_registry::VersionRecord;
use hyyve_registry::marketplace::{Listing, ListingDetail, SearchQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::{JsonBody, PathParams, QueryParams};
use crate::error::{ApiError, ErrorBody};
use crate::ids::iso8601;
use crate::roles::Action;
use crate::tenancy::{ListPage, PageMeta, Principal};

/// Search filters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SearchParams {
    /// Words that must all appear in id, title, description or categories.
    #[serde(default)]
    pub q: String,
    /// `node`, `provider` or `channel` (empty: any).
    #[serde(default, deserialize_with = "crate::api::extract::empty_as_none")]
    #[param(value_type = Option<String>, pattern = "^(node|provider|channel)?$")]
    pub kind: Option<PluginKind>,
    /// One category.
    pub category: Option<String>,
    /// One publisher.
    pub publisher: Option<String>,
    /// 1-based page.
    #[serde(
        default = "crate::tenancy::first_page",
        deserialize_with = "crate::tenancy::page_number"
    )]
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: u32,
    /// 1 to 100.
    #[serde(
        default = "crate::tenancy::default_page_size",
        deserialize_with = "crate::tenancy::page_size"
    )]
    #[param(minimum = 1, maximum = 100)]
    pub page_size: u32,
}

/// A listing with its readme and every version, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListingDetailView {
    /// The listing.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub listing: Listing,
    /// Markdown readme.
    pub readme: Option<String>,
    /// Every version, oldest first (yanked ones marked).
    pub versions: Vec<VersionView>,
}

/// One published version.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    /// `namespace:name`.
    pub id: String,
    /// Exact version.
    pub version: String,
    /// `sha256:<hex>` of the component: installs pin this.
    pub component_digest: String,
    /// Component bytes.
    pub component_size: i64,
    /// The manifest (`hyyve.toml`) as published: the capabilities it asks for.
    pub manifest: String,
    /// ISO-8601 UTC.
    pub published_at: String,
    /// ISO-8601 UTC, when yanked.
    pub yanked_at: Option<String>,
    /// Why it was yanked.
    pub yank_reason: Option<String>,
}

impl From<VersionRecord> for VersionView {
    fn from(v: VersionRecord) -> Self {
        VersionView {
            id: v.id,
            version: v.version.to_string(),
            component_digest: v.component_digest,
            component_size: v.component_size,
            manifest: v.manifest_text,
            published_at: iso8601(v.published_at),
            yanked_at: v.yanked_at.map(iso8601),
            yank_reason: v.yank_reason,
        }
    }
}

impl From<ListingDetail> for ListingDetailView {
    fn from(d: ListingDetail) -> Self {
        ListingDetailView {
            listing: d.listing,
            readme: d.readme,
            versions: d.versions.into_iter().map(VersionView::from).collect(),
        }
    }
}

/// Searches marketplace listings.
#[utoipa::path(get, path = "/v1/registry/listings", tag = "registry", params(SearchParams),
    responses((status = 200, description = "`{data: [listing], meta}`", body = Object),
        (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn search(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<SearchParams>,
) -> Result<Json<ListPage<Listing>>, ApiError> {
    principal.require(Action::Read)?;
    let found = state
        .registry
        .search(&SearchQuery {
            text: params.q,
            kind: params.kind,
            category: params.category,
            publisher: params.publisher,
            page: params.page,
            per_page: params.page_size,
        })
        .await?;
    let shown = (found.page as i64 - 1) * found.per_page as i64 + found.listings.len() as i64;
    Ok(Json(ListPage {
        data: found.listings,
        meta: PageMeta {
            total: found.total,
            page: found.page,
            page_size: found.per_page,
            has_more: shown < found.total,
        },
    }))
}

/// A listing with its versions (yanked ones marked).
#[utoipa::path(get, path = "/v1/registry/listings/{id}", tag = "registry",
    params(("id" = String, Path, description = "`namespace:name`")),
    responses((status = 200, body = ListingDetailView), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    principal: Principal,
    PathParams(id): PathParams<String>,
) -> Result<Json<ListingDetailView>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(state.registry.show(&id).await?.into()))
}

/// Publishes a signed package (the bytes of `hyyve plugin package` + `sign`). Every
/// rejection is a 422 (409 for an existing version) with the registry's code.
#[utoipa::path(post, path = "/v1/registry/packages", tag = "registry",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = Object), (status = 409, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn publish(
    State(state): State<AppState>,
    principal: Principal,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    principal.require(Action::Publish)?;
    let bytes = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(state.max_package_bytes),
        _ => ApiError::BadRequest(r.body_text()),
    })?;
    let record = state.registry.publish(&bytes).await?;
    tracing::info!(plugin = %record.reference(), by = %principal.key_id, "published");
    let detail = serde_json::json!({ "digest": record.component_digest });
    state
        .audit
        .record(
            &principal,
            AuditAction::PackagePublish,
            &record.reference(),
            detail,
        )
        .await?;
    let body = serde_json::json!({
        "id": record.id,
        "version": record.version.to_string(),
        "componentDigest": record.component_digest,
        "componentSize": record.component_size,
    });
    Ok((StatusCode::CREATED, Json(body)))
}

/// Longest yank reason, in characters.
const MAX_YANK_REASON: usize = 500;

/// A publisher's signed request to yank a version.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct YankRequest {
    /// Why (shown to anyone resolving to the version): 1 to 500 characters, not only
    /// spaces.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: String,
    /// The signing key, a key of the publisher owning the plugin's namespace.
    pub key_id: String,
    /// Base64 Ed25519 signature over `hyyve-yank-v1\n{id}\n{version}\n{reason}\n`
    /// (`hyyve keys sign-yank` prints the whole body).
    pub signature: String,
}

/// Yanks a version: no new install resolves to it (422 `version_yanked`); installs
/// pinned to it keep running, and the audit record says so. An API key allowed to publish is not enough: the
/// request carries a signature by the plugin's publisher (422 `bad_signature`,
/// `foreign_key` or `unknown_key` otherwise). Yanking a yanked version keeps the first
/// reason.
#[utoipa::path(post, path = "/v1/registry/listings/{id}/versions/{version}/yank",
    tag = "registry",
    params(("id" = String, Path, description = "`namespace:name`"),
        ("version" = String, Path, description = "Semantic version",
            pattern = r"^(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})\.(0|[1-9][0-9]{0,18})(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")),
    request_body = YankRequest,
    responses((status = 200, description = "The version, yanked", body = VersionView),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn yank(
    State(state): State<AppState>,
    principal: Principal,
    PathParams((id, version)): PathParams<(String, String)>,
    JsonBody(request): JsonBody<YankRequest>,
) -> Result<Json<VersionView>, ApiError> {
    principal.require(Action::Publish)?;
    let version: semver::Version = version
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("version `{version}`: {e}")))?;
    let length = request.reason.chars().count();
    if crate::api::extract::blank(&request.reason) || length > MAX_YANK_REASON {
        return Err(ApiError::BadRequest(format!(
            "reason: 1 to {MAX_YANK_REASON} characters (got {length})"
        )));
    }
    let record = state
        .registry
        .yank_signed(
            &id,
            &version,
            &request.reason,
            &request.key_id,
            &request.signature,
        )
        .await?;
    let detail = serde_json::json!({
        "reason": request.reason,
        "keyId": request.key_id,
        "effect": hyyve_registry::YANK_EFFECT,
    });
    state
        .audit
        .record(
            &principal,
            AuditAction::PackageYank,
            &record.reference(),
            detail,
        )
        .await?;
    Ok(Json(record.into()))
}
