//! The `hyyve` binary end to end: exit codes, reports, inspect, schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hyyve(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyyve"))
        .current_dir(repo())
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("hyyve runs")
}

fn data_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hyyve-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn runs_the_example_then_reuses_cached_results() {
    let data = data_dir("example");
    let input = std::fs::read_to_string(repo().join("examples/tickets-input.json")).unwrap();
    let args = ["run", "examples/summarize-tickets.json", "--input", &input];
    let out = hyyve(&args, &data);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("run succeeded"), "{stdout}");
    assert!(stdout.contains("AB-1234"), "{stdout}");
    assert!(stdout.contains("metering"), "{stdout}");
    assert!(stdout.contains("all-clear   skipped"), "{stdout}");

    let again = hyyve(&args, &data);
    assert!(
        text(&again.stdout).contains("digest      cached"),
        "{}",
        text(&again.stdout)
    );

    let json = hyyve(&[&args[..], &["--json", "--no-cache"]].concat(), &data);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["status"], "succeeded");
    assert!(report["nodes"][0]["metering"]["fuel"].as_u64().unwrap() > 0);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn invalid_workflows_exit_2_naming_the_node_and_field() {
    let data = data_dir("invalid");
    let out = hyyve(&["run", "examples/invalid/cycle.json"], &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cycle through nodes"),
        "{}",
        text(&out.stderr)
    );

    let out = hyyve(&["run", "examples/invalid/bad-config.json"], &data);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("node `chunker`: config/chunk_size"),
        "{stderr}"
    );

    let out = hyyve(&["run", "examples/does-not-exist.json"], &data);
    assert_eq!(out.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn a_failing_node_fails_the_run_with_its_kind() {
    let data = data_dir("failing");
    let out = hyyve(&["run", "examples/fails-at-runtime.json"], &data);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("greet  FAILED"), "{stdout}");
    assert!(
        stdout.contains("invalid_input: invalid input: template"),
        "{stdout}"
    );
    assert!(stdout.contains("after  not run"), "{stdout}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn plugin_build_and_inspect() {
    let data = data_dir("inspect");
    let out = hyyve(
        &[
            "plugin",
            "build",
            "plugins/fibo",
            "--target-dir",
            "target/guests",
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wasm = text(&out.stdout).trim().to_owned();
    assert!(wasm.ends_with("hyyve_plugin_fibo.wasm"), "{wasm}");

    let out = hyyve(&["plugin", "inspect", &wasm], &data);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("world    a node-plugin"), "{stdout}");
    assert!(stdout.contains("hyyve:plugin/node@0.1.0"), "{stdout}");
    assert!(stdout.contains("node type fibo"), "{stdout}");

    let out = hyyve(&["plugin", "inspect", "Cargo.toml"], &data);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not a WebAssembly file"),
        "{}",
        text(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_readme_workflow_runs() {
    let data = data_dir("greet");
    let out = hyyve(
        &[
            "run",
            "examples/greet.json",
            "--input",
            r#"{"vars": {"who": "Ada"}}"#,
            "--json",
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let words = &report["nodes"][1]["outputs"]["chunks"];
    assert_eq!(
        words,
        &serde_json::json!(["Hello Ada,", "welcome", "aboard!"])
    );
    let _ = std::fs::remove_dir_all(&data);
}
