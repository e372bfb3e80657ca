//! Group commit: every write of the run pipeline (accepting, claiming, node reports,
//! metering, finishing) goes through one task that commits whatever is waiting in a
//! single transaction. Thousands of small writes a second cost a few commits a second,
//! on SQLite (one writer anyway) and PostgreSQL alike. Batches commit in the order they
//! were queued, and inside a batch a run's writes follow its life (see
//! [`commit_batch`]), so a run's finish is never committed before its nodes. Run events
//! about a write are emitted by the writer once the write has committed (see
//! [`super::events`]).

use std::collections::{HashMap, HashSet};

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::events::{Events, Pending};

/// One write.
pub enum Write {
    /// A new run, `queued`.
    Accept(AcceptRow),
    /// A worker takes a run that is still open (`queued`, or `running` when an earlier
    /// process was interrupted); affects 0 rows when it was cancelled or finished.
    Claim {
        /// The run.
        run_id: String,
        /// When, ms since the epoch (kept as `started_at` by the first claim only).
        at: i64,
    },
    /// A metering record, idempotent by (run, node, attempt). A new record of a
    /// successful invocation also counts in the marketplace usage creators are paid
    /// from; a record already there adds nothing.
    Metering(MeteringRow),
    /// A node's final report, replacing an earlier one of the same node.
    NodeReport {
        /// The run.
        run_id: String,
        /// The node.
        node_id: String,
        /// The report, JSON.
        report: String,
    },
    /// A run's final state; affects 0 rows unless the run is `running`, so a run is
    /// finished once.
    Finish {
        /// The run.
        run_id: String,
        /// `succeeded`, `failed`, …
        status: &'static str,
        /// Why it failed.
        error: Option<String>,
        /// When, ms since the epoch.
        at: i64,
    },
    /// A statement: `sql` with `$1…` bound to `binds` in order.
    Statement {
        /// The SQL.
        sql: &'static str,
        /// Its values.
        binds: Vec<Bind>,
    },
}

/// A row of `runs` as accepted.
pub struct AcceptRow {
    /// `run_…`.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// Its organization.
    pub org_id: String,
    /// The workflow.
    pub workflow_id: String,
    /// The version it runs.
    pub workflow_version: i64,
    /// The input, JSON.
    pub input: String,
    /// The key that started it.
    pub created_by: String,
    /// When, ms since the epoch.
    pub created_at: i64,
}

/// A row of `metering_records`.
pub struct MeteringRow {
    /// The run.
    pub run_id: String,
    /// The node.
    pub node_id: String,
    /// 1, 2, … per node, across executions of the run.
    pub attempt: i64,
    /// The workspace.
    pub workspace_id: String,
    /// Its organization (quotas).
    pub org_id: String,
    /// `namespace:name`.
    pub plugin_id: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Fuel consumed.
    pub fuel: i64,
    /// Wall time, microseconds.
    pub wall_time_us: i64,
    /// Peak linear memory.
    pub peak_memory_bytes: i64,
    /// Host calls.
    pub host_calls: i64,
    /// Outgoing HTTP requests.
    pub http_requests: i64,
    /// Capability denials.
    pub denials: i64,
    /// The kind that ended the invocation, if it failed.
    pub failure: Option<String>,
    /// The whole record, JSON.
    pub record: String,
    /// When, ms since the epoch.
    pub recorded_at: i64,
    /// Custom units the plugin reported, each with its quantity (rows of
    /// `metering_units`).
    pub units: Vec<(String, i64)>,
}

/// A bound value.
pub enum Bind {
    /// Text.
    Text(String),
    /// Nullable text.
    OptText(Option<String>),
    /// Integer.
    Int(i64),
}

impl Write {
    /// `sql` with `$1…` bound to `binds` in order.
    pub fn new(sql: &'static str, binds: Vec<Bind>) -> Self {
        Self::Statement { sql, binds }
    }
}

type Reply = oneshot::Sender<Result<u64, String>>;

/// The lease this process takes on the runs it accepts and claims: processes sharing a
/// database execute a run only while they hold its lease (see `Runs::start`).
#[derive(Debug, Clone)]
pub struct Lease {
    /// This server instance.
    pub owner: String,
    /// How long a lease lasts unless renewed, ms.
    pub ttl_ms: i64,
}

