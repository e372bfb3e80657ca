//! `hyyve-bench --server`: the server under load from a second process. This process
//! starts `hyyve serve` as a child on a fresh data dir (SQLite, or a fresh schema of the
//! PostgreSQL database of `--database-url`), bootstraps a second organization with
//! `hyyve admin bootstrap`, and drives both over HTTP on loopback:
//!
//! - throughput: a three-node workflow started `runs` times by `concurrency` clients;
//!   the figure is runs finished (reports and metering persisted) per second, from the
//!   first request to the last run finished as `/metrics` counts them;
//! - latency: clients that each start a run and wait for its `run.finished` event on
//!   the run's event stream, then start the next;
//! - fairness: one workspace floods `flood` runs while the other starts single runs one
//!   after the other; each single run's latency and queueing delay (its `startedAt`
//!   minus `createdAt`) is measured while the flood is still queued.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// What to measure.
pub struct BenchConfig {
    /// PostgreSQL database to bench on (a fresh schema is made and dropped); SQLite
    /// under a temporary data dir when absent.
    pub database_url: Option<String>,
    /// Runs of the throughput figure.
    pub runs: usize,
    /// Runs the flooding workspace starts in the fairness figure.
    pub flood: usize,
    /// Concurrent HTTP clients starting runs.
    pub concurrency: usize,
}

/// The three-node chain every figure runs: query, filter, count.
fn chain() -> Value {
    json!({
        "name": "bench chain",
        "inputs": { "data": { "type": "object" } },
        "nodes": [
            { "id": "items", "plugin": "hyyve:json", "type": "query", "config": { "expression": "items" } },
            { "id": "big", "plugin": "hyyve:json", "type": "query", "config": { "expression": "[?n > `1`]" } },
            { "id": "count", "plugin": "hyyve:json", "type": "query", "config": { "expression": "length(@)" } }
        ],
        "edges": [
            { "from": "$input.data", "to": "items.data" },
            { "from": "items.result", "to": "big.data" },
            { "from": "big.result", "to": "count.data" }
        ]
    })
}

fn input() -> Value {
    json!({ "input": { "data": { "items": [{ "n": 1 }, { "n": 2 }, { "n": 3 }] } } })
}

/// Runs every figure, printing each as it is measured.
pub async fn run(repo: &Path, config: BenchConfig) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let database = match &config.database_url {
        Some(url) => Some(FreshSchema::create(url).await?),
        None => None,
    };
    let database_url = database.as_ref().map(|d| d.url.clone());
    let exe = crate::sibling_binary("hyyve")?;
    let hyyve = Hyyve {
        exe: &exe,
        repo,
        data_dir: dir.path(),
        database_url: database_url.as_deref(),
    };
    let mut server = hyyve.serve().await?;
    let result = measure(&hyyve, &server, &config).await;
    let _ = server.child.kill().await;
    if let Some(database) = database {
        database.drop().await?;
    }
    result
}

async fn measure(hyyve: &Hyyve<'_>, server: &Server, config: &BenchConfig) -> anyhow::Result<()> {
    let api = Api::new(&server.url)?;
    let main = Tenant::prepare(&api, server.owner_key.clone(), false).await?;
    let other = Tenant::prepare(&api, hyyve.bootstrap("flood").await?, true).await?;
    println!(
        "server: {} on {}, {} concurrent clients",
        server.url,
        if hyyve.database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        config.concurrency
    );

    // Warm-up: components compiled and their instance templates made.
    flood(&api, &main, 200, config.concurrency).await?;
    wait_finished(&api, 200).await?;

    let started = Instant::now();
    let before = api.finished_runs().await?;
    let accepted = flood(&api, &main, config.runs, config.concurrency).await?;
    wait_finished(&api, before + config.runs as u64).await?;
    let elapsed = started.elapsed();
    let sample = api
        .call(
            Method::GET,
            &format!("/v1/runs/{}", accepted),
            &main.key,
            None,
        )
        .await?;
    anyhow::ensure!(
        sample["status"] == "succeeded" && sample["nodes"].as_array().map(Vec::len) == Some(3),
        "the last run did not persist three node reports: {sample}"
    );
    println!(
        "throughput: {} runs of 3 nodes in {:.2} s = {:.0} runs/s ({:.0} node invocations/s)",
        config.runs,
        elapsed.as_secs_f64(),
        config.runs as f64 / elapsed.as_secs_f64(),
        3.0 * config.runs as f64 / elapsed.as_secs_f64()
    );

    for clients in [1, config.concurrency] {
        let runs_each = if clients == 1 { 1000 } else { 4000 / clients };
        let (latencies, elapsed) = closed_loop(&api, &main, clients, runs_each).await?;
        println!(
            "latency, {clients} client(s) each waiting for its run: p50 {:.2} ms, p99 {:.2} ms, \
             max {:.2} ms over {} runs ({:.0} runs/s)",
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            percentile(&latencies, 1.0),
            latencies.len(),
            latencies.len() as f64 / elapsed.as_secs_f64()
        );
    }

    fairness(&api, &main, &other, config).await
}

