//! Per-node result cache keyed by (component digest, node type, config, inputs): a node
//! whose key is unchanged reuses its last outputs instead of running again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use hyyve_runtime::Digest;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// sha256 over the digest, the node type and the canonical JSON of config and inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    /// The key of one node execution. serde_json objects are sorted maps, so equal values
    /// always serialize to equal text.
    pub fn new(digest: Digest, node_type: &str, config: &Value, inputs: &Value) -> Self {
        let mut h = Sha256::new();
        for part in [
            digest.hex().as_bytes(),
            node_type.as_bytes(),
            config.to_string().as_bytes(),
            inputs.to_string().as_bytes(),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Self(hex::encode(h.finalize()))
    }
}

/// Where cached outputs live: memory only, or also a directory (survives restarts).
pub struct ResultCache {
    memory: Mutex<HashMap<CacheKey, Value>>,
    dir: Option<PathBuf>,
}

impl ResultCache {
    /// A cache that lives as long as the process.
    pub fn in_memory() -> Self {
        Self {
            memory: Mutex::new(HashMap::new()),
            dir: None,
        }
    }

    /// A cache persisted as one JSON file per key under `dir`.
    pub fn on_disk(dir: PathBuf) -> Self {
        Self {
            memory: Mutex::new(HashMap::new()),
            dir: Some(dir),
        }
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, Value>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cached outputs for `key`.
    pub fn get(&self, key: &CacheKey) -> Option<Value> {
        if let Some(v) = self.memory().get(key) {
            return Some(v.clone());
        }
        let path = self.dir.as_ref()?.join(format!("{}.json", key.0));
        let value: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        self.memory().insert(key.clone(), value.clone());
        Some(value)
    }

    /// Remembers `outputs` for `key`. A failed disk write only costs a re-execution.
    pub fn put(&self, key: CacheKey, outputs: &Value) {
        if let Some(dir) = &self.dir {
            let write = std::fs::create_dir_all(dir).and_then(|()| {
                let tmp = dir.join(format!(".{}.{}.tmp", key.0, std::process::id()));
                std::fs::write(&tmp, outputs.to_string())?;
                std::fs::rename(tmp, dir.join(format!("{}.json", key.0)))
            });
            if let Err(e) = write {
                tracing::warn!(error = %e, "could not persist cached node result");
            }
        }
        self.memory().insert(key, outputs.clone());
    }
}