/// What waits in the writer's queue: a write (none for an event that only waits for
/// what was queued before it), who waits for its answer, and the event emitted once it
/// has committed and changed something.
struct Queued {
    write: Option<Write>,
    reply: Option<Reply>,
    then: Option<Pending>,
}

/// Handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    sender: mpsc::UnboundedSender<Queued>,
}

/// Most writes committed together.
const BATCH: usize = 1024;

impl Writer {
    /// Starts the writer task on `db`; it emits committed writes' events to `events`,
    /// and accepts and claims runs under `lease`.
    pub fn start(db: AnyPool, events: Events, lease: Lease) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(db, events, lease, receiver));
        Self { sender }
    }

    /// Queues `write` and waits for its commit; the rows it affected.
    pub async fn commit(&self, write: Write) -> Result<u64, String> {
        self.enqueue(write).await
    }

    /// Queues `write` now (ordered before anything queued later) and returns what
    /// waits for its commit: the caller may go on working and look at the answer later.
    pub fn enqueue(&self, write: Write) -> impl Future<Output = Result<u64, String>> + use<> {
        self.enqueue_then(write, None)
    }

    /// [`Writer::enqueue`], and `event` is emitted once `write` has committed, if it
    /// changed something (a claim or finish of a run no longer open changes nothing).
    pub fn enqueue_announcing(
        &self,
        write: Write,
        event: Pending,
    ) -> impl Future<Output = Result<u64, String>> + use<> {
        self.enqueue_then(write, Some(event))
    }

    fn enqueue_then(
        &self,
        write: Write,
        then: Option<Pending>,
    ) -> impl Future<Output = Result<u64, String>> + use<> {
        let (reply, answer) = oneshot::channel();
        let sent = self.sender.send(Queued {
            write: Some(write),
            reply: Some(reply),
            then,
        });
        async move {
            sent.map_err(|_| "the writer has stopped".to_owned())?;
            answer
                .await
                .map_err(|_| "the writer has stopped".to_owned())?
        }
    }

    /// Queues `write` without waiting (it is committed before anything queued later).
    pub fn submit(&self, write: Write) {
        self.send(Some(write), None);
    }

    /// [`Writer::submit`], and `event` is emitted once `write` has committed.
    pub fn submit_announcing(&self, write: Write, event: Pending) {
        self.send(Some(write), Some(event));
    }

    /// Emits `event` once everything queued before it has committed.
    pub fn announce(&self, event: Pending) {
        self.send(None, Some(event));
    }

    fn send(&self, write: Option<Write>, then: Option<Pending>) {
        let queued = Queued {
            write,
            reply: None,
            then,
        };
        if self.sender.send(queued).is_err() {
            tracing::error!("write dropped: the writer has stopped");
        }
    }
}

/// SQLite page cache of the writer's connection, KiB. The writer touches index pages all
/// over the tables (run ids are random), and a page it cannot keep is read again from
/// the file on the next batch; SQLite's default is 2 MiB.
const SQLITE_WRITER_CACHE_KIB: i64 = 64 * 1024;

async fn run(
    db: AnyPool,
    events: Events,
    lease: Lease,
    mut receiver: mpsc::UnboundedReceiver<Queued>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut connection = None;
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        let result = match writer_connection(&db, &mut connection).await {
            Ok(conn) => commit_batch(conn, &batch, &lease).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(affected) => {
                for (queued, rows) in batch.drain(..).zip(affected) {
                    let event_only = queued.write.is_none();
                    answer(&events, queued.reply, queued.then, event_only, Ok(rows));
                }
            }
            // One bad write must not sink the others: retry each alone. The connection
            // may be what failed: the next batch takes a fresh one.
            Err(_) => {
                connection = None;
                for Queued { write, reply, then } in batch.drain(..) {
                    let event_only = write.is_none();
                    let alone = [Queued {
                        write,
                        reply: None,
                        then: None,
                    }];
                    let result = match writer_connection(&db, &mut connection).await {
                        Ok(conn) => commit_batch(conn, &alone, &lease).await.map(|rows| rows[0]),
                        Err(e) => Err(e),
                    }
                    .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "write failed");
                        connection = None;
                    }
                    answer(&events, reply, then, event_only, result);
                }
            }
        }
    }
}

