//! Running a [`Plan`]: nodes start as soon as everything upstream has finished, at most
//! `concurrency` at a time, each in its own fresh instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyyve_runtime::{
    InstallScope, InvocationIds, InvocationRequest, Limits, MeteringRecord, ModelRoutes, Port,
    ProgressSink, Runtime,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::cache::{CacheKey, ResultCache};
use crate::plan::{Plan, PlannedNode, Source};

/// How runs execute.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Nodes running at once within one run.
    pub concurrency: usize,
    /// Workspace of runs started with [`Executor::run`] (scopes KV).
    pub workspace: String,
    /// Further attempts of a node whose plugin failed with a `retryable` error.
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one.
    pub retry_backoff: Duration,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            workspace: "default".into(),
            // The same in local mode and the server: both take these defaults.
            retries: 2,
            retry_backoff: Duration::from_millis(50),
        }
    }
}

/// Watches a run as it goes (for durable progress and live events). Called from the
/// run's tasks, so it must be quick: hand work off rather than block.
pub trait RunObserver: Send + Sync {
    /// An attempt of node `node_id` is about to execute.
    fn attempt_started(&self, _node_id: &str, _attempt: u32) {}
    /// An attempt executed (successfully or not) and consumed `metering`.
    fn attempt_finished(&self, _node_id: &str, _attempt: u32, _metering: &MeteringRecord) {}
    /// The node has its final report (executed, cached, skipped or not run).
    fn node_settled(&self, _report: &NodeReport) {}
    /// An attempt passed on a delta of partial output (streamed LLM tokens).
    fn node_progress(&self, _node_id: &str, _attempt: u32, _delta: &str) {}
}

/// The progress of one node attempt, passed on to the run's observer.
struct AttemptProgress {
    observer: Arc<dyn RunObserver>,
    node_id: String,
    attempt: u32,
}

impl ProgressSink for AttemptProgress {
    fn delta(&self, text: &str) {
        self.observer
            .node_progress(&self.node_id, self.attempt, text);
    }
}

/// Observes nothing.
struct Unobserved;

impl RunObserver for Unobserved {}

/// One run to execute: the plan, ids, input, and what an earlier interrupted attempt of
/// the same run already finished.
pub struct RunRequest<'a> {
    /// The validated workflow.
    pub plan: Arc<Plan>,
    /// The run's id (in metering ids and plugin context).
    pub run_id: &'a str,
    /// The workspace it runs in (scopes KV, secrets and scratch files).
    pub workspace: &'a str,
    /// An object of run inputs.
    pub input: &'a Value,
    /// Reports of nodes an interrupted earlier execution finished: succeeded nodes are
    /// reused, not executed again.
    pub finished: Vec<NodeReport>,
    /// Told of each attempt and each settled node.
    pub observer: Arc<dyn RunObserver>,
}

/// Outcome of a whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every node succeeded, came from cache, or was skipped by a branch.
    Succeeded,
    /// At least one node failed.
    Failed,
}

/// What happened to one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Executed and produced outputs.
    Succeeded,
    /// Outputs reused from the result cache; not executed.
    Cached,
    /// Executed (or tried to) and failed.
    Failed,
    /// Not executed: a branch upstream did not emit a required input.
    Skipped,
    /// Not executed because something upstream failed.
    NotRun,
}

/// Why a node failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFailure {
    /// Stable kind, e.g. `fuel_exhausted`, `input_schema`, `output_schema`, `failed`.
    pub kind: String,
    /// Human explanation.
    pub message: String,
}

/// One node's part of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node id.
    pub id: String,
    /// What happened.
    pub status: NodeStatus,
    /// Outputs by port, when it succeeded or was cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Value>,
    /// Why it failed, or why it was skipped / not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<NodeFailure>,
    /// What the last attempt consumed (zero when it did not execute).
    pub metering: MeteringRecord,
    /// Attempts made (0 when it did not execute, more than 1 after retries).
    #[serde(default)]
    pub attempts: u32,
}

/// A finished run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run.
    pub run_id: String,
    /// Overall outcome.
    pub status: RunStatus,
    /// Nodes in plan (topological) order.
    pub nodes: Vec<NodeReport>,
    /// Wall time of the whole run, in microseconds.
    pub wall_time_us: u64,
}

