//! Organizations → workspaces → projects, members and API keys, in SQL. Every query
//! about a workspace's objects takes the workspace id from the caller's key and filters
//! on it, so another workspace's object is simply not found.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::ids::{iso8601, new_id, new_key_secret, now_ms, secret_digest};
use crate::roles::Role;

/// Plans bound monthly invocations and fuel (enforced by the scheduler's metering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    /// The default.
    Free,
    /// Paid, single team.
    Pro,
    /// Paid, several teams.
    Team,
    /// Negotiated.
    Enterprise,
}

impl Plan {
    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Plan> {
        [Plan::Free, Plan::Pro, Plan::Team, Plan::Enterprise]
            .into_iter()
            .find(|p| p.as_str() == text)
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Team => "team",
            Plan::Enterprise => "enterprise",
        }
    }
}

/// Who is calling: the key's workspace, organization and role.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Principal {
    /// The key's id.
    pub key_id: String,
    /// The key's name (the actor in audit entries).
    pub key_name: String,
    /// The workspace every object of the request belongs to.
    pub workspace_id: String,
    /// Its name.
    pub workspace_name: String,
    /// Its organization.
    pub org_id: String,
    /// The organization's name (its registry account for vetting).
    pub org_name: String,
    /// The organization's plan (its quotas).
    pub plan: Plan,
    /// The key's role.
    pub role: Role,
}

/// A project.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    /// `prj_…`.
    pub id: String,
    /// Unique in the workspace.
    pub name: String,
    /// Free text.
    pub description: String,
    /// ISO-8601 UTC.
    pub created_at: String,
}

/// A member of a workspace.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// `mem_…`.
    pub id: String,
    /// A person's handle or e-mail, unique in the workspace.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// ISO-8601 UTC.
    pub created_at: String,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The key (by name) that created it.
    pub created_by: String,
    /// ISO-8601 UTC.
    pub created_at: String,
    /// ISO-8601 UTC, when revoked.
    pub revoked_at: Option<String>,
}

/// A key just made: the only time its secret is shown.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewApiKey {
    /// The key as listed.
    #[serde(flatten)]
    pub key: ApiKey,
    /// `hyyve_sk_…`: send as `Authorization: Bearer <secret>`. Not stored; not shown again.
    pub secret: String,
}

/// What `bootstrap` made.
#[derive(Debug, Clone, Serialize)]
pub struct Bootstrap {
    /// The organization's id.
    pub org_id: String,
    /// The workspace's id.
    pub workspace_id: String,
    /// The owner key.
    pub key: NewApiKey,
}

/// One page of a list.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PageRequest {
    /// 1-based page.
    #[serde(default = "first_page", deserialize_with = "page_number")]
    #[param(minimum = 1, maximum = 1_000_000)]
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub page: u32,
    /// Items per page, 1 to 100.
    #[serde(default = "default_page_size", deserialize_with = "page_size")]
    #[param(minimum = 1, maximum = 100)]
    #[schema(minimum = 1, maximum = 100)]
    pub page_size: u32,
}

/// The most items a page holds.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The last page number a list accepts (far past any list's end).
pub const MAX_PAGE: u32 = 1_000_000;

fn in_range<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    name: &str,
    max: u32,
) -> Result<u32, D::Error> {
    // Query values arrive as text; a number out of range is refused, not clamped.
    let text = <std::borrow::Cow<'de, str> as Deserialize>::deserialize(deserializer)?;
    match text.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(serde::de::Error::custom(format!(
            "{name} must be an integer from 1 to {max} (got `{text}`)"
        ))),
    }
}

/// Deserializes `pageSize`: 1 to [`MAX_PAGE_SIZE`].
pub fn page_size<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    in_range(deserializer, "pageSize", MAX_PAGE_SIZE)
}

/// Deserializes `page`: 1 to [`MAX_PAGE`].
pub fn page_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    in_range(deserializer, "page", MAX_PAGE)
}

/// Default of `page`.
pub fn first_page() -> u32 {
    1
}

/// Default of `pageSize`.
pub fn default_page_size() -> u32 {
    20
}

impl PageRequest {
    pub(crate) fn limit_offset(self) -> (i64, i64) {
        let size = self.page_size.clamp(1, MAX_PAGE_SIZE) as i64;
        (size, (self.page.max(1) as i64 - 1) * size)
    }
}

/// A page of items with the list envelope of the API conventions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// Where this page is.
    pub meta: PageMeta,
}

