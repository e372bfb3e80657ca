//! Loading, describing, invoking first-party plugins; metering; compile cache.

use hyyve_runtime::{PluginWorld, Runtime, RuntimeConfig};
use hyyve_tests::{guest_bytes, plugin};
use serde_json::json;

use crate::invoke;

#[tokio::test]
async fn text_plugin_exports_several_node_types_with_schemas() {
    let text = plugin("hyyve-plugin-text").await;
    let names: Vec<&str> = text.node_types().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["template", "split", "regex-extract"]);
    let split = text.node_type("split").unwrap();
    let input = split.input("text").unwrap();
    assert!(input.required);
    assert_eq!(input.schema["type"], "string");
    assert_eq!(input.description, "The document to chunk.");
    assert_eq!(
        split.config_schema["properties"]["chunk_size"]["type"],
        "integer"
    );
    assert_eq!(split.config_schema["required"], json!(["chunk_size"]));
    let outputs: Vec<&str> = split.outputs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(outputs, ["chunks", "count"]);
}

#[tokio::test]
async fn fibo_computes_and_is_metered() {
    let fibo = plugin("hyyve-plugin-fibo").await;
    let small = invoke(&fibo, "fibo", json!({"n": 10}), json!({})).await;
    assert_eq!(small.result.unwrap(), json!({"value": 55}));
    let big = invoke(&fibo, "fibo", json!({"n": 20}), json!({})).await;
    assert_eq!(big.result.unwrap(), json!({"value": 6765}));
    // fuel is deterministic CPU: more work, more fuel, same work, same fuel.
    assert!(
        big.metering.fuel > small.metering.fuel * 10,
        "{:?} vs {:?}",
        big.metering,
        small.metering
    );
    let again = invoke(&fibo, "fibo", json!({"n": 10}), json!({})).await;
    assert_eq!(again.metering.fuel, small.metering.fuel);
    assert!(small.metering.wall_time_us > 0);
    assert!(small.metering.peak_memory_bytes >= 64 * 1024);
    assert_eq!(small.metering.host_calls, 0);
}

