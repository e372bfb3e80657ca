//! Turning the plugin references of a workflow into loaded plugins.
//!
//! `hyyve:<name>` is a first-party plugin, built from `plugins/<name>` on first use;
//! anything ending in `.wasm` is a component file, relative to the workflow's folder.
//! (Registry references arrive with the registry.) Each comes with its manifest:
//! `plugins/<name>/hyyve.toml`, or `<file>.hyyve.toml` beside a component file (a
//! component without one requests nothing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyyve_policy::{Manifest, ManifestError};
use hyyve_runtime::{LoadError, NodePlugin, Runtime};

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
    /// The manifest is missing or invalid.
    #[error("plugin `{plugin}`: {path}: {message}")]
    Manifest {
        /// The reference.
        plugin: String,
        /// The manifest file.
        path: String,
        /// What is wrong.
        message: String,
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

/// A loaded component and the manifest it is installed with.
pub struct Resolved {
    /// The component, validated and linked.
    pub plugin: Arc<NodePlugin>,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest's text (its digest identifies the install).
    pub manifest_text: String,
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
    ) -> Result<HashMap<String, Resolved>, ResolveError> {
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
        let mut set = HashMap::new();
        for (reference, path) in files {
            let manifest_path = match self.first_party(&reference) {
                Some(_) => self.first_party_dir(&reference).join("hyyve.toml"),
                None => path.with_extension("hyyve.toml"),
            };
            let (manifest, manifest_text) = read_manifest(&reference, &manifest_path)?;
            let plugin = self
                .runtime
                .load_node_plugin_file(&path)
                .await
                .map_err(|source| ResolveError::Load {
                    plugin: reference.clone(),
                    source,
                })?;
            set.insert(
                reference,
                Resolved {
                    plugin: Arc::new(plugin),
                    manifest,
                    manifest_text,
                },
            );
        }
        Ok(set)
    }

    fn first_party_dir(&self, reference: &str) -> PathBuf {
        let name = reference.strip_prefix("hyyve:").unwrap_or(reference);
        self.repo.join("plugins").join(name)
    }
}

/// The manifest at `path`; a component file without one gets a manifest requesting
/// nothing, a first-party plugin without one is an error.
fn read_manifest(reference: &str, path: &Path) -> Result<(Manifest, String), ResolveError> {
    let error = |message: String| ResolveError::Manifest {
        plugin: reference.to_owned(),
        path: path.display().to_string(),
        message,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let manifest =
                Manifest::parse(&text).map_err(|e: ManifestError| error(e.to_string()))?;
            Ok((manifest, text))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && reference.ends_with(".wasm") => {
            let manifest = crate::install::bare_manifest(reference);
            Ok((manifest, String::new()))
        }
        Err(e) => Err(error(e.to_string())),
    }
}
