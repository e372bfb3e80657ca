//! Guests that misbehave: each is contained with its own error kind, the metering record
//! is still filled in, and the host keeps serving (a neighbour's invocation succeeds
//! while and after they run).

use std::time::Duration;

use hyyve_runtime::{InvocationError, Limits};
use hyyve_tests::plugin;
use serde_json::json;

use crate::{invoke, invoke_in};

fn tight() -> Limits {
    Limits {
        timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

/// Runs a no-input hostile node under `limits` in workspace `ws-a`.
async fn probe(node_type: &str, limits: Limits) -> hyyve_runtime::InvocationOutcome {
    let hostile = plugin("guest-hostile").await;
    invoke_in(&hostile, node_type, json!({}), json!({}), limits, "ws-a").await
}

async fn neighbour_still_served() {
    let echo = plugin("guest-hostile").await;
    let out = invoke_in(
        &echo,
        "echo",
        json!({}),
        json!({"value": "hi"}),
        Limits::default(),
        "ws-neighbour",
    )
    .await;
    assert_eq!(out.result.unwrap(), json!({"value": "hi"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_deadline_while_a_neighbour_runs() {
    let limits = Limits {
        fuel: u64::MAX,
        ..tight()
    };
    let looping = tokio::spawn(async move { probe("infinite-loop", limits).await });
    // The loop yields to tokio every 10 M fuel units, so the neighbour is served meanwhile.
    for _ in 0..5 {
        neighbour_still_served().await;
    }
    let out = looping.await.unwrap();
    assert_eq!(
        out.result.unwrap_err(),
        InvocationError::DeadlineExceeded { timeout_ms: 300 }
    );
    // Deadline-killed work is still billed: fuel is exact up to the last fuel yield.
    assert!(
        out.metering.fuel > 100_000_000,
        "a loop that ran 300 ms burned fuel: {:?}",
        out.metering
    );
    let wall = Duration::from_micros(out.metering.wall_time_us);
    assert!(wall >= Duration::from_millis(300), "{wall:?}");
    neighbour_still_served().await;
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel_first_when_fuel_is_smaller() {
    let limits = Limits {
        fuel: 50_000_000,
        timeout: Duration::from_secs(30),
        ..Limits::default()
    };
    let out = probe("infinite-loop", limits).await;
    assert_eq!(
        out.result.unwrap_err(),
        InvocationError::FuelExhausted { budget: 50_000_000 }
    );
    assert_eq!(out.metering.fuel, 50_000_000);
    neighbour_still_served().await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let out = probe("memory-bomb", limits).await;
    assert_eq!(
        out.result.unwrap_err(),
        InvocationError::MemoryLimitExceeded {
            limit_bytes: 16 << 20
        }
    );
    assert!(out.metering.peak_memory_bytes <= 16 << 20);
    assert!(
        out.metering.peak_memory_bytes >= 8 << 20,
        "{:?}",
        out.metering
    );
    neighbour_still_served().await;
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "deep-recursion", json!({}), json!({})).await;
    let err = out.result.unwrap_err();
    // Either the guest's own 64 KiB shadow stack or wasmtime's native stack limit stops it;
    // both are contained traps.
    assert!(
        matches!(
            err,
            InvocationError::StackOverflow | InvocationError::Trap(_)
        ),
        "{err:?}"
    );
    neighbour_still_served().await;
}

#[tokio::test]
async fn panic_is_a_trap_carrying_the_panic_message() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "panic", json!({}), json!({})).await;
    match out.result.unwrap_err() {
        InvocationError::Trap(message) => {
            assert!(
                message.contains("hostile guest panicked on purpose"),
                "{message}"
            )
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    neighbour_still_served().await;
}

#[tokio::test]
async fn huge_output_is_refused() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "huge-output", json!({}), json!({})).await;
    match out.result.unwrap_err() {
        InvocationError::OutputTooLarge {
            size_bytes,
            limit_bytes,
        } => {
            assert!(size_bytes > 2 << 20);
            assert_eq!(limit_bytes, 1 << 20);
        }
        other => panic!("expected output_too_large, got {other:?}"),
    }
    // Past the host-call payload cap the copy itself is refused, before parsing.
    let limits = Limits {
        hostcall_bytes: 1 << 20,
        ..Limits::default()
    };
    let out = probe("huge-output", limits).await;
    assert_eq!(
        out.result.unwrap_err(),
        InvocationError::HostcallPayloadTooLarge {
            limit_bytes: 1 << 20
        }
    );
    neighbour_still_served().await;
}

#[tokio::test]
async fn output_that_is_not_an_object_is_malformed() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "not-an-object", json!({}), json!({})).await;
    assert_eq!(out.result.unwrap_err().kind(), "malformed_output");
}

#[tokio::test]
async fn ten_thousand_host_calls_are_counted_and_served() {
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "many-host-calls", json!({}), json!({})).await;
    assert_eq!(out.result.unwrap(), json!({"observed": "done"}));
    assert_eq!(out.metering.host_calls, 10_000);
    assert_eq!(out.metering.usage["tick"], 10_000);
}