/// The fairness figure: single runs of `main` while `other` floods.
async fn fairness(
    api: &Api,
    main: &Tenant,
    other: &Tenant,
    config: &BenchConfig,
) -> anyhow::Result<()> {
    let before = api.finished_runs().await?;
    let flood_started = Instant::now();
    let flooding = {
        let (api, other) = (api.clone(), other.clone());
        let (runs, concurrency) = (config.flood, config.concurrency);
        tokio::spawn(async move { flood(&api, &other, runs, concurrency).await })
    };
    // Let the flood's queue build up first.
    while api.queue_depth().await? < 500 && !flooding.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut latencies = Vec::new();
    let mut waits = Vec::new();
    let mut depths = Vec::new();
    while latencies.len() < 50 {
        let depth = api.queue_depth().await?;
        if depth == 0 {
            break;
        }
        let start = Instant::now();
        let run = api.start_run(main).await?;
        api.wait_for(main, &run).await?;
        latencies.push(start.elapsed().as_secs_f64() * 1000.0);
        let record = api
            .call(Method::GET, &format!("/v1/runs/{run}"), &main.key, None)
            .await?;
        waits.push(queue_wait_ms(&record)?);
        depths.push(depth);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flooding.await??;
    let probes = latencies.len() as u64;
    wait_finished(api, before + config.flood as u64 + probes).await?;
    let drained = flood_started.elapsed();
    anyhow::ensure!(
        !latencies.is_empty(),
        "the flood drained before a single run could be measured; raise --flood"
    );
    println!(
        "fairness: {} single runs while another workspace flooded {} runs (queue depth at \
         start {}..{}, drained in {:.2} s): latency p50 {:.2} ms, max {:.2} ms; queueing \
         delay p50 {:.0} ms, max {:.0} ms (timestamps in ms)",
        latencies.len(),
        config.flood,
        depths.iter().min().unwrap_or(&0),
        depths.iter().max().unwrap_or(&0),
        drained.as_secs_f64(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 1.0),
        percentile(&waits, 0.50),
        percentile(&waits, 1.0),
    );
    Ok(())
}

/// `startedAt - createdAt` of a run, milliseconds.
fn queue_wait_ms(run: &Value) -> anyhow::Result<f64> {
    let at = |field: &str| -> anyhow::Result<std::time::SystemTime> {
        let text = run[field]
            .as_str()
            .with_context(|| format!("run without {field}: {run}"))?;
        Ok(humantime::parse_rfc3339(text)?)
    };
    let waited = at("startedAt")?
        .duration_since(at("createdAt")?)
        .unwrap_or_default();
    Ok(waited.as_secs_f64() * 1000.0)
}

/// `runs` runs started by `concurrency` clients as fast as they are accepted; the last
/// run's id.
async fn flood(
    api: &Api,
    tenant: &Tenant,
    runs: usize,
    concurrency: usize,
) -> anyhow::Result<String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (api, tenant, next) = (api.clone(), tenant.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let mut last = None;
            while next.fetch_add(1, Ordering::Relaxed) < runs {
                last = Some(api.start_run(&tenant).await?);
            }
            anyhow::Ok(last)
        }));
    }
    let mut last = None;
    for client in clients {
        if let Some(id) = client.await?? {
            last = Some(id);
        }
    }
    last.context("no run was started")
}

/// `clients` clients, each starting `runs_each` runs one after the other and waiting for
/// each to finish; the latencies in ms and the elapsed time.
async fn closed_loop(
    api: &Api,
    tenant: &Tenant,
    clients: usize,
    runs_each: usize,
) -> anyhow::Result<(Vec<f64>, Duration)> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (api, tenant) = (api.clone(), tenant.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(runs_each);
            for _ in 0..runs_each {
                let start = Instant::now();
                let run = api.start_run(&tenant).await?;
                api.wait_for(&tenant, &run).await?;
                latencies.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, started.elapsed()))
}

