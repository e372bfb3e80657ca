//! `hyyve-bench --hostile`: what hostile plugins cost the host process. For each class of
//! host-side resource (and linear memory, for comparison), 16 invocations of a plugin
//! that hoards it run at once, as the server's 16 workers would, while a neighbour
//! workspace invokes a trivial node in a loop. Reported: the process's resident memory
//! before, at its peak and after, and the neighbour's latency meanwhile.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyyve_policy::Grant;
use hyyve_runtime::{
    HOST_ENTRY_MAX_BYTES, InstallScope, InvocationIds, InvocationRequest, Limits, NodePlugin,
    Runtime, RuntimeConfig,
};
use serde_json::json;

use hyyve::build;
use hyyve::resolve;

/// Hostile invocations at once: the server's default worker count.
const AT_ONCE: usize = 16;

/// The resource classes, by the hostile node that hoards each, and what it is granted.
fn classes() -> Vec<(&'static str, Grant)> {
    let scratch = Grant {
        scratch_bytes: 64 << 20,
        ..Grant::default()
    };
    vec![
        ("hold-header-maps", Grant::default()),
        ("stuff-one-header-map", Grant::default()),
        ("hold-outgoing-bodies", Grant::default()),
        ("hold-pollables", Grant::default()),
        ("huge-random", Grant::default()),
        ("hold-open-files", scratch.clone()),
        ("many-empty-files", scratch),
        ("log-flood", Grant::default()),
        ("usage-abuse", Grant::default()),
        ("memory-bomb", Grant::default()),
    ]
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Resident set size of this process now.
fn rss_bytes() -> u64 {
    status_bytes("VmRSS:")
}

/// The kernel's peak resident set size since [`reset_peak`]: exact, unlike sampling,
/// which misses hoarders that fail within milliseconds.
fn peak_rss_bytes() -> u64 {
    status_bytes("VmHWM:")
}

/// Resets the peak to the current RSS (Linux: `5` into `/proc/self/clear_refs`).
fn reset_peak() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS")
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

async fn invoke(
    runtime: &Arc<Runtime>,
    plugin: &NodePlugin,
    node_type: &str,
    workspace: &str,
    install: String,
    grant: Arc<Grant>,
) -> (Duration, Option<String>) {
    let started = Instant::now();
    let outcome = runtime
        .invoke(
            plugin,
            InvocationRequest {
                node_type,
                config: &json!({}),
                inputs: &json!({ "value": 1 }),
                ids: InvocationIds::default(),
                scope: InstallScope {
                    workspace: workspace.into(),
                    install,
                },
                grant,
                limits: Limits::default(),
                models: None,
                progress: None,
            },
        )
        .await;
    (started.elapsed(), outcome.metering.failure)
}

/// One class: 16 hoarders at once, a neighbour in a loop.
struct Figure {
    outcome: String,
    peak: u64,
    after: u64,
    neighbour_p50: Duration,
    neighbour_max: Duration,
    neighbour_calls: usize,
}

async fn flood(
    runtime: &Arc<Runtime>,
    plugin: &Arc<NodePlugin>,
    node: &'static str,
    grant: Grant,
) -> Figure {
    let done = Arc::new(AtomicBool::new(false));
    let neighbour = tokio::spawn({
        let (done, runtime, plugin) = (done.clone(), runtime.clone(), plugin.clone());
        async move {
            let mut latencies = Vec::new();
            let nothing = Arc::new(Grant::default());
            while !done.load(Ordering::Relaxed) {
                let (took, failure) = invoke(
                    &runtime,
                    &plugin,
                    "echo",
                    "neighbour",
                    "echo".into(),
                    nothing.clone(),
                )
                .await;
                assert!(failure.is_none(), "the neighbour failed: {failure:?}");
                latencies.push(took);
            }
            latencies
        }
    });
    let grant = Arc::new(grant);
    let hoarders: Vec<_> = (0..AT_ONCE)
        .map(|i| {
            let (runtime, plugin, grant) = (runtime.clone(), plugin.clone(), grant.clone());
            tokio::spawn(async move {
                invoke(&runtime, &plugin, node, "hostile", format!("h{i}"), grant).await
            })
        })
        .collect();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for hoarder in hoarders {
        let (_, failure) = hoarder.await.expect("hoarder task");
        *outcomes
            .entry(failure.unwrap_or_else(|| "ok".into()))
            .or_default() += 1;
    }
    done.store(true, Ordering::Relaxed);
    let mut latencies = neighbour.await.expect("neighbour task");
    latencies.sort();
    // Let freed memory go back before measuring what stays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    Figure {
        outcome: outcomes
            .iter()
            .map(|(kind, n)| format!("{n}× {kind}"))
            .collect::<Vec<_>>()
            .join(", "),
        peak: peak_rss_bytes(),
        after: rss_bytes(),
        neighbour_p50: latencies
            .get(latencies.len() / 2)
            .copied()
            .unwrap_or_default(),
        neighbour_max: latencies.last().copied().unwrap_or_default(),
        neighbour_calls: latencies.len(),
    }
}

