//! Capability enforcement, an allow test beside every deny test: outgoing HTTP (rules,
//! resolved addresses, counts, bytes, block list), secrets, the scratch filesystem, KV.
//! HTTP goes only to the loopback test server; denied requests never reach it.

use hyyve_policy::{Grant, HttpRule};
use hyyve_runtime::{DenialKind, InvocationOutcome, Limits};
use hyyve_secrets::{SecretStore, SecretValue};
use hyyve_tests::http_server::{BIG_BODY_BYTES, server};
use hyyve_tests::plugin;
use serde_json::{Value, json};

use crate::invoke_granted;

async fn probe(node_type: &str, config: Value, grant: Grant, ws: &str) -> InvocationOutcome {
    let hostile = plugin("guest-hostile").await;
    invoke_granted(
        &hostile,
        node_type,
        config,
        json!({}),
        Limits::default(),
        ws,
        grant,
    )
    .await
}

/// The test server's `host:port` with `methods`; 4 requests and 16 KiB each way.
fn http_grant(host: &str, methods: &[&str], loopback: bool) -> Grant {
    crate::test_server_grant(host, methods, loopback, 4, 16 << 10)
}

fn url(host: &str, path: &str) -> String {
    format!("http://{host}:{}{path}", server().port)
}

fn fetch(target: String) -> Value {
    json!({ "target": target })
}

fn denied(out: &InvocationOutcome, kind: DenialKind) -> String {
    let err = out.result.as_ref().unwrap_err();
    assert_eq!(err.kind(), kind.as_str(), "{err}");
    assert_eq!(out.metering.denials[0].kind, kind, "{:?}", out.metering);
    assert_eq!(out.metering.failure.as_deref(), Some(kind.as_str()));
    err.to_string()
}

#[tokio::test]
async fn http_to_a_granted_host_works() {
    let out = probe(
        "http-fetch",
        fetch(url("api.test", "/ok?case=granted")),
        http_grant("api.test", &["GET"], true),
        "pol-http-ok",
    )
    .await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "status=200 body=5"})
    );
    assert_eq!(server().hits("/ok?case=granted"), 1);
    assert_eq!(out.metering.http_requests, 1);
    assert_eq!(out.metering.http_bytes_received, 5);
    assert!(out.metering.denials.is_empty());
}

#[tokio::test]
async fn http_to_a_host_not_granted_is_denied_before_leaving() {
    let out = probe(
        "http-fetch",
        fetch(url("127.0.0.1", "/ok?case=host-not-granted")),
        http_grant("api.test", &["GET"], true),
        "pol-http-host",
    )
    .await;
    let message = denied(&out, DenialKind::HttpDestinationDenied);
    assert!(message.contains("127.0.0.1"), "{message}");
    assert_eq!(out.metering.http_requests, 0);
    assert_eq!(
        server().hits("/ok?case=host-not-granted"),
        0,
        "nothing reached the server"
    );
}

#[tokio::test]
async fn http_method_outside_the_rule_is_denied_and_inside_works() {
    let grant = http_grant("api.test", &["GET"], true);
    let config = json!({ "target": url("api.test", "/len"), "method": "POST", "bytes": 10 });
    let out = probe("http-fetch", config.clone(), grant, "pol-http-method").await;
    denied(&out, DenialKind::HttpDestinationDenied);
    let out = probe(
        "http-fetch",
        config,
        http_grant("api.test", &["GET", "POST"], true),
        "pol-http-method",
    )
    .await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "status=200 body=2"})
    );
    assert_eq!(out.metering.http_bytes_sent, 10);
}

#[tokio::test]
async fn a_granted_name_resolving_to_loopback_is_denied_without_a_private_network() {
    for host in ["api.test", "localhost"] {
        let out = probe(
            "http-fetch",
            fetch(url(host, "/ok?case=loopback-name")),
            http_grant(host, &["GET"], false),
            "pol-http-rebind",
        )
        .await;
        let message = denied(&out, DenialKind::HttpAddressDenied);
        assert!(message.contains("loopback"), "{message}");
    }
    assert_eq!(server().hits("/ok?case=loopback-name"), 0);
}

#[tokio::test]
async fn a_granted_name_resolving_to_the_metadata_address_is_denied() {
    let out = probe(
        "http-fetch",
        fetch(url("metadata.test", "/latest/meta-data/")),
        http_grant("metadata.test", &["GET"], true),
        "pol-http-metadata",
    )
    .await;
    let message = denied(&out, DenialKind::HttpAddressDenied);
    assert!(message.contains("169.254.169.254"), "{message}");
    assert!(message.contains("metadata"), "{message}");
}

