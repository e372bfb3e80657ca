//! `hyyve-bench`: the figures recorded in BENCHMARKS.md. Benchmarks, not tests: they
//! measure and print, they do not assert timings.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyyve_policy::Grant;
use hyyve_runtime::{
    InstallScope, InvocationIds, InvocationRequest, Limits, NodePlugin, Runtime, RuntimeConfig,
};
use hyyve_workflow::{Edge, Executor, ExecutorConfig, NodeSpec, Workflow};
use serde_json::json;

use hyyve::resolve::Resolver;

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn load(
    runtime: &Arc<Runtime>,
    repo: &Path,
    reference: &str,
) -> anyhow::Result<Arc<NodePlugin>> {
    let mut set = Resolver::new(runtime.clone())
        .resolve(&[reference], repo)
        .await?;
    Ok(set.remove(reference).context("plugin missing")?.plugin)
}

async fn load_fibo(runtime: &Arc<Runtime>, repo: &Path) -> anyhow::Result<Arc<NodePlugin>> {
    load(runtime, repo, "hyyve:fibo").await
}

async fn call_fibo(
    runtime: &Arc<Runtime>,
    plugin: &NodePlugin,
    n: u32,
) -> anyhow::Result<Duration> {
    call(runtime, plugin, "fibo", json!({ "n": n }), json!({})).await
}

async fn call(
    runtime: &Arc<Runtime>,
    plugin: &NodePlugin,
    node_type: &str,
    config: serde_json::Value,
    inputs: serde_json::Value,
) -> anyhow::Result<Duration> {
    static NOTHING: LazyLock<Arc<Grant>> = LazyLock::new(|| Arc::new(Grant::default()));
    timed_invoke(runtime, plugin, node_type, config, inputs, &NOTHING).await
}

/// Times one invocation (install `bench` of workspace `bench`) under `grant`.
pub(crate) async fn timed_invoke(
    runtime: &Arc<Runtime>,
    plugin: &NodePlugin,
    node_type: &str,
    config: serde_json::Value,
    inputs: serde_json::Value,
    grant: &Arc<Grant>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let outcome = runtime
        .invoke(
            plugin,
            InvocationRequest {
                node_type,
                config: &config,
                inputs: &inputs,
                ids: InvocationIds::default(),
                scope: InstallScope {
                    workspace: "bench".into(),
                    install: "bench".into(),
                },
                grant: grant.clone(),
                limits: Limits::default(),
                models: None,
                progress: None,
            },
        )
        .await;
    let elapsed = started.elapsed();
    outcome
        .result
        .map_err(|e| anyhow::anyhow!("{node_type} failed: {e}"))?;
    Ok(elapsed)
}

