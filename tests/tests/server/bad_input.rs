//! Bad requests: each gets its status, a code and the error envelope with the request id,
//! and changes nothing.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use hyyve_server::roles::Role;
use serde_json::json;

use crate::{Api, Db, MAX_PACKAGE_BYTES};

/// Query and path values out of their documented range are refused with the JSON error
/// form, not clamped or answered in plain text; an empty optional filter is no filter.
#[tokio::test]
async fn parameters_outside_their_documented_range() {
    let api = Api::new(Db::Sqlite).await;
    let viewer = api.alpha.key(Role::Viewer);
    for path in [
        "/v1/workflows?pageSize=101",
        "/v1/workflows?pageSize=0",
        "/v1/runs?page=0",
        "/v1/audit?pageSize=2147483648",
        "/v1/registry/listings?pageSize=1000",
        "/v1/registry/listings?kind=widget",
        "/v1/usage?from=yesterday",
    ] {
        let key = if path.starts_with("/v1/audit") {
            api.alpha.key(Role::Admin)
        } else {
            viewer
        };
        let answer = api.json(Method::GET, path, Some(key), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "bad_request", "{path}");
    }
    for path in [
        "/v1/workflows?pageSize=100",
        "/v1/registry/listings?kind=&category=",
        "/v1/usage?from=&to=",
    ] {
        let answer = api.json(Method::GET, path, Some(viewer), None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
    }
    let answer = api
        .json(
            Method::POST,
            "/v1/vetting/9223372036854775808/approve",
            Some(api.alpha.key(Role::Owner)),
            Some(json!({ "reason": "ok" })),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert_eq!(answer.code(), "bad_request");
}

/// Policy documents that parse as JSON but not as a policy are 422 naming the field.
#[tokio::test]
async fn policies_that_are_not_policies() {
    let api = Api::new(Db::Sqlite).await;
    let owner = api.alpha.key(Role::Owner);
    for (body, says) in [
        (
            json!({ "http": { "allow": ["not a host!"] } }),
            "policy.http.allow[0]",
        ),
        (
            json!({ "trusted_publishers": ["acme", "acme"] }),
            "policy.trusted_publishers: repeated",
        ),
        (json!({ "colour": "red" }), "unknown field"),
    ] {
        let answer = api
            .json(Method::PUT, "/v1/policy", Some(owner), Some(body.clone()))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "invalid_policy");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let answer = api
        .json(
            Method::POST,
            "/v1/installs",
            Some(owner),
            Some(json!({ "plugin": "acme:json", "accept": { "private_networks": ["nope"] } })),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.body
    );
    assert_eq!(answer.code(), "invalid_policy");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("accept.private_networks[0]")
    );
}

#[tokio::test]
async fn malformed_wrong_typed_unknown_and_oversized_bodies() {
    let api = Api::new(Db::Sqlite).await;
    let key = api.alpha.key(Role::Member);
    let raw = |text: String| Some(Body::from(text));
    let cases = [
        (r#"{"name": "#.to_owned(), "EOF"),
        (r#"{"name": 5}"#.to_owned(), "name"),
        (
            r#"{"name": "x", "colour": "red"}"#.to_owned(),
            "unknown field `colour`",
        ),
        (r#"["x"]"#.to_owned(), "invalid type"),
        (r#"{"name": "   "}"#.to_owned(), "name: 1 to 100 characters"),
    ];
    for (text, says) in cases {
        let answer = api
            .send(
                Method::POST,
                "/v1/projects",
                Some(key),
                raw(text.clone()),
                "application/json",
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{text}: {}",
            answer.body
        );
        assert_eq!(answer.code(), "bad_request");
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{text}: {message}");
        let request_id = answer.body["error"]["requestId"].as_str().unwrap();
        assert!(request_id.starts_with("req_"), "{request_id}");
        assert_eq!(answer.headers["x-request-id"], request_id);
    }
    let answer = api
        .send(
            Method::POST,
            "/v1/projects",
            Some(key),
            raw("{}".into()),
            "text/plain",
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);

    let huge = format!(
        r#"{{"name": "x", "description": "{}"}}"#,
        "a".repeat(2 << 20)
    );
    let answer = api
        .send(
            Method::POST,
            "/v1/projects",
            Some(key),
            raw(huge),
            "application/json",
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.code(), "body_too_large");

    let package = vec![0u8; MAX_PACKAGE_BYTES + 1];
    let answer = api
        .send(
            Method::POST,
            "/v1/registry/packages",
            Some(key),
            Some(Body::from(package)),
            "application/octet-stream",
        )
        .await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);

    let answer = api
        .json(Method::GET, "/v1/projects?colour=red", Some(key), None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = api
        .json(Method::GET, "/v1/projects?page=minus-one", Some(key), None)
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    let listed = api.json(Method::GET, "/v1/projects", Some(key), None).await;
    assert_eq!(
        listed.body["meta"]["total"], 0,
        "a refused request stored a project"
    );
}

#[tokio::test]
async fn missing_invalid_and_revoked_keys_are_401() {
    let api = Api::new(Db::Sqlite).await;
    let made = api
        .tenancy
        .create_key(&api.alpha.id, "short-lived", Role::Member, "test")
        .await
        .unwrap();
    let answer = api
        .json(Method::GET, "/v1/workspace", Some(&made.secret), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["workspaceId"], api.alpha.id.as_str());

    let revoked = api
        .json(
            Method::DELETE,
            &format!("/v1/keys/{}", made.key.id),
            Some(api.alpha.key(Role::Admin)),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revokedAt"].is_string());

    let unknown = format!("{}{}", hyyve_server::ids::KEY_PREFIX, "0".repeat(64));
    for key in [
        None,
        Some("nonsense"),
        Some(unknown.as_str()),
        Some(&made.secret),
    ] {
        let answer = api.json(Method::GET, "/v1/projects", key, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(answer.code(), "unauthenticated");
    }
    // A role too weak: 403. Both kinds of refusal are counted by route for /metrics.
    let answer = api
        .json(
            Method::GET,
            "/v1/keys",
            Some(api.alpha.key(Role::Viewer)),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let metrics = api.json(Method::GET, "/metrics", None, None).await;
    let text = metrics.body.as_str().expect("exposition text");
    for line in [
        r#"hyyve_api_refusals_total{status="401",route="/v1/projects"} 4"#,
        r#"hyyve_api_refusals_total{status="403",route="/v1/keys"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in {text}");
    }
    // A key's secret is never listed.
    let keys = api
        .json(
            Method::GET,
            "/v1/keys",
            Some(api.alpha.key(Role::Owner)),
            None,
        )
        .await;
    assert!(!keys.body.to_string().contains(&made.secret));
    assert!(!keys.body.to_string().contains("hyyve_sk_"));
}

#[tokio::test]
async fn another_workspace_is_indistinguishable_from_nothing() {
    let api = Api::new(Db::Sqlite).await;
    let theirs = api
        .tenancy
        .create_project(&api.beta.id, "secret-plans", "")
        .await
        .unwrap();
    let key = api.alpha.key(Role::Owner);
    let other = api
        .json(
            Method::GET,
            &format!("/v1/projects/{}", theirs.id),
            Some(key),
            None,
        )
        .await;
    let absent = api
        .json(
            Method::GET,
            "/v1/projects/prj_000000000000000000000000",
            Some(key),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(absent.status, StatusCode::NOT_FOUND);
    assert_eq!(other.code(), absent.code());
    // Same name in another workspace: no conflict either.
    let mine = api
        .json(
            Method::POST,
            "/v1/projects",
            Some(key),
            Some(json!({"name": "secret-plans"})),
        )
        .await;
    assert_eq!(mine.status, StatusCode::CREATED);
    let again = api
        .json(
            Method::POST,
            "/v1/projects",
            Some(key),
            Some(json!({"name": "secret-plans"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_exists");
    let untouched = api.tenancy.project(&api.beta.id, &theirs.id).await.unwrap();
    assert_eq!(untouched.name, "secret-plans");
}

#[tokio::test]
async fn registry_rejections_carry_their_code() {
    let api = Api::new(Db::Sqlite).await;
    let key = api.alpha.key(Role::Member);
    let answer = api
        .send(
            Method::POST,
            "/v1/registry/packages",
            Some(key),
            Some(Body::from("not a package")),
            "application/octet-stream",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.code(), "malformed_package");
    let answer = api
        .json(
            Method::GET,
            "/v1/registry/listings/acme:nothing",
            Some(key),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = api
        .json(
            Method::GET,
            "/v1/registry/listings?kind=spaceship",
            Some(key),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

/// Text holding U+0000 is refused alike on both backends (PostgreSQL cannot store it),
/// in a body value or key, a path segment or a query, and nothing is written.
async fn text_with_nul_is_refused(db: Db) {
    let api = Api::new(db).await;
    let owner = Some(api.alpha.key(Role::Owner));
    for body in [
        json!({ "name": "a\u{0}b" }),
        json!({ "name": "ok", "description": "x\u{0}" }),
    ] {
        let answer = api
            .json(Method::POST, "/v1/projects", owner, Some(body.clone()))
            .await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(answer.code(), "invalid_text", "{}", answer.body);
    }
    for path in ["/v1/projects/prj%00x", "/v1/audit?action=a%00b"] {
        let answer = api.json(Method::GET, path, owner, None).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_eq!(answer.code(), "invalid_text", "{path}: {}", answer.body);
    }
    let projects = api.json(Method::GET, "/v1/projects", owner, None).await;
    assert_eq!(projects.body["data"], json!([]), "nothing written");
}

#[tokio::test]
async fn text_with_nul_is_refused_on_sqlite() {
    text_with_nul_is_refused(Db::Sqlite).await;
}

#[tokio::test]
async fn text_with_nul_is_refused_on_postgres() {
    text_with_nul_is_refused(Db::Postgres).await;
}
