//! Registry plugins installed in a workspace. The install steps (vetting gate, effective grant, persist, audit) are the platform core's
//! ([`hyyve_platform::Installer`]); this module is the server's stores under it (the
//! `installs` and `org_policies` tables), the API's view of an install, and loading the
//! installed components for runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyyve_platform::models::{InstalledProvider, ProviderSource};
use hyyve_platform::{
    Acting, Candidate, InstallError, InstallRecord, InstallStore, Installer, PolicyStore,
    StoreError,
};
use hyyve_policy::{OrgPolicy, PlatformConfig, PluginId, WorkspaceGrant};
use hyyve_registry::Registry;
use hyyve_runtime::{LoadedPlugin, NodePlugin, ProviderPlugin};
use hyyve_workflow::Installed;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

use crate::audit::Audit;
use crate::error::ApiError;
use crate::ids::{iso8601, now_ms};
use crate::tenancy::Principal;

/// One install.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Install {
    /// `namespace:name`: the reference workflows use.
    pub plugin: String,
    /// The installed version.
    pub version: String,
    /// `sha256:<hex>` the install is pinned to.
    pub component_digest: String,
    /// What the workspace accepted (narrowing the organization's policy).
    #[schema(value_type = Object)]
    pub accepted: serde_json::Value,
    /// The effective grant the plugin runs with.
    #[schema(value_type = Object)]
    pub grant: serde_json::Value,
    /// The key that installed it: `<key name> (<key id>)`.
    pub installed_by: String,
    /// ISO-8601 UTC.
    pub installed_at: String,
}

impl TryFrom<InstallRecord> for Install {
    type Error = ApiError;

    fn try_from(record: InstallRecord) -> Result<Self, ApiError> {
        let json = |value: serde_json::Result<serde_json::Value>| {
            value.map_err(|e| ApiError::Internal(format!("install: {e}")))
        };
        Ok(Install {
            plugin: record.reference,
            version: record.version,
            component_digest: record.component_digest,
            accepted: json(serde_json::to_value(&record.accepted))?,
            grant: json(serde_json::to_value(&record.grant))?,
            installed_by: record.installed_by,
            installed_at: iso8601(record.installed_at),
        })
    }
}

/// The `installs` table as the core's [`InstallStore`].
pub struct SqlInstalls {
    db: AnyPool,
}

impl SqlInstalls {
    /// Over the host's database.
    pub fn new(db: AnyPool) -> Self {
        Self { db }
    }
}

const COLUMNS: &str = "plugin_id, version, component_digest, manifest_digest, policy_digest, \
     accepted, grant_json, installed_by, installed_at";

fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| StoreError::new(format!("stored {column}"), e))
}

fn record_from(row: &AnyRow) -> Result<InstallRecord, StoreError> {
    Ok(InstallRecord {
        reference: row.try_get("plugin_id")?,
        version: row.try_get("version")?,
        component_digest: row.try_get("component_digest")?,
        manifest_digest: row.try_get("manifest_digest")?,
        policy_digest: row.try_get("policy_digest")?,
        accepted: json_column(row, "accepted")?,
        grant: json_column(row, "grant_json")?,
        installed_by: row.try_get("installed_by")?,
        installed_at: row.try_get("installed_at")?,
    })
}

#[async_trait::async_trait]
impl InstallStore for SqlInstalls {
    async fn get(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstallRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM installs WHERE workspace_id = $1 AND plugin_id = $2"
        )))
        .bind(workspace)
        .bind(reference)
        .fetch_optional(&self.db)
        .await?;
        row.as_ref().map(record_from).transpose()
    }

    async fn put(&self, workspace: &str, record: &InstallRecord) -> Result<(), StoreError> {
        let text =
            |value: serde_json::Result<String>| value.map_err(|e| StoreError::new("install", e));
        sqlx::query(
            "INSERT INTO installs (workspace_id, plugin_id, version, component_digest, \
             manifest_digest, policy_digest, accepted, grant_json, installed_by, installed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (workspace_id, plugin_id) DO UPDATE SET version = $3, \
             component_digest = $4, manifest_digest = $5, policy_digest = $6, accepted = $7, \
             grant_json = $8, installed_by = $9, installed_at = $10",
        )
        .bind(workspace)
        .bind(&record.reference)
        .bind(&record.version)
        .bind(&record.component_digest)
        .bind(&record.manifest_digest)
        .bind(&record.policy_digest)
        .bind(text(serde_json::to_string(&record.accepted))?)
        .bind(text(serde_json::to_string(&record.grant))?)
        .bind(&record.installed_by)
        .bind(record.installed_at)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    async fn remove(&self, workspace: &str, reference: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM installs WHERE workspace_id = $1 AND plugin_id = $2")
            .bind(workspace)
            .bind(reference)
            .execute(&self.db)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn list(&self, workspace: &str) -> Result<Vec<InstallRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM installs WHERE workspace_id = $1 ORDER BY plugin_id"
        )))
        .bind(workspace)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(record_from).collect()
    }
}

