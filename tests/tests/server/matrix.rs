//! Every endpoint × every role × the caller's own workspace and another: allowed roles
//! get the success status, others 403; another workspace's objects are 404, never 403
//! for a role that could act on its own.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use hyyve_server::roles::{Action, Role, allows};
use serde_json::json;

use crate::{Api, Db};

/// Which object an endpoint's path names.
#[derive(Clone, Copy)]
enum Object {
    None,
    Project,
    Member,
    Key,
}

struct Endpoint {
    method: Method,
    path: &'static str,
    object: Object,
    action: Action,
    /// Status when allowed, on the caller's own workspace.
    success: StatusCode,
}

fn endpoints() -> Vec<Endpoint> {
    use Object::*;
    let e = |method, path, object, action, success| Endpoint {
        method,
        path,
        object,
        action,
        success,
    };
    vec![
        e(
            Method::GET,
            "/v1/workspace",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/projects",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::POST,
            "/v1/projects",
            None,
            Action::WriteProjects,
            StatusCode::CREATED,
        ),
        e(
            Method::GET,
            "/v1/projects/{id}",
            Project,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::PATCH,
            "/v1/projects/{id}",
            Project,
            Action::WriteProjects,
            StatusCode::OK,
        ),
        e(
            Method::DELETE,
            "/v1/projects/{id}",
            Project,
            Action::WriteProjects,
            StatusCode::NO_CONTENT,
        ),
        e(
            Method::GET,
            "/v1/members",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::POST,
            "/v1/members",
            None,
            Action::ManageMembers,
            StatusCode::CREATED,
        ),
        e(
            Method::PATCH,
            "/v1/members/{id}",
            Member,
            Action::ManageMembers,
            StatusCode::OK,
        ),
        e(
            Method::DELETE,
            "/v1/members/{id}",
            Member,
            Action::ManageMembers,
            StatusCode::NO_CONTENT,
        ),
        e(
            Method::GET,
            "/v1/keys",
            None,
            Action::ListKeys,
            StatusCode::OK,
        ),
        e(
            Method::POST,
            "/v1/keys",
            None,
            Action::ManageKeys,
            StatusCode::CREATED,
        ),
        e(
            Method::DELETE,
            "/v1/keys/{id}",
            Key,
            Action::ManageKeys,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/registry/listings",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        // Not a package: allowed roles reach validation, which refuses it.
        e(
            Method::POST,
            "/v1/registry/packages",
            None,
            Action::Publish,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ]
}

/// A fresh object of `kind` in `workspace` (deletes must have something to delete).
async fn make(api: &Api, workspace: &str, kind: Object, n: usize) -> String {
    let t = &api.tenancy;
    match kind {
        Object::None => String::new(),
        Object::Project => {
            t.create_project(workspace, &format!("project-{n}"), "")
                .await
                .unwrap()
                .id
        }
        Object::Member => {
            t.add_member(workspace, &format!("person-{n}"), Role::Viewer)
                .await
                .unwrap()
                .id
        }
        Object::Key => {
            t.create_key(workspace, &format!("key-{n}"), Role::Viewer, "test")
                .await
                .unwrap()
                .key
                .id
        }
    }
}

fn body_for(endpoint: &Endpoint, n: usize) -> Option<(Body, &'static str)> {
    let json = |v: serde_json::Value| Some((Body::from(v.to_string()), "application/json"));
    match (&endpoint.method, endpoint.path) {
        (&Method::POST, "/v1/projects") => json(json!({ "name": format!("new-{n}") })),
        (&Method::PATCH, "/v1/projects/{id}") => json(json!({ "description": "changed" })),
        (&Method::POST, "/v1/members") => {
            json(json!({ "name": format!("new-{n}"), "role": "viewer" }))
        }
        (&Method::PATCH, "/v1/members/{id}") => json(json!({ "role": "member" })),
        (&Method::POST, "/v1/keys") => {
            json(json!({ "name": format!("new-{n}"), "role": "viewer" }))
        }
        (&Method::POST, "/v1/registry/packages") => {
            Some((Body::from("not a package"), "application/octet-stream"))
        }
        _ => None,
    }
}

async fn every_endpoint_role_and_tenant(db: Db) {
    let api = Api::new(db).await;
    let mut n = 0;
    let mut checked = 0;
    let mut beta_ids = Vec::new();
    for endpoint in endpoints() {
        for role in Role::ALL {
            let key = api.alpha.key(role);
            let allowed = allows(role, endpoint.action);
            let workspaces = match endpoint.object {
                Object::None => vec![(&api.alpha.id, true)],
                _ => vec![(&api.alpha.id, true), (&api.beta.id, false)],
            };
            for (workspace, own) in workspaces {
                n += 1;
                let id = make(&api, workspace, endpoint.object, n).await;
                if !own {
                    beta_ids.push(id.clone());
                }
                let path = endpoint.path.replace("{id}", &id);
                let (body, content_type) = match body_for(&endpoint, n) {
                    Some((body, content_type)) => (Some(body), content_type),
                    None => (None, "application/json"),
                };
                let answer = api
                    .send(
                        endpoint.method.clone(),
                        &path,
                        Some(key),
                        body,
                        content_type,
                    )
                    .await;
                let expected = match (allowed, own) {
                    (false, _) => StatusCode::FORBIDDEN,
                    (true, true) => endpoint.success,
                    (true, false) => StatusCode::NOT_FOUND,
                };
                assert_eq!(
                    answer.status,
                    expected,
                    "{} {} as {role:?} on {} workspace: {}",
                    endpoint.method,
                    endpoint.path,
                    if own { "its own" } else { "another" },
                    answer.body
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 15 * 4 + 6 * 4, "every case ran");

    // Lists never show another workspace's objects.
    let owner = api.alpha.key(Role::Owner);
    for path in ["/v1/projects", "/v1/members", "/v1/keys"] {
        let all = api
            .json(
                Method::GET,
                &format!("{path}?pageSize=100"),
                Some(owner),
                None,
            )
            .await;
        let total = all.body["meta"]["total"].as_i64().unwrap();
        assert!(total > 0 && total <= 100, "{path}: {total} items");
        assert_eq!(all.body["meta"]["hasMore"], false);
        for item in all.body["data"].as_array().unwrap() {
            let id = item["id"].as_str().unwrap();
            assert!(
                !beta_ids.iter().any(|b| b == id),
                "{path} lists {id} of beta"
            );
        }
    }
}

#[tokio::test]
async fn every_endpoint_role_and_tenant_on_sqlite() {
    every_endpoint_role_and_tenant(Db::Sqlite).await;
}

#[tokio::test]
async fn every_endpoint_role_and_tenant_on_postgres() {
    every_endpoint_role_and_tenant(Db::Postgres).await;
}

#[tokio::test]
async fn nobody_grants_above_their_own_role() {
    let api = Api::new(Db::Sqlite).await;
    let admin = api.alpha.key(Role::Admin);
    let owner_key = api
        .tenancy
        .create_key(&api.alpha.id, "ci", Role::Owner, "test")
        .await
        .unwrap();
    let owner_member = api
        .tenancy
        .add_member(&api.alpha.id, "grace", Role::Owner)
        .await
        .unwrap();
    let cases = [
        (
            Method::POST,
            "/v1/keys".to_owned(),
            Some(json!({"name": "x", "role": "owner"})),
        ),
        (
            Method::POST,
            "/v1/members".to_owned(),
            Some(json!({"name": "x", "role": "owner"})),
        ),
        (
            Method::DELETE,
            format!("/v1/keys/{}", owner_key.key.id),
            None,
        ),
        (
            Method::PATCH,
            format!("/v1/members/{}", owner_member.id),
            Some(json!({"role": "viewer"})),
        ),
        (
            Method::DELETE,
            format!("/v1/members/{}", owner_member.id),
            None,
        ),
    ];
    for (method, path, body) in cases {
        let answer = api.json(method.clone(), &path, Some(admin), body).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(answer.code(), "forbidden");
    }
    // The owner key still works: nothing above was half-done.
    let answer = api
        .json(Method::GET, "/v1/workspace", Some(&owner_key.secret), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["role"], "owner");
}
