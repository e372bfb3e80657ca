//! Turning the plugin references of a workflow into loaded plugins.
//!
//! `hyyve:<name>` is a first-party plugin, built from `plugins/<name>` on first use;
//! anything ending in `.wasm` is a component file, relative to the workflow's folder.
//! (Registry references arrive with the registry.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyyve_runtime::{LoadError, Runtime};
use hyyve_workflow::PluginSet;

use crate::build::{self, BuildError};

/// Why a plugin reference could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Not a first-party name and not a `.wasm` path.
    #[error("plugin `{0}`: unknown reference (use `hyyve:<name>` or a path to a .wasm file)")]
    Unknown(String),
    /// A first-party plugin failed to build.
    #[error("plugin `{plugin}`: {source}")]
    Build {
        /// The reference.
        plugin: String,
        /// The build failure.
        source: BuildError,
    },
    /// The component was rejected by the runtime.
    #[error("plugin `{plugin}`: {source}")]
    Load {
        /// The reference.
        plugin: String,
        /// Why it was rejected.
        source: LoadError,
    },
}

/// Resolves references against a repository checkout (for first-party plugins).
pub struct Resolver {
    runtime: Arc<Runtime>,
    repo: PathBuf,
}

impl Resolver {
    /// A resolver building first-party plugins from `repo`.
    pub fn new(runtime: Arc<Runtime>, repo: PathBuf) -> Self {
        Self { runtime, repo }
    }

    /// The first-party package behind `hyyve:<name>`, if there is such a plugin.
    fn first_party(&self, reference: &str) -> Option<String> {
        let name = reference.strip_prefix("hyyve:")?;
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        (valid
            && self
                .repo
                .join("plugins")
                .join(name)
                .join("Cargo.toml")
                .exists())
        .then(|| format!("hyyve-plugin-{name}"))
    }

    /// Builds (first-party) and loads every reference; `base` anchors relative paths.
    pub async fn resolve(
        &self,
        references: &[&str],
        base: &Path,
    ) -> Result<PluginSet, ResolveError> {
        let mut files: HashMap<String, PathBuf> = HashMap::new();
        let mut first_party: Vec<(String, String)> = Vec::new();
        for &reference in references {
            if let Some(package) = self.first_party(reference) {
                first_party.push((reference.to_owned(), package));
            } else if reference.ends_with(".wasm") {
                files.insert(reference.to_owned(), base.join(reference));
            } else {
                return Err(ResolveError::Unknown(reference.to_owned()));
            }
        }
        if !first_party.is_empty() {
            let packages: Vec<String> = first_party.iter().map(|(_, p)| p.clone()).collect();
            let repo = self.repo.clone();
            let built = tokio::task::spawn_blocking(move || {
                let names: Vec<&str> = packages.iter().map(String::as_str).collect();
                build::build_packages(&repo, &names, &build::guest_target_dir(&repo))
            })
            .await;
            let paths = built
                .map_err(|e| BuildError::Failed(e.to_string()))
                .and_then(|result| result)
                .map_err(|source| ResolveError::Build {
                    plugin: first_party
                        .iter()
                        .map(|(r, _)| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    source,
                })?;
            for ((reference, _), path) in first_party.iter().zip(paths) {
                files.insert(reference.clone(), path);
            }
        }
        let mut set = PluginSet::new();
        for (reference, path) in files {
            let plugin = self
                .runtime
                .load_node_plugin_file(&path)
                .await
                .map_err(|source| ResolveError::Load {
                    plugin: reference.clone(),
                    source,
                })?;
            set.insert(reference, Arc::new(plugin));
        }
        Ok(set)
    }
}
