//! Workflows of a workspace, each a sequence of immutable versions: an edit adds a
//! version, a run names the version it ran, and no version is ever changed.

use hyyve_workflow::Workflow;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ids::{iso8601, new_id, now_ms};
use crate::tenancy::{ListPage, PageRequest};

/// A workflow and its latest version number.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    /// `wf_…`.
    pub id: String,
    /// The latest version's name.
    pub name: String,
    /// The newest version.
    pub latest_version: i64,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// When the latest version was added.
    pub updated_at: String,
}

/// One immutable version.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowVersion {
    /// The workflow.
    pub workflow_id: String,
    /// 1, 2, …
    pub version: i64,
    /// The definition (the workflow JSON format).
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
    /// The key that wrote it.
    pub created_by: String,
    /// ISO-8601 UTC.
    pub created_at: String,
}

fn summary_from(row: &AnyRow) -> Result<WorkflowSummary, ApiError> {
    Ok(WorkflowSummary {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        latest_version: row.try_get("latest_version")?,
        created_at: iso8601(row.try_get("created_at")?),
        updated_at: iso8601(row.try_get("updated_at")?),
    })
}

fn version_from(row: &AnyRow) -> Result<WorkflowVersion, ApiError> {
    let text: String = row.try_get("definition")?;
    Ok(WorkflowVersion {
        workflow_id: row.try_get("workflow_id")?,
        version: row.try_get("version")?,
        definition: serde_json::from_str(&text)
            .map_err(|e| ApiError::Internal(format!("stored workflow: {e}")))?,
        created_by: row.try_get("created_by")?,
        created_at: iso8601(row.try_get("created_at")?),
    })
}

fn definition_text(definition: &Workflow) -> Result<String, ApiError> {
    serde_json::to_string(definition).map_err(|e| ApiError::Internal(format!("workflow: {e}")))
}

/// The workflow tables.
#[derive(Clone)]
pub struct Workflows {
    db: AnyPool,
}

impl Workflows {
    /// Over the shared database.
    pub fn new(db: AnyPool) -> Self {
        Self { db }
    }

    /// A new workflow with `definition` as version 1.
    pub async fn create(
        &self,
        workspace: &str,
        definition: &Workflow,
        actor: &str,
    ) -> Result<WorkflowVersion, ApiError> {
        let id = new_id("wf");
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO workflows (id, workspace_id, name, latest_version, created_at, \
             updated_at) VALUES ($1, $2, $3, 1, $4, $4)",
        )
        .bind(&id)
        .bind(workspace)
        .bind(&definition.name)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        insert_version(&mut tx, &id, 1, definition, actor, now).await?;
        tx.commit().await?;
        self.version(workspace, &id, Some(1)).await
    }

    /// Adds the next version. Concurrent edits both succeed, as consecutive versions.
    pub async fn add_version(
        &self,
        workspace: &str,
        id: &str,
        definition: &Workflow,
        actor: &str,
    ) -> Result<WorkflowVersion, ApiError> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let updated = sqlx::query(
            "UPDATE workflows SET latest_version = latest_version + 1, name = $1, \
             updated_at = $2 WHERE workspace_id = $3 AND id = $4",
        )
        .bind(&definition.name)
        .bind(now)
        .bind(workspace)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(ApiError::NotFound(format!("workflow `{id}`")));
        }
        let version: i64 = sqlx::query_scalar("SELECT latest_version FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        insert_version(&mut tx, id, version, definition, actor, now).await?;
        tx.commit().await?;
        self.version(workspace, id, Some(version)).await
    }

    /// A page of the workspace's workflows, newest first.
    pub async fn list(
        &self,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<WorkflowSummary>, ApiError> {
        let (limit, offset) = page.limit_offset();
        let rows = sqlx::query(
            "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
             WHERE workspace_id = $1 ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
        )
        .bind(workspace)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let data = rows.iter().map(summary_from).collect::<Result<_, _>>()?;
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM workflows WHERE workspace_id = $1")
                .bind(workspace)
                .fetch_one(&self.db)
                .await?;
        Ok(ListPage::new(data, total, page))
    }

    /// One workflow's summary.
    pub async fn get(&self, workspace: &str, id: &str) -> Result<WorkflowSummary, ApiError> {
        let row = sqlx::query(
            "SELECT id, name, latest_version, created_at, updated_at FROM workflows \
             WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("workflow `{id}`")))?;
        summary_from(&row)
    }

    /// Version `version` of a workflow (the latest when `None`).
    pub async fn version(
        &self,
        workspace: &str,
        id: &str,
        version: Option<i64>,
    ) -> Result<WorkflowVersion, ApiError> {
        let row = sqlx::query(
            "SELECT v.workflow_id, v.version, v.definition, v.created_by, v.created_at \
             FROM workflow_versions v JOIN workflows w ON w.id = v.workflow_id \
             WHERE w.workspace_id = $1 AND w.id = $2 AND v.version = COALESCE($3, w.latest_version)",
        )
        .bind(workspace)
        .bind(id)
        .bind(version)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| match version {
            Some(v) => ApiError::NotFound(format!("workflow `{id}` version {v}")),
            None => ApiError::NotFound(format!("workflow `{id}`")),
        })?;
        version_from(&row)
    }

    /// Every version of a workflow, oldest first.
    pub async fn versions(
        &self,
        workspace: &str,
        id: &str,
    ) -> Result<Vec<WorkflowVersion>, ApiError> {
        self.get(workspace, id).await?;
        let rows = sqlx::query(
            "SELECT workflow_id, version, definition, created_by, created_at \
             FROM workflow_versions WHERE workflow_id = $1 ORDER BY version",
        )
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(version_from).collect()
    }

    /// Deletes a workflow and its versions; finished runs keep their reports.
    pub async fn delete(&self, workspace: &str, id: &str) -> Result<(), ApiError> {
        self.get(workspace, id).await?;
        let mut tx = self.db.begin().await?;
        sqlx::query("DELETE FROM workflow_versions WHERE workflow_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM workflows WHERE workspace_id = $1 AND id = $2")
            .bind(workspace)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_version(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    version: i64,
    definition: &Workflow,
    actor: &str,
    now: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO workflow_versions (workflow_id, version, definition, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(version)
    .bind(definition_text(definition)?)
    .bind(actor)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
