//! A worker: takes the next fair turn from the queue, claims the run in the database,
//! executes it with progress persisted as it goes, and finishes it exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use hyyve_platform::audit::{NodeDenials, audit_denials};
use hyyve_runtime::{Denial, MeteringRecord};
use hyyve_workflow::{NodeReport, NodeStatus, Plan, RunObserver, RunReport, RunRequest, RunStatus};
use serde_json::Value;
use tokio::sync::Notify;
use tracing::Instrument;

use super::events::Pending;
use super::queue::Ticket;
use super::quota::Ledger;
use super::writer::{MeteringRow, Write, Writer};
use super::{RunState, Runs};
use crate::audit::Audit;
use crate::ids::now_ms;
use crate::metrics::{DenialLabels, Metrics, PluginLabels, RunLabels};

impl Runs {
    /// One worker's loop.
    pub(super) async fn work(self: Arc<Self>) {
        loop {
            let ticket = self.queue.pop().await;
            self.metrics.queue_depth.set(self.queue.depth() as i64);
            let workspace = ticket.workspace_id.clone();
            self.execute(ticket).await;
            self.queue.finished(&workspace);
        }
    }

    async fn execute(&self, ticket: Ticket) {
        let signal = Arc::new(Notify::new());
        self.cancels
            .lock()
            .expect("not poisoned")
            .insert(ticket.run_id.clone(), signal.clone());
        let span =
            tracing::info_span!("run", run_id = %ticket.run_id, workspace = %ticket.workspace_id);
        self.execute_claimed(&ticket, &signal)
            .instrument(span)
            .await;
        self.cancels
            .lock()
            .expect("not poisoned")
            .remove(&ticket.run_id);
        let today = hyyve_registry::marketplace::today();
        self.ledger.release(&ticket.org_id, &today, ticket.reserved);
    }

    /// Claims, executes and finishes the run, unless it was not this worker's to run
    /// (cancelled while queued).
    ///
    /// The claim's commit is awaited before executing: a run cancelled while queued
    /// must not execute.
    async fn execute_claimed(&self, ticket: &Ticket, signal: &Notify) {
        let now = now_ms();
        let executions = ticket.executions + 1;
        let claim = self.writer.enqueue_announcing(
            Write::Claim {
                run_id: ticket.run_id.clone(),
                at: now,
            },
            Pending::new(
                "run.started",
                &ticket.run_id,
                move || serde_json::json!({ "executions": executions }),
            ),
        );
        if !is_claimed(&ticket.run_id, claim.await) {
            return;
        }
        self.metrics
            .queue_wait_seconds
            .observe((now - ticket.accepted_at).max(0) as f64 / 1000.0);
        let (state, error) = match self.prepare(ticket).await {
            Err(error) => (RunState::Failed, Some(error)),
            Ok((plan, finished, observer)) => {
                let run = self.executor.run_with(RunRequest {
                    plan,
                    run_id: &ticket.run_id,
                    workspace: &ticket.workspace_id,
                    input: &ticket.input,
                    finished,
                    observer,
                });
                tokio::select! {
                    report = run => match report {
                        Err(e) => (RunState::Failed, Some(e.to_string())),
                        Ok(report) => outcome_of(&report),
                    },
                    _ = signal.notified() => {
                        (RunState::Cancelled, Some("cancelled while running".to_owned()))
                    }
                }
            }
        };
        self.finish(ticket, state, error);
    }

