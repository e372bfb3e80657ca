//! On-disk cache of precompiled components, keyed by the engine's compatibility hash and
//! the component's sha256, so a restart loads native code without recompiling.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::RuntimeError;
use crate::plugin::Digest;

/// A directory of `<digest>.cwasm` files valid for exactly one engine configuration.
pub(crate) struct ComponentCache {
    dir: PathBuf,
}

impl ComponentCache {
    /// Opens (creating) the cache under `root`, in a subdirectory named after the engine's
    /// compatibility hash: artifacts of another wasmtime build or config are never read.
    pub(crate) fn open(root: &Path, engine: &Engine) -> Result<Self, RuntimeError> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!("{:016x}", hasher.finish()));
        std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::Cache {
            path: dir.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Self { dir })
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.cwasm", digest.hex()))
    }

    /// The cached artifact for `digest`, if present and loadable.
    pub(crate) fn load(&self, engine: &Engine, digest: &Digest) -> Option<Component> {
        let path = self.path(digest);
        if !path.exists() {
            return None;
        }
        // Read into memory rather than mmap: a file truncated by another process while
        // mapped would kill this one with SIGBUS.
        let bytes = std::fs::read(&path).ok()?;
        // SAFETY: only this module writes into the cache directory, always with
        // `Component::serialize` output of an engine with the same compatibility hash,
        // atomically (temp file + rename); wasmtime still checks the header and version.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `component` under `digest`. Failure only costs a recompile later.
    pub(crate) fn store(&self, digest: &Digest, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                let tmp = self
                    .dir
                    .join(format!(".{}.{}.tmp", digest.hex(), std::process::id()));
                std::fs::write(&tmp, bytes)
                    .and_then(|()| std::fs::rename(&tmp, self.path(digest)))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(digest = %digest, error = %e, "could not cache compiled component");
        }
    }
}
