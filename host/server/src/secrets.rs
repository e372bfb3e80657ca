//! Workspace secrets in server mode. [`SqlSecretStore`] keeps them sealed (AES-256-GCM
//! by `hyyve-secrets`, bound to workspace and name) in the server's database, so every
//! process with the same `HYYVE_SECRET_KEY` and database reads the same values; it is the
//! store plugins read from when their grant names a secret. [`Secrets`] is the API's
//! view: names listed, values written and deleted, never read back.

use std::sync::Arc;

use hyyve_secrets::{SecretError, SecretKey, SecretStore, SecretValue};
use sqlx::AnyPool;

use crate::error::ApiError;
use crate::ids::now_ms;

/// Sealed secrets in the `workspace_secrets` table.
pub struct SqlSecretStore {
    db: AnyPool,
    key: SecretKey,
}

impl SqlSecretStore {
    /// Values in `db`, sealed and opened with `key`.
    pub fn new(db: AnyPool, key: SecretKey) -> Self {
        Self { db, key }
    }
}

fn unavailable(e: sqlx::Error) -> SecretError {
    SecretError::Unavailable(format!("database: {e}"))
}

#[async_trait::async_trait]
impl SecretStore for SqlSecretStore {
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<SecretValue>, SecretError> {
        let sealed: Option<String> = sqlx::query_scalar(
            "SELECT sealed FROM workspace_secrets WHERE workspace_id = $1 AND name = $2",
        )
        .bind(workspace)
        .bind(name)
        .fetch_optional(&self.db)
        .await
        .map_err(unavailable)?;
        sealed
            .map(|text| self.key.open(workspace, name, &text))
            .transpose()
    }

    async fn put(
        &self,
        workspace: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        let sealed = self.key.seal(workspace, name, value)?;
        sqlx::query(
            "INSERT INTO workspace_secrets (workspace_id, name, sealed, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, name) \
             DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        )
        .bind(workspace)
        .bind(name)
        .bind(sealed)
        .bind(now_ms())
        .execute(&self.db)
        .await
        .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, workspace: &str, name: &str) -> Result<bool, SecretError> {
        let done =
            sqlx::query("DELETE FROM workspace_secrets WHERE workspace_id = $1 AND name = $2")
                .bind(workspace)
                .bind(name)
                .execute(&self.db)
                .await
                .map_err(unavailable)?;
        Ok(done.rows_affected() > 0)
    }

    async fn names(&self, workspace: &str) -> Result<Vec<String>, SecretError> {
        sqlx::query_scalar(
            "SELECT name FROM workspace_secrets WHERE workspace_id = $1 ORDER BY name",
        )
        .bind(workspace)
        .fetch_all(&self.db)
        .await
        .map_err(unavailable)
    }
}

/// The secrets of every workspace; each call names one.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn SecretStore>,
}

impl Secrets {
    /// Over the store plugins read.
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self { store }
    }

    /// Names set in `workspace`, sorted.
    pub async fn names(&self, workspace: &str) -> Result<Vec<String>, ApiError> {
        self.store.names(workspace).await.map_err(internal)
    }

    /// Sets (or replaces) `name`; `true` when it replaced a value.
    pub async fn set(&self, workspace: &str, name: &str, value: String) -> Result<bool, ApiError> {
        hyyve_policy::check_secret_name(name).map_err(ApiError::BadRequest)?;
        hyyve_secrets::check_value(&value).map_err(ApiError::BadRequest)?;
        let existed = self
            .store
            .names(workspace)
            .await
            .map_err(internal)?
            .iter()
            .any(|n| n == name);
        self.store
            .put(workspace, name, &SecretValue::new(value))
            .await
            .map_err(internal)?;
        Ok(existed)
    }

    /// Deletes `name`; 404 when it is not set.
    pub async fn delete(&self, workspace: &str, name: &str) -> Result<(), ApiError> {
        match self.store.delete(workspace, name).await.map_err(internal)? {
            true => Ok(()),
            false => Err(ApiError::NotFound(format!("secret `{name}`"))),
        }
    }
}

fn internal(e: SecretError) -> ApiError {
    ApiError::Internal(e.to_string())
}
