//! Registry plugins installed in a workspace: resolved to one version, checked against
//! yanks, the organization's vetting rule and policy, pinned by component digest, with
//! the grant computed once at install. Workflows run only installed plugins.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hyyve_policy::{
    OrgPolicy, PlatformConfig, PluginId, PluginKind, WorkspaceGrant, effective_grant,
};
use hyyve_registry::Registry;
use hyyve_registry::vetting::VettingStatus;
use hyyve_runtime::NodePlugin;
use hyyve_workflow::Installed;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use utoipa::ToSchema;

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
    /// The key that installed it.
    pub installed_by: String,
    /// ISO-8601 UTC.
    pub installed_at: String,
}

impl Install {
    /// What the audit log keeps of an install (`plugin.install`).
    pub fn audit_detail(&self) -> serde_json::Value {
        serde_json::json!({
            "version": self.version,
            "digest": self.component_digest,
            "grant": self.grant,
        })
    }
}

fn install_from(row: &AnyRow) -> Result<Install, ApiError> {
    let json = |column: &str| -> Result<serde_json::Value, ApiError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| ApiError::Internal(format!("{column}: {e}")))
    };
    Ok(Install {
        plugin: row.try_get("plugin_id")?,
        version: row.try_get("version")?,
        component_digest: row.try_get("component_digest")?,
        accepted: json("accepted")?,
        grant: json("grant_json")?,
        installed_by: row.try_get("installed_by")?,
        installed_at: iso8601(row.try_get("installed_at")?),
    })
}

const COLUMNS: &str =
    "plugin_id, version, component_digest, accepted, grant_json, installed_by, installed_at";

/// Installs and organization policies, over the shared database and the registry.
pub struct Installs {
    db: AnyPool,
    registry: Arc<Registry>,
    platform: PlatformConfig,
    /// Loaded components by digest: loading compiles (or reads the compile cache).
    loaded: Mutex<HashMap<String, Arc<NodePlugin>>>,
}

impl Installs {
    /// Over the registry's database, bounded by `platform`.
    pub fn new(registry: Arc<Registry>, platform: PlatformConfig) -> Self {
        Self {
            db: registry.database().clone(),
            registry,
            platform,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The organization's policy (the default one, named after it, until set).
    pub async fn org_policy(&self, principal: &Principal) -> Result<OrgPolicy, ApiError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT policy FROM org_policies WHERE org_id = $1")
                .bind(&principal.org_id)
                .fetch_optional(&self.db)
                .await?;
        match stored {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| ApiError::Internal(format!("stored organization policy: {e}"))),
            None => Ok(OrgPolicy {
                name: principal.org_name.clone(),
                ..OrgPolicy::default()
            }),
        }
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
    /// earlier install of it. Refused (422) when yanked, not vetted while the organization
    /// requires vetting (a review is requested), or refused by policy.
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
        let manifest = version.manifest()?;
        if manifest.plugin.kind != PluginKind::Node {
            return Err(ApiError::unprocessable(
                "not_a_node_plugin",
                format!(
                    "{} is not a node plugin; workflows install node plugins",
                    version.reference()
                ),
            ));
        }
        let org = self.org_policy(principal).await?;
        if org.require_vetting
            && !org.trusted_publishers.contains(&manifest.plugin.publisher)
            && !self.registry.is_vetted(&org.name, &version).await?
        {
            let request = self
                .registry
                .request_vetting(
                    &org.name,
                    &principal.workspace_name,
                    &version,
                    &principal.key_name,
                )
                .await?;
            if request.status != VettingStatus::Approved {
                return Err(ApiError::Unprocessable {
                    code: "vetting_required".into(),
                    message: format!(
                        "{} awaits review by organization {} (request {})",
                        version.reference(),
                        org.name,
                        request.id
                    ),
                    details: serde_json::json!({ "vettingRequest": request.id }),
                });
            }
        }
        let explanation = effective_grant(&manifest, &self.platform, &org, &accepted);
        let Some(grant) = explanation.grant.clone() else {
            return Err(ApiError::unprocessable(
                "install_refused",
                format!(
                    "{} may not be installed: {}",
                    version.reference(),
                    explanation.refused.unwrap_or_default()
                ),
            ));
        };
        let accepted_text = serde_json::to_string(&accepted)
            .map_err(|e| ApiError::Internal(format!("accepted: {e}")))?;
        let grant_text =
            serde_json::to_string(&grant).map_err(|e| ApiError::Internal(format!("grant: {e}")))?;
        sqlx::query(
            "INSERT INTO installs (workspace_id, plugin_id, version, component_digest, accepted, \
             grant_json, installed_by, installed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (workspace_id, plugin_id) DO UPDATE SET version = $3, \
             component_digest = $4, accepted = $5, grant_json = $6, installed_by = $7, \
             installed_at = $8",
        )
        .bind(&principal.workspace_id)
        .bind(id.to_string())
        .bind(version.version.to_string())
        .bind(&version.component_digest)
        .bind(accepted_text)
        .bind(grant_text)
        .bind(&principal.key_name)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        self.get(&principal.workspace_id, &id.to_string()).await
    }

    /// The workspace's installs, by plugin.
    pub async fn list(&self, workspace: &str) -> Result<Vec<Install>, ApiError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM installs WHERE workspace_id = $1 ORDER BY plugin_id"
        )))
        .bind(workspace)
        .fetch_all(&self.db)
        .await?;
        rows.iter().map(install_from).collect()
    }

    /// One install of the workspace.
    pub async fn get(&self, workspace: &str, plugin: &str) -> Result<Install, ApiError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM installs WHERE workspace_id = $1 AND plugin_id = $2"
        )))
        .bind(workspace)
        .bind(plugin)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("install of {plugin}")))?;
        install_from(&row)
    }

    /// Uninstalls; workflows naming it no longer validate.
    pub async fn remove(&self, workspace: &str, plugin: &str) -> Result<(), ApiError> {
        let done = sqlx::query("DELETE FROM installs WHERE workspace_id = $1 AND plugin_id = $2")
            .bind(workspace)
            .bind(plugin)
            .execute(&self.db)
            .await?;
        match done.rows_affected() {
            0 => Err(ApiError::NotFound(format!("install of {plugin}"))),
            _ => Ok(()),
        }
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
            let install = match self.get(workspace, reference).await {
                Ok(install) => install,
                Err(ApiError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let grant = serde_json::from_value(install.grant.clone())
                .map_err(|e| ApiError::Internal(format!("stored grant of {reference}: {e}")))?;
            set.insert(
                reference.to_owned(),
                Installed {
                    id: reference.to_owned(),
                    plugin: self.load(&install.component_digest).await?,
                    grant: Arc::new(grant),
                },
            );
        }
        Ok(set)
    }

    async fn load(&self, digest: &str) -> Result<Arc<NodePlugin>, ApiError> {
        if let Some(plugin) = self.loaded.lock().expect("not poisoned").get(digest) {
            return Ok(plugin.clone());
        }
        let bytes = self.registry.component(digest).await?;
        let plugin = self
            .registry
            .runtime()
            .load_node_plugin(&bytes)
            .await
            .map_err(|e| ApiError::Internal(format!("loading {digest}: {e}")))?;
        let plugin = Arc::new(plugin);
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(digest.to_owned(), plugin.clone());
        Ok(plugin)
    }
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
