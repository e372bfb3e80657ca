//! The responses every operation can give because of how it is reached, added to the
//! OpenAPI document once instead of in each handler: 401 where a key is required, 400
//! where a body or parameter can be malformed (wrong content type, bad JSON, a query
//! value out of range), 404 where a path names an object, 413 where a body can be too
//! large. The handlers list only what their own logic answers. Bodies whose format has a
//! JSON Schema of its own (the workflow format) are described by that schema, so the
//! document and the parser cannot drift apart.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Schema};

/// Adds the extractor- and middleware-made responses to every operation of `openapi`,
/// and the JSON Schemas of the formats the server parses with serde (workflows,
/// organization policies, workspace grants) where a handler documented only `Object`.
pub fn complete(openapi: &mut OpenApi) {
    if let Err(e) = describe_parsed_formats(openapi) {
        // The document stays valid, only less precise; the contract test catches this.
        tracing::error!(error = %e, "a format's schema could not be added to the OpenAPI document");
    }
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
    if has_body || has_query || has_path {
        add(
            "422",
            "Refused on meaning; every such operation refuses text holding NUL (`invalid_text`)",
        );
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

/// Where a body (or one field of a body's component) is one of the parsed formats.
fn describe_parsed_formats(openapi: &mut OpenApi) -> Result<(), serde_json::Error> {
    let workflow: serde_json::Value =
        serde_json::from_str(&hyyve_workflow::workflow_json_schema())?;
    add_component(openapi, "Workflow", workflow)?;
    add_component(
        openapi,
        "OrgPolicy",
        serde_json::to_value(schemars::schema_for!(hyyve_policy::OrgPolicy))?,
    )?;
    add_component(
        openapi,
        "WorkspaceGrant",
        serde_json::to_value(schemars::schema_for!(hyyve_policy::WorkspaceGrant))?,
    )?;
    for (path, method, component) in [
        ("/v1/workflows", "post", "Workflow"),
        ("/v1/workflows/{id}", "put", "Workflow"),
        ("/v1/policy", "put", "OrgPolicy"),
    ] {
        let Some(item) = openapi.paths.paths.get_mut(path) else {
            continue;
        };
        let operation = match method {
            "post" => item.post.as_mut(),
            _ => item.put.as_mut(),
        };
        if let Some(body) = operation.and_then(|o| o.request_body.as_mut())
            && let Some(content) = body.content.get_mut("application/json")
        {
            content.schema = Some(Ref::from_schema_name(component).into());
        }
    }
    // `NewInstall.accept` is a workspace grant.
    if let Some(components) = openapi.components.as_mut()
        && let Some(RefOr::T(Schema::Object(install))) = components.schemas.get_mut("NewInstall")
        && let Some(accept) = install.properties.get_mut("accept")
    {
        *accept = Ref::from_schema_name("WorkspaceGrant").into();
    }
    Ok(())
}

/// Adds a schemars schema as component `name`, its `$defs` as components beside it.
fn add_component(
    openapi: &mut OpenApi,
    name: &str,
    mut schema: serde_json::Value,
) -> Result<(), serde_json::Error> {
    let defs = schema
        .as_object_mut()
        .and_then(|root| {
            root.remove("$schema");
            root.remove("$defs")
        })
        .unwrap_or_default();
    let components = openapi.components.get_or_insert_with(Default::default);
    let mut add = |name: String, mut value: serde_json::Value| {
        adapt_schema(&mut value);
        serde_json::from_value::<RefOr<Schema>>(value).map(|s| {
            components.schemas.insert(name, s);
        })
    };
    if let serde_json::Value::Object(defs) = defs {
        for (def, value) in defs {
            add(def, value)?;
        }
    }
    add(name.to_owned(), schema)
}

/// Makes one JSON Schema node (and the schemas inside it) what utoipa reads: `$defs`
/// references point at components, and a schema without a type says so (`"type": null`
/// is utoipa's any-value).
fn adapt_schema(node: &mut serde_json::Value) {
    let serde_json::Value::Object(map) = node else {
        return;
    };
    if let Some(reference) = map.get_mut("$ref") {
        if let Some(name) = reference.as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
            *reference = format!("#/components/schemas/{name}").into();
        }
        return;
    }
    let combined = ["oneOf", "anyOf", "allOf"]
        .iter()
        .any(|k| map.contains_key(*k));
    if !combined && !map.contains_key("type") {
        map.insert("type".into(), serde_json::Value::Null);
    }
    if let Some(serde_json::Value::Object(properties)) = map.get_mut("properties") {
        properties.values_mut().for_each(adapt_schema);
    }
    for key in ["items", "additionalProperties"] {
        if let Some(inner) = map.get_mut(key) {
            adapt_schema(inner);
        }
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(serde_json::Value::Array(variants)) = map.get_mut(key) {
            variants.iter_mut().for_each(adapt_schema);
        }
    }
}