/// After a write's commit (or failure): emits its event if it changed something (an
/// event that only waited for earlier writes always goes), then answers whoever waits.
/// In that order, so what the waiter emits next comes after it.
fn answer(
    events: &Events,
    reply: Option<Reply>,
    then: Option<Pending>,
    event_only: bool,
    result: Result<u64, String>,
) {
    let changed = event_only || matches!(result, Ok(rows) if rows > 0);
    if let (Some(event), true) = (then, changed) {
        events.emit_pending(event);
    }
    if let Some(reply) = reply {
        let _ = reply.send(result);
    }
}

/// The writer's own connection, taken out of the pool: on SQLite a connection's page
/// cache is dropped whenever another connection writes, so batches that each took
/// whichever pooled connection was free kept reading the same pages from the file.
async fn writer_connection<'c>(
    db: &AnyPool,
    connection: &'c mut Option<AnyConnection>,
) -> Result<&'c mut AnyConnection, sqlx::Error> {
    if connection.is_none() {
        let mut conn = db.acquire().await?.detach();
        if conn.backend_name() == "SQLite" {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "PRAGMA cache_size = -{SQLITE_WRITER_CACHE_KIB}"
            )))
            .execute(&mut conn)
            .await?;
        }
        *connection = Some(conn);
    }
    Ok(connection.as_mut().expect("set above"))
}

/// Rows per multi-row statement: 16 columns × 500 stays under every database's limit
/// on bound values.
const ROWS_PER_STATEMENT: usize = 500;

/// A claim or finish: the write's place in the batch, the run, when.
type RunWrite<'a> = (usize, &'a str, i64);

/// The writes of a batch, grouped by kind: each kind is written as one multi-row
/// statement (per [`ROWS_PER_STATEMENT`] rows) instead of one statement per write, since
/// every statement costs a round trip to the database (on SQLite, a hop to its thread)
/// and the writer is the one path every run goes through.
#[derive(Default)]
struct Grouped<'a> {
    accepts: Vec<(usize, &'a AcceptRow)>,
    claims: Vec<RunWrite<'a>>,
    metering: Vec<&'a MeteringRow>,
    /// The latest report of a node wins (PostgreSQL refuses one insert that updates a
    /// row twice).
    reports: HashMap<(&'a str, &'a str), &'a str>,
    /// Where the batch's node reports are: each is written (or replaced by a later one).
    report_writes: Vec<usize>,
    /// By (status, error): runs finishing the same way are finished by one statement.
    finishes: HashMap<(&'static str, Option<&'a str>), Vec<RunWrite<'a>>>,
    statements: Vec<(usize, &'static str, &'a [Bind])>,
}

impl<'a> Grouped<'a> {
    fn of(batch: &'a [Queued]) -> Self {
        let mut grouped = Self::default();
        for (index, queued) in batch.iter().enumerate() {
            let Some(write) = &queued.write else { continue };
            match write {
                Write::Accept(row) => grouped.accepts.push((index, row)),
                Write::Claim { run_id, at } => grouped.claims.push((index, run_id, *at)),
                Write::Metering(row) => grouped.metering.push(row),
                Write::NodeReport {
                    run_id,
                    node_id,
                    report,
                } => {
                    grouped.reports.insert((run_id, node_id), report);
                    grouped.report_writes.push(index);
                }
                Write::Finish {
                    run_id,
                    status,
                    error,
                    at,
                } => grouped
                    .finishes
                    .entry((status, error.as_deref()))
                    .or_default()
                    .push((index, run_id, *at)),
                Write::Statement { sql, binds } => grouped.statements.push((index, sql, binds)),
            }
        }
        grouped
    }
}

/// Commits `batch` in one transaction; the rows each write affected (1 for a node
/// report, 0 for metering records, which nobody waits for).
///
/// Kinds are written in the order of a run's life (accepts, claims, metering, node
/// reports, finishes), then other statements in the order they came. So a run accepted
/// and claimed in one batch is inserted before it is claimed and finished after its
/// nodes; the transaction makes the order invisible outside it. A cancel of a queued run
/// committed in the same batch as its claim comes after the claim and finds it running:
/// the worker is then told to stop, as for any running run.
async fn commit_batch(
    db: &mut AnyConnection,
    batch: &[Queued],
    lease: &Lease,
) -> Result<Vec<u64>, sqlx::Error> {
    let grouped = Grouped::of(batch);
    let mut affected = vec![0; batch.len()];
    let mut tx = sqlx::Connection::begin(db).await?;
    insert_accepts(&mut tx, &grouped.accepts, lease, &mut affected).await?;
    claim_runs(&mut tx, &grouped.claims, lease, &mut affected).await?;
    insert_metering(&mut tx, &grouped.metering).await?;
    upsert_reports(&mut tx, &grouped.reports).await?;
    for index in &grouped.report_writes {
        affected[*index] = 1;
    }
    for ((status, error), runs) in &grouped.finishes {
        finish_runs(&mut tx, status, *error, runs, lease, &mut affected).await?;
    }
    for (index, sql, binds) in &grouped.statements {
        let mut query = sqlx::query(*sql);
        for bind in *binds {
            query = match bind {
                Bind::Text(v) => query.bind(v.as_str()),
                Bind::OptText(v) => query.bind(v.as_deref()),
                Bind::Int(v) => query.bind(*v),
            };
        }
        affected[*index] = query.execute(&mut *tx).await?.rows_affected();
    }
    tx.commit().await?;
    Ok(affected)
}

