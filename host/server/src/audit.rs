//! The server's audit log: who installed, granted, changed policy, decided a review,
//! made or revoked a key, changed a member or a secret, and every capability a plugin was
//! denied during a run. One append-only hash chain per workspace, in the database; the
//! entries are those of the CLI's file log ([`hyyve_policy::AuditEntry`]), so the same
//! check ([`hyyve_policy::audit::verify_chain`]) finds an edited, removed or reordered
//! row.
//!
//! An entry is appended after the change it records has committed: a process that dies
//! between the two leaves that change unaudited (written down in the README).

use hyyve_policy::AuditAction;
use hyyve_policy::audit::{GENESIS, verify_chain};
use hyyve_policy::{AuditEntry, AuditEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{AnyPool, Row};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::ids::now_ms;
use crate::tenancy::{ListPage, PageRequest, Principal};

/// Appends tried before giving up when another process keeps taking the next number.
const APPEND_ATTEMPTS: usize = 5;

/// The audit log of every workspace.
pub struct Audit {
    db: AnyPool,
    /// Serializes this process's appends, so they never race each other for a number
    /// (another process sharing the database is caught by the primary key and retried).
    append: tokio::sync::Mutex<()>,
}

/// Filters of `GET /v1/audit`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries with this action, e.g. `capability.denied`.
    pub action: Option<String>,
    /// 1-based page (newest entries first).
    #[serde(
        default = "crate::tenancy::first_page",
        deserialize_with = "crate::tenancy::page_number"
    )]
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: u32,
    /// Items per page, 1 to 100.
    #[serde(
        default = "crate::tenancy::default_page_size",
        deserialize_with = "crate::tenancy::page_size"
    )]
    #[param(minimum = 1, maximum = 100)]
    pub page_size: u32,
}

/// The result of checking a workspace's chain.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChainCheck {
    /// Entries checked.
    pub entries: u64,
    /// Whether every entry follows the previous one and matches its hash.
    pub intact: bool,
    /// Position of the first entry that does not, when one does not.
    pub broken_at: Option<u64>,
    /// What does not match.
    pub problem: Option<String>,
}

/// An entry as served.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// 1-based position in the workspace's chain.
    pub seq: u64,
    /// ISO-8601 UTC, milliseconds.
    pub at: String,
    /// Who acted: `<key name> (<key id>)`, or `plugin:<id>` for a capability denial.
    pub actor: String,
    /// Dotted verb, e.g. `plugin.install`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Action-specific details (never secret values).
    #[schema(value_type = Object)]
    pub detail: Value,
    /// Hash of the previous entry.
    pub prev: String,
    /// SHA-256 of this entry.
    pub hash: String,
}

impl From<AuditEntry> for AuditRecord {
    fn from(e: AuditEntry) -> Self {
        AuditRecord {
            seq: e.seq,
            at: e.at,
            actor: e.event.actor,
            action: e.event.action,
            subject: e.event.subject,
            detail: e.event.detail,
            prev: e.prev,
            hash: e.hash,
        }
    }
}

/// How an API key appears as the actor of an entry.
pub fn actor(principal: &Principal) -> String {
    format!("{} ({})", principal.key_name, principal.key_id)
}

impl Audit {
    /// Over the server's database.
    pub fn new(db: AnyPool) -> Self {
        Self {
            db,
            append: tokio::sync::Mutex::new(()),
        }
    }

    /// Records what `principal` did in its workspace.
    pub async fn record(
        &self,
        principal: &Principal,
        action: AuditAction,
        subject: &str,
        detail: Value,
    ) -> Result<(), ApiError> {
        let event = AuditEvent::new(actor(principal), action, subject, detail);
        self.append(&principal.workspace_id, event).await
    }