    /// What executing the run needs: its plan, the nodes an interrupted execution
    /// finished, and the observer persisting its progress; why the run fails otherwise.
    async fn prepare(
        &self,
        ticket: &Ticket,
    ) -> Result<(Arc<Plan>, Vec<NodeReport>, Arc<Progress>), String> {
        if ticket.executions + 1 > self.config.max_executions {
            return Err(format!(
                "interrupted {} times while executing; not resumed again",
                ticket.executions
            ));
        }
        let (plan, workflow) = self
            .plan(&ticket.workspace_id, &ticket.workflow_id, ticket.version)
            .await
            .map_err(|e| e.to_string())?;
        let (finished, attempt_offset, prior_attempts) = match ticket.executions {
            0 => (Vec::new(), 0, HashMap::new()),
            _ => self.progress_so_far(&ticket.run_id).await?,
        };
        let plugins: HashMap<String, String> = workflow
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.plugin.clone()))
            .collect();
        let observer = Arc::new(Progress {
            run_id: ticket.run_id.clone(),
            workspace_id: ticket.workspace_id.clone(),
            org_id: ticket.org_id.clone(),
            plugins,
            attempt_offset,
            prior_attempts,
            writer: self.writer.clone(),
            metrics: self.metrics.clone(),
            ledger: self.ledger.clone(),
            audit: self.audit.clone(),
        });
        Ok((plan, finished, observer))
    }

    /// Node reports persisted by an interrupted execution, the highest attempt number
    /// metered so far (new attempts number after it: idempotency keys stay unique), and
    /// the attempts each node had metered (an attempt that ran before the crash counts).
    async fn progress_so_far(
        &self,
        run_id: &str,
    ) -> Result<(Vec<NodeReport>, u32, HashMap<String, u32>), String> {
        let reports: Vec<String> =
            sqlx::query_scalar("SELECT report FROM run_nodes WHERE run_id = $1")
                .bind(run_id)
                .fetch_all(&self.db)
                .await
                .map_err(|e| e.to_string())?;
        let last_attempt: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(MAX(attempt), 0) AS BIGINT) FROM metering_records \
             WHERE run_id = $1",
        )
        .bind(run_id)
        .fetch_one(&self.db)
        .await
        .map_err(|e| e.to_string())?;
        let metered: Vec<(String, i64)> = sqlx::query_as(
            "SELECT node_id, CAST(COUNT(*) AS BIGINT) FROM metering_records \
             WHERE run_id = $1 GROUP BY node_id",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await
        .map_err(|e| e.to_string())?;
        let reports = reports
            .iter()
            .filter_map(|r| serde_json::from_str(r).ok())
            .collect();
        let prior = metered
            .into_iter()
            .map(|(node, count)| (node, u32::try_from(count).unwrap_or(u32::MAX)))
            .collect();
        Ok((
            reports,
            u32::try_from(last_attempt).unwrap_or(u32::MAX),
            prior,
        ))
    }

    /// Records the final state, once: only a run still `running` changes. Not waited
    /// for: the worker moves on, and `run.finished` is announced and counted once the
    /// state is committed (a client told a run finished reads it finished).
    fn finish(&self, ticket: &Ticket, state: RunState, error: Option<String>) {
        let run_id = ticket.run_id.clone();
        let finished = Pending::new("run.finished", &run_id, {
            let error = error.clone();
            move || serde_json::json!({ "status": state, "error": error })
        });
        let committed = self.writer.enqueue_announcing(
            Write::Finish {
                run_id: run_id.clone(),
                status: state.as_str(),
                error,
                at: now_ms(),
            },
            finished,
        );
        let metrics = self.metrics.clone();
        let accepted_at = ticket.accepted_at;
        tokio::spawn(
            async move {
                match committed.await {
                    Ok(1) => {}
                    Ok(_) => {
                        tracing::error!(%run_id, "finishing run: it was no longer running");
                        return;
                    }
                    Err(e) => {
                        tracing::error!(%run_id, error = %e, "finishing run");
                        return;
                    }
                }
                metrics
                    .runs
                    .get_or_create(&RunLabels {
                        status: state.as_str().into(),
                    })
                    .inc();
                let latency = (now_ms() - accepted_at).max(0) as f64 / 1000.0;
                metrics.run_seconds.observe(latency);
                tracing::info!(status = state.as_str(), latency_s = latency, "run finished");
            }
            .in_current_span(),
        );
    }
}

/// Whether the claim's commit made the run this worker's.
fn is_claimed(run_id: &str, answer: Result<u64, String>) -> bool {
    match answer {
        Ok(1) => true,
        Ok(_) => false,
        Err(e) => {
            tracing::error!(%run_id, error = %e, "claiming run");
            false
        }
    }
}

/// A run's final state from its report: a node that failed with a retryable error after
/// its retries dead-letters the run.
fn outcome_of(report: &RunReport) -> (RunState, Option<String>) {
    if report.status == RunStatus::Succeeded {
        return (RunState::Succeeded, None);
    }
    let failed = report.nodes.iter().find(|n| n.status == NodeStatus::Failed);
    let error = failed.map(|n| {
        let why = n.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
        format!("node `{}` failed: {why}", n.id)
    });
    let exhausted = failed
        .and_then(|n| n.error.as_ref())
        .is_some_and(|e| e.kind == "retryable");
    match exhausted {
        true => (RunState::DeadLettered, error),
        false => (RunState::Failed, error),
    }
}

/// Persists and announces a run's progress as the executor reports it.
struct Progress {
    run_id: String,
    workspace_id: String,
    org_id: String,
    /// Plugin reference of each node.
    plugins: HashMap<String, String>,
    attempt_offset: u32,
    /// Attempts each node had metered before this execution (a resumed run).
    prior_attempts: HashMap<String, u32>,
    writer: Writer,
    metrics: Arc<Metrics>,
    ledger: Arc<Ledger>,
    audit: Arc<Audit>,
}

impl Progress {
    fn plugin(&self, node_id: &str) -> &str {
        self.plugins.get(node_id).map(String::as_str).unwrap_or("")
    }
}

