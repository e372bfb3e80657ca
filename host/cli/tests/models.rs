//! `hyyve models` and `hyyve run` with a model call, end to end: an alias bound to the
//! OpenAI-compatible provider (a component file with a manifest granting the loopback
//! fake), the key set with `hyyve secrets`, an `hyyve:llm` workflow run.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use hyyve_tests::fake_llm::{OPENAI_KEY, fake_llm};

fn hyyve(args: &[&str], data: &Path, stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hyyve"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hyyve runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn an_alias_bound_with_the_cli_serves_a_workflows_llm_node() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("policy")).unwrap();
    std::fs::write(
        data.join("policy/org.toml"),
        "[http]\nprivate_networks = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let provider = work.path().join("openai.wasm");
    std::fs::copy(hyyve_tests::guest_path("hyyve-plugin-openai"), &provider).unwrap();
    std::fs::write(
        work.path().join("openai.hyyve.toml"),
        format!(
            "[plugin]\nid = \"test:openai\"\nversion = \"0.1.0\"\nkind = \"provider\"\n\
             publisher = \"test\"\ndescription = \"fake-bound provider\"\n\n[capabilities]\n\
             secrets = [\"OPENAI_API_KEY\"]\n\n[capabilities.http]\n\
             private_networks = [\"127.0.0.0/8\"]\n\n[[capabilities.http.allow]]\n\
             url = \"http://127.0.0.1:{}\"\nmethods = [\"POST\"]\n",
            fake_llm().port
        ),
    )
    .unwrap();
    let provider = provider.display().to_string();
    let inspect = ok(&hyyve(&["plugin", "inspect", &provider], &data, ""));
    assert!(inspect.contains("provider openai"), "{inspect}");
    assert!(
        inspect.contains("model gpt-4o-mini (chat, 128000 tokens, tools)"),
        "{inspect}"
    );
    let config = format!("{provider}={{\"baseUrl\":\"{}/v1\"}}", fake_llm().base());
    let target = format!("{provider}/cli-ok");
    let set = ok(&hyyve(
        &[
            "models",
            "set",
            "default-chat",
            &target,
            "--config",
            &config,
        ],
        &data,
        "",
    ));
    assert!(set.contains("default-chat →"), "{set}");
    assert!(ok(&hyyve(&["models", "list"], &data, "")).contains("/cli-ok"));
    ok(&hyyve(
        &["secrets", "set", "OPENAI_API_KEY"],
        &data,
        OPENAI_KEY,
    ));

    let workflow = work.path().join("ask.json");
    std::fs::write(
        &workflow,
        r#"{ "name": "ask", "nodes": [{ "id": "ask", "plugin": "hyyve:llm", "type": "llm-chat",
             "config": { "prompt": "Hi {{ who }}" }, "inputs": { "data": { "who": "there" } } }] }"#,
    )
    .unwrap();
    let out = ok(&hyyve(
        &["run", &workflow.display().to_string(), "--json"],
        &data,
        "",
    ));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["status"], "succeeded", "{report}");
    let node = &report["nodes"][0];
    assert_eq!(node["outputs"]["text"], "Hello!");
    let call = &node["metering"]["modelCalls"][0];
    assert_eq!(call["provider"], provider.as_str());
    assert_eq!(call["metering"]["usage"]["llm.input-tokens"], 12);
    assert_eq!(fake_llm().seen("cli-ok").len(), 1);

    let audit = ok(&hyyve(&["audit"], &data, ""));
    assert!(audit.contains("model_alias.set"), "{audit}");
    ok(&hyyve(&["models", "remove", "default-chat"], &data, ""));
    assert!(!ok(&hyyve(&["models", "list"], &data, "")).contains("default-chat"));
}
