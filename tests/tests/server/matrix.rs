//! Every endpoint × every role × the caller's own workspace and another: allowed roles
//! get the success status, others 403; another workspace's objects are 404, never 403
//! for a role that could act on its own.
//!
//! Not in the table, because one success changes what the next role would meet (the
//! second install of a plugin is a 409, a decided review cannot be decided again):
//! `POST`/`DELETE /v1/installs` (their own role-by-role test is below) and vetting's
//! approve and reject (owner allowed, admin refused, in `runs.rs`).

use axum::body::Body;
use axum::http::{Method, StatusCode};
use hyyve_server::roles::{Action, Role, allows};
use serde_json::json;

use crate::{Api, Db, Workspace};

/// Which object an endpoint's path names.
#[derive(Clone, Copy)]
enum Object {
    None,
    Project,
    Member,
    Key,
    Workflow,
    /// A finished run.
    Run,
    /// A secret's name.
    Secret,
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
        e(
            Method::GET,
            "/v1/registry/listings/acme:json",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/installs",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/installs/acme:json",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/policy",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::PUT,
            "/v1/policy",
            None,
            Action::ManagePolicy,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/vetting",
            None,
            Action::Vet,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/workflows",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::POST,
            "/v1/workflows",
            None,
            Action::WriteWorkflows,
            StatusCode::CREATED,
        ),
        e(
            Method::GET,
            "/v1/workflows/{id}",
            Workflow,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::PUT,
            "/v1/workflows/{id}",
            Workflow,
            Action::WriteWorkflows,
            StatusCode::OK,
        ),
        e(
            Method::DELETE,
            "/v1/workflows/{id}",
            Workflow,
            Action::WriteWorkflows,
            StatusCode::NO_CONTENT,
        ),
        e(
            Method::GET,
            "/v1/workflows/{id}/versions",
            Workflow,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/workflows/{id}/versions/1",
            Workflow,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::POST,
            "/v1/workflows/{id}/runs",
            Workflow,
            Action::Run,
            StatusCode::ACCEPTED,
        ),
        e(Method::GET, "/v1/runs", None, Action::Read, StatusCode::OK),
        e(
            Method::GET,
            "/v1/runs/{id}",
            Run,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/runs/{id}/events",
            Run,
            Action::Read,
            StatusCode::OK,
        ),
        // The run has finished: allowed roles reach the state check, which refuses.
        e(
            Method::POST,
            "/v1/runs/{id}/cancel",
            Run,
            Action::Run,
            StatusCode::CONFLICT,
        ),
        e(Method::GET, "/v1/usage", None, Action::Read, StatusCode::OK),
        e(
            Method::GET,
            "/v1/usage/export",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/secrets",
            None,
            Action::Read,
            StatusCode::OK,
        ),
        // A new name each time: a write is an upsert, so it names no other tenant's object.
        e(
            Method::PUT,
            "/v1/secrets/NEW_{n}",
            None,
            Action::ManageSecrets,
            StatusCode::CREATED,
        ),
        e(
            Method::DELETE,
            "/v1/secrets/{id}",
            Secret,
            Action::ManageSecrets,
            StatusCode::NO_CONTENT,
        ),
        e(
            Method::GET,
            "/v1/audit",
            None,
            Action::ReadAudit,
            StatusCode::OK,
        ),
        e(
            Method::GET,
            "/v1/audit/verify",
            None,
            Action::ReadAudit,
            StatusCode::OK,
        ),
    ]
}

/// A workflow every workspace of the fixture can run (`acme:json` is installed in both).
fn one_node(name: &str) -> serde_json::Value {
    json!({
        "name": name,
        "inputs": { "data": { "type": "object" } },
        "nodes": [{ "id": "a", "plugin": "acme:json", "type": "query",
                    "config": { "expression": "items" } }],
        "edges": [{ "from": "$input.data", "to": "a.data" }]
    })
}

/// An owner's JSON request in `workspace`; the answer's body after checking its status.
async fn as_owner(
    api: &Api,
    workspace: &Workspace,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    status: StatusCode,
) -> serde_json::Value {
    let answer = api
        .json(method, path, Some(workspace.key(Role::Owner)), body)
        .await;
    assert_eq!(answer.status, status, "{path}: {}", answer.body);
    answer.body
}

