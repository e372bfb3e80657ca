//! `hyyve-bench --capabilities`: what the capability policy costs. The policy decision
//! on an allowed request (rule match, resolution, address check) against a loopback HTTP
//! round trip, and a trivial invocation with every capability granted against none.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyyve_policy::{Grant, HttpRule, Scheme};
use hyyve_runtime::{NodePlugin, Resolver, Runtime, RuntimeConfig, StaticResolver};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use hyyve::build;
use hyyve::resolve;

const HOST: &str = "bench.local";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello";

/// A loopback server answering every request with `hello` and closing.
async fn serve() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(RESPONSE).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(port)
}

/// One GET from the host itself: connect, request, read to close. No wasm, no policy.
async fn host_round_trip(port: u16) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: bench.local\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    anyhow::ensure!(response.ends_with(b"hello"), "unexpected response");
    Ok(started.elapsed())
}

fn full_grant(port: u16) -> anyhow::Result<Grant> {
    let mut grant = Grant::default();
    let rule = HttpRule::parse(&format!("http://{HOST}:{port}"), &["GET".into()])
        .map_err(anyhow::Error::msg)?;
    grant.http.rules.push(rule);
    grant.http.private_networks.push("127.0.0.0/8".parse()?);
    grant.http.max_requests = 4;
    grant.http.max_request_bytes = 1 << 20;
    grant.http.max_response_bytes = 1 << 20;
    grant.kv_bytes = 1 << 20;
    grant.scratch_bytes = 1 << 20;
    grant.secrets = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
    Ok(grant)
}

async fn invoke(
    runtime: &Arc<Runtime>,
    plugin: &NodePlugin,
    node_type: &str,
    config: serde_json::Value,
    grant: &Arc<Grant>,
) -> anyhow::Result<Duration> {
    crate::instance::timed_invoke(runtime, plugin, node_type, config, json!({}), grant).await
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Runs the capability benchmarks; `calls` invocations per figure.
pub async fn run(repo: &Path, calls: usize) -> anyhow::Result<String> {
    let mut out = String::new();
    let port = serve().await?;
    let scratch = std::env::temp_dir().join(format!("hyyve-bench-scratch-{}", std::process::id()));
    let loopback: IpAddr = "127.0.0.1".parse()?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        scratch_root: Some(scratch.clone()),
        resolver: Arc::new(StaticResolver::new([(HOST.to_string(), vec![loopback])])),
        ..RuntimeConfig::default()
    })?);
    let built = tokio::task::spawn_blocking({
        let repo = repo.to_owned();
        move || {
            build::build_packages(
                &repo,
                &["guest-hostile", "hyyve-plugin-fibo"],
                &build::guest_target_dir(&repo),
            )
        }
    })
    .await??;
    let references: Vec<String> = built.iter().map(|p| p.display().to_string()).collect();
    let refs: Vec<&str> = references.iter().map(String::as_str).collect();
    let mut plugins = resolve::Resolver::new(runtime.clone())
        .resolve(&refs, repo)
        .await?;
    let probe = plugins.remove(refs[0]).context("guest-hostile")?.plugin;
    let fibo = plugins.remove(refs[1]).context("fibo")?.plugin;

    let full = Arc::new(full_grant(port)?);
    let nothing = Arc::new(Grant::default());

    // 1. The policy decision alone, as the send hook and the sender make it.
    let resolver = StaticResolver::new([(HOST.to_string(), vec![loopback])]);
    let rounds = 200_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        full.http
            .check_destination(Scheme::Http, HOST, port, "GET")
            .map_err(anyhow::Error::msg)?;
        for ip in resolver.resolve(HOST).await? {
            full.http
                .check_address(HOST, ip)
                .map_err(anyhow::Error::msg)?;
        }
    }
    let decision = started.elapsed() / rounds;
    let _ = writeln!(
        out,
        "policy decision per allowed request (rule match + resolution + address check): {:.0} ns",
        decision.as_secs_f64() * 1e9
    );

    // 2. A loopback round trip from the host, and one from a plugin through the policy.
    host_round_trip(port).await?;
    let mut host = Vec::with_capacity(calls);
    for _ in 0..calls {
        host.push(host_round_trip(port).await?);
    }
    let host = median(host);
    let url = json!({ "target": format!("http://{HOST}:{port}/") });
    invoke(&runtime, &probe, "http-fetch", url.clone(), &full).await?;
    let mut guest = Vec::with_capacity(calls);
    for _ in 0..calls {
        guest.push(invoke(&runtime, &probe, "http-fetch", url.clone(), &full).await?);
    }
    let guest = median(guest);
    let _ = writeln!(
        out,
        "loopback GET round trip: host-side raw {} median; plugin invocation (fresh instance + GET through the policy) {} median; policy decision = {:.2} % of the raw round trip, {:.2} % of the invocation",
        us(host),
        us(guest),
        decision.as_secs_f64() / host.as_secs_f64() * 100.0,
        decision.as_secs_f64() / guest.as_secs_f64() * 100.0,
    );

    // 3. A trivial node with nothing granted and with everything granted (scratch
    //    directory preopened and measured, HTTP rules, secrets, KV).
    let fibo_one = json!({ "n": 1 });
    let mut medians = Vec::new();
    for grant in [&nothing, &full] {
        invoke(&runtime, &fibo, "fibo", fibo_one.clone(), grant).await?;
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            times.push(invoke(&runtime, &fibo, "fibo", fibo_one.clone(), grant).await?);
        }
        medians.push(median(times));
    }
    let _ = writeln!(
        out,
        "trivial invocation (fibo(1)): nothing granted {} median; every capability granted {} median ({:+.1} µs)",
        us(medians[0]),
        us(medians[1]),
        (medians[1].as_secs_f64() - medians[0].as_secs_f64()) * 1e6
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(out)
}
