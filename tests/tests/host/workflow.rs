//! Workflows: validation errors naming node and field, execution order, branches,
//! failures, partial re-execution, the committed schema.

use std::sync::Arc;

use hyyve_tests::{plugin, runtime};
use hyyve_workflow::{
    Executor, ExecutorConfig, Installed, NodeStatus, PluginSet, ResultCache, RunStatus,
    ValidationError, Workflow,
};
use serde_json::{Value, json};

async fn plugins() -> PluginSet {
    let mut set = PluginSet::new();
    for (reference, package) in [
        ("hyyve:text", "hyyve-plugin-text"),
        ("hyyve:json", "hyyve-plugin-json"),
        ("hyyve:logic", "hyyve-plugin-logic"),
        ("hyyve:fibo", "hyyve-plugin-fibo"),
        ("test:hostile", "guest-hostile"),
    ] {
        set.insert(
            reference.into(),
            Installed::ungranted(package, plugin(package).await),
        );
    }
    set
}

fn workflow(value: Value) -> Workflow {
    serde_json::from_value(value).expect("test workflow parses")
}

async fn errors_of(value: Value) -> Vec<ValidationError> {
    match hyyve_workflow::validate(&workflow(value), &plugins().await) {
        Ok(_) => panic!("workflow should be invalid"),
        Err(errors) => errors,
    }
}

async fn run(value: Value, input: Value) -> hyyve_workflow::RunReport {
    let plan = hyyve_workflow::validate(&workflow(value), &plugins().await).unwrap();
    Executor::new(runtime(), ExecutorConfig::default())
        .run(Arc::new(plan), "wf-test", &input)
        .await
        .unwrap()
}

fn node(id: &str, plugin: &str, ty: &str, config: Value) -> Value {
    json!({"id": id, "plugin": plugin, "type": ty, "config": config})
}

#[tokio::test]
async fn the_example_workflow_runs_and_branches() {
    let text =
        std::fs::read_to_string(hyyve::build::repo_root().join("examples/summarize-tickets.json"))
            .unwrap();
    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(hyyve::build::repo_root().join("examples/tickets-input.json"))
            .unwrap(),
    )
    .unwrap();
    let plan = Arc::new(
        hyyve_workflow::validate(&Workflow::from_json(&text).unwrap(), &plugins().await).unwrap(),
    );
    let executor = Executor::new(runtime(), ExecutorConfig::default());
    let report = executor.run(plan.clone(), "example", &input).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    let orders = report.node("orders").unwrap().outputs.as_ref().unwrap();
    let found: Vec<&str> = orders["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["named"]["order"].as_str().unwrap())
        .collect();
    assert_eq!(found, ["AB-1234", "CD-987"]);
    assert_eq!(
        report.node("all-clear").unwrap().status,
        NodeStatus::Skipped
    );
    assert!(
        report.node("chunks").unwrap().outputs.as_ref().unwrap()["count"]
            .as_u64()
            .unwrap()
            >= 2
    );

    // No urgent tickets: the other branch runs, the digest side is skipped.
    let calm = json!({"tickets": [{"id": 1, "priority": 1, "text": "fine"}]});
    let report = executor.run(plan, "example-calm", &calm).await.unwrap();
    assert_eq!(report.status, RunStatus::Succeeded);
    assert_eq!(
        report.node("all-clear").unwrap().outputs.as_ref().unwrap()["text"],
        "No urgent tickets."
    );
    for skipped in ["digest", "chunks", "orders"] {
        assert_eq!(
            report.node(skipped).unwrap().status,
            NodeStatus::Skipped,
            "{skipped}"
        );
    }
}

#[tokio::test]
async fn validation_names_node_and_field() {
    let errors = errors_of(json!({
        "name": "broken",
        "nodes": [
            node("a", "hyyve:text", "split", json!({"chunk_size": "big"})),
            node("b", "hyyve:nope", "x", json!({})),
            node("c", "hyyve:text", "no-such-type", json!({})),
            node("d", "hyyve:text", "template", json!({"template": "x"})),
            node("d", "hyyve:fibo", "fibo", json!({"n": 1})),
        ],
        "edges": [
            {"from": "ghost.out", "to": "d.data"},
            {"from": "a.chunks", "to": "d.nope"},
            {"from": "a.missing", "to": "d.data"},
            {"from": "nodot", "to": "d.data"},
            {"from": "$input.undeclared", "to": "a.text"}
        ]
    }))
    .await;
    let has = |pred: &dyn Fn(&ValidationError) -> bool| errors.iter().any(pred);
    assert!(
        has(
            &|e| matches!(e, ValidationError::InvalidConfig { node, field, .. } if node == "a" && field == "/chunk_size")
        ),
        "{errors:#?}"
    );
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownPlugin { node, .. } if node == "b")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownNodeType { node, node_type, .. } if node == "c" && node_type == "no-such-type")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::InvalidNodeId { node } if node == "d")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::DanglingEdge { node, .. } if node == "ghost")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownPort { node, direction: "input", port } if node == "d" && port == "nope")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownPort { node, direction: "output", port } if node == "a" && port == "missing")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::MalformedEdge { from, .. } if from == "nodot")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::UnknownRunInput { name, .. } if name == "undeclared")
    ));
}