#[tokio::test]
async fn template_split_regex_and_query_do_real_work() {
    let text = plugin("hyyve-plugin-text").await;
    let out = invoke(
        &text,
        "template",
        json!({"template": "Hi {{ name | upper }}{% for i in items %} {{ i }}{% endfor %}"}),
        json!({"data": {"name": "ada", "items": [1, 2]}}),
    )
    .await;
    assert_eq!(out.result.unwrap(), json!({"text": "Hi ADA 1 2"}));

    let words = "alpha beta gamma delta epsilon zeta eta theta";
    let out = invoke(
        &text,
        "split",
        json!({"chunk_size": 12, "overlap": 0}),
        json!({"text": words}),
    )
    .await;
    let out = out.result.unwrap();
    let chunks: Vec<&str> = out["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c.chars().count() <= 12), "{chunks:?}");
    assert_eq!(chunks.join(" "), words);
    assert_eq!(out["count"], chunks.len());

    let out = invoke(
        &text,
        "regex-extract",
        json!({"pattern": r"(?P<user>\w+)@(\w+)\.com"}),
        json!({"text": "mail ann@example.com or bob@test.com"}),
    )
    .await
    .result
    .unwrap();
    assert_eq!(out["first"], "ann@example.com");
    assert_eq!(out["matches"][1]["named"]["user"], "bob");
    assert_eq!(out["matches"][1]["groups"], json!(["bob", "test"]));

    let json_plugin = plugin("hyyve-plugin-json").await;
    let out = invoke(
        &json_plugin,
        "query",
        json!({"expression": "people[?age > `30`].name"}),
        json!({"data": {"people": [{"name": "a", "age": 31}, {"name": "b", "age": 20}]}}),
    )
    .await;
    assert_eq!(out.result.unwrap(), json!({"result": ["a"]}));
}

#[tokio::test]
async fn condition_emits_exactly_one_branch() {
    let logic = plugin("hyyve-plugin-logic").await;
    let cfg = json!({"pointer": "/score", "operator": "greater_than", "value": 0.5});
    let yes = invoke(
        &logic,
        "condition",
        cfg.clone(),
        json!({"value": {"score": 0.9}}),
    )
    .await;
    assert_eq!(yes.result.unwrap(), json!({"true": {"score": 0.9}}));
    let no = invoke(&logic, "condition", cfg, json!({"value": {"score": 0.1}})).await;
    assert_eq!(no.result.unwrap(), json!({"false": {"score": 0.1}}));
    let bad = invoke(
        &logic,
        "condition",
        json!({"pointer": "/name", "operator": "less_than", "value": 3}),
        json!({"value": {"name": "x"}}),
    )
    .await;
    assert_eq!(bad.result.unwrap_err().kind(), "invalid_input");
}

#[tokio::test]
async fn plugin_errors_keep_their_kind() {
    let text = plugin("hyyve-plugin-text").await;
    let out = invoke(
        &text,
        "regex-extract",
        json!({"pattern": "("}),
        json!({"text": "x"}),
    )
    .await;
    let err = out.result.unwrap_err();
    assert_eq!(err.kind(), "invalid_input");
    assert!(err.to_string().contains("pattern"), "{err}");
    let hostile = plugin("guest-hostile").await;
    let out = invoke(&hostile, "fail-retryable", json!({}), json!({})).await;
    assert_eq!(out.result.unwrap_err().kind(), "retryable");
    let out = invoke(&hostile, "no-such-type", json!({}), json!({})).await;
    assert_eq!(out.result.unwrap_err().kind(), "unknown_node_type");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_and_reused_after_restart() {
    let dir = std::env::temp_dir().join(format!("hyyve-cache-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = guest_bytes("hyyve-plugin-fibo");
    let config = || RuntimeConfig {
        cache_dir: Some(dir.clone()),
        ..RuntimeConfig::default()
    };
    let first = Runtime::new(config()).unwrap();
    let loaded = first.load_node_plugin(&bytes).await.unwrap();
    let artifacts: Vec<_> = walk(&dir);
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].ends_with(format!("{}.cwasm", loaded.digest().hex())));
    drop(first);

    // A new runtime (a restart) loads the artifact instead of compiling again.
    let modified = std::fs::metadata(&artifacts[0])
        .unwrap()
        .modified()
        .unwrap();
    let second = Runtime::new(config()).unwrap();
    let reloaded = second.load_node_plugin(&bytes).await.unwrap();
    assert_eq!(reloaded.digest(), loaded.digest());
    assert_eq!(
        std::fs::metadata(&artifacts[0])
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // A corrupt artifact is discarded and the component recompiled, never trusted.
    std::fs::write(&artifacts[0], b"garbage").unwrap();
    let third = Runtime::new(config()).unwrap();
    assert!(third.load_node_plugin(&bytes).await.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn inspect_reports_world_imports_exports_and_node_types() {
    let info = hyyve_tests::runtime()
        .inspect(&guest_bytes("hyyve-plugin-text"))
        .await
        .unwrap();
    assert_eq!(info.world, PluginWorld::Node);
    assert!(
        info.exports.iter().any(|e| e == "hyyve:plugin/node@0.1.0"),
        "{:?}",
        info.exports
    );
    assert!(
        info.imports
            .iter()
            .all(|i| i.starts_with("wasi:") || i.starts_with("hyyve:plugin/"))
    );
    assert_eq!(info.node_types.len(), 3);
    let command = hyyve_tests::runtime()
        .inspect(&guest_bytes("guest-command"))
        .await
        .unwrap();
    assert!(
        matches!(command.world, PluginWorld::Other(ref e) if e.iter().any(|x| x.starts_with("wasi:cli/run")))
    );
}
