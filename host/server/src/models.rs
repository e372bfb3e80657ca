//! Model aliases in the server: the platform core's [`Aliases`] and [`Routes`] over the
//! `model_aliases` table, the workspace's installs (providers loaded from the registry)
//! and the plan's token budget.

use std::sync::Arc;

use hyyve_platform::StoreError;
use hyyve_platform::models::{AliasStore, AliasTarget, ModelAlias, TokenBudget};
use sqlx::AnyPool;

use crate::ids::now_ms;
use crate::runs::quota::Ledger;
use crate::tenancy::Plan;

/// Aliases as rows of `model_aliases`, targets as JSON.
pub struct SqlAliases {
    db: AnyPool,
}

impl SqlAliases {
    /// Over the host's database.
    pub fn new(db: AnyPool) -> Self {
        Self { db }
    }
}

fn parse(name: String, targets: &str) -> Result<ModelAlias, StoreError> {
    let targets: Vec<AliasTarget> =
        serde_json::from_str(targets).map_err(|e| StoreError::new(format!("alias {name}"), e))?;
    Ok(ModelAlias { name, targets })
}

#[async_trait::async_trait]
impl AliasStore for SqlAliases {
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<ModelAlias>, StoreError> {
        let row: Option<String> = sqlx::query_scalar(
            "SELECT targets FROM model_aliases WHERE workspace_id = $1 AND name = $2",
        )
        .bind(workspace)
        .bind(name)
        .fetch_optional(&self.db)
        .await?;
        row.map(|targets| parse(name.to_owned(), &targets))
            .transpose()
    }

    async fn list(&self, workspace: &str) -> Result<Vec<ModelAlias>, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, targets FROM model_aliases WHERE workspace_id = $1 ORDER BY name",
        )
        .bind(workspace)
        .fetch_all(&self.db)
        .await?;
        rows.into_iter()
            .map(|(name, targets)| parse(name, &targets))
            .collect()
    }

    async fn put(&self, workspace: &str, alias: &ModelAlias) -> Result<(), StoreError> {
        let targets =
            serde_json::to_string(&alias.targets).map_err(|e| StoreError::new("alias", e))?;
        sqlx::query(
            "INSERT INTO model_aliases (workspace_id, name, targets, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, name) \
             DO UPDATE SET targets = $3, updated_at = $4",
        )
        .bind(workspace)
        .bind(&alias.name)
        .bind(targets)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn remove(&self, workspace: &str, name: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM model_aliases WHERE workspace_id = $1 AND name = $2")
            .bind(workspace)
            .bind(name)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// The plan's per-workspace token budget, counted by the run ledger.
pub struct PlanBudget {
    /// The host's database (workspace → organization → plan, and the records).
    pub db: AnyPool,
    /// Usage of this process and, after each refresh, of all.
    pub ledger: Arc<Ledger>,
}

#[async_trait::async_trait]
impl TokenBudget for PlanBudget {
    async fn admit(&self, workspace: &str) -> Result<(), String> {
        let plan: Option<String> = sqlx::query_scalar(
            "SELECT o.plan FROM workspaces w JOIN tenant_orgs o ON o.id = w.org_id \
             WHERE w.id = $1",
        )
        .bind(workspace)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| format!("reading the workspace's plan: {e}"))?;
        let plan = plan
            .as_deref()
            .and_then(Plan::parse)
            .ok_or_else(|| format!("workspace {workspace} has no plan"))?;
        let today = hyyve_registry::marketplace::today();
        self.ledger
            .admit_tokens(&self.db, workspace, plan, &today)
            .await
            .map_err(|e| e.to_string())
    }
}