#[tokio::test]
async fn a_name_answering_public_and_loopback_addresses_is_denied() {
    let out = probe(
        "http-fetch",
        fetch(url("rebind.test", "/ok")),
        http_grant("rebind.test", &["GET"], false),
        "pol-http-mixed",
    )
    .await;
    denied(&out, DenialKind::HttpAddressDenied);
}

#[tokio::test]
async fn a_blocked_host_is_denied_even_when_a_rule_matches() {
    let mut grant = http_grant("api.test", &["GET"], true);
    grant.http.blocked.push("api.test".parse().unwrap());
    let out = probe(
        "http-fetch",
        fetch(url("api.test", "/ok")),
        grant,
        "pol-http-blocked",
    )
    .await;
    let message = denied(&out, DenialKind::HttpDestinationDenied);
    assert!(message.contains("blocked"), "{message}");
}

#[tokio::test]
async fn a_response_over_the_byte_cap_is_cut() {
    let mut grant = http_grant("api.test", &["GET"], true);
    let out = probe(
        "http-fetch",
        fetch(url("api.test", "/big")),
        grant.clone(),
        "pol-http-big",
    )
    .await;
    denied(&out, DenialKind::HttpResponseBytes);
    grant.http.max_response_bytes = BIG_BODY_BYTES as u64;
    let out = probe(
        "http-fetch",
        fetch(url("api.test", "/big")),
        grant,
        "pol-http-big",
    )
    .await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": format!("status=200 body={BIG_BODY_BYTES}")})
    );
}

#[tokio::test]
async fn a_request_body_over_the_byte_cap_is_cut() {
    let grant = http_grant("api.test", &["POST"], true);
    let config = json!({ "target": url("api.test", "/len"), "method": "POST", "bytes": 32 << 10 });
    let out = probe("http-fetch", config, grant, "pol-http-upload").await;
    denied(&out, DenialKind::HttpRequestBytes);
}

#[tokio::test]
async fn requests_past_the_count_are_denied() {
    let grant = http_grant("api.test", &["GET"], true);
    let ok = json!({ "target": url("api.test", "/ok"), "times": 4 });
    let out = probe("http-fetch", ok, grant.clone(), "pol-http-count").await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "status=200 body=5"})
    );
    let too_many = json!({ "target": url("api.test", "/ok"), "times": 5 });
    let out = probe("http-fetch", too_many, grant, "pol-http-count").await;
    let message = denied(&out, DenialKind::HttpRequestLimit);
    assert!(message.contains("request 5"), "{message}");
    assert_eq!(out.metering.http_requests, 4);
}

fn secret_grant(names: &[&str]) -> Grant {
    Grant {
        secrets: names.iter().map(|n| n.to_string()).collect(),
        ..Grant::default()
    }
}

#[tokio::test]
async fn a_declared_and_granted_secret_is_readable_and_no_other() {
    let store = hyyve_tests::secrets();
    store
        .put("pol-secrets", "API_KEY", &SecretValue::new("k-123".into()))
        .await
        .unwrap();
    store
        .put("pol-secrets", "OTHER", &SecretValue::new("nope".into()))
        .await
        .unwrap();
    let read =
        |name: &str, grant: Grant| probe("secret", json!({ "target": name }), grant, "pol-secrets");
    let out = read("API_KEY", secret_grant(&["API_KEY"])).await;
    assert_eq!(out.result.unwrap(), json!({"observed": "value=k-123"}));
    let out = read("OTHER", secret_grant(&["API_KEY"])).await;
    let message = denied(&out, DenialKind::SecretDenied);
    assert!(!message.contains("nope"), "values never appear in errors");
    // Granted, but another workspace's value is not this one's.
    let hostile = plugin("guest-hostile").await;
    let out = invoke_granted(
        &hostile,
        "secret",
        json!({ "target": "API_KEY" }),
        json!({}),
        Limits::default(),
        "pol-secrets-other-ws",
        secret_grant(&["API_KEY"]),
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), "failed");
    assert!(err.to_string().contains("NotSet"), "{err}");
}

fn scratch_grant(bytes: u64) -> Grant {
    Grant {
        scratch_bytes: bytes,
        ..Grant::default()
    }
}

fn write(path: &str, bytes: u64) -> Value {
    json!({ "target": path, "bytes": bytes })
}