/// Runs every class in turn; a markdown table.
pub async fn run(repo: &Path) -> anyhow::Result<String> {
    let scratch = tempfile::tempdir()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        scratch_root: Some(scratch.path().to_owned()),
        ..RuntimeConfig::default()
    })?);
    let built = tokio::task::spawn_blocking({
        let repo = repo.to_owned();
        move || build::build_packages(&repo, &["guest-hostile"], &build::guest_target_dir(&repo))
    })
    .await??;
    let reference = built[0].display().to_string();
    let plugin = resolve::Resolver::new(runtime.clone())
        .resolve(&[reference.as_str()], repo)
        .await?
        .remove(reference.as_str())
        .context("guest-hostile")?
        .plugin;
    // Warm up: the pool slots and allocator arenas an ordinary load touches.
    for _ in 0..200 {
        invoke(
            &runtime,
            &plugin,
            "echo",
            "warmup",
            "echo".into(),
            Arc::new(Grant::default()),
        )
        .await;
    }
    let limits = Limits::default();
    let host_budget = limits.host_resources * HOST_ENTRY_MAX_BYTES;
    let mut out = String::new();
    let baseline = rss_bytes();
    let goal = baseline + AT_ONCE as u64 * (limits.memory_bytes + host_budget);
    writeln!(
        out,
        "{AT_ONCE} hostile invocations at once per class (default limits: {} memory cap, \
         {} host resources × {} = {} host budget each); baseline RSS {}, peak goal {} \
         (baseline + {AT_ONCE} × (memory cap + host budget)), after-goal {} (baseline + 20 %)\n",
        mib(limits.memory_bytes),
        limits.host_resources,
        HOST_ENTRY_MAX_BYTES,
        mib(host_budget),
        mib(baseline),
        mib(goal),
        mib(baseline + baseline / 5),
    )?;
    writeln!(
        out,
        "| class | outcome | peak RSS | RSS after | neighbour p50 | neighbour max | neighbour calls |"
    )?;
    writeln!(out, "| --- | --- | --- | --- | --- | --- | --- |")?;
    for (node, grant) in classes() {
        reset_peak()?;
        let f = flood(&runtime, &plugin, node, grant).await;
        writeln!(
            out,
            "| `{node}` | {} | {} | {} | {:.2} ms | {:.1} ms | {} |",
            f.outcome,
            mib(f.peak),
            mib(f.after),
            f.neighbour_p50.as_secs_f64() * 1e3,
            f.neighbour_max.as_secs_f64() * 1e3,
            f.neighbour_calls,
        )?;
    }
    writeln!(out, "\nfinal RSS {}", mib(rss_bytes()))?;
    Ok(out)
}