/// `meta` of a list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PageMeta {
    /// All items.
    pub total: i64,
    /// This page (1-based).
    pub page: u32,
    /// Items per page.
    pub page_size: u32,
    /// Whether a later page has items.
    pub has_more: bool,
}

impl<T> ListPage<T> {
    pub(crate) fn new(data: Vec<T>, total: i64, request: PageRequest) -> Self {
        let (size, offset) = request.limit_offset();
        ListPage {
            data,
            meta: PageMeta {
                total,
                page: request.page.max(1),
                page_size: size as u32,
                has_more: offset + size < total,
            },
        }
    }
}

/// Tenancy tables of the shared database.
#[derive(Clone)]
pub struct Tenancy {
    db: AnyPool,
    /// Recently authenticated keys by secret digest: saves a query per request. Emptied
    /// on any revocation here; another process's revocation applies within [`KEY_CACHE_TTL`].
    keys_seen: Arc<Mutex<HashMap<String, (Instant, Principal)>>>,
}

/// How long an authenticated key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(2);

/// A unique-constraint violation becomes a 409 naming what clashed.
fn conflict_on_duplicate(what: String) -> impl FnOnce(sqlx::Error) -> ApiError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => ApiError::Conflict {
            code: "already_exists".into(),
            message: format!("{what} already exists"),
        },
        _ => ApiError::from(e),
    }
}

fn role_of(row: &AnyRow) -> Result<Role, ApiError> {
    let text: String = row.try_get("role")?;
    Role::parse(&text).ok_or_else(|| ApiError::Internal(format!("stored role `{text}`")))
}

fn project_from(row: &AnyRow) -> Result<Project, ApiError> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: iso8601(row.try_get("created_at")?),
    })
}

fn member_from(row: &AnyRow) -> Result<Member, ApiError> {
    Ok(Member {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_of(row)?,
        created_at: iso8601(row.try_get("created_at")?),
    })
}

fn key_from(row: &AnyRow) -> Result<ApiKey, ApiError> {
    let revoked: Option<i64> = row.try_get("revoked_at")?;
    Ok(ApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: role_of(row)?,
        created_by: row.try_get("created_by")?,
        created_at: iso8601(row.try_get("created_at")?),
        revoked_at: revoked.map(iso8601),
    })
}

/// How a workspace-owned table is listed and read.
struct Table<T> {
    name: &'static str,
    columns: &'static str,
    order: &'static str,
    noun: &'static str,
    from_row: fn(&AnyRow) -> Result<T, ApiError>,
}

const PROJECTS: Table<Project> = Table {
    name: "projects",
    columns: "id, name, description, created_at",
    order: "name",
    noun: "project",
    from_row: project_from,
};

const MEMBERS: Table<Member> = Table {
    name: "members",
    columns: "id, name, role, created_at",
    order: "name",
    noun: "member",
    from_row: member_from,
};

const KEYS: Table<ApiKey> = Table {
    name: "api_keys",
    columns: "id, name, role, created_by, created_at, revoked_at",
    order: "created_at DESC, id",
    noun: "API key",
    from_row: key_from,
};

impl Tenancy {
    /// Over the pool whose migrations created the tenancy tables.
    pub fn new(db: AnyPool) -> Self {
        Self {
            db,
            keys_seen: Default::default(),
        }
    }

    /// The database.
    pub fn pool(&self) -> &AnyPool {
        &self.db
    }