/// The `org_policies` table as the core's [`PolicyStore`]: an organization without a
/// stored policy has the default one, named after it.
pub struct SqlPolicies {
    db: AnyPool,
}

#[async_trait::async_trait]
impl PolicyStore for SqlPolicies {
    async fn org_policy(&self, acting: &Acting) -> Result<OrgPolicy, StoreError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT policy FROM org_policies WHERE org_id = $1")
                .bind(&acting.org_id)
                .fetch_optional(&self.db)
                .await?;
        match stored {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::new("stored organization policy", e)),
            None => Ok(OrgPolicy {
                name: acting.org_name.clone(),
                ..OrgPolicy::default()
            }),
        }
    }
}

/// Who a principal is, to the platform core.
pub fn acting(principal: &Principal) -> Acting {
    Acting {
        org_id: principal.org_id.clone(),
        org_name: principal.org_name.clone(),
        workspace_id: principal.workspace_id.clone(),
        workspace_name: principal.workspace_name.clone(),
        actor: crate::audit::actor(principal),
    }
}

impl From<InstallError> for ApiError {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::VettingPending { request, .. } => ApiError::Unprocessable {
                code: "vetting_required".into(),
                message: e.to_string(),
                details: serde_json::json!({ "vettingRequest": request }),
            },
            InstallError::Refused { .. } => {
                ApiError::unprocessable("install_refused", e.to_string())
            }
            InstallError::NotInstalled(plugin) => {
                ApiError::NotFound(format!("install of {plugin}"))
            }
            InstallError::Registry(e) => e.into(),
            InstallError::Store(e) => ApiError::Internal(e.to_string()),
        }
    }
}

/// Installs and organization policies, over the shared database and the registry.
pub struct Installs {
    db: AnyPool,
    registry: Arc<Registry>,
    platform: PlatformConfig,
    store: SqlInstalls,
    policies: SqlPolicies,
    audit: Arc<Audit>,
    /// Loaded components by digest: loading compiles (or reads the compile cache).
    loaded: Mutex<HashMap<String, Loaded>>,
}

/// A loaded component, by kind.
#[derive(Clone)]
enum Loaded {
    Node(Arc<NodePlugin>),
    Provider(Arc<ProviderPlugin>),
    /// Channels are not run by workflows or model calls.
    Channel,
}