#[tokio::test]
async fn the_scratch_dir_is_writable_up_to_its_quota_and_not_beyond() {
    let ws = "pol-scratch";
    let out = probe(
        "scratch-write",
        write("/scratch/a.bin", 40_000),
        scratch_grant(64_000),
        ws,
    )
    .await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "wrote=40000 read=40000"})
    );
    // The file's bytes and its entry's metadata.
    assert_eq!(
        out.metering.scratch_bytes,
        40_000 + hyyve_runtime::ENTRY_METADATA_BYTES
    );
    // The file persists for the install: 40,000 + 30,000 passes 64,000.
    let out = probe(
        "scratch-write",
        write("/scratch/b.bin", 30_000),
        scratch_grant(64_000),
        ws,
    )
    .await;
    let message = denied(&out, DenialKind::ScratchQuota);
    assert!(message.contains("64000"), "{message}");
    // Overwriting the first file in place fits.
    let out = probe(
        "scratch-write",
        write("/scratch/a.bin", 20_000),
        scratch_grant(64_000),
        ws,
    )
    .await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "wrote=20000 read=20000"})
    );
}

#[tokio::test]
async fn without_a_scratch_grant_there_is_no_filesystem() {
    let out = probe(
        "scratch-write",
        write("/scratch/a.bin", 10),
        Grant::default(),
        "pol-no-fs",
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), "failed");
    assert!(!hyyve_tests::scratch_root().join("pol-no-fs").exists());
}

#[tokio::test]
async fn kv_needs_a_grant() {
    let out = probe("kv-round-trip", json!({}), Grant::default(), "pol-kv").await;
    denied(&out, DenialKind::KvDenied);
    let granted = Grant {
        kv_bytes: 1024,
        ..Grant::default()
    };
    let out = probe("kv-round-trip", json!({}), granted, "pol-kv").await;
    assert_eq!(out.result.unwrap(), json!({"observed": "counter=1"}));
}

#[tokio::test]
async fn escaping_the_scratch_dir_fails_and_is_recorded() {
    let ws = "pol-escape";
    let dir = hyyve_tests::scratch_root().join(ws).join("test-install");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("planted")).unwrap();
    let out = probe("scratch-escape", json!({}), scratch_grant(4096), ws).await;
    let observed = out.result.unwrap()["observed"].as_str().unwrap().to_owned();
    assert!(observed.starts_with("leaked=false"), "{observed}");
    for access in ["dotdot", "relative", "via_abs", "via_rel", "via_planted"] {
        assert!(
            observed.contains(&format!("{access}=Err(")),
            "{access}: {observed}"
        );
    }
    assert!(
        out.metering
            .denials
            .iter()
            .any(|d| d.kind == DenialKind::ScratchEscape),
        "{:?}",
        out.metering.denials
    );
}

#[tokio::test]
async fn proxy_and_forwarding_headers_are_refused_and_others_pass() {
    let grant = http_grant("api.test", &["GET"], true);
    for header in [
        "x-forwarded-for",
        "forwarded",
        "proxy-authorization",
        "host",
    ] {
        let config = json!({ "target": url("api.test", "/ok?case=header"), "header": header });
        let out = probe("http-fetch", config, grant.clone(), "pol-http-header").await;
        let err = out.result.unwrap_err();
        assert!(
            err.to_string().contains("invalid header"),
            "{header}: {err}"
        );
    }
    assert_eq!(server().hits("/ok?case=header"), 0);
    let config =
        json!({ "target": url("api.test", "/ok?case=header-ok"), "header": "x-request-id" });
    let out = probe("http-fetch", config, grant, "pol-http-header").await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "status=200 body=5"})
    );
}

#[tokio::test]
async fn https_verifies_the_certificate_for_the_requested_name() {
    let port = hyyve_tests::http_server::tls_server().port;
    let grant = |host: &str| {
        let mut grant = http_grant(host, &["GET"], true);
        let rule = HttpRule::parse(&format!("https://{host}:{port}"), &["GET".into()]).unwrap();
        grant.http.rules = vec![rule];
        grant
    };
    // The certificate names api.test and its root is trusted by the runtime.
    let ok = fetch(format!("https://api.test:{port}/ok"));
    let out = probe("http-fetch", ok, grant("api.test"), "pol-https").await;
    assert_eq!(
        out.result.unwrap(),
        json!({"observed": "status=200 body=5"})
    );
    // Same server and certificate, reached as `localhost`: the name does not match.
    let mismatch = fetch(format!("https://localhost:{port}/ok"));
    let out = probe("http-fetch", mismatch, grant("localhost"), "pol-https").await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), "failed");
    assert!(err.to_string().contains("transport error"), "{err}");
    assert!(
        out.metering.denials.is_empty(),
        "a TLS failure is not a policy denial"
    );
}
