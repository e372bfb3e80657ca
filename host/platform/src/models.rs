//! Model aliases: a workspace binds a name (`default-chat`) to provider installs and
//! models, in the order to try them; nodes call the name through `models`, never a
//! provider directly. One implementation of binding (checks + audit) and of routing
//! (alias → loaded providers under their grants, budget admission), over an
//! [`AliasStore`] (files in local mode, a table in the server) and a [`ProviderSource`]
//! (how each mode loads an installed provider).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyyve_policy::{AuditAction, AuditEvent, Grant, check_name};
use hyyve_runtime::{ModelRoutes, ModelTarget, ProviderPlugin, RouteError, RouteFuture};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::StoreError;
use crate::audit::AuditSink;
use crate::install::Acting;

/// Targets one alias may list: a primary and its fallbacks.
pub const MAX_TARGETS: usize = 8;

/// One target of an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AliasTarget {
    /// The provider install (`hyyve:openai`).
    pub provider: String,
    /// The model asked of it (`gpt-4o-mini`).
    pub model: String,
    /// Provider configuration (base URL, ...), checked against the provider's schema.
    #[serde(default = "empty_object")]
    pub config: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A bound alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelAlias {
    /// The name nodes call.
    pub name: String,
    /// What it routes to, in order.
    pub targets: Vec<AliasTarget>,
}

/// Where a mode keeps the workspaces' aliases.
#[async_trait::async_trait]
pub trait AliasStore: Send + Sync {
    /// The alias `name` of `workspace`.
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<ModelAlias>, StoreError>;
    /// Every alias of `workspace`, by name.
    async fn list(&self, workspace: &str) -> Result<Vec<ModelAlias>, StoreError>;
    /// Binds (or rebinds) `alias`.
    async fn put(&self, workspace: &str, alias: &ModelAlias) -> Result<(), StoreError>;
    /// Removes `name`; whether it existed.
    async fn remove(&self, workspace: &str, name: &str) -> Result<bool, StoreError>;
}

/// An installed provider, loaded, with the install's grant.
#[derive(Clone)]
pub struct InstalledProvider {
    /// The loaded component.
    pub plugin: Arc<ProviderPlugin>,
    /// The install's grant.
    pub grant: Arc<Grant>,
}

/// How a mode loads the providers a workspace installed.
#[async_trait::async_trait]
pub trait ProviderSource: Send + Sync {
    /// The provider installed in `workspace` as `reference`; `None` if there is none
    /// (or the install is not a provider).
    async fn provider(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstalledProvider>, StoreError>;
}

/// A workspace's token budget. Local mode has none; the server's follows the plan.
#[async_trait::async_trait]
pub trait TokenBudget: Send + Sync {
    /// `Err` with the reason when `workspace` has spent its tokens.
    async fn admit(&self, workspace: &str) -> Result<(), String>;
}

/// Why an alias was not bound.
#[derive(Debug, thiserror::Error)]
pub enum AliasError {
    /// The binding itself is unusable: the message names the field.
    #[error("model alias `{alias}`: {message}")]
    Invalid {
        /// The alias.
        alias: String,
        /// What is wrong, naming the target.
        message: String,
    },
    /// No such alias.
    #[error("model alias `{0}` is not bound")]
    NotFound(String),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Binding, listing and routing over one mode's stores.
pub struct Aliases<'a> {
    /// Where aliases live.
    pub store: &'a dyn AliasStore,
    /// Where installed providers come from (a target must be one).
    pub providers: &'a dyn ProviderSource,
    /// Where binding changes are audited.
    pub audit: &'a dyn AuditSink,
}

impl Aliases<'_> {
    /// Checks and binds `alias`: a valid name, 1 to [`MAX_TARGETS`] targets, each an
    /// installed provider with a model and a config its schema accepts. Audited.
    pub async fn bind(&self, acting: &Acting, alias: &ModelAlias) -> Result<(), AliasError> {
        let invalid = |message: String| AliasError::Invalid {
            alias: alias.name.clone(),
            message,
        };
        check_name(&alias.name).map_err(|m| invalid(format!("name {m}")))?;
        if alias.targets.is_empty() || alias.targets.len() > MAX_TARGETS {
            return Err(invalid(format!("needs 1 to {MAX_TARGETS} targets")));
        }
        for (i, target) in alias.targets.iter().enumerate() {
            let at = |m: String| invalid(format!("targets[{i}] ({}): {m}", target.provider));
            if target.model.trim().is_empty() || target.model.len() > 200 {
                return Err(at("model must be 1 to 200 characters".into()));
            }
            let Some(installed) = self
                .providers
                .provider(&acting.workspace_id, &target.provider)
                .await?
            else {
                return Err(at("not an installed provider plugin".into()));
            };
            if let Some(v) = installed
                .plugin
                .info()
                .config_schema
                .violation(&target.config)
            {
                return Err(at(format!("config{}: {}", v.field, v.message)));
            }
        }
        let previous = self.store.get(&acting.workspace_id, &alias.name).await?;
        self.store.put(&acting.workspace_id, alias).await?;
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::ModelAliasSet,
            alias_subject(&alias.name),
            serde_json::json!({
                "targets": alias.targets.iter()
                    .map(|t| serde_json::json!({ "provider": t.provider, "model": t.model }))
                    .collect::<Vec<_>>(),
                "replaced": previous.is_some(),
            }),
        );
        self.audit.append(&acting.workspace_id, event).await?;
        Ok(())
    }

    /// Removes `name`. Audited.
    pub async fn unbind(&self, acting: &Acting, name: &str) -> Result<(), AliasError> {
        if !self.store.remove(&acting.workspace_id, name).await? {
            return Err(AliasError::NotFound(name.to_owned()));
        }
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::ModelAliasRemove,
            alias_subject(name),
            serde_json::json!({}),
        );
        self.audit.append(&acting.workspace_id, event).await?;
        Ok(())
    }
}