    /// Whether any organization exists (a fresh database has none).
    pub async fn is_empty(&self) -> Result<bool, ApiError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenant_orgs")
            .fetch_one(&self.db)
            .await?;
        Ok(count == 0)
    }

    /// Makes an organization with one workspace, its first owner and an owner key, in
    /// one transaction.
    pub async fn bootstrap(
        &self,
        org: &str,
        workspace: &str,
        owner: &str,
        plan: Plan,
    ) -> Result<Bootstrap, ApiError> {
        let now = now_ms();
        let org_id = new_id("org");
        let workspace_id = new_id("ws");
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO tenant_orgs (id, name, plan, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&org_id)
            .bind(org)
            .bind(plan.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(conflict_on_duplicate(format!("organization `{org}`")))?;
        sqlx::query(
            "INSERT INTO workspaces (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&workspace_id)
        .bind(&org_id)
        .bind(workspace)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO members (id, workspace_id, name, role, created_at) \
             VALUES ($1, $2, $3, 'owner', $4)",
        )
        .bind(new_id("mem"))
        .bind(&workspace_id)
        .bind(owner)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let key = insert_key(&mut tx, &workspace_id, owner, Role::Owner, "bootstrap").await?;
        tx.commit().await?;
        Ok(Bootstrap {
            org_id,
            workspace_id,
            key,
        })
    }

    /// The principal of a key secret; `None` for an unknown or revoked key.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<Principal>, ApiError> {
        let digest = secret_digest(secret);
        if let Some((at, principal)) = self.keys_seen.lock().expect("not poisoned").get(&digest)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(Some(principal.clone()));
        }
        let found = self.authenticate_uncached(&digest).await?;
        if let Some(principal) = &found {
            let mut seen = self.keys_seen.lock().expect("not poisoned");
            if seen.len() > 10_000 {
                seen.clear();
            }
            seen.insert(digest, (Instant::now(), principal.clone()));
        }
        Ok(found)
    }

    async fn authenticate_uncached(&self, digest: &str) -> Result<Option<Principal>, ApiError> {
        let row = sqlx::query(
            "SELECT k.id AS key_id, k.name AS key_name, k.role, w.id AS workspace_id, \
             w.name AS workspace_name, o.id AS org_id, o.name AS org_name, o.plan \
             FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id \
             JOIN tenant_orgs o ON o.id = w.org_id \
             WHERE k.secret_sha256 = $1 AND k.revoked_at IS NULL",
        )
        .bind(digest)
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| {
            Ok(Principal {
                key_id: row.try_get("key_id")?,
                key_name: row.try_get("key_name")?,
                workspace_id: row.try_get("workspace_id")?,
                workspace_name: row.try_get("workspace_name")?,
                org_id: row.try_get("org_id")?,
                org_name: row.try_get("org_name")?,
                plan: {
                    let plan: String = row.try_get("plan")?;
                    Plan::parse(&plan)
                        .ok_or_else(|| ApiError::Internal(format!("stored plan `{plan}`")))?
                },
                role: role_of(&row)?,
            })
        })
        .transpose()
    }

    /// A page of a workspace's rows of `table`.
    async fn list<T>(
        &self,
        table: &Table<T>,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<T>, ApiError> {
        let (limit, offset) = page.limit_offset();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {} WHERE workspace_id = $1 ORDER BY {} LIMIT $2 OFFSET $3",
            table.columns, table.name, table.order
        )))
        .bind(workspace)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.db)
        .await?;
        let data = rows.iter().map(table.from_row).collect::<Result<_, _>>()?;
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {} WHERE workspace_id = $1",
            table.name
        )))
        .bind(workspace)
        .fetch_one(&self.db)
        .await?;
        Ok(ListPage::new(data, total, page))
    }

    /// One row of `table` in the workspace; another workspace's is not found.
    async fn get<T>(&self, table: &Table<T>, workspace: &str, id: &str) -> Result<T, ApiError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM {} WHERE workspace_id = $1 AND id = $2",
            table.columns, table.name
        )))
        .bind(workspace)
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{} `{id}`", table.noun)))?;
        (table.from_row)(&row)
    }

    /// Deletes one row of `table` in the workspace.
    async fn delete<T>(&self, table: &Table<T>, workspace: &str, id: &str) -> Result<(), ApiError> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {} WHERE workspace_id = $1 AND id = $2",
            table.name
        )))
        .bind(workspace)
        .bind(id)
        .execute(&self.db)
        .await?;
        match done.rows_affected() {
            0 => Err(ApiError::NotFound(format!("{} `{id}`", table.noun))),
            _ => Ok(()),
        }
    }

    /// A page of the workspace's projects, by name.
    pub async fn projects(
        &self,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<Project>, ApiError> {
        self.list(&PROJECTS, workspace, page).await
    }

    /// One project of the workspace.
    pub async fn project(&self, workspace: &str, id: &str) -> Result<Project, ApiError> {
        self.get(&PROJECTS, workspace, id).await
    }

    /// Makes a project.
    pub async fn create_project(
        &self,
        workspace: &str,
        name: &str,
        description: &str,
    ) -> Result<Project, ApiError> {
        let project = Project {
            id: new_id("prj"),
            name: name.to_owned(),
            description: description.to_owned(),
            created_at: iso8601(now_ms()),
        };
        sqlx::query(
            "INSERT INTO projects (id, workspace_id, name, description, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&project.id)
        .bind(workspace)
        .bind(name)
        .bind(description)
        .bind(now_ms())
        .execute(&self.db)
        .await
        .map_err(conflict_on_duplicate(format!("project `{name}`")))?;
        Ok(project)
    }

    /// Renames or re-describes a project.
    pub async fn update_project(
        &self,
        workspace: &str,
        id: &str,
        name: Option<&str>,
        description: Option<&str>,
    ) -> Result<Project, ApiError> {
        let current = self.project(workspace, id).await?;
        let name = name.unwrap_or(&current.name);
        let description = description.unwrap_or(&current.description);
        sqlx::query(
            "UPDATE projects SET name = $1, description = $2 WHERE workspace_id = $3 AND id = $4",
        )
        .bind(name)
        .bind(description)
        .bind(workspace)
        .bind(id)
        .execute(&self.db)
        .await
        .map_err(conflict_on_duplicate(format!("project `{name}`")))?;
        self.project(workspace, id).await
    }

    /// Deletes a project.
    pub async fn delete_project(&self, workspace: &str, id: &str) -> Result<(), ApiError> {
        self.delete(&PROJECTS, workspace, id).await
    }

    /// A page of the workspace's members, by name.
    pub async fn members(
        &self,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<Member>, ApiError> {
        self.list(&MEMBERS, workspace, page).await
    }

    /// One member of the workspace.
    pub async fn member(&self, workspace: &str, id: &str) -> Result<Member, ApiError> {
        self.get(&MEMBERS, workspace, id).await
    }

    /// Adds a member.
    pub async fn add_member(
        &self,
        workspace: &str,
        name: &str,
        role: Role,
    ) -> Result<Member, ApiError> {
        let now = now_ms();
        let member = Member {
            id: new_id("mem"),
            name: name.to_owned(),
            role,
            created_at: iso8601(now),
        };
        sqlx::query(
            "INSERT INTO members (id, workspace_id, name, role, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&member.id)
        .bind(workspace)
        .bind(name)
        .bind(role.as_str())
        .bind(now)
        .execute(&self.db)
        .await
        .map_err(conflict_on_duplicate(format!("member `{name}`")))?;
        Ok(member)
    }

    /// Changes a member's role.
    pub async fn set_member_role(
        &self,
        workspace: &str,
        id: &str,
        role: Role,
    ) -> Result<Member, ApiError> {
        let done = sqlx::query("UPDATE members SET role = $1 WHERE workspace_id = $2 AND id = $3")
            .bind(role.as_str())
            .bind(workspace)
            .bind(id)
            .execute(&self.db)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ApiError::NotFound(format!("member `{id}`")));
        }
        self.member(workspace, id).await
    }

    /// Removes a member.
    pub async fn remove_member(&self, workspace: &str, id: &str) -> Result<(), ApiError> {
        self.delete(&MEMBERS, workspace, id).await
    }

    /// The workspace's keys, newest first (revoked ones too, marked).
    pub async fn keys(
        &self,
        workspace: &str,
        page: PageRequest,
    ) -> Result<ListPage<ApiKey>, ApiError> {
        self.list(&KEYS, workspace, page).await
    }

    /// Makes a key; the secret is in the result and nowhere else.
    pub async fn create_key(
        &self,
        workspace: &str,
        name: &str,
        role: Role,
        created_by: &str,
    ) -> Result<NewApiKey, ApiError> {
        let mut tx = self.db.begin().await?;
        let key = insert_key(&mut tx, workspace, name, role, created_by).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// One key of the workspace (without its secret).
    pub async fn key(&self, workspace: &str, id: &str) -> Result<ApiKey, ApiError> {
        self.get(&KEYS, workspace, id).await
    }

    /// Revokes a key: from now on it authenticates nothing. Revoking twice keeps the
    /// first time.
    pub async fn revoke_key(&self, workspace: &str, id: &str) -> Result<ApiKey, ApiError> {
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 \
             WHERE workspace_id = $2 AND id = $3 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(workspace)
        .bind(id)
        .execute(&self.db)
        .await?;
        self.keys_seen.lock().expect("not poisoned").clear();
        self.key(workspace, id).await
    }
}

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    workspace: &str,
    name: &str,
    role: Role,
    created_by: &str,
) -> Result<NewApiKey, ApiError> {
    let now = now_ms();
    let secret = new_key_secret();
    let key = ApiKey {
        id: new_id("key"),
        name: name.to_owned(),
        role,
        created_by: created_by.to_owned(),
        created_at: iso8601(now),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, workspace_id, name, role, secret_sha256, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.id)
    .bind(workspace)
    .bind(name)
    .bind(role.as_str())
    .bind(secret_digest(&secret))
    .bind(created_by)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(NewApiKey { key, secret })
}
