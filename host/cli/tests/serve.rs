//! `hyyve serve` as a process: a fresh data dir comes up with the first-party plugins
//! installed and the example workflow runnable with the printed key; a server killed
//! with SIGKILL mid-flight and started again finishes every accepted run exactly once;
//! the binary copied out of the repository, without cargo on its PATH, does the same.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Every first-party plugin a fresh server publishes and installs, by reference.
const FIRST_PARTY: &str =
    "hyyve:anthropic, hyyve:fibo, hyyve:json, hyyve:llm, hyyve:logic, hyyve:openai, hyyve:text";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running `hyyve serve` and what it printed before listening.
struct Served {
    child: Child,
    url: String,
    printed: Vec<String>,
}

/// Starts `hyyve serve` on a free port of loopback (SQLite under `data`, one worker so
/// runs queue up) and waits until it listens. With `json_log`, info-level logs go
/// there as JSON lines.
async fn serve(data: &Path, json_log: Option<&Path>) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hyyve"));
    command.current_dir(repo());
    serve_as(command, data, json_log).await
}

/// Starts `command` (a `hyyve` binary) as `serve` on `data` and waits until it listens.
async fn serve_as(mut command: Command, data: &Path, json_log: Option<&Path>) -> Served {
    command
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("HYYVE_DATABASE_URL")
        .env("HYYVE_WORKERS", "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if let Some(log) = json_log {
        command
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(log).expect("log file"));
    }
    let mut child = command.spawn().expect("hyyve serve starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("hyyve API on ") {
            let url = rest.split_whitespace().next().unwrap().to_owned();
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return Served {
                child,
                url,
                printed,
            };
        }
        printed.push(line);
    }
    panic!("hyyve serve exited before listening: {printed:?}");
}

/// The text after `prefix` on the first printed line that has it.
fn after<'a>(printed: &'a [String], prefix: &str) -> &'a str {
    printed
        .iter()
        .find_map(|l| l.split(prefix).nth(1))
        .unwrap_or_else(|| panic!("nothing printed after `{prefix}`: {printed:?}"))
        .trim()
}

struct Client {
    http: reqwest::Client,
    url: String,
    key: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn start(&self, workflow: &str, input: Value) -> String {
        let (status, run) = self
            .send(
                reqwest::Method::POST,
                &format!("/v1/workflows/{workflow}/runs"),
                Some(json!({ "input": input })),
            )
            .await;
        assert_eq!(status, 202, "{run}");
        run["id"].as_str().unwrap().to_owned()
    }

    async fn run(&self, id: &str) -> Value {
        let (status, run) = self
            .send(reqwest::Method::GET, &format!("/v1/runs/{id}"), None)
            .await;
        assert_eq!(status, 200, "{run}");
        run
    }