#[tokio::test]
async fn cycles_missing_inputs_duplicate_sources_and_type_mismatches_are_rejected() {
    let errors = errors_of(json!({
        "name": "cyclic",
        "nodes": [
            node("x", "test:hostile", "echo", json!({})),
            node("y", "test:hostile", "echo", json!({})),
            node("z", "test:hostile", "echo", json!({}))
        ],
        "edges": [
            {"from": "x.value", "to": "y.value"},
            {"from": "y.value", "to": "z.value"},
            {"from": "z.value", "to": "x.value"}
        ]
    }))
    .await;
    match &errors[..] {
        [ValidationError::Cycle { nodes }] => {
            assert_eq!(nodes.first(), nodes.last());
            assert_eq!(nodes.len(), 4, "{nodes:?}");
        }
        other => panic!("expected one cycle error, got {other:#?}"),
    }

    let errors = errors_of(json!({
        "name": "miswired",
        "inputs": {"n": {"type": "integer"}},
        "nodes": [
            node("split", "hyyve:text", "split", json!({"chunk_size": 10})),
            node("count", "hyyve:text", "split", json!({"chunk_size": 10})),
            node("lonely", "hyyve:text", "regex-extract", json!({"pattern": "x"}))
        ],
        "edges": [
            {"from": "split.count", "to": "count.text"},
            {"from": "$input.n", "to": "split.text"},
            {"from": "split.chunks", "to": "split.text"}
        ]
    }))
    .await;
    let has = |pred: &dyn Fn(&ValidationError) -> bool| errors.iter().any(pred);
    assert!(
        has(
            &|e| matches!(e, ValidationError::IncompatiblePorts { from, to, .. } if from == "split.count" && to == "count.text")
        ),
        "{errors:#?}"
    );
    assert!(has(
        &|e| matches!(e, ValidationError::IncompatiblePorts { from, .. } if from == "$input.n")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::DuplicateInput { node, port } if node == "split" && port == "text")
    ));
    assert!(has(
        &|e| matches!(e, ValidationError::MissingRequiredInput { node, port } if node == "lonely" && port == "text")
    ));
}

#[tokio::test]
async fn malformed_workflow_json_is_rejected_with_the_reason() {
    let err = Workflow::from_json(r#"{"name": "x", "nodes": [], "surprise": 1}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown field `surprise`"),
        "{err}"
    );
    let err = Workflow::from_json("{not json").unwrap_err();
    assert!(matches!(err, ValidationError::Malformed(_)));
}

#[tokio::test]
async fn independent_branches_run_and_a_failure_keeps_upstream_results() {
    let report = run(
        json!({
            "name": "diamond",
            "nodes": [
                node("src", "test:hostile", "echo", json!({})),
                node("left", "hyyve:fibo", "fibo", json!({"n": 15})),
                node("right", "test:hostile", "panic", json!({})),
                node("after-right", "test:hostile", "echo", json!({})),
                node("after-left", "test:hostile", "echo", json!({}))
            ],
            "edges": [
                {"from": "src.value", "to": "left.after"},
                {"from": "left.value", "to": "after-left.value"},
                {"from": "right.observed", "to": "after-right.value"}
            ]
        })
        .as_object()
        .map(|o| {
            let mut o = o.clone();
            o["nodes"][0]["inputs"] = json!({"value": 7});
            Value::Object(o)
        })
        .unwrap(),
        json!({}),
    )
    .await;
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(report.node("src").unwrap().status, NodeStatus::Succeeded);
    assert_eq!(
        report.node("after-left").unwrap().outputs.as_ref().unwrap()["value"],
        610
    );
    let right = report.node("right").unwrap();
    assert_eq!(right.status, NodeStatus::Failed);
    assert_eq!(right.error.as_ref().unwrap().kind, "trap");
    assert!(right.metering.fuel > 0, "a failed invocation is metered");
    let after = report.node("after-right").unwrap();
    assert_eq!(after.status, NodeStatus::NotRun);
    assert!(after.error.as_ref().unwrap().message.contains("`right`"));
}