/// A finished run of a new workflow in `workspace`.
async fn finished_run(api: &Api, workspace: &Workspace, n: usize) -> String {
    let created = as_owner(
        api,
        workspace,
        Method::POST,
        "/v1/workflows",
        Some(one_node(&format!("run-{n}"))),
        StatusCode::CREATED,
    )
    .await;
    let workflow = created["workflowId"].as_str().unwrap();
    let run = as_owner(
        api,
        workspace,
        Method::POST,
        &format!("/v1/workflows/{workflow}/runs"),
        Some(json!({ "input": { "data": { "items": [] } } })),
        StatusCode::ACCEPTED,
    )
    .await;
    let id = run["id"].as_str().unwrap().to_owned();
    for _ in 0..2000 {
        let run = as_owner(
            api,
            workspace,
            Method::GET,
            &format!("/v1/runs/{id}"),
            None,
            StatusCode::OK,
        )
        .await;
        if !matches!(run["status"].as_str(), Some("queued" | "running")) {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {id} did not finish");
}

/// A fresh object of `kind` in `workspace` (deletes must have something to delete).
async fn make(api: &Api, workspace: &Workspace, kind: Object, n: usize) -> String {
    let t = &api.tenancy;
    match kind {
        Object::None => String::new(),
        Object::Project => {
            t.create_project(&workspace.id, &format!("project-{n}"), "")
                .await
                .unwrap()
                .id
        }
        Object::Member => {
            t.add_member(&workspace.id, &format!("person-{n}"), Role::Viewer)
                .await
                .unwrap()
                .id
        }
        Object::Key => {
            t.create_key(&workspace.id, &format!("key-{n}"), Role::Viewer, "test")
                .await
                .unwrap()
                .key
                .id
        }
        Object::Workflow => {
            let created = as_owner(
                api,
                workspace,
                Method::POST,
                "/v1/workflows",
                Some(one_node(&format!("workflow-{n}"))),
                StatusCode::CREATED,
            )
            .await;
            created["workflowId"].as_str().unwrap().to_owned()
        }
        Object::Run => finished_run(api, workspace, n).await,
        Object::Secret => {
            let name = format!("SECRET_{n}");
            as_owner(
                api,
                workspace,
                Method::PUT,
                &format!("/v1/secrets/{name}"),
                Some(json!({ "value": "v" })),
                StatusCode::CREATED,
            )
            .await;
            name
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
        (&Method::PUT, "/v1/policy") => json(json!({ "require_vetting": false })),
        (&Method::POST, "/v1/workflows") => json(one_node(&format!("new-{n}"))),
        (&Method::PUT, "/v1/workflows/{id}") => json(one_node(&format!("edited-{n}"))),
        (&Method::POST, "/v1/workflows/{id}/runs") => {
            json(json!({ "input": { "data": { "items": [] } } }))
        }
        (&Method::PUT, "/v1/secrets/NEW_{n}") => json(json!({ "value": "v" })),
        _ => None,
    }
}

async fn every_endpoint_role_and_tenant(db: Db) {
    let api = Api::new(db).await;
    for workspace in [&api.alpha, &api.beta] {
        as_owner(
            &api,
            workspace,
            Method::POST,
            "/v1/installs",
            Some(json!({ "plugin": "acme:json" })),
            StatusCode::CREATED,
        )
        .await;
    }
    let mut n = 0;
    let mut checked = 0;
    let mut beta_ids = Vec::new();
    for endpoint in endpoints() {
        for role in Role::ALL {
            let key = api.alpha.key(role);
            let allowed = allows(role, endpoint.action);
            let workspaces = match endpoint.object {
                Object::None => vec![(&api.alpha, true)],
                _ => vec![(&api.alpha, true), (&api.beta, false)],
            };
            for (workspace, own) in workspaces {
                n += 1;
                let id = make(&api, workspace, endpoint.object, n).await;
                if !own {
                    beta_ids.push(id.clone());
                }
                let path = endpoint
                    .path
                    .replace("{id}", &id)
                    .replace("{n}", &n.to_string());
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
    let all = endpoints();
    let (named, unnamed) = all
        .iter()
        .partition::<Vec<_>, _>(|e| !matches!(e.object, Object::None));
    assert_eq!(named.len(), 16);
    assert_eq!(unnamed.len(), 24);
    assert_eq!(
        checked,
        (named.len() * 2 + unnamed.len()) * Role::ALL.len(),
        "every case ran"
    );

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

/// Installing and uninstalling, role by role: each allowed role installs and uninstalls
/// in turn (a second install would be a conflict, so these are not in the table above);
/// the others are refused both, and the install they met stays.
#[tokio::test]
async fn installs_change_by_role_and_stay_in_their_workspace() {
    let api = Api::new(Db::Sqlite).await;
    let install = || Some(json!({ "plugin": "acme:flaky" }));
    for role in Role::ALL {
        let key = api.alpha.key(role);
        let allowed = allows(role, Action::Install);
        let added = api
            .json(Method::POST, "/v1/installs", Some(key), install())
            .await;
        let expected = match allowed {
            true => StatusCode::CREATED,
            false => StatusCode::FORBIDDEN,
        };
        assert_eq!(
            added.status, expected,
            "install as {role:?}: {}",
            added.body
        );
        if !allowed {
            as_owner(
                &api,
                &api.alpha,
                Method::POST,
                "/v1/installs",
                install(),
                StatusCode::CREATED,
            )
            .await;
        }
        // Another workspace names the same plugin and finds nothing of alpha's.
        let other = api
            .json(
                Method::DELETE,
                "/v1/installs/acme:flaky",
                Some(api.beta.key(Role::Owner)),
                None,
            )
            .await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.body);
        let removed = api
            .json(Method::DELETE, "/v1/installs/acme:flaky", Some(key), None)
            .await;
        let expected = match allowed {
            true => StatusCode::NO_CONTENT,
            false => StatusCode::FORBIDDEN,
        };
        assert_eq!(
            removed.status, expected,
            "uninstall as {role:?}: {}",
            removed.body
        );
        if !allowed {
            as_owner(
                &api,
                &api.alpha,
                Method::DELETE,
                "/v1/installs/acme:flaky",
                None,
                StatusCode::NO_CONTENT,
            )
            .await;
        }
    }
}