impl RunReport {
    /// The report of node `id`.
    pub fn node(&self, id: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

/// The run input was unusable; nothing ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("run input `{name}`{field}: {message}")]
pub struct RunInputError {
    /// The input.
    pub name: String,
    /// JSON Pointer within its value.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Runs plans on a shared runtime.
pub struct Executor {
    runtime: Arc<Runtime>,
    config: ExecutorConfig,
    cache: Option<Arc<ResultCache>>,
    models: Option<Arc<dyn ModelRoutes>>,
}

impl Executor {
    /// An executor without result caching.
    pub fn new(runtime: Arc<Runtime>, config: ExecutorConfig) -> Self {
        Self {
            runtime,
            config,
            cache: None,
            models: None,
        }
    }

    /// Nodes granted `models` call their workspace's aliases through `routes`; without
    /// routes every model call is refused.
    pub fn with_models(mut self, routes: Arc<dyn ModelRoutes>) -> Self {
        self.models = Some(routes);
        self
    }

    /// Reuse outputs of nodes whose (component, type, config, inputs) did not change.
    pub fn with_cache(mut self, cache: Arc<ResultCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Runs `plan` once with `input` (an object of run inputs).
    pub async fn run(
        &self,
        plan: Arc<Plan>,
        run_id: &str,
        input: &Value,
    ) -> Result<RunReport, RunInputError> {
        self.run_with(RunRequest {
            plan,
            run_id,
            workspace: &self.config.workspace,
            input,
            finished: Vec::new(),
            observer: Arc::new(Unobserved),
        })
        .await
    }

    /// Runs one request: nodes it reports finished are reused, every attempt and settled
    /// node is told to its observer.
    pub async fn run_with(&self, request: RunRequest<'_>) -> Result<RunReport, RunInputError> {
        let RunRequest {
            plan,
            run_id,
            workspace,
            input,
            finished,
            observer,
        } = request;
        let input = check_run_input(&plan, input)?;
        let started = Instant::now();
        let n = plan.nodes.len();
        let mut done: Vec<Option<NodeReport>> = vec![None; n];
        let mut scheduled = vec![false; n];
        for report in finished {
            let reusable = matches!(report.status, NodeStatus::Succeeded | NodeStatus::Cached);
            if let Some(i) = plan.nodes.iter().position(|p| p.id == report.id)
                && reusable
            {
                scheduled[i] = true;
                done[i] = Some(report);
            }
        }
        let semaphore = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let mut task_node = HashMap::new();

        loop {
            // Settle every node whose upstream is done; repeat while settling unlocks more.
            let mut progressed = true;
            while progressed {
                progressed = false;
                for i in 0..n {
                    let node = &plan.nodes[i];
                    if scheduled[i] || !node.upstream.iter().all(|&u| done[u].is_some()) {
                        continue;
                    }
                    scheduled[i] = true;
                    match gather_inputs(node, &plan, &done, &input) {
                        Gathered::Blocked(report) => {
                            observer.node_settled(&report);
                            done[i] = Some(*report);
                            progressed = true;
                        }
                        Gathered::Ready(inputs) => {
                            let job = NodeJob {
                                runtime: self.runtime.clone(),
                                plan: plan.clone(),
                                index: i,
                                inputs,
                                run_id: run_id.to_owned(),
                                scope: InstallScope {
                                    workspace: workspace.to_owned(),
                                    install: node.install.id.clone(),
                                },
                                cache: self.cache.clone(),
                                models: self.models.clone(),
                                retries: self.config.retries,
                                backoff: self.config.retry_backoff,
                                observer: observer.clone(),
                            };
                            let permit = semaphore.clone();
                            // A child of the caller's span (the server's run span), so
                            // what a plugin invocation logs carries run and node ids.
                            let span = tracing::info_span!(
                                "node",
                                node_id = %node.id,
                                install = %node.install.id
                            );
                            let handle = tasks.spawn(
                                async move {
                                    let _permit = permit.acquire_owned().await;
                                    job.execute().await
                                }
                                .instrument(span),
                            );
                            task_node.insert(handle.id(), i);
                        }
                    }
                }
            }
            match tasks.join_next_with_id().await {
                None => break,
                Some(Ok((id, report))) => {
                    observer.node_settled(&report);
                    done[task_node[&id]] = Some(report);
                }
                Some(Err(e)) => {
                    let i = task_node[&e.id()];
                    let report =
                        NodeReport::failure(&plan.nodes[i].id, "host_error", e.to_string());
                    observer.node_settled(&report);
                    done[i] = Some(report);
                }
            }
        }

        let nodes: Vec<NodeReport> = done
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| NodeReport::not_run(&plan.nodes[i].id, "never became ready"))
            })
            .collect();
        let failed = nodes.iter().any(|r| r.status == NodeStatus::Failed);
        Ok(RunReport {
            run_id: run_id.to_owned(),
            status: if failed {
                RunStatus::Failed
            } else {
                RunStatus::Succeeded
            },
            nodes,
            wall_time_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

impl Plan {
    /// Checks a run input against the workflow's declared inputs, as a run would.
    pub fn check_input(&self, input: &Value) -> Result<(), RunInputError> {
        check_run_input(self, input).map(|_| ())
    }

    /// How many nodes a run executes at most.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the workflow has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

fn check_run_input(plan: &Plan, input: &Value) -> Result<Map<String, Value>, RunInputError> {
    let object = match input {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => {
            return Err(RunInputError {
                name: "*".into(),
                field: String::new(),
                message: "run input must be a JSON object".into(),
            });
        }
    };
    for (name, value) in &object {
        let Some(schema) = plan.run_inputs.get(name) else {
            return Err(RunInputError {
                name: name.clone(),
                field: String::new(),
                message: "not declared by the workflow".into(),
            });
        };
        if let Some(v) = schema.violation(value) {
            return Err(RunInputError {
                name: name.clone(),
                field: v.field,
                message: v.message,
            });
        }
    }
    // An absent input is checked as null: a declared schema that null does not satisfy
    // (`{"type": "object"}`) makes the input required; `{}` leaves it optional.
    for (name, schema) in &plan.run_inputs {
        if !object.contains_key(name)
            && let Some(v) = schema.violation(&Value::Null)
        {
            return Err(RunInputError {
                name: name.clone(),
                field: v.field,
                message: format!("missing ({})", v.message),
            });
        }
    }
    for node in &plan.nodes {
        for (port, source) in &node.sources {
            if let Source::RunInput(name) = source
                && !object.contains_key(name)
                && node.node_type.input(port).is_some_and(|p| p.required)
            {
                return Err(RunInputError {
                    name: name.clone(),
                    field: String::new(),
                    message: format!("missing; node `{}` requires it on input `{port}`", node.id),
                });
            }
        }
    }
    Ok(object)
}

enum Gathered {
    Ready(Value),
    Blocked(Box<NodeReport>),
}

/// Collects a node's inputs from literals, run inputs and upstream outputs. A failed
/// upstream blocks the node (not run); an edge whose source emitted nothing skips it.
fn gather_inputs(
    node: &PlannedNode,
    plan: &Plan,
    done: &[Option<NodeReport>],
    run_input: &Map<String, Value>,
) -> Gathered {
    if let Some(u) = node.upstream.iter().find(|&&u| {
        matches!(
            done[u].as_ref().map(|r| r.status),
            Some(NodeStatus::Failed | NodeStatus::NotRun)
        )
    }) {
        let reason = format!("upstream node `{}` did not succeed", plan.nodes[*u].id);
        return Gathered::Blocked(Box::new(NodeReport::not_run(&node.id, &reason)));
    }
    let mut inputs = Map::new();
    for (port, source) in &node.sources {
        let value = match source {
            Source::Literal(v) => Some(v.clone()),
            Source::RunInput(name) => run_input.get(name).cloned(),
            Source::Port { node: u, port: out } => done[*u]
                .as_ref()
                .and_then(|r| r.outputs.as_ref())
                .and_then(|o| o.get(out))
                .cloned(),
        };
        match (value, source) {
            (Some(v), _) => {
                inputs.insert(port.clone(), v);
            }
            // An edge whose source did not emit (a branch not taken, or a skipped node):
            // this node is on the branch not taken too.
            (None, Source::Port { node: u, port: out }) => {
                let reason = format!("`{}.{out}` was not emitted", plan.nodes[*u].id);
                return Gathered::Blocked(Box::new(NodeReport::skipped(&node.id, &reason)));
            }
            // An optional run input left out: the port stays empty.
            (None, _) => {}
        }
    }
    Gathered::Ready(Value::Object(inputs))
}

/// Everything one node execution needs, owned, so it can run on any worker.
struct NodeJob {
    runtime: Arc<Runtime>,
    plan: Arc<Plan>,
    index: usize,
    inputs: Value,
    run_id: String,
    scope: InstallScope,
    cache: Option<Arc<ResultCache>>,
    models: Option<Arc<dyn ModelRoutes>>,
    retries: u32,
    backoff: Duration,
    observer: Arc<dyn RunObserver>,
}

impl NodeJob {
    async fn execute(&self) -> NodeReport {
        let node = &self.plan.nodes[self.index];
        if let Some(message) = check_ports(&node.node_type.inputs, &self.inputs, "input") {
            return NodeReport::failure(&node.id, "input_schema", message);
        }
        let key = CacheKey::new(
            node.install.plugin.digest(),
            &node.node_type.name,
            &node.config,
            &self.inputs,
        );
        // A plugin with side effects or outside state (HTTP, KV, secrets, files) runs
        // every time: a cached result would skip its effects or hide new state.
        let cache = self.cache.as_ref().filter(|_| node.install.grant.is_pure());
        if let Some(outputs) = cache.and_then(|c| c.get(&key)) {
            return NodeReport {
                id: node.id.clone(),
                status: NodeStatus::Cached,
                outputs: Some(outputs),
                error: None,
                metering: MeteringRecord::default(),
                attempts: 0,
            };
        }
        let mut attempt = 1;
        let mut backoff = self.backoff;
        loop {
            let mut report = self.attempt(attempt).await;
            report.attempts = attempt;
            let retryable = report.error.as_ref().is_some_and(|e| e.kind == "retryable");
            if !retryable || attempt > self.retries {
                if report.status == NodeStatus::Succeeded
                    && let (Some(cache), Some(outputs)) = (cache, &report.outputs)
                {
                    cache.put(key, outputs);
                }
                return report;
            }
            tokio::time::sleep(backoff).await;
            backoff = backoff.saturating_mul(2);
            attempt += 1;
        }
    }

    /// One attempt: invoke, then check the outputs against the node type.
    async fn attempt(&self, attempt: u32) -> NodeReport {
        let node = &self.plan.nodes[self.index];
        self.observer.attempt_started(&node.id, attempt);
        let outcome = self
            .runtime
            .invoke(
                &node.install.plugin,
                InvocationRequest {
                    node_type: &node.node_type.name,
                    config: &node.config,
                    inputs: &self.inputs,
                    ids: InvocationIds {
                        run_id: self.run_id.clone(),
                        node_id: node.id.clone(),
                        attempt,
                    },
                    scope: self.scope.clone(),
                    grant: node.install.grant.clone(),
                    limits: Limits::granted(&node.install.grant.limits),
                    models: self
                        .models
                        .clone()
                        .filter(|_| !node.install.grant.models.is_empty()),
                    progress: Some(Arc::new(AttemptProgress {
                        observer: self.observer.clone(),
                        node_id: node.id.clone(),
                        attempt,
                    })),
                },
            )
            .await;
        self.observer
            .attempt_finished(&node.id, attempt, &outcome.metering);
        let outputs = match outcome.result {
            Ok(outputs) => outputs,
            Err(e) => {
                let mut report = NodeReport::failure(&node.id, e.kind(), e.to_string());
                report.metering = outcome.metering;
                return report;
            }
        };
        if let Some(message) = check_outputs(node, &outputs) {
            let mut report = NodeReport::failure(&node.id, "output_schema", message);
            report.metering = outcome.metering;
            return report;
        }
        NodeReport {
            id: node.id.clone(),
            status: NodeStatus::Succeeded,
            outputs: Some(outputs),
            error: None,
            metering: outcome.metering,
            attempts: attempt,
        }
    }
}

/// First port value violating its schema, described.
fn check_ports(ports: &[Port], values: &Value, direction: &str) -> Option<String> {
    let object = values.as_object()?;
    ports.iter().find_map(|port| {
        let v = port.schema.violation(object.get(&port.name)?)?;
        Some(format!(
            "{direction} `{}`{}: {}",
            port.name, v.field, v.message
        ))
    })
}

fn check_outputs(node: &PlannedNode, outputs: &Value) -> Option<String> {
    let object = outputs.as_object()?;
    if let Some(port) = object.keys().find(|k| node.node_type.output(k).is_none()) {
        return Some(format!("emitted undeclared output `{port}`"));
    }
    if let Some(port) = node
        .node_type
        .outputs
        .iter()
        .find(|p| p.required && !object.contains_key(&p.name))
    {
        return Some(format!("required output `{}` missing", port.name));
    }
    check_ports(&node.node_type.outputs, outputs, "output")
}

impl NodeReport {
    fn failure(id: &str, kind: &str, message: String) -> Self {
        Self {
            id: id.to_owned(),
            status: NodeStatus::Failed,
            outputs: None,
            error: Some(NodeFailure {
                kind: kind.to_owned(),
                message,
            }),
            metering: MeteringRecord::default(),
            attempts: 0,
        }
    }

    fn blocked(id: &str, status: NodeStatus, kind: &str, reason: &str) -> Self {
        Self {
            id: id.to_owned(),
            status,
            outputs: None,
            error: Some(NodeFailure {
                kind: kind.to_owned(),
                message: reason.to_owned(),
            }),
            metering: MeteringRecord::default(),
            attempts: 0,
        }
    }

    fn not_run(id: &str, reason: &str) -> Self {
        Self::blocked(id, NodeStatus::NotRun, "upstream_failed", reason)
    }

    fn skipped(id: &str, reason: &str) -> Self {
        Self::blocked(id, NodeStatus::Skipped, "branch_not_taken", reason)
    }
}