async fn insert_accepts(
    db: &mut AnyConnection,
    accepts: &[(usize, &AcceptRow)],
    lease: &Lease,
    affected: &mut [u64],
) -> Result<(), sqlx::Error> {
    for chunk in accepts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO runs (id, workspace_id, org_id, workflow_id, workflow_version, input, \
             created_by, created_at, owner, lease_until, status, executions) VALUES {}",
            placeholders(chunk.len(), 10, "'queued', 0")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (_, row) in chunk {
            query = query
                .bind(row.id.as_str())
                .bind(row.workspace_id.as_str())
                .bind(row.org_id.as_str())
                .bind(row.workflow_id.as_str())
                .bind(row.workflow_version)
                .bind(row.input.as_str())
                .bind(row.created_by.as_str())
                .bind(row.created_at)
                .bind(lease.owner.as_str())
                .bind(row.created_at + lease.ttl_ms);
        }
        query.execute(&mut *db).await?;
        for (index, _) in chunk {
            affected[*index] = 1;
        }
    }
    Ok(())
}

/// Claims the runs nobody else holds: queued ones not leased to another live instance,
/// running ones whose holder's lease lapsed (or that predate leases).
async fn claim_runs(
    db: &mut AnyConnection,
    claims: &[RunWrite<'_>],
    lease: &Lease,
    affected: &mut [u64],
) -> Result<(), sqlx::Error> {
    for chunk in claims.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE runs SET status = 'running', executions = executions + 1, \
             started_at = COALESCE(started_at, $1), owner = $2, lease_until = $3 \
             WHERE id IN ({}) AND ( \
               (status = 'queued' AND (owner IS NULL OR owner = $2 OR lease_until < $1)) \
               OR (status = 'running' AND (owner IS NULL OR lease_until < $1))) \
             RETURNING id",
            numbered(4, chunk.len())
        );
        let earliest = chunk.iter().map(|(_, _, at)| *at).min().unwrap_or_default();
        let latest = chunk.iter().map(|(_, _, at)| *at).max().unwrap_or_default();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(earliest)
            .bind(lease.owner.as_str())
            .bind(latest + lease.ttl_ms);
        for (_, run_id, _) in chunk {
            query = query.bind(*run_id);
        }
        let claimed = returned_ids(query.fetch_all(&mut *db).await?)?;
        for (index, run_id, _) in chunk {
            affected[*index] = u64::from(claimed.contains(*run_id));
        }
    }
    Ok(())
}

