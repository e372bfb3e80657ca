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

    // The run input is checked before anything runs, as the server's 422 does: `vars`
    // is declared an object, so leaving it out is refused, as is a value that breaks it.
    for input in [None, Some(r#"{"vars": {"name": "Ada"}}"#)] {
        let mut args = vec!["run", "examples/greet.json"];
        args.extend(input.iter().flat_map(|i| ["--input", *i]));
        let out = hyyve(&args, &data);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input:?}: {stderr}");
        assert!(stderr.contains("vars"), "{stderr}");
        assert!(
            !text(&out.stdout).contains("hello"),
            "nothing ran: {input:?}"
        );
    }
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

fn copy_policy(data: &Path) {
    let policy = data.join("policy");
    std::fs::create_dir_all(policy.join("grants")).unwrap();
    let examples = repo().join("examples/policy");
    std::fs::copy(examples.join("org.toml"), policy.join("org.toml")).unwrap();
    std::fs::copy(
        examples.join("weather-grant.toml"),
        policy.join("grants/acme-weather.toml"),
    )
    .unwrap();
}

#[test]
fn policy_explain_names_the_layer_behind_every_cut() {
    let data = data_dir("explain");
    copy_policy(&data);
    let out = hyyve(
        &["policy", "explain", "examples/policy/weather.hyyve.toml"],
        &data,
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    for expected in [
        "cut by organization policy: blocked by `telemetry.acme.example`",
        "cut by workspace grant: not accepted at install",
        "cut by organization policy: a scratch filesystem is not allowed",
        "cut by platform caps: capped at 268435456",
        "cut by workspace grant: capped at 5000",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    let json = hyyve(
        &[
            "policy",
            "explain",
            "examples/policy/weather.hyyve.toml",
            "--json",
        ],
        &data,
    );
    let explained: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(explained["grant"]["limits"]["timeout_ms"], 5000);
    assert_eq!(explained["grant"]["scratch_bytes"], 0);

    // A publisher outside the allowlist is refused outright.
    let org = data.join("policy/org.toml");
    let strict = std::fs::read_to_string(&org).unwrap().replace(
        "publishers = [\"hyyve\", \"acme\"]",
        "publishers = [\"hyyve\"]",
    );
    std::fs::write(&org, strict).unwrap();
    let out = hyyve(
        &["policy", "explain", "examples/policy/weather.hyyve.toml"],
        &data,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stdout).contains("REFUSED"),
        "{}",
        text(&out.stdout)
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn installs_and_policy_changes_are_audited_once_and_tampering_is_detected() {
    let data = data_dir("audit");
    let run = || {
        hyyve(
            &[
                "run",
                "examples/greet.json",
                "--input",
                r#"{"vars":{"who":"Ada"}}"#,
            ],
            &data,
        )
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let first = text(&hyyve(&["audit", "--json"], &data).stdout);
    assert!(first.contains("\"action\":\"policy.change\""), "{first}");
    assert!(first.contains("\"action\":\"plugin.install\""), "{first}");
    // Same component, manifest and policy: the stored install is reused, nothing new.
    assert!(run().status.success());
    assert_eq!(text(&hyyve(&["audit", "--json"], &data).stdout), first);
    // A policy change is audited and recomputes the grant.
    copy_policy(&data);
    assert!(run().status.success());
    let after = text(&hyyve(&["audit", "--json"], &data).stdout);
    assert_eq!(after.matches("policy.change").count(), 2, "{after}");
    let verify = hyyve(&["audit", "--verify"], &data);
    assert!(
        text(&verify.stdout).contains("audit log intact"),
        "{}",
        text(&verify.stdout)
    );
    // Editing an entry breaks the chain.
    let log = data.join("audit.jsonl");
    let edited =
        std::fs::read_to_string(&log)
            .unwrap()
            .replacen("plugin.install", "plugin.uninstall", 1);
    std::fs::write(&log, edited).unwrap();
    let verify = hyyve(&["audit", "--verify"], &data);
    assert!(!verify.status.success());
    assert!(
        text(&verify.stderr).contains("altered"),
        "{}",
        text(&verify.stderr)
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn secrets_are_set_from_stdin_listed_by_name_and_stored_encrypted() {
    use std::io::Write as _;
    let data = data_dir("secrets");
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyyve"))
        .current_dir(repo())
        .args(["--data-dir"])
        .arg(&data)
        .args(["secrets", "set", "WEATHER_API_KEY"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk-live-very-secret\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    let list = hyyve(&["secrets", "list"], &data);
    assert_eq!(text(&list.stdout), "WEATHER_API_KEY\n");
    let stored = std::fs::read_to_string(data.join("secrets.json")).unwrap();
    assert!(stored.contains("WEATHER_API_KEY"));
    assert!(!stored.contains("sk-live"), "{stored}");
    let audit = text(&hyyve(&["audit"], &data).stdout);
    assert!(audit.contains("secret.set"), "{audit}");
    assert!(!audit.contains("sk-live"), "{audit}");
    let bad = hyyve(&["secrets", "set", "not-a-name"], &data);
    assert!(!bad.status.success());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_committed_manifest_schema_matches_the_code() {
    let data = data_dir("manifest-schema");
    let out = hyyve(&["schema", "manifest"], &data);
    let committed = std::fs::read_to_string(repo().join("manifest.schema.json")).unwrap();
    assert_eq!(text(&out.stdout), committed);
}

#[test]
fn a_denied_capability_fails_the_node_with_its_kind_and_is_audited() {
    let data = data_dir("denied");
    let out = hyyve(
        &[
            "plugin",
            "build",
            "tests/guests/hostile",
            "--target-dir",
            "target/guests",
        ],
        &data,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let wasm = text(&out.stdout).trim().to_owned();
    std::fs::create_dir_all(&data).unwrap();
    let workflow = data.join("probe.json");
    let spec = serde_json::json!({
        "name": "probe",
        "nodes": [{ "id": "steal", "plugin": wasm, "type": "read-secret" }],
        "edges": []
    });
    std::fs::write(&workflow, spec.to_string()).unwrap();
    let out = hyyve(&["run", workflow.to_str().unwrap(), "--json"], &data);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["nodes"][0]["error"]["kind"], "secret_denied",
        "{report}"
    );
    let audit = text(&hyyve(&["audit", "--json"], &data).stdout);
    let denied = audit
        .lines()
        .find(|l| l.contains("capability.denied"))
        .unwrap_or_else(|| panic!("no denial in {audit}"));
    assert!(denied.contains("secret_denied"), "{denied}");
    assert!(denied.contains("/node/steal"), "{denied}");
    // The same actor as the server's: the plugin that asked, not the node it ran as.
    assert!(denied.contains(&format!("plugin:{wasm}")), "{denied}");
    let _ = std::fs::remove_dir_all(&data);
}