/// The audit subject of an alias.
pub fn alias_subject(name: &str) -> String {
    format!("model-alias/{name}")
}

/// The runtime's [`ModelRoutes`] over one mode's stores: what the executor hands nodes.
pub struct Routes {
    /// Where aliases live.
    pub aliases: Arc<dyn AliasStore>,
    /// Where installed providers come from.
    pub providers: Arc<dyn ProviderSource>,
    /// The workspaces' token budgets; `None`: unlimited.
    pub budget: Option<Arc<dyn TokenBudget>>,
}

impl ModelRoutes for Routes {
    fn targets<'a>(
        &'a self,
        workspace: &'a str,
        alias: &'a str,
    ) -> RouteFuture<'a, Result<Vec<ModelTarget>, RouteError>> {
        Box::pin(async move {
            let unavailable = |message: String| RouteError::Unavailable {
                alias: alias.to_owned(),
                message,
            };
            let bound = self
                .aliases
                .get(workspace, alias)
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .ok_or_else(|| RouteError::UnknownAlias(alias.to_owned()))?;
            let mut targets = Vec::with_capacity(bound.targets.len());
            for target in bound.targets {
                // A provider uninstalled since the binding is skipped: its fallbacks serve.
                let Some(installed) = self
                    .providers
                    .provider(workspace, &target.provider)
                    .await
                    .map_err(|e| unavailable(e.to_string()))?
                else {
                    continue;
                };
                targets.push(ModelTarget {
                    install: target.provider,
                    provider: installed.plugin,
                    grant: installed.grant,
                    model: target.model,
                    config: target.config,
                });
            }
            if targets.is_empty() {
                return Err(unavailable("none of its providers is installed".into()));
            }
            Ok(targets)
        })
    }

    fn admit<'a>(&'a self, workspace: &'a str) -> RouteFuture<'a, Result<(), String>> {
        Box::pin(async move {
            match &self.budget {
                Some(budget) => budget.admit(workspace).await,
                None => Ok(()),
            }
        })
    }
}

/// Local mode's aliases: `<data>/models/<workspace>.json`, every alias of the workspace
/// in one file, written to a temporary file and renamed.
pub struct FileAliases {
    dir: PathBuf,
}

impl FileAliases {
    /// Under `<data>/models/`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("models"),
        }
    }

    fn path(&self, workspace: &str) -> PathBuf {
        let safe: String = workspace
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.json"))
    }

    fn read(&self, workspace: &str) -> Result<BTreeMap<String, Vec<AliasTarget>>, StoreError> {
        let path = self.path(workspace);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| StoreError::new(path.display(), e))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StoreError::new(path.display(), e)),
        }
    }

    fn write(
        &self,
        workspace: &str,
        aliases: &BTreeMap<String, Vec<AliasTarget>>,
    ) -> Result<(), StoreError> {
        let path = self.path(workspace);
        let io = |e: std::io::Error| StoreError::new(path.display(), e);
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let text = serde_json::to_vec_pretty(aliases).map_err(|e| StoreError::new("aliases", e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}

#[async_trait::async_trait]
impl AliasStore for FileAliases {
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<ModelAlias>, StoreError> {
        Ok(self
            .read(workspace)?
            .remove(name)
            .map(|targets| ModelAlias {
                name: name.to_owned(),
                targets,
            }))
    }

    async fn list(&self, workspace: &str) -> Result<Vec<ModelAlias>, StoreError> {
        Ok(self
            .read(workspace)?
            .into_iter()
            .map(|(name, targets)| ModelAlias { name, targets })
            .collect())
    }

    async fn put(&self, workspace: &str, alias: &ModelAlias) -> Result<(), StoreError> {
        let mut all = self.read(workspace)?;
        all.insert(alias.name.clone(), alias.targets.clone());
        self.write(workspace, &all)
    }

    async fn remove(&self, workspace: &str, name: &str) -> Result<bool, StoreError> {
        let mut all = self.read(workspace)?;
        let existed = all.remove(name).is_some();
        if existed {
            self.write(workspace, &all)?;
        }
        Ok(existed)
    }
}