/// Polls `/metrics` until `total` runs have finished (at most 10 minutes).
async fn wait_finished(api: &Api, total: u64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while api.finished_runs().await? < total {
        anyhow::ensure!(
            Instant::now() < deadline,
            "runs did not finish in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The `q`-quantile of `values` (nearest rank).
fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// How to invoke the `hyyve` binary on the bench's data dir and database.
struct Hyyve<'a> {
    exe: &'a Path,
    repo: &'a Path,
    data_dir: &'a Path,
    database_url: Option<&'a str>,
}

/// The server child process.
struct Server {
    child: Child,
    url: String,
    owner_key: String,
}

impl Hyyve<'_> {
    fn command(&self) -> Command {
        let mut command = Command::new(self.exe);
        command
            .current_dir(self.repo)
            .arg("--data-dir")
            .arg(self.data_dir)
            .env_remove("HYYVE_DATABASE_URL")
            .kill_on_drop(true);
        match self.database_url {
            Some(url) => command.env("DATABASE_URL", url),
            None => command.env_remove("DATABASE_URL"),
        };
        command
    }

    /// `hyyve serve` on a free port, once it printed its URL.
    async fn serve(&self) -> anyhow::Result<Server> {
        let mut child = self
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting hyyve serve")?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut owner_key = None;
        while let Some(line) = lines.next_line().await? {
            if let Some(key) = line.split("keep it): ").nth(1) {
                owner_key = Some(key.trim().to_owned());
            }
            if let Some(rest) = line.strip_prefix("hyyve API on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                // Keep reading stdout so the server never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return Ok(Server {
                    child,
                    url,
                    owner_key: owner_key.context("serve printed no owner key")?,
                });
            }
        }
        anyhow::bail!("hyyve serve exited before listening")
    }

    /// A new organization on the enterprise plan (no quota); its owner key.
    async fn bootstrap(&self, org: &str) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(["admin", "bootstrap", "--org", org, "--workspace", org])
            .args(["--plan", "enterprise"])
            .output()
            .await?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success(),
            "admin bootstrap: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .lines()
            .find_map(|l| l.split("keep it): ").nth(1))
            .map(|k| k.trim().to_owned())
            .context("admin bootstrap printed no key")
    }
}

/// A workspace's owner key and its bench workflow.
#[derive(Clone)]
struct Tenant {
    key: String,
    workflow: String,
}

impl Tenant {
    /// Installs `hyyve:json` when asked (a fresh organization has nothing installed) and
    /// creates the chain workflow.
    async fn prepare(api: &Api, key: String, install: bool) -> anyhow::Result<Self> {
        if install {
            api.expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/installs",
                &key,
                Some(json!({ "plugin": "hyyve:json" })),
            )
            .await?;
        }
        let created = api
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/workflows",
                &key,
                Some(chain()),
            )
            .await?;
        let workflow = created["workflowId"]
            .as_str()
            .context("no workflowId")?
            .to_owned();
        Ok(Self { key, workflow })
    }
}

/// The HTTP client.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()?,
            url: url.to_owned(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        self.expect(StatusCode::OK, method, path, key, body).await
    }

    /// The JSON answer, failing unless its status is `status`.
    async fn expect(
        &self,
        status: StatusCode,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let got = response.status();
        let text = response.text().await?;
        anyhow::ensure!(got == status, "{method} {path}: {got}: {text}");
        Ok(serde_json::from_str(&text)?)
    }

    async fn start_run(&self, tenant: &Tenant) -> anyhow::Result<String> {
        let run = self
            .expect(
                StatusCode::ACCEPTED,
                Method::POST,
                &format!("/v1/workflows/{}/runs", tenant.workflow),
                &tenant.key,
                Some(input()),
            )
            .await?;
        Ok(run["id"].as_str().context("no run id")?.to_owned())
    }

    /// Reads the run's event stream until it ends (after `run.finished`, or at once for
    /// a finished run); a reader told it lagged reads the run until it is final.
    async fn wait_for(&self, tenant: &Tenant, run: &str) -> anyhow::Result<()> {
        let mut response = self
            .http
            .get(format!("{}/v1/runs/{run}/events", self.url))
            .bearer_auth(&tenant.key)
            .send()
            .await?
            .error_for_status()?;
        let mut seen = String::new();
        while let Some(chunk) = response.chunk().await? {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: lagged") {
                return self.poll(tenant, run).await;
            }
        }
        Ok(())
    }

    async fn poll(&self, tenant: &Tenant, run: &str) -> anyhow::Result<()> {
        loop {
            let got = self
                .call(Method::GET, &format!("/v1/runs/{run}"), &tenant.key, None)
                .await?;
            if !matches!(got["status"].as_str(), Some("queued" | "running")) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn metrics(&self) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Runs finished so far, any status.
    async fn finished_runs(&self) -> anyhow::Result<u64> {
        Ok(sum_metric(&self.metrics().await?, "hyyve_runs_total{"))
    }

    /// Runs waiting for a worker.
    async fn queue_depth(&self) -> anyhow::Result<u64> {
        Ok(sum_metric(&self.metrics().await?, "hyyve_queue_depth "))
    }
}

/// The sum of the samples whose line starts with `prefix`.
fn sum_metric(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A schema of its own in a PostgreSQL database, dropped at the end.
struct FreshSchema {
    pool: sqlx::PgPool,
    schema: String,
    url: String,
}

impl FreshSchema {
    async fn create(base: &str) -> anyhow::Result<Self> {
        let pool = sqlx::PgPool::connect(base)
            .await
            .with_context(|| format!("connecting to {base}"))?;
        let schema = format!("hyyve_bench_{}", std::process::id());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&pool)
            .await?;
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{schema}");
        Ok(Self { pool, schema, url })
    }

    async fn drop(self) -> anyhow::Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.schema
        )))
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
