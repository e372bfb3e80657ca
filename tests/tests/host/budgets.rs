//! Host-side budgets a plugin cannot see in its linear memory: the resources it makes
//! the host hold, scratch entries, log lines and usage units. Each has a deny test (a
//! hostile guest written against `wit/`) and an allow test (honest use fits).

use std::collections::BTreeMap;

use hyyve_policy::Grant;
use hyyve_runtime::{
    DenialKind, ENTRY_METADATA_BYTES, HOST_ENTRY_MAX_BYTES, InvocationError, Limits,
    MAX_OPEN_DESCRIPTORS, MAX_UNITS,
};
use hyyve_tests::http_server::server;
use hyyve_tests::plugin;
use serde_json::json;

use crate::{invoke_granted, test_server_grant};

fn small_host_budget() -> Limits {
    Limits {
        host_resources: 50,
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_header_maps_fail_the_invocation_naming_the_budget() {
    let hostile = plugin("guest-hostile").await;
    for node in ["hold-header-maps", "hold-outgoing-bodies", "hold-pollables"] {
        let out = invoke_granted(
            &hostile,
            node,
            json!({}),
            json!({}),
            small_host_budget(),
            "budget-handles",
            Grant::default(),
        )
        .await;
        match out.result {
            Err(InvocationError::HostResourcesExceeded { resource, limit }) => {
                assert!(
                    resource.contains("resource table entries"),
                    "{node}: {resource}"
                );
                assert_eq!(limit, 50, "{node}: the granted budget");
            }
            other => panic!("{node}: {other:?}"),
        }
        assert_eq!(
            out.metering.failure.as_deref(),
            Some("host_resources_exceeded")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_header_map_is_bounded_in_bytes() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke_granted(
        &hostile,
        "stuff-one-header-map",
        json!({}),
        json!({}),
        Limits::default(),
        "budget-map",
        Grant::default(),
    )
    .await;
    match out.result {
        Err(InvocationError::HostResourcesExceeded { resource, limit }) => {
            assert_eq!(resource, "header bytes in one map");
            assert!(limit <= HOST_ENTRY_MAX_BYTES, "{limit}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_fits_a_small_host_budget() {
    let hostile = plugin("guest-hostile").await;
    let port = server().port;
    let out = invoke_granted(
        &hostile,
        "http-fetch",
        json!({ "target": format!("http://api.test:{port}/ok") }),
        json!({}),
        small_host_budget(),
        "budget-http",
        test_server_grant("api.test", &["GET"], true, 2, 1024),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
}

fn scratch(entries: u64) -> Grant {
    Grant {
        scratch_bytes: 1 << 20,
        scratch_entries: entries,
        ..Grant::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_files_are_capped_and_an_honest_file_use_is_not() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke_granted(
        &hostile,
        "hold-open-files",
        json!({}),
        json!({}),
        Limits::default(),
        "budget-fds",
        scratch(10_000),
    )
    .await;
    match out.result {
        Err(InvocationError::HostResourcesExceeded { resource, limit }) => {
            assert_eq!(resource, "open file descriptors");
            assert_eq!(limit, MAX_OPEN_DESCRIPTORS);
        }
        other => panic!("{other:?}"),
    }
    let out = invoke_granted(
        &hostile,
        "scratch-write",
        json!({ "target": "/scratch/ok.bin", "bytes": 1000 }),
        json!({}),
        Limits::default(),
        "budget-fds",
        scratch(10_000),
    )
    .await;
    assert!(out.result.is_ok(), "{:?}", out.result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scratch_entries_are_capped_across_invocations() {
    let hostile = plugin("guest-hostile").await;
    let run = || {
        invoke_granted(
            &hostile,
            "many-empty-files",
            json!({}),
            json!({}),
            Limits::default(),
            "budget-entries",
            scratch(100),
        )
    };
    let first = run().await;
    let Err(InvocationError::Denied {
        denial,
        plugin_error,
    }) = &first.result
    else {
        panic!("{:?}", first.result);
    };
    assert_eq!(denial.kind, DenialKind::ScratchEntries);
    assert!(plugin_error.contains("after 100 files"), "{plugin_error}");
    // Empty files still cost their metadata.
    assert_eq!(first.metering.scratch_bytes, 100 * ENTRY_METADATA_BYTES);
    // The files stay and count for the next run: rewriting them is free, the first new
    // one is refused, and the directory still holds 100 entries.
    let second = run().await;
    let Err(InvocationError::Denied { plugin_error, .. }) = &second.result else {
        panic!("{:?}", second.result);
    };
    assert!(plugin_error.contains("after 100 files"), "{plugin_error}");
    assert_eq!(second.metering.scratch_entries, 100);
    let dir = hyyve_tests::scratch_root()
        .join("budget-entries")
        .join("test-install");
    assert_eq!(std::fs::read_dir(dir).unwrap().count(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_flood_is_cut_to_the_budget_and_counted() {
    let hostile = plugin("guest-hostile").await;
    let limits = Limits::default();
    let out = invoke_granted(
        &hostile,
        "log-flood",
        json!({}),
        json!({}),
        limits,
        "budget-logs",
        Grant::default(),
    )
    .await;
    assert_eq!(out.result.unwrap(), json!({ "observed": "flooded" }));
    // 20,000 lines of 4 KiB and one forged one: the byte budget admits the first ones.
    let admitted = limits.log_lines.min(limits.log_bytes / 4096);
    assert_eq!(out.metering.logs_dropped, 20_001 - admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_reports_are_checked_and_each_refusal_is_recorded() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke_granted(
        &hostile,
        "usage-abuse",
        json!({}),
        json!({}),
        Limits::default(),
        "budget-usage",
        Grant::default(),
    )
    .await;
    assert_eq!(out.result.unwrap(), json!({ "observed": "reported" }));
    let mut expected = BTreeMap::from([("tokens".to_owned(), 5)]);
    for i in 0..MAX_UNITS - 1 {
        expected.insert(format!("unit{i}"), 1);
    }
    assert_eq!(out.metering.usage, expected);
    let kinds: Vec<_> = out.metering.denials.iter().map(|d| d.kind).collect();
    assert_eq!(
        kinds[..4],
        [
            DenialKind::UsageQuantityExceeded,
            DenialKind::UsageQuantityExceeded,
            DenialKind::UsageUnitReserved,
            DenialKind::UsageUnitInvalid,
        ]
    );
    assert!(
        kinds[4..]
            .iter()
            .all(|k| *k == DenialKind::UsageUnitsExceeded)
    );
    assert!(out.metering.failure.is_none());
}