impl Progress {
    /// Persists one metering record (as `node_id`, billed to `plugin`), counts it toward
    /// the quotas and metrics, and audits its denials.
    fn meter(&self, node_id: &str, attempt: i64, plugin: &str, metering: &MeteringRecord) {
        let plugin = plugin.to_owned();
        let day = hyyve_registry::marketplace::today();
        let fuel = i64::try_from(metering.fuel).unwrap_or(i64::MAX);
        // The runtime keeps each unit's sum within i64 (the column type).
        let units: Vec<(String, i64)> = metering
            .usage
            .iter()
            .map(|(unit, quantity)| (unit.clone(), i64::try_from(*quantity).unwrap_or(i64::MAX)))
            .collect();
        let outcome = metering.failure.clone().unwrap_or_else(|| "ok".into());
        self.writer.submit(Write::Metering(MeteringRow {
            run_id: self.run_id.clone(),
            node_id: node_id.to_owned(),
            attempt,
            workspace_id: self.workspace_id.clone(),
            org_id: self.org_id.clone(),
            plugin_id: plugin.clone(),
            day: day.clone(),
            fuel,
            wall_time_us: metering.wall_time_us as i64,
            peak_memory_bytes: metering.peak_memory_bytes as i64,
            host_calls: metering.host_calls as i64,
            http_requests: metering.http_requests as i64,
            denials: metering.denials.len() as i64,
            failure: metering.failure.clone(),
            record: serde_json::to_string(metering).unwrap_or_default(),
            recorded_at: now_ms(),
            units: units.clone(),
        }));
        self.ledger
            .record(&self.org_id, &self.workspace_id, &day, fuel, &units);
        let labels = PluginLabels {
            plugin: plugin.clone(),
            outcome,
        };
        self.metrics.invocations.get_or_create(&labels).inc();
        self.metrics
            .fuel
            .get_or_create(&labels)
            .inc_by(metering.fuel);
        self.metrics
            .invocation_seconds
            .observe(metering.wall_time_us as f64 / 1e6);
        if !metering.denials.is_empty() {
            self.audit_denials(node_id, attempt, &plugin, &metering.denials);
        }
        for denial in &metering.denials {
            self.metrics
                .denials
                .get_or_create(&DenialLabels {
                    plugin: plugin.clone(),
                    kind: denial.kind.as_str().into(),
                })
                .inc();
        }
    }

    /// Appends one `capability.denied` entry per denial, off the executing task: the
    /// run does not wait for the audit log.
    fn audit_denials(&self, node_id: &str, attempt: i64, plugin: &str, denials: &[Denial]) {
        let audit = self.audit.clone();
        let workspace = self.workspace_id.clone();
        let (plugin, run_id, node_id) =
            (plugin.to_owned(), self.run_id.clone(), node_id.to_owned());
        let denials = denials.to_vec();
        tokio::spawn(async move {
            let node = NodeDenials {
                plugin: &plugin,
                run_id: &run_id,
                node_id: &node_id,
                attempt,
                denials: &denials,
            };
            if let Err(e) = audit_denials(audit.as_ref(), &workspace, node).await {
                tracing::error!(error = %e, "auditing a capability denial");
            }
        });
    }
}

impl RunObserver for Progress {
    fn attempt_started(&self, node_id: &str, attempt: u32) {
        let (node, attempt) = (node_id.to_owned(), attempt + self.attempt_offset);
        self.writer.announce(Pending::new(
            "node.started",
            &self.run_id,
            move || serde_json::json!({ "node": node, "attempt": attempt }),
        ));
    }

    fn attempt_finished(&self, node_id: &str, attempt: u32, metering: &MeteringRecord) {
        let attempt = i64::from(attempt + self.attempt_offset);
        let plugin = self.plugin(node_id).to_owned();
        // The node's own record, and one per provider invocation its model calls made:
        // each under its own idempotency key, billed to its own plugin.
        let own = MeteringRecord {
            model_calls: Vec::new(),
            ..metering.clone()
        };
        self.meter(node_id, attempt, &plugin, &own);
        for call in &metering.model_calls {
            self.meter(
                &call.record_node_id(node_id),
                attempt,
                &call.provider,
                &call.metering,
            );
        }
    }

    fn node_progress(&self, node_id: &str, attempt: u32, delta: &str) {
        let (node, attempt) = (node_id.to_owned(), attempt + self.attempt_offset);
        let delta = delta.to_owned();
        self.writer.announce(Pending::new(
            "node.progress",
            &self.run_id,
            move || serde_json::json!({ "node": node, "attempt": attempt, "delta": delta }),
        ));
    }

    fn node_settled(&self, report: &NodeReport) {
        // A node re-run after a crash reports every attempt it was metered for.
        let prior = self.prior_attempts.get(&report.id).copied().unwrap_or(0);
        let text = match prior {
            0 => serde_json::to_string(report),
            _ => serde_json::to_string(&NodeReport {
                attempts: report.attempts.saturating_add(prior),
                ..report.clone()
            }),
        }
        .unwrap_or_default();
        let data = text.clone();
        self.writer.submit_announcing(
            Write::NodeReport {
                run_id: self.run_id.clone(),
                node_id: report.id.clone(),
                report: text,
            },
            Pending::new("node.finished", &self.run_id, move || {
                serde_json::from_str(&data).unwrap_or(Value::Null)
            }),
        );
    }
}
