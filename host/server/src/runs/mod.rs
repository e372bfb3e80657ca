//! Runs: accepted durably (a row in `queued` state before the 202), executed by a worker
//! pool fed by a fair in-process queue, every node report and metering record persisted
//! as it happens, finished exactly once. After a crash, [`Runs::recover`] puts every
//! open run back in the queue; a run that was executing resumes, reusing the nodes that
//! had finished.

pub mod events;
pub mod queue;
pub mod quota;
mod worker;
pub mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hyyve_workflow::{Executor, ExecutorConfig, Plan, Workflow};
use serde::Serialize;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::audit::Audit;
use crate::error::ApiError;
use crate::ids::{iso8601, new_ordered_id, now_ms};
use crate::installs::Installs;
use crate::metrics::Metrics;
use crate::tenancy::{ListPage, PageRequest, Principal};
use crate::workflows::Workflows;
use events::Events;
use hyyve_platform::models::Routes;
use queue::{FairQueue, Ticket};
use quota::Ledger;

use crate::models::{PlanBudget, SqlAliases};
use writer::{AcceptRow, Bind, Lease, Write, Writer};

/// How the worker pool runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Runs executing at once across all workspaces.
    pub workers: usize,
    /// Further attempts of a node failing with a `retryable` error.
    pub retries: u32,
    /// First retry delay (doubled each time).
    pub retry_backoff: std::time::Duration,
    /// Pickups after which a run that keeps being interrupted is failed instead of
    /// resumed again.
    pub max_executions: i64,
    /// This server instance's name, stable across its restarts (the CLI keeps it in
    /// `<data>/instance`): the runs it held when it stopped are resumed at once when it
    /// starts again, other instances' only once their lease lapses.
    pub instance: String,
    /// How long a run's lease lasts unless its holder renews it (every third of it).
    pub lease: std::time::Duration,
    /// How often an organization's monthly usage is read again from the metering
    /// records, so that the runs of other processes sharing the database count.
    pub usage_refresh: std::time::Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            workers: 16,
            retries: hyyve_workflow::ExecutorConfig::default().retries,
            retry_backoff: hyyve_workflow::ExecutorConfig::default().retry_backoff,
            max_executions: 3,
            instance: "local".into(),
            lease: std::time::Duration::from_secs(30),
            usage_refresh: std::time::Duration::from_secs(10),
        }
    }
}

/// A run's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Accepted, waiting for a worker.
    Queued,
    /// Executing.
    Running,
    /// Every node succeeded (or was skipped by a branch).
    Succeeded,
    /// A node failed.
    Failed,
    /// A node kept failing with retryable errors until its retries ran out.
    DeadLettered,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::DeadLettered => "dead_lettered",
            RunState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            RunState::Queued,
            RunState::Running,
            RunState::Succeeded,
            RunState::Failed,
            RunState::DeadLettered,
            RunState::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Whether the run is over.
    pub fn is_final(self) -> bool {
        !matches!(self, RunState::Queued | RunState::Running)
    }
}

/// What a run consumed, summed over its metering records.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunMetering {
    /// Invocation attempts.
    pub invocations: i64,
    /// Fuel.
    pub fuel: i64,
    /// Invocation wall time, microseconds.
    pub wall_time_us: i64,
    /// Capability denials.
    pub denials: i64,
}

/// A run.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `run_…`.
    pub id: String,
    /// The workflow.
    pub workflow_id: String,
    /// The immutable version it runs.
    pub workflow_version: i64,
    /// Lifecycle state.
    pub status: RunState,
    /// The run input.
    #[schema(value_type = Object)]
    pub input: Value,
    /// Times a worker picked it up (above 1: resumed after a restart).
    pub executions: i64,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// The key that started it.
    pub created_by: String,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// When a worker first picked it up.
    pub started_at: Option<String>,
    /// When it finished.
    pub finished_at: Option<String>,
    /// Node reports (status, outputs, error, metering, attempts), in plan order; only on
    /// `GET /v1/runs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub nodes: Option<Vec<Value>>,
    /// Totals of its metering records; only on `GET /v1/runs/{id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metering: Option<RunMetering>,
}

const RUN_COLUMNS: &str = "id, workflow_id, workflow_version, status, input, executions, error, \
     created_by, created_at, started_at, finished_at";

fn run_from(row: &AnyRow) -> Result<Run, ApiError> {
    let status: String = row.try_get("status")?;
    let input: String = row.try_get("input")?;
    let started: Option<i64> = row.try_get("started_at")?;
    let finished: Option<i64> = row.try_get("finished_at")?;
    Ok(Run {
        id: row.try_get("id")?,
        workflow_id: row.try_get("workflow_id")?,
        workflow_version: row.try_get("workflow_version")?,
        status: RunState::parse(&status)
            .ok_or_else(|| ApiError::Internal(format!("stored run status `{status}`")))?,
        input: serde_json::from_str(&input).unwrap_or(Value::Null),
        executions: row.try_get("executions")?,
        error: row.try_get("error")?,
        created_by: row.try_get("created_by")?,
        created_at: iso8601(row.try_get("created_at")?),
        started_at: started.map(iso8601),
        finished_at: finished.map(iso8601),
        nodes: None,
        metering: None,
    })
}

