//! Turning the plugin references of a workflow into loaded plugins.
//!
//! `hyyve:<name>` is a first-party plugin, embedded in the binary at build time
//! ([`crate::first_party`]) with its manifest; anything ending in `.wasm` is a component
//! file, relative to the workflow's folder, with its manifest `<file>.hyyve.toml` beside
//! it (a component without one requests nothing). Registry references are resolved by
//! `registry_cli`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyyve_policy::{Manifest, ManifestError};
use hyyve_runtime::{LoadError, NodePlugin, ProviderPlugin, Runtime};

use crate::first_party::{self, FirstPartyPlugin};

/// Why a reference did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Neither `hyyve:<name>` of an embedded plugin nor a `.wasm` path.
    #[error("plugin `{0}`: unknown reference (use `hyyve:<name>` or a path to a .wasm file)")]
    Unknown(String),
    /// The manifest could not be read or is invalid.
    #[error("plugin `{plugin}`: {path}: {message}")]
    Manifest {
        /// The reference.
        plugin: String,
        /// The manifest's path (or `embedded`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The component did not load.
    #[error("plugin `{plugin}`: {source}")]
    Load {
        /// The reference.
        plugin: String,
        /// Why.
        source: LoadError,
    },
}

/// A loaded plugin and the manifest it comes with.
pub struct Resolved {
    /// The loaded component.
    pub plugin: Arc<NodePlugin>,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest as written (empty for a bare component).
    pub manifest_text: String,
}

/// Loads the plugins a workflow names, on one runtime.
pub struct Resolver {
    runtime: Arc<Runtime>,
}

/// The embedded first-party plugin `hyyve:<name>` names, if any.
pub fn first_party(reference: &str) -> Option<&'static FirstPartyPlugin> {
    let name = reference.strip_prefix("hyyve:")?;
    first_party::PLUGINS.iter().find(|p| p.name == name)
}

impl Resolver {
    /// A resolver loading into `runtime`.
    pub fn new(runtime: Arc<Runtime>) -> Self {
        Self { runtime }
    }

    /// Loads every reference; `base` is the folder `.wasm` paths are relative to.
    pub async fn resolve(
        &self,
        references: &[&str],
        base: &Path,
    ) -> Result<HashMap<String, Resolved>, ResolveError> {
        let mut set = HashMap::new();
        for &reference in references {
            let source = source(reference, base)?;
            let plugin = self
                .runtime
                .load_node_plugin(&source.component)
                .await
                .map_err(|source| ResolveError::Load {
                    plugin: reference.to_owned(),
                    source,
                })?;
            set.insert(
                reference.to_owned(),
                Resolved {
                    plugin: Arc::new(plugin),
                    manifest: source.manifest,
                    manifest_text: source.manifest_text,
                },
            );
        }
        Ok(set)
    }

    /// Loads the provider plugin `reference` names, with its manifest.
    pub async fn resolve_provider(
        &self,
        reference: &str,
        base: &Path,
    ) -> Result<(ProviderPlugin, Source), ResolveError> {
        let source = source(reference, base)?;
        let plugin = self
            .runtime
            .load_provider_plugin(&source.component)
            .await
            .map_err(|source| ResolveError::Load {
                plugin: reference.to_owned(),
                source,
            })?;
        Ok((plugin, source))
    }
}

/// A reference's component bytes and manifest, before loading.
pub struct Source {
    /// The component.
    pub component: Cow<'static, [u8]>,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest as written (empty for a bare component).
    pub manifest_text: String,
}

/// Reads what `reference` names: an embedded first-party plugin or a component file.
fn source(reference: &str, base: &Path) -> Result<Source, ResolveError> {
    if let Some(embedded) = first_party(reference) {
        let manifest = Manifest::parse(embedded.manifest).map_err(|e| ResolveError::Manifest {
            plugin: reference.to_owned(),
            path: "embedded".into(),
            message: e.to_string(),
        })?;
        return Ok(Source {
            component: Cow::Borrowed(embedded.component),
            manifest,
            manifest_text: embedded.manifest.to_owned(),
        });
    }
    if !reference.ends_with(".wasm") {
        return Err(ResolveError::Unknown(reference.to_owned()));
    }
    let path: PathBuf = base.join(reference);
    let (manifest, manifest_text) = read_manifest(reference, &path.with_extension("hyyve.toml"))?;
    let component = std::fs::read(&path).map_err(|e| ResolveError::Load {
        plugin: reference.to_owned(),
        source: LoadError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        },
    })?;
    Ok(Source {
        component: Cow::Owned(component),
        manifest,
        manifest_text,
    })
}

/// The manifest at `path`; a component file without one gets a manifest requesting
/// nothing.
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
