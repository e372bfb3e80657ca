//! Group commit: every write of the run pipeline (accepting, claiming, node reports,
//! metering, finishing) goes through one task that commits whatever is waiting in a
//! single transaction. Thousands of small writes a second cost a few commits a second,
//! on SQLite (one writer anyway) and PostgreSQL alike; order is kept, so a run's finish
//! is never committed before its nodes.

use std::collections::HashMap;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

/// One write.
pub enum Write {
    /// A statement: `sql` with `$1…` bound to `binds` in order.
    Statement {
        /// The SQL.
        sql: &'static str,
        /// Its values.
        binds: Vec<Bind>,
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

/// Handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    sender: mpsc::UnboundedSender<(Write, Option<Reply>)>,
}

/// Most writes committed together.
const BATCH: usize = 1024;

impl Writer {
    /// Starts the writer task on `db`.
    pub fn start(db: AnyPool) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(db, receiver));
        Self { sender }
    }

    /// Queues `write` and waits for its commit; the rows it affected.
    pub async fn commit(&self, write: Write) -> Result<u64, String> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((write, Some(reply)))
            .map_err(|_| "the writer has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the writer has stopped".to_owned())?
    }

    /// Queues `write` without waiting (it is committed before anything queued later).
    pub fn submit(&self, write: Write) {
        if self.sender.send((write, None)).is_err() {
            tracing::error!("write dropped: the writer has stopped");
        }
    }
}

async fn run(db: AnyPool, mut receiver: mpsc::UnboundedReceiver<(Write, Option<Reply>)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while receiver.recv_many(&mut batch, BATCH).await > 0 {
        match commit_batch(&db, &batch).await {
            Ok(affected) => {
                for ((_, reply), rows) in batch.drain(..).zip(affected) {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(rows));
                    }
                }
            }
            // One bad write must not sink the others: retry each alone.
            Err(_) => {
                for (write, reply) in batch.drain(..) {
                    let result = commit_batch(&db, std::slice::from_ref(&(write, None)))
                        .await
                        .map(|rows| rows[0])
                        .map_err(|e| e.to_string());
                    if let Err(e) = &result {
                        tracing::error!(error = %e, "write failed");
                    }
                    if let Some(reply) = reply {
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }
}

/// Rows per multi-row insert: 16 columns × 500 stays under every database's limit on
/// bound values.
const ROWS_PER_INSERT: usize = 500;

/// Commits `batch` in one transaction; the rows each write affected (0 for metering
/// records and node reports, which nobody waits for). Metering records and node reports
/// are written first, as one multi-row insert each: a statement per row costs a round
/// trip to the database each, and the writer is the one path every run goes through.
/// They depend on no other write of the pipeline, and the transaction makes the order
/// invisible outside it.
async fn commit_batch(
    db: &AnyPool,
    batch: &[(Write, Option<Reply>)],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut metering = Vec::new();
    let mut reports: HashMap<(&str, &str), &str> = HashMap::new();
    for (write, _) in batch {
        match write {
            Write::Metering(row) => metering.push(row),
            // The latest report of a node wins (PostgreSQL refuses one insert that
            // updates a row twice).
            Write::NodeReport {
                run_id,
                node_id,
                report,
            } => {
                reports.insert((run_id, node_id), report);
            }
            Write::Statement { .. } => {}
        }
    }
    let mut tx = db.begin().await?;
    let mut usage: HashMap<(String, String, String), i64> = HashMap::new();
    for chunk in metering.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO metering_records (run_id, node_id, attempt, workspace_id, org_id, \
             plugin_id, day, fuel, wall_time_us, peak_memory_bytes, host_calls, http_requests, \
             denials, failure, record, recorded_at) VALUES {} \
             ON CONFLICT (run_id, node_id, attempt) DO NOTHING \
             RETURNING plugin_id, workspace_id, day, failure",
            placeholders(chunk.len(), 16)
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
        for inserted in query.fetch_all(&mut *tx).await? {
            let failure: Option<String> = inserted.try_get("failure")?;
            if failure.is_none() {
                *usage
                    .entry((
                        inserted.try_get("plugin_id")?,
                        inserted.try_get("workspace_id")?,
                        inserted.try_get("day")?,
                    ))
                    .or_default() += 1;
            }
        }
    }
    for ((plugin, workspace, day), invocations) in usage {
        sqlx::query(hyyve_registry::marketplace::RECORD_USAGE_SQL)
            .bind(plugin)
            .bind(workspace)
            .bind(day)
            .bind(invocations)
            .execute(&mut *tx)
            .await?;
    }
    let reports: Vec<_> = reports.into_iter().collect();
    for chunk in reports.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO run_nodes (run_id, node_id, report) VALUES {} \
             ON CONFLICT (run_id, node_id) DO UPDATE SET report = excluded.report",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for ((run_id, node_id), report) in chunk {
            query = query.bind(*run_id).bind(*node_id).bind(*report);
        }
        query.execute(&mut *tx).await?;
    }
    let mut affected = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        let Write::Statement { sql, binds } = write else {
            affected.push(0);
            continue;
        };
        let mut query = sqlx::query(*sql);
        for bind in binds {
            query = match bind {
                Bind::Text(v) => query.bind(v.as_str()),
                Bind::OptText(v) => query.bind(v.as_deref()),
                Bind::Int(v) => query.bind(*v),
            };
        }
        affected.push(query.execute(&mut *tx).await?.rows_affected());
    }
    tx.commit().await?;
    Ok(affected)
}

/// `($1, $2, $3), ($4, $5, $6), …`: `rows` groups of `columns` placeholders.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_every_value_of_every_row() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(placeholders(1, 1), "($1)");
    }
}