/// How long a validated plan is reused before the installs and registry are read
/// again: a yank or an install made by another process reaches runs within this time
/// (installs made through this server apply at once).
pub const PLAN_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// A validated workflow version, cached until an install changes or [`PLAN_CACHE_TTL`].
struct CachedPlan {
    generation: u64,
    cached_at: std::time::Instant,
    plan: Arc<Plan>,
    workflow: Arc<Workflow>,
}

/// The run service: accepting, executing, reading and cancelling runs.
pub struct Runs {
    db: AnyPool,
    writer: Writer,
    queue: FairQueue,
    ledger: Arc<Ledger>,
    events: Events,
    installs: Arc<Installs>,
    workflows: Workflows,
    metrics: Arc<Metrics>,
    audit: Arc<Audit>,
    executor: Executor,
    config: SchedulerConfig,
    cancels: Mutex<HashMap<String, Arc<Notify>>>,
    /// By (workspace, workflow, version): a workspace finds only its own workflows' plans.
    plans: Mutex<HashMap<(String, String, i64), CachedPlan>>,
    /// Bumped by every install change: cached plans of older generations are stale.
    generation: AtomicU64,
}

impl Runs {
    /// The service; no worker runs until [`Runs::start`].
    pub fn new(
        db: AnyPool,
        installs: Arc<Installs>,
        metrics: Arc<Metrics>,
        audit: Arc<Audit>,
        runtime: Arc<hyyve_runtime::Runtime>,
        config: SchedulerConfig,
    ) -> Self {
        let ledger = Arc::new(Ledger::new(config.usage_refresh));
        let routes = Routes {
            aliases: Arc::new(SqlAliases::new(db.clone())),
            providers: installs.clone(),
            budget: Some(Arc::new(PlanBudget {
                db: db.clone(),
                ledger: ledger.clone(),
            })),
        };
        let executor = Executor::new(
            runtime,
            ExecutorConfig {
                concurrency: 4,
                workspace: String::new(),
                retries: config.retries,
                retry_backoff: config.retry_backoff,
            },
        )
        .with_models(Arc::new(routes));
        let events = Events::default();
        Self {
            writer: Writer::start(
                db.clone(),
                events.clone(),
                Lease {
                    owner: config.instance.clone(),
                    ttl_ms: i64::try_from(config.lease.as_millis()).unwrap_or(i64::MAX),
                },
            ),
            workflows: Workflows::new(db.clone()),
            db,
            queue: FairQueue::default(),
            ledger,
            events,
            installs,
            metrics,
            audit,
            executor,
            config,
            cancels: Mutex::default(),
            plans: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// Starts the worker pool after re-queueing every open run nobody holds: those this
    /// instance held when it stopped, and those whose holder's lease lapsed. Then keeps
    /// this instance's leases renewed, and takes over the runs of instances that stop
    /// renewing theirs.
    pub async fn start(self: &Arc<Self>) -> Result<usize, ApiError> {
        // Whatever this instance held was left by its previous process.
        self.writer
            .commit(Write::new(
                "UPDATE runs SET lease_until = 0 WHERE owner = $1 \
                 AND status IN ('queued', 'running')",
                vec![Bind::Text(self.config.instance.clone())],
            ))
            .await
            .map_err(ApiError::Internal)?;
        let recovered = self.recover(false).await?;
        for _ in 0..self.config.workers.max(1) {
            let runs = self.clone();
            tokio::spawn(async move { runs.work().await });
        }
        let runs = self.clone();
        tokio::spawn(async move { runs.keep_leases().await });
        Ok(recovered)
    }

    /// Renews this instance's leases every third of their length, and after each full
    /// length takes over the open runs whose other holder let its lease lapse.
    async fn keep_leases(self: Arc<Self>) {
        // A zero lease would spin: renew at most ten times a second.
        let every = (self.config.lease / 3).max(std::time::Duration::from_millis(100));
        let mut ticks = 0u64;
        loop {
            tokio::time::sleep(every).await;
            let until = now_ms() + i64::try_from(self.config.lease.as_millis()).unwrap_or(0);
            self.writer.submit(Write::new(
                "UPDATE runs SET lease_until = $1 WHERE owner = $2 \
                 AND status IN ('queued', 'running')",
                vec![Bind::Int(until), Bind::Text(self.config.instance.clone())],
            ));
            ticks += 1;
            if ticks.is_multiple_of(3) {
                match self.recover(true).await {
                    Ok(0) => {}
                    Ok(taken) => tracing::warn!(
                        taken,
                        "took over runs whose instance stopped renewing their lease"
                    ),
                    Err(e) => tracing::error!(error = %e, "looking for lapsed leases"),
                }
            }
        }
    }

    /// The live event fan-out.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Runs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Cached plans are stale after any install change.
    pub fn installs_changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    /// The validated plan of a workflow version (422 when it no longer validates).
    async fn plan(
        &self,
        workspace: &str,
        workflow_id: &str,
        version: i64,
    ) -> Result<(Arc<Plan>, Arc<Workflow>), ApiError> {
        let generation = self.generation.load(Ordering::Relaxed);
        let key = (workspace.to_owned(), workflow_id.to_owned(), version);
        if let Some(cached) = self.plans.lock().expect("not poisoned").get(&key)
            && cached.generation == generation
            && cached.cached_at.elapsed() < PLAN_CACHE_TTL
        {
            return Ok((cached.plan.clone(), cached.workflow.clone()));
        }
        let stored = self
            .workflows
            .version(workspace, workflow_id, Some(version))
            .await?;
        let workflow: Workflow = serde_json::from_value(stored.definition)
            .map_err(|e| ApiError::Internal(format!("stored workflow: {e}")))?;
        let plan = Arc::new(self.validate(workspace, &workflow).await?);
        let workflow = Arc::new(workflow);
        self.plans.lock().expect("not poisoned").insert(
            key,
            CachedPlan {
                generation,
                cached_at: std::time::Instant::now(),
                plan: plan.clone(),
                workflow: workflow.clone(),
            },
        );
        Ok((plan, workflow))
    }

    /// Validates `workflow` against the workspace's installs: 422 `workflow_invalid`
    /// listing every problem with its node and field.
    pub async fn validate(&self, workspace: &str, workflow: &Workflow) -> Result<Plan, ApiError> {
        let plugins = self
            .installs
            .plugin_set(workspace, &workflow.plugin_refs())
            .await?;
        hyyve_workflow::validate(workflow, &plugins).map_err(|errors| {
            let details: Vec<Value> = errors
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "node": e.node(), "field": e.field(), "message": e.to_string(),
                    })
                })
                .collect();
            ApiError::Unprocessable {
                code: "workflow_invalid".into(),
                message: format!(
                    "the workflow is invalid: {}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                details: Value::Array(details),
            }
        })
    }

    /// Accepts a run of a workflow version (the latest when `None`): validated, input
    /// checked, quota reserved, persisted as `queued`, then queued.
    pub async fn submit(
        &self,
        principal: &Principal,
        workflow_id: &str,
        version: Option<i64>,
        input: Value,
    ) -> Result<Run, ApiError> {
        let version = match version {
            Some(v) => v,
            None => {
                self.workflows
                    .get(&principal.workspace_id, workflow_id)
                    .await?
                    .latest_version
            }
        };
        let (plan, _) = self
            .plan(&principal.workspace_id, workflow_id, version)
            .await?;
        plan.check_input(&input)
            .map_err(|e| ApiError::Unprocessable {
                code: "run_input_invalid".into(),
                message: e.to_string(),
                details: serde_json::json!({ "input": e.name, "field": e.field }),
            })?;
        let today = hyyve_registry::marketplace::today();
        let reserved = plan.len() as i64;
        self.ledger
            .admit_tokens(&self.db, &principal.workspace_id, principal.plan, &today)
            .await?;
        self.ledger
            .reserve(
                &self.db,
                &principal.org_id,
                principal.plan,
                &today,
                reserved,
            )
            .await?;
        let id = new_ordered_id("run");
        let now = now_ms();
        let accepted = self
            .writer
            .commit(Write::Accept(AcceptRow {
                id: id.clone(),
                workspace_id: principal.workspace_id.clone(),
                org_id: principal.org_id.clone(),
                workflow_id: workflow_id.to_owned(),
                workflow_version: version,
                input: input.to_string(),
                created_by: principal.key_name.clone(),
                created_at: now,
            }))
            .await;
        if let Err(e) = accepted {
            self.ledger.release(&principal.org_id, &today, reserved);
            return Err(ApiError::Internal(format!("accepting run: {e}")));
        }
        self.queue.push(Ticket {
            run_id: id.clone(),
            workspace_id: principal.workspace_id.clone(),
            org_id: principal.org_id.clone(),
            workflow_id: workflow_id.to_owned(),
            version,
            input: input.clone(),
            concurrency: quota::limits(principal.plan).concurrent_runs,
            accepted_at: now,
            reserved,
            executions: 0,
        });
        self.metrics.queue_depth.set(self.queue.depth() as i64);
        Ok(Run {
            id,
            workflow_id: workflow_id.to_owned(),
            workflow_version: version,
            status: RunState::Queued,
            input,
            executions: 0,
            error: None,
            created_by: principal.key_name.clone(),
            created_at: iso8601(now),
            started_at: None,
            finished_at: None,
            nodes: None,
            metering: None,
        })
    }

    /// One run with its node reports and metering totals.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<Run, ApiError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 AND id = $2"
        )))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("run `{id}`")))?;
        let mut run = run_from(&row)?;
        let reports: Vec<String> =
            sqlx::query_scalar("SELECT report FROM run_nodes WHERE run_id = $1")
                .bind(id)
                .fetch_all(&self.db)
                .await?;
        run.nodes = Some(
            reports
                .iter()
                .filter_map(|r| serde_json::from_str(r).ok())
                .collect(),
        );
        let (invocations, fuel, wall_time_us, denials): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(fuel), 0) AS BIGINT), \
             CAST(COALESCE(SUM(wall_time_us), 0) AS BIGINT), \
             CAST(COALESCE(SUM(denials), 0) AS BIGINT) FROM metering_records WHERE run_id = $1",
        )
        .bind(id)
        .fetch_one(&self.db)
        .await?;
        run.metering = Some(RunMetering {
            invocations,
            fuel,
            wall_time_us,
            denials,
        });
        Ok(run)
    }

    /// A page of the workspace's runs, newest first.
    pub async fn list(
        &self,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<Run>, ApiError> {
        let (limit, offset) = page.limit_offset();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE workspace_id = $1 \
             ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
        )))
        .bind(workspace)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let data = rows.iter().map(run_from).collect::<Result<_, _>>()?;
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE workspace_id = $1")
            .bind(workspace)
            .fetch_one(&self.db)
            .await?;
        Ok(ListPage::new(data, total, page))
    }

    /// Cancels a queued or running run (409 `run_finished` when it is over).
    pub async fn cancel(&self, workspace: &str, id: &str) -> Result<Run, ApiError> {
        let run = self.get(workspace, id).await?;
        if run.status.is_final() {
            return Err(ApiError::Conflict {
                code: "run_finished".into(),
                message: format!("run `{id}` already finished ({})", run.status.as_str()),
            });
        }
        let cancelled_queued = self
            .writer
            .commit(Write::new(
                "UPDATE runs SET status = 'cancelled', finished_at = $1, \
                 error = 'cancelled before it started' WHERE id = $2 AND status = 'queued'",
                vec![Bind::Int(now_ms()), Bind::Text(id.to_owned())],
            ))
            .await
            .map_err(ApiError::Internal)?;
        if cancelled_queued == 1 {
            self.events.emit(
                "run.finished",
                id,
                || serde_json::json!({ "status": "cancelled" }),
            );
            self.metrics
                .runs
                .get_or_create(&crate::metrics::RunLabels {
                    status: "cancelled".into(),
                })
                .inc();
        } else if let Some(signal) = self.cancels.lock().expect("not poisoned").get(id) {
            signal.notify_one();
        }
        self.get(workspace, id).await
    }

    /// Queues the open runs nobody holds, oldest first: those whose lease lapsed, and
    /// at start (`lapsed_only` false) also those from before leases existed. Their claim
    /// decides, if two instances queue the same run.
    async fn recover(&self, lapsed_only: bool) -> Result<usize, ApiError> {
        let unheld = match lapsed_only {
            true => "r.owner IS NOT NULL AND r.owner <> $2 AND r.lease_until < $1",
            false => "(r.owner IS NULL OR r.lease_until < $1) AND $2 = $2",
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.id, r.workspace_id, r.org_id, r.workflow_id, r.workflow_version, r.input, \
             r.executions, r.created_at, o.plan FROM runs r \
             JOIN tenant_orgs o ON o.id = r.org_id \
             WHERE r.status IN ('queued', 'running') AND {unheld} ORDER BY r.created_at"
        )))
        .bind(now_ms())
        .bind(&self.config.instance)
        .fetch_all(&self.db)
        .await?;
        for row in &rows {
            let input: String = row.try_get("input")?;
            let plan: String = row.try_get("plan")?;
            let plan = crate::tenancy::Plan::parse(&plan).unwrap_or(crate::tenancy::Plan::Free);
            self.queue.push(Ticket {
                run_id: row.try_get("id")?,
                workspace_id: row.try_get("workspace_id")?,
                org_id: row.try_get("org_id")?,
                workflow_id: row.try_get("workflow_id")?,
                version: row.try_get("workflow_version")?,
                input: serde_json::from_str(&input).unwrap_or(Value::Null),
                concurrency: quota::limits(plan).concurrent_runs,
                accepted_at: row.try_get("created_at")?,
                reserved: 0,
                executions: row.try_get("executions")?,
            });
        }
        Ok(rows.len())
    }
}
