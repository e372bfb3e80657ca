//! Plugin KV in the database (server mode): every process sharing the database sees the
//! same values, and they survive a restart. A scope is one workspace + install; its
//! byte count (keys + values) is kept in `kv_scopes` and checked against the install's
//! quota in the transaction that writes, so concurrent writers cannot pass it together.

use hyyve_runtime::{InstallScope, KvError, KvStore, entry_bytes};
use sqlx::AnyPool;

/// The [`KvStore`] of `hyyve serve`, on the server's database.
#[derive(Clone)]
pub struct SqlKv {
    db: AnyPool,
}

impl SqlKv {
    /// KV rows in `db` (migration `0007_plugin_kv`).
    pub fn new(db: AnyPool) -> Self {
        Self { db }
    }
}

fn unavailable(e: sqlx::Error) -> KvError {
    KvError::Unavailable(format!("database: {e}"))
}

/// Takes the scope's row lock (made on first use) before anything reads its size: SQLite
/// then waits its busy timeout rather than failing a read-to-write upgrade, PostgreSQL
/// makes a second writer of the scope wait for this one.
async fn lock_scope(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &InstallScope,
) -> Result<u64, sqlx::Error> {
    sqlx::query(
        "INSERT INTO kv_scopes (workspace_id, install, used_bytes) VALUES ($1, $2, 0) \
         ON CONFLICT (workspace_id, install) DO UPDATE SET used_bytes = kv_scopes.used_bytes",
    )
    .bind(&scope.workspace)
    .bind(&scope.install)
    .execute(&mut **tx)
    .await?;
    let used: i64 = sqlx::query_scalar(
        "SELECT used_bytes FROM kv_scopes WHERE workspace_id = $1 AND install = $2",
    )
    .bind(&scope.workspace)
    .bind(&scope.install)
    .fetch_one(&mut **tx)
    .await?;
    Ok(u64::try_from(used).unwrap_or(0))
}

/// The bytes `key` counts now; `None` when it is not stored.
async fn stored_bytes(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &InstallScope,
    key: &str,
) -> Result<Option<u64>, sqlx::Error> {
    let length: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(LENGTH(value) AS BIGINT) FROM kv_entries \
         WHERE workspace_id = $1 AND install = $2 AND entry_key = $3",
    )
    .bind(&scope.workspace)
    .bind(&scope.install)
    .bind(key)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(length.map(|l| key.len() as u64 + u64::try_from(l).unwrap_or(0)))
}

async fn set_used(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    scope: &InstallScope,
    used: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE kv_scopes SET used_bytes = $1 WHERE workspace_id = $2 AND install = $3")
        .bind(used as i64)
        .bind(&scope.workspace)
        .bind(&scope.install)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl KvStore for SqlKv {
    async fn get(&self, scope: &InstallScope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        sqlx::query_scalar(
            "SELECT value FROM kv_entries WHERE workspace_id = $1 AND install = $2 AND entry_key = $3",
        )
        .bind(&scope.workspace)
        .bind(&scope.install)
        .bind(key)
        .fetch_optional(&self.db)
        .await
        .map_err(unavailable)
    }

    async fn set(
        &self,
        scope: &InstallScope,
        key: &str,
        value: Vec<u8>,
        quota_bytes: u64,
    ) -> Result<(), KvError> {
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        let used = lock_scope(&mut tx, scope).await.map_err(unavailable)?;
        let old = stored_bytes(&mut tx, scope, key)
            .await
            .map_err(unavailable)?;
        let used = used.saturating_sub(old.unwrap_or(0)) + entry_bytes(key, &value);
        if used > quota_bytes {
            // Dropping the transaction rolls back the scope row it may have made.
            return Err(KvError::QuotaExceeded { quota_bytes });
        }
        sqlx::query(
            "INSERT INTO kv_entries (workspace_id, install, entry_key, value) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (workspace_id, install, entry_key) DO UPDATE SET value = excluded.value",
        )
        .bind(&scope.workspace)
        .bind(&scope.install)
        .bind(key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        set_used(&mut tx, scope, used).await.map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    async fn delete(&self, scope: &InstallScope, key: &str) -> Result<(), KvError> {
        let mut tx = self.db.begin().await.map_err(unavailable)?;
        let used = lock_scope(&mut tx, scope).await.map_err(unavailable)?;
        let old = stored_bytes(&mut tx, scope, key)
            .await
            .map_err(unavailable)?;
        let Some(old) = old else {
            return Ok(());
        };
        sqlx::query(
            "DELETE FROM kv_entries WHERE workspace_id = $1 AND install = $2 AND entry_key = $3",
        )
        .bind(&scope.workspace)
        .bind(&scope.install)
        .bind(key)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        set_used(&mut tx, scope, used.saturating_sub(old))
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }
}