impl Installs {
    /// Over the host's database and its registry, bounded by `platform`, audited in
    /// `audit`.
    pub fn new(
        db: AnyPool,
        registry: Arc<Registry>,
        platform: PlatformConfig,
        audit: Arc<Audit>,
    ) -> Self {
        Self {
            store: SqlInstalls::new(db.clone()),
            policies: SqlPolicies { db: db.clone() },
            db,
            registry,
            platform,
            audit,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    fn installer(&self) -> Installer<'_> {
        Installer {
            platform: &self.platform,
            policies: &self.policies,
            installs: &self.store,
            audit: self.audit.as_ref(),
            registry: Some(&self.registry),
        }
    }

    /// The organization's policy (the default one, named after it, until set).
    pub async fn org_policy(&self, principal: &Principal) -> Result<OrgPolicy, ApiError> {
        self.policies
            .org_policy(&acting(principal))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Replaces the organization's policy. Its registry name is always the
    /// organization's own: a policy cannot borrow another organization's vetting.
    pub async fn set_org_policy(
        &self,
        principal: &Principal,
        mut policy: OrgPolicy,
    ) -> Result<OrgPolicy, ApiError> {
        policy.name = principal.org_name.clone();
        let text = serde_json::to_string(&policy)
            .map_err(|e| ApiError::Internal(format!("policy: {e}")))?;
        sqlx::query(
            "INSERT INTO org_policies (org_id, policy, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (org_id) DO UPDATE \
             SET policy = $2, updated_by = $3, updated_at = $4",
        )
        .bind(&principal.org_id)
        .bind(text)
        .bind(&principal.key_name)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(policy)
    }

    /// Installs `plugin` at the greatest unyanked version matching `range`, replacing an
    /// earlier install of it, audited. Refused (422) when yanked, not
    /// vetted while the organization requires vetting (a review is requested), or
    /// refused by policy.
    pub async fn install(
        &self,
        principal: &Principal,
        plugin: &str,
        range: &str,
        accepted: WorkspaceGrant,
    ) -> Result<Install, ApiError> {
        let id: PluginId = plugin.parse().map_err(|e: String| {
            if id_shaped(plugin) {
                // Shaped as documented, only longer than any name can be: not registered.
                ApiError::NotFound(format!("plugin {plugin}"))
            } else {
                ApiError::BadRequest(format!("plugin: {e}"))
            }
        })?;
        let version = self.registry.resolve(&id.to_string(), range).await?;
        let candidate = Candidate::from_registry(version)?;
        let record = self
            .installer()
            .install(&acting(principal), &candidate, accepted)
            .await?;
        record.try_into()
    }

    /// Uninstalls, audited; workflows naming it no longer validate.
    pub async fn uninstall(&self, principal: &Principal, plugin: &str) -> Result<(), ApiError> {
        Ok(self
            .installer()
            .uninstall(&acting(principal), plugin)
            .await?)
    }

    /// The workspace's installs, by plugin.
    pub async fn list(&self, workspace: &str) -> Result<Vec<Install>, ApiError> {
        let records = self.store.list(workspace).await.map_err(internal)?;
        records.into_iter().map(Install::try_from).collect()
    }

    /// One install of the workspace.
    pub async fn get(&self, workspace: &str, plugin: &str) -> Result<Install, ApiError> {
        self.record(workspace, plugin).await?.try_into()
    }

    async fn record(&self, workspace: &str, plugin: &str) -> Result<InstallRecord, ApiError> {
        self.store
            .get(workspace, plugin)
            .await
            .map_err(internal)?
            .ok_or_else(|| ApiError::NotFound(format!("install of {plugin}")))
    }

    /// The installs behind `references`, loaded, for validating and running a workflow.
    /// A reference not installed is left out (validation names the node). A pinned
    /// version that was yanked since keeps running ([`hyyve_registry::YANK_EFFECT`]):
    /// the workspace chose that digest, and upgrading is its decision.
    pub async fn plugin_set(
        &self,
        workspace: &str,
        references: &[&str],
    ) -> Result<hyyve_workflow::PluginSet, ApiError> {
        let mut set = hyyve_workflow::PluginSet::new();
        for &reference in references {
            let Some(install) = self
                .store
                .get(workspace, reference)
                .await
                .map_err(internal)?
            else {
                continue;
            };
            // A provider or channel install is no node: validation names the node.
            let Loaded::Node(plugin) = self.load(&install.component_digest).await? else {
                continue;
            };
            set.insert(
                reference.to_owned(),
                Installed {
                    id: reference.to_owned(),
                    plugin,
                    grant: Arc::new(install.grant),
                },
            );
        }
        Ok(set)
    }

    async fn load(&self, digest: &str) -> Result<Loaded, ApiError> {
        if let Some(plugin) = self.loaded.lock().expect("not poisoned").get(digest) {
            return Ok(plugin.clone());
        }
        let bytes = self.registry.component(digest).await?;
        let plugin = self
            .registry
            .runtime()
            .load_plugin(&bytes)
            .await
            .map_err(|e| ApiError::Internal(format!("loading {digest}: {e}")))?;
        let plugin = match plugin {
            LoadedPlugin::Node(p) => Loaded::Node(Arc::new(p)),
            LoadedPlugin::Provider(p) => Loaded::Provider(Arc::new(p)),
            LoadedPlugin::Channel(_) => Loaded::Channel,
        };
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(digest.to_owned(), plugin.clone());
        Ok(plugin)
    }
}

#[async_trait::async_trait]
impl ProviderSource for Installs {
    async fn provider(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstalledProvider>, StoreError> {
        let Some(install) = self.store.get(workspace, reference).await? else {
            return Ok(None);
        };
        match self.load(&install.component_digest).await {
            Ok(Loaded::Provider(plugin)) => Ok(Some(InstalledProvider {
                plugin,
                grant: Arc::new(install.grant),
            })),
            Ok(_) => Ok(None),
            Err(e) => Err(StoreError::new(format!("provider {reference}"), e)),
        }
    }
}

fn internal(e: StoreError) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// Whether `plugin` has the documented `namespace:name` shape (lowercase words of letters
/// and digits joined by single hyphens), whatever its length.
fn id_shaped(plugin: &str) -> bool {
    let part = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_lowercase())
            && p.split('-').all(|w| {
                !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    plugin
        .split_once(':')
        .is_some_and(|(namespace, name)| part(namespace) && part(name))
}