async fn finish_runs(
    db: &mut AnyConnection,
    status: &str,
    error: Option<&str>,
    runs: &[RunWrite<'_>],
    lease: &Lease,
    affected: &mut [u64],
) -> Result<(), sqlx::Error> {
    for chunk in runs.chunks(ROWS_PER_STATEMENT) {
        // Only the holder finishes: a run taken over after this process's lease lapsed
        // is the other instance's to finish.
        let sql = format!(
            "UPDATE runs SET status = $1, error = $2, finished_at = $3 \
             WHERE status = 'running' AND owner = $4 AND id IN ({}) RETURNING id",
            numbered(5, chunk.len())
        );
        let latest = chunk.iter().map(|(_, _, at)| *at).max().unwrap_or_default();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .bind(error)
            .bind(latest)
            .bind(lease.owner.as_str());
        for (_, run_id, _) in chunk {
            query = query.bind(*run_id);
        }
        let finished = returned_ids(query.fetch_all(&mut *db).await?)?;
        for (index, run_id, _) in chunk {
            affected[*index] = u64::from(finished.contains(*run_id));
        }
    }
    Ok(())
}

fn returned_ids(rows: Vec<AnyRow>) -> Result<HashSet<String>, sqlx::Error> {
    rows.iter().map(|row| row.try_get("id")).collect()
}

async fn insert_metering(
    db: &mut AnyConnection,
    metering: &[&MeteringRow],
) -> Result<(), sqlx::Error> {
    let mut usage = hyyve_platform::usage::UsageTally::default();
    for chunk in metering.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO metering_records (run_id, node_id, attempt, workspace_id, org_id, \
             plugin_id, day, fuel, wall_time_us, peak_memory_bytes, host_calls, http_requests, \
             denials, failure, record, recorded_at) VALUES {} \
             ON CONFLICT (run_id, node_id, attempt) DO NOTHING \
             RETURNING plugin_id, workspace_id, day, failure",
            placeholders(chunk.len(), 16, "")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            query = query
                .bind(row.run_id.as_str())
                .bind(row.node_id.as_str())
                .bind(row.attempt)
                .bind(row.workspace_id.as_str())
                .bind(row.org_id.as_str())
                .bind(row.plugin_id.as_str())
                .bind(row.day.as_str())
                .bind(row.fuel)
                .bind(row.wall_time_us)
                .bind(row.peak_memory_bytes)
                .bind(row.host_calls)
                .bind(row.http_requests)
                .bind(row.denials)
                .bind(row.failure.as_deref())
                .bind(row.record.as_str())
                .bind(row.recorded_at);
        }
        // Only the rows actually inserted come back: a record written again is not
        // counted twice.
        for inserted in query.fetch_all(&mut *db).await? {
            let failure: Option<String> = inserted.try_get("failure")?;
            if failure.is_none() {
                let plugin: String = inserted.try_get("plugin_id")?;
                let workspace: String = inserted.try_get("workspace_id")?;
                let day: String = inserted.try_get("day")?;
                usage.add(&plugin, &workspace, &day);
            }
        }
    }
    insert_units(db, metering).await?;
    usage.record(db).await
}

/// The custom units of `metering`, under the records' idempotency key.
async fn insert_units(
    db: &mut AnyConnection,
    metering: &[&MeteringRow],
) -> Result<(), sqlx::Error> {
    let units: Vec<(&MeteringRow, &(String, i64))> = metering
        .iter()
        .flat_map(|row| row.units.iter().map(move |unit| (*row, unit)))
        .collect();
    for chunk in units.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO metering_units (run_id, node_id, attempt, workspace_id, org_id, \
             plugin_id, day, unit, quantity) VALUES {} \
             ON CONFLICT (run_id, node_id, attempt, unit) DO NOTHING",
            placeholders(chunk.len(), 9, "")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (row, (unit, quantity)) in chunk {
            query = query
                .bind(row.run_id.as_str())
                .bind(row.node_id.as_str())
                .bind(row.attempt)
                .bind(row.workspace_id.as_str())
                .bind(row.org_id.as_str())
                .bind(row.plugin_id.as_str())
                .bind(row.day.as_str())
                .bind(unit.as_str())
                .bind(*quantity);
        }
        query.execute(&mut *db).await?;
    }
    Ok(())
}

