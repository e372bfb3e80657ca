//! The responses every operation can give because of how it is reached, added to the
//! OpenAPI document once instead of in each handler: 401 where a key is required, 400
//! where a body or parameter can be malformed (wrong content type, bad JSON, a query
//! value out of range), 404 where a path names an object, 413 where a body can be too
//! large. The handlers list only what their own logic answers.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder};

/// Adds the extractor- and middleware-made responses to every operation of `openapi`.
pub fn complete(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            complete_operation(operation);
        }
    }
}

fn complete_operation(operation: &mut Operation) {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has_path = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path));
    let has_query = parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let has_body = operation.request_body.is_some();
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut add = |status: &str, why: &str| {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(why));
    };
    if secured {
        add("401", "No valid API key (`unauthenticated`)");
    }
    if has_body || has_query || has_path {
        add(
            "400",
            "Malformed request: content type, JSON, or a parameter out of range",
        );
    }
    if has_path {
        add(
            "404",
            "No such object in this workspace (another workspace's objects are 404 too)",
        );
    }
    if has_body {
        add("413", "The body is larger than the server accepts");
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build(),
    )
}
