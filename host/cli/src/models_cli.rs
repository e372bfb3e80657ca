//! `hyyve models`: the workspace's model aliases in local mode, and the provider source
//! `hyyve run` routes model calls through. A target names a provider the way a workflow
//! names a node plugin (`hyyve:openai`, or a `.wasm` file with its manifest beside it);
//! it is installed under the workspace's grant the first time it is used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::Subcommand;
use hyyve_platform::models::{
    AliasTarget, Aliases, FileAliases, InstalledProvider, ModelAlias, ProviderSource, Routes,
};
use hyyve_platform::{AuditSink, FileAudit, StoreError};
use hyyve_policy::PluginKind;
use hyyve_runtime::Runtime;

use crate::install::LocalInstalls;
use crate::local::Local;
use crate::resolve::Resolver;

/// `hyyve models …`.
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Bind an alias to provider targets, tried in order (the first is the primary).
    Set {
        /// The alias nodes call, e.g. `default-chat`.
        alias: String,
        /// Targets as `PROVIDER/MODEL`, e.g. `hyyve:openai/gpt-4o-mini`.
        #[arg(required = true)]
        targets: Vec<String>,
        /// Provider configuration as `PROVIDER=JSON` (applies to that provider's targets),
        /// e.g. `hyyve:openai={"baseUrl":"http://localhost:11434/v1"}`.
        #[arg(long = "config")]
        configs: Vec<String>,
    },
    /// List the workspace's aliases.
    List,
    /// Remove an alias.
    Remove {
        /// The alias.
        alias: String,
    },
}

/// Runs one `hyyve models` command.
pub async fn exec(local: &Local, command: ModelsCommand) -> anyhow::Result<ExitCode> {
    let audit = FileAudit(local.audit_log()?);
    let installs = Arc::new(local.installs(audit.0.clone()).await?);
    let providers = LocalProviders::new(local.runtime()?, installs.clone(), PathBuf::from("."));
    let store = FileAliases::new(&local.data_dir);
    let aliases = Aliases {
        store: &store,
        providers: &providers,
        audit: &audit as &dyn AuditSink,
    };
    match command {
        ModelsCommand::Set {
            alias,
            targets,
            configs,
        } => {
            let alias = parse_alias(alias, &targets, &configs)?;
            aliases.bind(&installs.acting, &alias).await?;
            println!("{} → {}", alias.name, describe(&alias));
        }
        ModelsCommand::List => {
            for alias in hyyve_platform::models::AliasStore::list(&store, &local.workspace).await? {
                println!("{} → {}", alias.name, describe(&alias));
            }
        }
        ModelsCommand::Remove { alias } => aliases.unbind(&installs.acting, &alias).await?,
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(alias: &ModelAlias) -> String {
    let targets: Vec<String> = alias
        .targets
        .iter()
        .map(|t| format!("{}/{}", t.provider, t.model))
        .collect();
    targets.join(", then ")
}

fn parse_alias(name: String, targets: &[String], configs: &[String]) -> anyhow::Result<ModelAlias> {
    let mut by_provider = HashMap::new();
    for entry in configs {
        let (provider, json) = entry
            .split_once('=')
            .with_context(|| format!("--config `{entry}` is not PROVIDER=JSON"))?;
        let value: serde_json::Value =
            serde_json::from_str(json).with_context(|| format!("--config for {provider}"))?;
        by_provider.insert(provider.to_owned(), value);
    }
    let targets = targets
        .iter()
        .map(|t| {
            // The model is after the last `/`: a `.wasm` path may hold slashes too.
            let (provider, model) = t
                .rsplit_once('/')
                .with_context(|| format!("target `{t}` is not PROVIDER/MODEL"))?;
            Ok(AliasTarget {
                provider: provider.to_owned(),
                model: model.to_owned(),
                config: by_provider
                    .get(provider)
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({})),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ModelAlias { name, targets })
}

/// The routes `hyyve run` hands its nodes: the data directory's aliases over
/// [`LocalProviders`]. Local mode has no token budget.
pub fn routes(
    local: &Local,
    runtime: Arc<Runtime>,
    installs: Arc<LocalInstalls>,
    base: &Path,
) -> Routes {
    Routes {
        aliases: Arc::new(FileAliases::new(&local.data_dir)),
        providers: Arc::new(LocalProviders::new(runtime, installs, base.to_owned())),
        budget: None,
    }
}

/// Local mode's providers: first-party or file components, installed (or their install
/// reused) under the workspace's grant when first asked for, loaded once per process.
pub struct LocalProviders {
    runtime: Arc<Runtime>,
    installs: Arc<LocalInstalls>,
    base: PathBuf,
    loaded: Mutex<HashMap<String, InstalledProvider>>,
}

impl LocalProviders {
    /// Providers resolved like workflow plugins, `.wasm` paths relative to `base`.
    pub fn new(runtime: Arc<Runtime>, installs: Arc<LocalInstalls>, base: PathBuf) -> Self {
        Self {
            runtime,
            installs,
            base,
            loaded: Mutex::default(),
        }
    }
}

#[async_trait::async_trait]
impl ProviderSource for LocalProviders {
    async fn provider(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstalledProvider>, StoreError> {
        if workspace != self.installs.acting.workspace_id {
            return Ok(None);
        }
        if let Some(found) = self.loaded.lock().expect("not poisoned").get(reference) {
            return Ok(Some(found.clone()));
        }
        let store = |e: &dyn std::fmt::Display| StoreError::new(format!("provider {reference}"), e);
        let resolver = Resolver::new(self.runtime.clone());
        let (plugin, source) = match resolver.resolve_provider(reference, &self.base).await {
            Ok(found) if found.1.manifest.plugin.kind == PluginKind::Provider => found,
            // Not a provider, or nothing by that reference: not an installed provider.
            Ok(_) | Err(crate::resolve::ResolveError::Unknown(_)) => return Ok(None),
            Err(crate::resolve::ResolveError::Load {
                source: hyyve_runtime::LoadError::WrongWorld { .. },
                ..
            }) => {
                return Ok(None);
            }
            Err(e) => return Err(store(&e)),
        };
        let record = self
            .installs
            .ensure_record(
                None,
                reference,
                plugin.digest(),
                &source.manifest,
                &source.manifest_text,
                None,
            )
            .await
            .map_err(|e| store(&e))?;
        let installed = InstalledProvider {
            plugin: Arc::new(plugin),
            grant: Arc::new(record.grant),
        };
        self.loaded
            .lock()
            .expect("not poisoned")
            .insert(reference.to_owned(), installed.clone());
        Ok(Some(installed))
    }
}