async fn upsert_reports(
    db: &mut AnyConnection,
    reports: &HashMap<(&str, &str), &str>,
) -> Result<(), sqlx::Error> {
    let reports: Vec<_> = reports.iter().collect();
    for chunk in reports.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO run_nodes (run_id, node_id, report) VALUES {} \
             ON CONFLICT (run_id, node_id) DO UPDATE SET report = excluded.report",
            placeholders(chunk.len(), 3, "")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((run_id, node_id), report) in chunk {
            query = query.bind(*run_id).bind(*node_id).bind(**report);
        }
        query.execute(&mut *db).await?;
    }
    Ok(())
}

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` groups of `columns` placeholders, each
/// followed by the SQL `constants` when there are any (`($1, $2, 'queued')`).
fn placeholders(rows: usize, columns: usize, constants: &str) -> String {
    (0..rows)
        .map(|r| {
            let mut row = numbered(r * columns + 1, columns);
            if !constants.is_empty() {
                row.push_str(", ");
                row.push_str(constants);
            }
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$first, $first+1, …`: `count` placeholders.
fn numbered(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{
        AcceptRow, Bind, Events, Lease, MeteringRow, Pending, Write, Writer, numbered, placeholders,
    };

    fn lease(owner: &str) -> Lease {
        Lease {
            owner: owner.into(),
            ttl_ms: 30_000,
        }
    }
    use sqlx::AnyPool;

    #[test]
    fn placeholders_number_every_value_of_every_row() {
        assert_eq!(placeholders(2, 3, ""), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1, ""), "($1)");
        assert_eq!(
            placeholders(2, 1, "'queued', 0"),
            "($1, 'queued', 0), ($2, 'queued', 0)"
        );
    }

    #[test]
    fn numbered_counts_from_the_first() {
        assert_eq!(numbered(4, 3), "$4, $5, $6");
        assert_eq!(numbered(1, 0), "");
    }

    fn accept(id: &str) -> Write {
        Write::Accept(AcceptRow {
            id: id.into(),
            workspace_id: "ws_1".into(),
            org_id: "org_1".into(),
            workflow_id: "wf_1".into(),
            workflow_version: 1,
            input: "{}".into(),
            created_by: "key".into(),
            created_at: 1,
        })
    }

    fn claim(id: &str) -> Write {
        claim_at(id, 2)
    }

    fn claim_at(id: &str, at: i64) -> Write {
        Write::Claim {
            run_id: id.into(),
            at,
        }
    }

    fn finish(id: &str) -> Write {
        Write::Finish {
            run_id: id.into(),
            status: "succeeded",
            error: None,
            at: 3,
        }
    }

    fn metering(id: &str, node: &str) -> Write {
        Write::Metering(MeteringRow {
            run_id: id.into(),
            node_id: node.into(),
            attempt: 1,
            workspace_id: "ws_1".into(),
            org_id: "org_1".into(),
            plugin_id: "hyyve:json".into(),
            day: "2026-11-23".into(),
            fuel: 10,
            wall_time_us: 5,
            peak_memory_bytes: 0,
            host_calls: 0,
            http_requests: 0,
            denials: 0,
            failure: None,
            record: "{}".into(),
            recorded_at: 2,
            units: vec![("tokens".into(), 7)],
        })
    }

    async fn database(dir: &tempfile::TempDir) -> AnyPool {
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let db = hyyve_database::Database::open(&url)
            .await
            .expect("database")
            .pool;
        for sql in [
            "INSERT INTO tenant_orgs (id, name, plan, created_at) VALUES ('org_1', 'o', 'free', 0)",
            "INSERT INTO workspaces (id, org_id, name, created_at) VALUES ('ws_1', 'org_1', 'w', 0)",
        ] {
            sqlx::query(sql).execute(&db).await.expect(sql);
        }
        db
    }

    async fn status(db: &AnyPool, id: &str) -> String {
        sqlx::query_scalar("SELECT status FROM runs WHERE id = $1")
            .bind(id)
            .fetch_one(db)
            .await
            .expect("run row")
    }

    /// Writes queued together follow each run's life whatever order the kinds are
    /// grouped in, and each caller learns what its own write did.
    #[tokio::test]
    async fn a_batch_accepts_claims_meters_and_finishes_runs_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let writer = Writer::start(db.clone(), Events::default(), lease("test"));
        let pending: Vec<_> = [
            accept("run_a"),
            accept("run_b"),
            claim("run_a"),
            metering("run_a", "n1"),
            metering("run_a", "n1"),
            finish("run_a"),
            // Finishing a run nobody claimed changes nothing.
            finish("run_b"),
            // Neither does claiming a run that does not exist.
            claim("run_missing"),
        ]
        .into_iter()
        .map(|write| writer.enqueue(write))
        .collect();
        let mut affected = Vec::new();
        for answer in pending {
            affected.push(answer.await.expect("committed"));
        }
        assert_eq!(affected, [1, 1, 1, 0, 0, 1, 0, 0]);
        assert_eq!(status(&db, "run_a").await, "succeeded");
        assert_eq!(status(&db, "run_b").await, "queued");
        let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM metering_records")
            .fetch_one(&db)
            .await
            .expect("count");
        assert_eq!(records, 1, "the idempotency key kept one record");
        let tokens: i64 = sqlx::query_scalar(
            "SELECT CAST(SUM(quantity) AS BIGINT) FROM metering_units WHERE unit = 'tokens'",
        )
        .fetch_one(&db)
        .await
        .expect("sum");
        assert_eq!(tokens, 7, "and its units once");
        // A finished run is not claimed again, and not finished twice.
        assert_eq!(writer.commit(claim("run_a")).await, Ok(0));
        assert_eq!(writer.commit(finish("run_a")).await, Ok(0));
    }

    /// A cancel committed before the claim wins: the claim reports 0 rows, which tells
    /// the worker the run is not its own.
    #[tokio::test]
    async fn a_cancel_committed_first_makes_the_claim_affect_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let writer = Writer::start(db.clone(), Events::default(), lease("test"));
        assert_eq!(writer.commit(accept("run_c")).await, Ok(1));
        let cancel = Write::new(
            "UPDATE runs SET status = 'cancelled' WHERE id = $1 AND status = 'queued'",
            vec![Bind::Text("run_c".into())],
        );
        assert_eq!(writer.commit(cancel).await, Ok(1));
        assert_eq!(writer.commit(claim("run_c")).await, Ok(0));
        assert_eq!(writer.commit(finish("run_c")).await, Ok(0));
        assert_eq!(status(&db, "run_c").await, "cancelled");
    }

    /// One failing write does not sink the writes batched with it.
    #[tokio::test]
    async fn a_failing_write_fails_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let writer = Writer::start(db.clone(), Events::default(), lease("test"));
        let good = writer.enqueue(accept("run_d"));
        let bad = writer.enqueue(Write::new("UPDATE no_such_table SET x = 1", vec![]));
        let after = writer.enqueue(accept("run_e"));
        assert_eq!(good.await, Ok(1));
        assert!(bad.await.is_err());
        assert_eq!(after.await, Ok(1));
        assert_eq!(status(&db, "run_e").await, "queued");
    }

    /// An announced event goes out only once its write is visible to a new reader (so a
    /// stream's snapshot read before it cannot miss it), and not at all when the write
    /// changed nothing; an event of its own waits for what was queued before it.
    #[tokio::test]
    async fn events_are_emitted_after_their_commit_and_only_for_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let events = Events::default();
        let mut received = events.subscribe();
        let writer = Writer::start(db.clone(), events, lease("test"));
        let event = |name, run: &str| Pending::new(name, run, || serde_json::json!({}));
        writer.submit_announcing(accept("run_f"), event("accepted", "run_f"));
        writer.announce(event("after", "run_f"));
        let claimed =
            writer.enqueue_announcing(claim("run_missing"), event("claimed", "run_missing"));

        // Read as soon as it arrives: emitted before the commit, the row would not be
        // there yet.
        let first = received.recv().await.expect("event");
        assert_eq!((first.event, first.run_id.as_str()), ("accepted", "run_f"));
        assert_eq!(status(&db, "run_f").await, "queued");
        assert_eq!(received.recv().await.expect("event").event, "after");
        assert_eq!(claimed.await, Ok(0));
        assert!(
            received.try_recv().is_err(),
            "a claim of no run announced nothing"
        );
    }

    /// Two instances on one database: a run queued or running under the other's live
    /// lease is not claimed, a lapsed lease is taken over, and only the holder finishes.
    #[tokio::test]
    async fn leases_decide_which_instance_claims_and_finishes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let a = Writer::start(db.clone(), Events::default(), lease("a"));
        let b = Writer::start(db.clone(), Events::default(), lease("b"));
        // Accepted by `a` at 1: leased to it until 30,001.
        assert_eq!(a.commit(accept("run_l")).await, Ok(1));
        assert_eq!(b.commit(claim_at("run_l", 2)).await, Ok(0), "a's queue");
        assert_eq!(a.commit(claim_at("run_l", 2)).await, Ok(1));
        assert_eq!(b.commit(claim_at("run_l", 3)).await, Ok(0), "a executes it");
        assert_eq!(b.commit(finish("run_l")).await, Ok(0), "b does not hold it");
        // `a` stopped renewing: at 40,000 its lease (until 30,002) has lapsed.
        assert_eq!(b.commit(claim_at("run_l", 40_000)).await, Ok(1));
        assert_eq!(
            a.commit(finish("run_l")).await,
            Ok(0),
            "a no longer holds it"
        );
        assert_eq!(b.commit(finish("run_l")).await, Ok(1));
        assert_eq!(status(&db, "run_l").await, "succeeded");
    }
}