/// Runs every benchmark and returns the report.
pub async fn run_all(repo: &Path, iterations: usize) -> anyhow::Result<String> {
    let mut out = String::new();
    let runtime = Arc::new(Runtime::new(RuntimeConfig::default())?);
    let fibo = load_fibo(&runtime, repo).await?;

    // 1. Fresh isolated instance + trivial call.
    for _ in 0..200 {
        call_fibo(&runtime, &fibo, 1).await?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        samples.push(call_fibo(&runtime, &fibo, 1).await?);
    }
    samples.sort();
    let _ = writeln!(
        out,
        "fresh instance + trivial node call ({iterations} calls): median {}, p99 {}",
        us(percentile(&samples, 0.5)),
        us(percentile(&samples, 0.99))
    );

    // 2. 400 fibo(10) nodes in a sequential chain, each in a fresh instance.
    let chain = fibo_chain(400, 10);
    let mut plugins = hyyve_workflow::PluginSet::new();
    plugins.insert(
        "hyyve:fibo".into(),
        hyyve_workflow::Installed::ungranted("hyyve-fibo", fibo.clone()),
    );
    let plan =
        Arc::new(hyyve_workflow::validate(&chain, &plugins).map_err(|e| anyhow::anyhow!("{e:?}"))?);
    let executor = Executor::new(runtime.clone(), ExecutorConfig::default());
    let mut chain_times = Vec::new();
    for round in 0..7 {
        let started = Instant::now();
        let report = executor
            .run(plan.clone(), &format!("bench-{round}"), &json!({}))
            .await?;
        anyhow::ensure!(
            report.status == hyyve_workflow::RunStatus::Succeeded,
            "chain run failed"
        );
        chain_times.push(started.elapsed());
    }
    chain_times.sort();
    let chain_median = percentile(&chain_times, 0.5);
    let _ = writeln!(
        out,
        "400 x fibo(10) sequential chain, fresh instance each (7 runs): median {}, best {}",
        ms(chain_median),
        ms(chain_times[0])
    );

    // 3. The same work as one native process per invocation.
    let native = crate::sibling_binary("fibo-native")?;
    let started = Instant::now();
    for _ in 0..400 {
        let status = std::process::Command::new(&native)
            .arg("10")
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("running {}", native.display()))?;
        anyhow::ensure!(status.success(), "fibo-native failed");
    }
    let native_total = started.elapsed();
    let _ = writeln!(
        out,
        "400 x fibo(10) as a native subprocess each: {} (wasm chain is {:.1}x faster)",
        ms(native_total),
        native_total.as_secs_f64() / chain_median.as_secs_f64()
    );

    // 4. Metering overhead on CPU-bound nodes: each switch alone, then neither.
    let variants = [
        ("fuel + epochs", true, true),
        ("fuel only", true, false),
        ("epochs only", false, true),
        ("neither", false, false),
    ];
    let document: String = (0..4000)
        .map(|i| format!("Sentence {i} of the benchmark document, about metering overhead. "))
        .collect();
    let workloads = [
        (
            "fibo(27), call-heavy",
            "hyyve:fibo",
            "fibo",
            json!({"n": 27}),
            json!({}),
        ),
        (
            "fibo(30), call-heavy",
            "hyyve:fibo",
            "fibo",
            json!({"n": 30}),
            json!({}),
        ),
        (
            "split 260 KB into 500-char chunks, loop-heavy",
            "hyyve:text",
            "split",
            json!({"chunk_size": 500}),
            json!({"text": document}),
        ),
    ];
    for (label, reference, node_type, config, inputs) in workloads {
        let mut medians = Vec::new();
        for (name, fuel, epochs) in variants {
            let rt = Arc::new(Runtime::new(RuntimeConfig {
                fuel,
                epochs,
                ..RuntimeConfig::default()
            })?);
            let plugin = load(&rt, repo, reference).await?;
            call(&rt, &plugin, node_type, config.clone(), inputs.clone()).await?;
            let mut times = Vec::new();
            for _ in 0..15 {
                times.push(call(&rt, &plugin, node_type, config.clone(), inputs.clone()).await?);
            }
            times.sort();
            medians.push((name, percentile(&times, 0.5)));
        }
        let baseline = medians[3].1.as_secs_f64();
        let parts: Vec<String> = medians
            .iter()
            .map(|(name, d)| {
                format!(
                    "{name} {} ({:+.0} %)",
                    ms(*d),
                    (d.as_secs_f64() / baseline - 1.0) * 100.0
                )
            })
            .collect();
        let _ = writeln!(out, "{label}: {}", parts.join("; "));
    }
    Ok(out)
}

/// `count` fibo(n) nodes, each fed by the previous one's output.
pub fn fibo_chain(count: usize, n: u32) -> Workflow {
    let nodes = (0..count)
        .map(|i| NodeSpec {
            id: format!("f{i}"),
            plugin: "hyyve:fibo".into(),
            node_type: "fibo".into(),
            config: json!({ "n": n }),
            inputs: Default::default(),
        })
        .collect();
    let edges = (1..count)
        .map(|i| Edge {
            from: format!("f{}.value", i - 1),
            to: format!("f{i}.after"),
        })
        .collect();
    Workflow {
        name: format!("{count} x fibo({n}) chain"),
        description: String::new(),
        inputs: Default::default(),
        nodes,
        edges,
    }
}
