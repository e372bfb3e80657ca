//! What a plugin can reach by default: nothing of the host, its own KV scope, its usage
//! record, its log. Every probe here has its allow or deny counterpart.

use hyyve_tests::plugin;
use serde_json::json;

use crate::{invoke, invoke_in};
use hyyve_runtime::Limits;

#[tokio::test]
async fn host_filesystem_is_invisible() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "read-host-files", json!({}), json!({}))
        .await
        .result
        .unwrap();
    let observed = out["observed"].as_str().unwrap();
    assert!(observed.starts_with("passwd=Err("), "{observed}");
    assert!(observed.contains("root=Err("), "{observed}");
    assert!(!observed.contains("root:x:0"), "{observed}");
}

#[tokio::test]
async fn environment_and_arguments_are_empty() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "read-env", json!({}), json!({}))
        .await
        .result
        .unwrap();
    assert_eq!(out["observed"], "vars=[] args=[]");
}

#[tokio::test]
async fn sockets_are_denied() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "open-socket", json!({}), json!({}))
        .await
        .result
        .unwrap();
    let observed = out["observed"].as_str().unwrap();
    assert!(observed.starts_with("tcp=Err("), "{observed}");
    assert!(observed.contains(" udp=Err("), "{observed}");
    assert!(observed.contains(" lookup=Err("), "{observed}");
}

#[tokio::test]
async fn outgoing_http_is_denied_without_a_grant() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "http-out", json!({}), json!({})).await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), "http_destination_denied");
    assert!(
        err.to_string()
            .contains("denied by the host's capability policy"),
        "{err}"
    );
    assert_eq!(out.metering.host_calls, 1, "the attempt is counted");
}

#[tokio::test]
async fn secrets_are_denied_without_a_grant() {
    let hostile = plugin("guest-hostile").await;
    let err = invoke(&hostile, "read-secret", json!({}), json!({}))
        .await
        .result
        .unwrap_err();
    assert_eq!(err.kind(), "secret_denied");
    assert!(err.to_string().contains("NotGranted"), "{err}");
}

#[tokio::test]
async fn kv_persists_within_a_scope_and_is_isolated_between_scopes() {
    let hostile = plugin("guest-hostile").await;
    let run = |ws: &'static str| {
        let hostile = hostile.clone();
        async move {
            invoke_in(
                &hostile,
                "kv-round-trip",
                json!({}),
                json!({}),
                Limits::default(),
                ws,
            )
            .await
            .result
            .unwrap()
        }
    };
    assert_eq!(run("kv-ws-1").await["observed"], "counter=1");
    assert_eq!(run("kv-ws-1").await["observed"], "counter=2");
    assert_eq!(
        run("kv-ws-2").await["observed"],
        "counter=1",
        "another workspace sees its own keys"
    );
}

#[tokio::test]
async fn kv_quota_is_enforced() {
    let hostile = plugin("guest-hostile").await;
    let err = invoke_in(
        &hostile,
        "kv-flood",
        json!({}),
        json!({}),
        Limits::default(),
        "kv-flood-ws",
    )
    .await
    .result
    .unwrap_err();
    // 16 MiB granted / 512 KiB values: the 32nd write fails.
    assert_eq!(err.kind(), "kv_quota_exceeded");
    assert!(
        err.to_string()
            .contains("after 31 writes: KvError::QuotaExceeded"),
        "{err}"
    );
}

#[tokio::test]
async fn usage_units_and_logs_land_in_the_metering_record() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "report-usage", json!({}), json!({})).await;
    assert_eq!(out.result.unwrap(), json!({"observed": "ok"}));
    assert_eq!(out.metering.usage["llm.input-tokens"], 1234);
    assert_eq!(out.metering.usage["llm.output-tokens"], 300);
    assert_eq!(out.metering.host_calls, 4);
}