    /// Appends `event` to `workspace`'s chain.
    pub async fn append(&self, workspace: &str, event: AuditEvent) -> Result<(), ApiError> {
        let _turn = self.append.lock().await;
        let mut attempt = 1;
        loop {
            match self.try_append(workspace, event.clone()).await {
                Ok(()) => return Ok(()),
                Err(e) if is_taken(&e) && attempt < APPEND_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn try_append(&self, workspace: &str, event: AuditEvent) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        // Writing first takes the lock before reading the tail: SQLite then waits its
        // busy timeout instead of failing a read-to-write upgrade, and PostgreSQL holds
        // the workspace row so another process's append waits for this one.
        sqlx::query("UPDATE workspaces SET id = id WHERE id = $1")
            .bind(workspace)
            .execute(&mut *tx)
            .await?;
        let last: Option<(i64, String)> = sqlx::query_as(
            "SELECT seq, entry FROM audit_log WHERE workspace_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(workspace)
        .fetch_optional(&mut *tx)
        .await?;
        let (seq, hash) = match last {
            Some((seq, text)) => {
                let entry: AuditEntry =
                    serde_json::from_str(&text).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                (u64::try_from(seq).unwrap_or(0), entry.hash)
            }
            None => (0, GENESIS.to_owned()),
        };
        let entry = AuditEntry::following(seq, &hash, event);
        let text = serde_json::to_string(&entry).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query(
            "INSERT INTO audit_log (workspace_id, seq, action, at, entry) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(workspace)
        .bind(entry.seq as i64)
        .bind(&entry.event.action)
        .bind(now_ms())
        .bind(&text)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A page of `workspace`'s entries, newest first.
    pub async fn list(
        &self,
        workspace: &str,
        query: AuditQuery,
    ) -> Result<ListPage<AuditRecord>, ApiError> {
        let page = PageRequest {
            page: query.page,
            page_size: query.page_size,
        };
        let (limit, offset) = page.limit_offset();
        // The action filter is added only when asked for: PostgreSQL cannot type a
        // parameter that is only ever compared with NULL.
        let (filter, action) = match &query.action {
            Some(action) => ("workspace_id = $1 AND action = $2", action.as_str()),
            None => ("workspace_id = $1 AND $2 = $2", ""),
        };
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM audit_log WHERE {filter}"
        )))
        .bind(workspace)
        .bind(action)
        .fetch_one(&self.db)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT entry FROM audit_log WHERE {filter} ORDER BY seq DESC LIMIT $3 OFFSET $4"
        )))
        .bind(workspace)
        .bind(action)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let data = rows
            .iter()
            .map(|row| {
                let text: String = row.try_get("entry")?;
                let entry: AuditEntry = serde_json::from_str(&text)
                    .map_err(|e| ApiError::Internal(format!("stored audit entry: {e}")))?;
                Ok(AuditRecord::from(entry))
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(ListPage::new(data, total, page))
    }

    /// Re-checks `workspace`'s whole chain.
    pub async fn verify(&self, workspace: &str) -> Result<ChainCheck, ApiError> {
        let texts: Vec<String> =
            sqlx::query_scalar("SELECT entry FROM audit_log WHERE workspace_id = $1 ORDER BY seq")
                .bind(workspace)
                .fetch_all(&self.db)
                .await?;
        let mut entries = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            match serde_json::from_str::<AuditEntry>(text) {
                Ok(entry) => entries.push(entry),
                Err(e) => {
                    return Ok(ChainCheck {
                        entries: texts.len() as u64,
                        intact: false,
                        broken_at: Some(i as u64 + 1),
                        problem: Some(format!("does not parse: {e}")),
                    });
                }
            }
        }
        let checked = verify_chain(&entries);
        Ok(ChainCheck {
            entries: entries.len() as u64,
            intact: checked.is_ok(),
            broken_at: checked.as_ref().err().map(|b| b.position),
            problem: checked.err().map(|b| b.message),
        })
    }
}

#[async_trait::async_trait]
impl hyyve_platform::AuditSink for Audit {
    async fn append(
        &self,
        workspace: &str,
        event: AuditEvent,
    ) -> Result<(), hyyve_platform::StoreError> {
        Audit::append(self, workspace, event)
            .await
            .map_err(|e| hyyve_platform::StoreError::new("audit log", e))
    }
}

/// Whether another writer took the number this append wanted.
fn is_taken(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}
