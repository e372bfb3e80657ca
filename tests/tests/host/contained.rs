//! The hostile-plugin suite as one table: every attack runs while a neighbour workspace
//! keeps invoking, and each must end with its own outcome within its deadline + 50 ms
//! while every neighbour invocation succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyyve_policy::Grant;
use hyyve_runtime::Limits;
use hyyve_tests::http_server::server;
use hyyve_tests::plugin;
use serde_json::{Value, json};

use crate::invoke_granted;

/// How an attack must end.
enum Expect {
    /// Failed with this error kind.
    Kind(&'static str),
    /// Failed with one of these kinds.
    OneOf(&'static [&'static str]),
    /// Succeeded, observing text that contains this and not `root:`.
    Observed(&'static str),
}

struct Attack {
    node: &'static str,
    config: Value,
    grant: Grant,
    expect: Expect,
}

const DEADLINE: Duration = Duration::from_millis(500);
const SLACK: Duration = Duration::from_millis(50);

fn attack(node: &'static str, config: Value, grant: Grant, expect: Expect) -> Attack {
    Attack {
        node,
        config,
        grant,
        expect,
    }
}

fn http_to_test_server(host: &str, loopback: bool) -> Grant {
    crate::test_server_grant(host, &["GET"], loopback, 2, 1024)
}

fn target(path: String) -> Value {
    json!({ "target": path })
}

fn attacks() -> Vec<Attack> {
    let port = server().port;
    let scratch = Grant {
        scratch_bytes: 8192,
        ..Grant::default()
    };
    let kv = Grant {
        kv_bytes: 1 << 20,
        ..Grant::default()
    };
    let roomy_scratch = Grant {
        scratch_bytes: 1 << 20,
        ..Grant::default()
    };
    let few_entries = Grant {
        scratch_entries: 100,
        ..roomy_scratch.clone()
    };
    use Expect::{Kind, Observed};
    vec![
        attack(
            "infinite-loop",
            json!({}),
            Grant::default(),
            Kind("deadline_exceeded"),
        ),
        attack(
            "memory-bomb",
            json!({}),
            Grant::default(),
            Kind("memory_limit_exceeded"),
        ),
        // The guest's 64 KiB shadow stack (out-of-bounds trap) or wasmtime's native stack
        // limit stops it first, depending on frame sizes.
        attack(
            "deep-recursion",
            json!({}),
            Grant::default(),
            Expect::OneOf(&["stack_overflow", "trap"]),
        ),
        attack(
            "huge-output",
            json!({}),
            Grant::default(),
            Kind("output_too_large"),
        ),
        attack("panic", json!({}), Grant::default(), Kind("trap")),
        attack(
            "read-host-files",
            json!({}),
            Grant::default(),
            Observed("passwd=Err("),
        ),
        attack(
            "read-env",
            json!({}),
            Grant::default(),
            Observed("vars=[] args=[]"),
        ),
        attack(
            "open-socket",
            json!({}),
            Grant::default(),
            Observed("tcp=Err("),
        ),
        attack(
            "scratch-escape",
            json!({}),
            scratch.clone(),
            Observed("leaked=false"),
        ),
        attack(
            "scratch-write",
            json!({ "target": "/scratch/fill.bin", "bytes": 1 << 20 }),
            scratch.clone(),
            Kind("scratch_quota_exceeded"),
        ),
        attack(
            "http-fetch",
            target(format!("http://127.0.0.1:{port}/ok")),
            http_to_test_server("api.test", true),
            Kind("http_destination_denied"),
        ),
        attack(
            "http-fetch",
            target(format!("http://api.test:{port}/ok")),
            http_to_test_server("api.test", false),
            Kind("http_address_denied"),
        ),
        attack(
            "http-fetch",
            target(format!("http://metadata.test:{port}/")),
            http_to_test_server("metadata.test", true),
            Kind("http_address_denied"),
        ),
        attack(
            "http-fetch",
            target(format!("http://api.test:{port}/big")),
            http_to_test_server("api.test", true),
            Kind("http_response_bytes_exceeded"),
        ),
        // A host call that blocks: the server never answers.
        attack(
            "http-fetch",
            target(format!("http://api.test:{port}/hang")),
            http_to_test_server("api.test", true),
            Kind("deadline_exceeded"),
        ),
        attack(
            "read-secret",
            json!({}),
            Grant::default(),
            Kind("secret_denied"),
        ),
        attack("kv-flood", json!({}), kv, Kind("kv_quota_exceeded")),
        attack(
            "many-host-calls",
            json!({}),
            Grant::default(),
            Observed("done"),
        ),
        // Host-side resources, with no capability granted at all.
        attack(
            "hold-header-maps",
            json!({}),
            Grant::default(),
            Kind("host_resources_exceeded"),
        ),
        attack(
            "stuff-one-header-map",
            json!({}),
            Grant::default(),
            Kind("host_resources_exceeded"),
        ),
        attack(
            "hold-outgoing-bodies",
            json!({}),
            Grant::default(),
            Kind("host_resources_exceeded"),
        ),
        attack(
            "hold-pollables",
            json!({}),
            Grant::default(),
            Kind("host_resources_exceeded"),
        ),
        attack(
            "huge-random",
            json!({}),
            Grant::default(),
            Kind("host_call_failed"),
        ),
        attack(
            "hold-open-files",
            json!({}),
            roomy_scratch,
            Kind("host_resources_exceeded"),
        ),
        attack(
            "many-empty-files",
            json!({}),
            few_entries,
            Kind("scratch_entries_exceeded"),
        ),
        // 8 KiB of scratch is 16 directories' metadata: depth is not free.
        attack(
            "deep-tree",
            json!({}),
            scratch.clone(),
            Kind("scratch_quota_exceeded"),
        ),
        attack(
            "log-flood",
            json!({}),
            Grant::default(),
            Observed("flooded"),
        ),
        attack(
            "usage-abuse",
            json!({}),
            Grant::default(),
            Observed("reported"),
        ),
    ]
}

/// Plants `/scratch/planted -> /etc` on the host side for the escape attack.
fn plant_symlink(ws: &str) {
    let dir = hyyve_tests::scratch_root().join(ws).join("test-install");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("planted");
    if !link.exists() {
        std::os::unix::fs::symlink("/etc", &link).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_contained_in_time_while_a_neighbour_is_served() {
    let hostile = plugin("guest-hostile").await;
    let limits = Limits {
        // The deadline, not fuel, must stop the loop and the blocked host call.
        fuel: u64::MAX,
        timeout: DEADLINE,
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    for (i, a) in attacks().into_iter().enumerate() {
        let ws = format!("attack-{i}");
        plant_symlink(&ws);
        let done = Arc::new(AtomicBool::new(false));
        let neighbour = tokio::spawn({
            let done = done.clone();
            let echo = hostile.clone();
            async move {
                let mut served = 0u32;
                while !done.load(Ordering::SeqCst) || served == 0 {
                    let out = invoke_granted(
                        &echo,
                        "echo",
                        json!({}),
                        json!({ "value": served }),
                        Limits::default(),
                        "neighbour",
                        Grant::default(),
                    )
                    .await;
                    assert_eq!(out.result.unwrap(), json!({ "value": served }));
                    served += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                served
            }
        });
        let started = Instant::now();
        let out = invoke_granted(
            &hostile,
            a.node,
            a.config.clone(),
            json!({}),
            limits,
            &ws,
            a.grant.clone(),
        )
        .await;
        let took = started.elapsed();
        done.store(true, Ordering::SeqCst);
        let served = neighbour
            .await
            .expect("neighbour invocations all succeeded");
        assert!(served > 0, "{}: neighbour served", a.node);
        assert!(
            took <= DEADLINE + SLACK,
            "{} ({}) took {took:?}",
            a.node,
            a.config
        );
        match a.expect {
            Expect::Kind(kind) => {
                let err = out.result.as_ref().expect_err(a.node);
                assert_eq!(err.kind(), kind, "{} ({}): {err}", a.node, a.config);
                assert_eq!(out.metering.failure.as_deref(), Some(kind), "{}", a.node);
            }
            Expect::OneOf(kinds) => {
                let err = out.result.as_ref().expect_err(a.node);
                assert!(kinds.contains(&err.kind()), "{}: {err}", a.node);
            }
            Expect::Observed(text) => {
                let value = out
                    .result
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{}: {e}", a.node));
                let observed = value["observed"].as_str().unwrap();
                assert!(observed.contains(text), "{}: {observed}", a.node);
                assert!(!observed.contains("root:"), "{}: {observed}", a.node);
            }
        }
    }
}