    /// Polls until the run is final (at most 60 s).
    async fn finished(&self, id: &str) -> Value {
        for _ in 0..6000 {
            let run = self.run(id).await;
            if !matches!(run["status"].as_str(), Some("queued" | "running")) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("run {id} did not finish");
    }
}

fn node<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == id)
        .unwrap_or_else(|| panic!("no node {id} in {run}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_server_runs_the_example_and_finishes_every_run_once_after_sigkill() {
    let data = std::env::temp_dir().join(format!("hyyve-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut served = serve(&data, None).await;
    assert_eq!(after(&served.printed, "installed: "), FIRST_PARTY);
    let api = Client {
        http: reqwest::Client::new(),
        url: served.url.clone(),
        key: after(&served.printed, "keep it): ").to_owned(),
    };
    let example = after(&served.printed, "example workflow: ").to_owned();
    // The first start's installs are in the audit log with their grants.
    let (status, audit) = api
        .send(
            reqwest::Method::GET,
            "/v1/audit?action=plugin.install",
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let subjects: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["grant"].is_object())
        .filter_map(|e| e["subject"].as_str())
        .collect();
    assert_eq!(subjects.len(), FIRST_PARTY.split(", ").count(), "{audit}");
    assert!(subjects.contains(&"install/hyyve:json"), "{audit}");

    // The example workflow, with the README's input.
    let tickets: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("examples/tickets-input.json")).unwrap(),
    )
    .unwrap();
    let id = api.start(&example, tickets).await;
    let run = api.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(node(&run, "orders")["status"], "succeeded");
    assert!(
        node(&run, "orders")["outputs"]
            .to_string()
            .contains("AB-1234")
    );
    assert_eq!(node(&run, "all-clear")["status"], "skipped");

    // A two-node workflow slow enough that runs queue behind the single worker.
    let (status, created) = api
        .send(
            reqwest::Method::POST,
            "/v1/workflows",
            Some(json!({
                "name": "slow",
                "nodes": [
                    { "id": "slow", "plugin": "hyyve:fibo", "type": "fibo", "config": { "n": 30 } },
                    { "id": "twice", "plugin": "hyyve:json", "type": "query", "config": { "expression": "@" } }
                ],
                "edges": [{ "from": "slow.value", "to": "twice.data" }]
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let slow = created["workflowId"].as_str().unwrap().to_owned();
    let mut ids = Vec::new();
    for _ in 0..150 {
        ids.push(api.start(&slow, json!({})).await);
    }
    let last = api.run(ids.last().unwrap()).await;
    assert_eq!(
        last["status"], "queued",
        "runs must still be queued when the server is killed"
    );
    // SIGKILL: no shutdown code runs.
    served.child.kill().await.unwrap();
    served.child.wait().await.unwrap();

    let restarted = serve(&data, None).await;
    assert!(
        !restarted.printed.iter().any(|l| l.contains("keep it")),
        "a database in use is not set up again: {:?}",
        restarted.printed
    );
    let api = Client {
        url: restarted.url.clone(),
        ..api
    };
    let mut attempts = 0;
    for id in &ids {
        let run = api.finished(id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(node(&run, "twice")["outputs"]["result"], 832040);
        attempts += node(&run, "slow")["attempts"].as_i64().unwrap();
    }
    // Every fibo invocation metered once: one record per (run, node, attempt).
    let (status, usage) = api.send(reqwest::Method::GET, "/v1/usage", None).await;
    assert_eq!(status, 200, "{usage}");
    let metered: i64 = usage["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["plugin"] == "hyyve:fibo")
        .map(|r| r["invocations"].as_i64().unwrap())
        .sum();
    assert_eq!(metered, attempts);
    let _ = std::fs::remove_dir_all(&data);
}

/// The JSON lines of `log` once one satisfies `wanted` (at most 10 s).
async fn logged(log: &Path, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // The first start builds the first-party plugins: cargo's lines are not ours.
        let (ours, cargo): (Vec<&str>, Vec<&str>) = text.lines().partition(|l| l.starts_with('{'));
        let text_format = cargo.iter().find(|l| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|m| l.contains(m))
        });
        assert!(
            text_format.is_none(),
            "a log line not in JSON: {text_format:?}"
        );
        let lines: Vec<Value> = ours
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect();
        if let Some(found) = lines.into_iter().find(&wanted) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no such line in {}", std::fs::read_to_string(log).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_and_run_ids() {
    let data = std::env::temp_dir().join(format!("hyyve-serve-log-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).unwrap();
    let log = data.join("serve.log");
    let served = serve(&data, Some(&log)).await;
    let key = after(&served.printed, "keep it): ").to_owned();
    let example = after(&served.printed, "example workflow: ").to_owned();
    let api = Client {
        http: reqwest::Client::new(),
        url: served.url.clone(),
        key,
    };
    let response = api
        .http
        .post(format!("{}/v1/workflows/{example}/runs", served.url))
        .bearer_auth(&api.key)
        .header("x-request-id", "req-json-log-test")
        .header("content-type", "application/json")
        .body(json!({ "input": { "tickets": [] } }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let run: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    api.finished(&id).await;

    let request = logged(&log, |line| {
        line["fields"]["message"] == "request" && line["span"]["request_id"] == "req-json-log-test"
    })
    .await;
    assert_eq!(request["fields"]["status"], 202, "{request}");
    assert_eq!(
        request["span"]["path"],
        format!("/v1/workflows/{example}/runs")
    );
    let finished = logged(&log, |line| {
        line["fields"]["message"] == "run finished" && line["span"]["run_id"] == id.as_str()
    })
    .await;
    assert_eq!(finished["span"]["name"], "run", "{finished}");
    assert!(finished["fields"]["status"].is_string(), "{finished}");
    drop(served);
    let _ = std::fs::remove_dir_all(&data);
}

/// A registry that already has the `hyyve` publisher, registered with a key this data
/// dir does not hold (here by `hyyve registry add-publisher`), still comes up on first
/// start: a new key of the data dir is added to the account and signs the plugins.
#[tokio::test]
async fn first_start_adds_a_key_to_an_existing_first_party_publisher() {
    let root = tempfile::tempdir().unwrap();
    let (data, elsewhere) = (root.path().join("data"), root.path().join("elsewhere"));
    for args in [
        vec!["keys", "new", "hyyve", "--dir", elsewhere.to_str().unwrap()],
        vec![
            "registry",
            "add-publisher",
            elsewhere.join("hyyve.pub").to_str().unwrap(),
        ],
    ] {
        let done = std::process::Command::new(env!("CARGO_BIN_EXE_hyyve"))
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .env_remove("DATABASE_URL")
            .env_remove("HYYVE_DATABASE_URL")
            .output()
            .unwrap();
        assert!(done.status.success(), "{args:?}: {done:?}");
    }
    let served = serve(&data, None).await;
    assert_eq!(after(&served.printed, "installed: "), FIRST_PARTY);
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
    let (made, first) = (
        read(data.join("keys/hyyve.pub")),
        read(elsewhere.join("hyyve.pub")),
    );
    assert_ne!(made, first, "the data dir got a key of its own");
}

/// The binary carries what a first start needs (the first-party plugins, the example
/// workflow and its input): copied to a folder outside the repository and started there
/// with a PATH that has no cargo or rustup, it serves and runs the example with the
/// input file it printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_the_example_outside_the_repository_without_cargo() {
    let home = tempfile::tempdir().unwrap();
    let exe = home.path().join("hyyve");
    std::fs::copy(env!("CARGO_BIN_EXE_hyyve"), &exe).unwrap();
    let path = "/usr/bin:/bin";
    let has_cargo = path
        .split(':')
        .any(|dir| Path::new(dir).join("cargo").exists() || Path::new(dir).join("rustup").exists());
    assert!(
        !has_cargo,
        "{path} must hold neither cargo nor rustup for this test to mean anything"
    );
    let mut command = Command::new(&exe);
    command
        .current_dir(home.path())
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", path);
    let data = home.path().join("data");
    let served = serve_as(command, &data, None).await;
    assert_eq!(after(&served.printed, "installed: "), FIRST_PARTY);
    let input_file = after(&served.printed, "$(cat '")
        .split('\'')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        Path::new(&input_file).starts_with(home.path()),
        "{input_file} is in the data dir, not the repository"
    );
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(&input_file).unwrap()).unwrap();
    let api = Client {
        http: reqwest::Client::new(),
        url: served.url.clone(),
        key: after(&served.printed, "keep it): ").to_owned(),
    };
    let example = after(&served.printed, "example workflow: ").to_owned();
    let id = api.start(&example, input).await;
    let run = api.finished(&id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
}