#[tokio::test]
async fn outputs_breaking_their_schema_and_bad_inputs_fail_the_node() {
    let report = run(
        json!({"name": "liar", "nodes": [node("liar", "test:hostile", "breaks-schema", json!({}))]}),
        json!({}),
    )
    .await;
    let liar = report.node("liar").unwrap();
    assert_eq!(liar.status, NodeStatus::Failed);
    let error = liar.error.as_ref().unwrap();
    assert_eq!(error.kind, "output_schema");
    assert!(
        error.message.contains("output `count`"),
        "{}",
        error.message
    );

    // A run input violating its declared schema is refused before anything runs.
    let wf = json!({
        "name": "typed",
        "inputs": {"text": {"type": "string", "maxLength": 5}},
        "nodes": [node("s", "hyyve:text", "split", json!({"chunk_size": 3}))],
        "edges": [{"from": "$input.text", "to": "s.text"}]
    });
    let plan = hyyve_workflow::validate(&workflow(wf.clone()), &plugins().await).unwrap();
    let err = Executor::new(runtime(), ExecutorConfig::default())
        .run(Arc::new(plan), "typed", &json!({"text": "far too long"}))
        .await
        .unwrap_err();
    assert_eq!(err.name, "text");

    // An upstream value that breaks the downstream port schema fails that node.
    let report = run(
        json!({
            "name": "mismatch",
            "nodes": [
                node("e", "test:hostile", "echo", json!({})),
                node("s", "hyyve:text", "split", json!({"chunk_size": 3}))
            ],
            "edges": [{"from": "e.value", "to": "s.text"}]
        })
        .as_object()
        .map(|o| {
            let mut o = o.clone();
            o["nodes"][0]["inputs"] = json!({"value": 42});
            Value::Object(o)
        })
        .unwrap(),
        json!({}),
    )
    .await;
    let s = report.node("s").unwrap();
    assert_eq!(s.error.as_ref().unwrap().kind, "input_schema", "{s:?}");
}

#[tokio::test]
async fn editing_one_node_re_executes_only_it_and_its_downstream() {
    let chain = |n_mid: u32| {
        json!({
            "name": "chain",
            "nodes": [
                node("first", "hyyve:fibo", "fibo", json!({"n": 5})),
                node("middle", "hyyve:fibo", "fibo", json!({"n": n_mid})),
                node("last", "test:hostile", "echo", json!({})),
                node("side", "hyyve:fibo", "fibo", json!({"n": 7}))
            ],
            "edges": [
                {"from": "first.value", "to": "middle.after"},
                {"from": "middle.value", "to": "last.value"}
            ]
        })
    };
    let cache = Arc::new(ResultCache::in_memory());
    let executor = Executor::new(runtime(), ExecutorConfig::default()).with_cache(cache);
    let all = plugins().await;
    let plan = |n| Arc::new(hyyve_workflow::validate(&workflow(chain(n)), &all).unwrap());
    let statuses = |r: &hyyve_workflow::RunReport| -> Vec<(String, NodeStatus)> {
        r.nodes.iter().map(|n| (n.id.clone(), n.status)).collect()
    };

    let first = executor.run(plan(6), "r1", &json!({})).await.unwrap();
    assert!(
        first
            .nodes
            .iter()
            .all(|n| n.status == NodeStatus::Succeeded),
        "{:?}",
        statuses(&first)
    );
    let again = executor.run(plan(6), "r2", &json!({})).await.unwrap();
    assert!(
        again.nodes.iter().all(|n| n.status == NodeStatus::Cached),
        "{:?}",
        statuses(&again)
    );

    let edited = executor.run(plan(8), "r3", &json!({})).await.unwrap();
    let status = |id: &str| edited.node(id).unwrap().status;
    assert_eq!(status("first"), NodeStatus::Cached);
    assert_eq!(status("side"), NodeStatus::Cached);
    assert_eq!(status("middle"), NodeStatus::Succeeded);
    assert_eq!(status("last"), NodeStatus::Succeeded);
    assert_eq!(
        edited.node("last").unwrap().outputs.as_ref().unwrap()["value"],
        21
    );
}

#[test]
fn the_committed_workflow_schema_matches_the_code() {
    let committed =
        std::fs::read_to_string(hyyve::build::repo_root().join("workflow.schema.json")).unwrap();
    assert_eq!(
        committed,
        hyyve_workflow::workflow_json_schema(),
        "run `hyyve schema > workflow.schema.json`"
    );
}

#[tokio::test]
async fn nodes_with_state_or_side_effects_are_never_served_from_the_cache() {
    let mut all = plugins().await;
    let stateful = Installed {
        id: "stateful".into(),
        plugin: plugin("guest-hostile").await,
        grant: Arc::new(crate::kv_grant()),
    };
    all.insert("test:stateful".into(), stateful);
    let spec = workflow(json!({
        "name": "counter",
        "nodes": [
            node("count", "test:stateful", "kv-round-trip", json!({})),
            node("pure", "hyyve:fibo", "fibo", json!({"n": 3}))
        ],
        "edges": []
    }));
    let plan = Arc::new(hyyve_workflow::validate(&spec, &all).unwrap());
    let config = ExecutorConfig {
        workspace: "cache-side-effects".into(),
        ..ExecutorConfig::default()
    };
    let executor = Executor::new(runtime(), config).with_cache(Arc::new(ResultCache::in_memory()));
    for (run, counter) in [("c1", "counter=1"), ("c2", "counter=2")] {
        let report = executor.run(plan.clone(), run, &json!({})).await.unwrap();
        let count = report.nodes.iter().find(|n| n.id == "count").unwrap();
        assert_eq!(count.status, NodeStatus::Succeeded, "{run}");
        assert_eq!(count.outputs.as_ref().unwrap()["observed"], counter);
        let pure = report.nodes.iter().find(|n| n.id == "pure").unwrap();
        let expected = if run == "c1" {
            NodeStatus::Succeeded
        } else {
            NodeStatus::Cached
        };
        assert_eq!(pure.status, expected, "{run}");
    }
}
