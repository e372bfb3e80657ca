//! Group commit: every write of the run pipeline (accepting, claiming, node reports,
//! metering, finishing) goes through one task that commits whatever is waiting in a
//! single transaction. Thousands of small writes a second cost a few commits a second,
//! on SQLite (one writer anyway) and PostgreSQL alike; order is kept, so a run's finish
//! is never committed before its nodes.

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

/// One write, with its SQL and binds.
pub struct Write {
    sql: &'static str,
    binds: Vec<Bind>,
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
        Self { sql, binds }
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

async fn commit_batch(
    db: &AnyPool,
    batch: &[(Write, Option<Reply>)],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut affected = Vec::with_capacity(batch.len());
    for (write, _) in batch {
        let mut query = sqlx::query(write.sql);
        for bind in &write.binds {
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
