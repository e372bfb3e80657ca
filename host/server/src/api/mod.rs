//! The routes, one module per area, collected with their OpenAPI descriptions.

pub mod extract;
pub mod health;
pub mod keys;
pub mod members;
pub mod projects;
pub mod registry;

use axum::extract::DefaultBodyLimit;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Hyyve plugin host API", description = "Multi-tenant API of the hyyve \
        WebAssembly plugin host. Authenticate with `Authorization: Bearer <API key>`; \
        another workspace's objects are always 404."),
    modifiers(&BearerKey)
)]
struct ApiDoc;

struct BearerKey;

impl Modify for BearerKey {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route, with the OpenAPI document they describe.
pub fn routes(max_package_bytes: usize) -> OpenApiRouter<AppState> {
    // Packages are the only large bodies: their limit is set on their route alone.
    let packages = OpenApiRouter::new()
        .routes(routes!(registry::publish))
        .layer(DefaultBodyLimit::max(max_package_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(projects::workspace))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::set_role, members::remove))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(registry::search))
        .routes(routes!(registry::show))
        .layer(DefaultBodyLimit::max(crate::MAX_JSON_BODY))
        .merge(packages)
}
