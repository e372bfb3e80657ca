//! The routes, one module per area, collected with their OpenAPI descriptions.

pub mod audit;
pub mod contract;
pub mod extract;
pub mod health;
pub mod installs;
pub mod keys;
pub mod members;
pub mod models;
pub mod projects;
pub mod registry;
pub mod runs;
pub mod secrets;
pub mod usage;
pub mod vetting;
pub mod workflows;

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
        .routes(routes!(health::metrics))
        .routes(routes!(projects::workspace))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(members::list, members::add))
        .routes(routes!(members::set_role, members::remove))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(registry::search))
        .routes(routes!(registry::show))
        .routes(routes!(registry::yank))
        .routes(routes!(installs::list, installs::create))
        .routes(routes!(installs::get, installs::delete))
        .routes(routes!(installs::get_policy, installs::put_policy))
        .routes(routes!(workflows::list, workflows::create))
        .routes(routes!(
            workflows::get,
            workflows::update,
            workflows::delete
        ))
        .routes(routes!(workflows::versions))
        .routes(routes!(workflows::version))
        .routes(routes!(runs::start))
        .routes(routes!(runs::list))
        .routes(routes!(runs::get))
        .routes(routes!(runs::cancel))
        .routes(routes!(runs::events))
        .routes(routes!(vetting::queue))
        .routes(routes!(vetting::approve))
        .routes(routes!(vetting::reject))
        .routes(routes!(usage::get))
        .routes(routes!(usage::export))
        .routes(routes!(models::list))
        .routes(routes!(models::put, models::delete))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::put, secrets::delete))
        .routes(routes!(audit::list))
        .routes(routes!(audit::verify))
        .layer(DefaultBodyLimit::max(crate::MAX_JSON_BODY))
        .merge(packages)
}
