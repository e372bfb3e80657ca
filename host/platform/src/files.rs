//! Local mode's stores: files under the data directory.
//!
//! - `<data>/installs/<workspace>/<namespace>-<name>.json`: one [`InstallRecord`] each
//!   ([`FileInstalls`]), written to a temporary file and renamed, so a reader never sees
//!   half of one;
//! - `<data>/policy/`: `platform.toml` (caps and defaults), `org.toml` (the organization
//!   policy) and `grants/<namespace>-<name>.toml` (what the workspace accepts for one
//!   plugin) ([`PolicyFiles`]). Each is optional; absent means the defaults, an
//!   organization policy that bounds nothing, and a workspace that accepts what is left.

use std::path::{Path, PathBuf};

use hyyve_policy::layers::load_toml;
use hyyve_policy::{
    AuditAction, AuditEvent, Explanation, Manifest, OrgPolicy, PlatformConfig, PluginId,
    WorkspaceGrant, effective_grant,
};
use sha2::{Digest as _, Sha256};

use crate::StoreError;
use crate::audit::AuditSink;
use crate::install::{Acting, InstallRecord, InstallStore, PolicyStore};

/// Installs as files, one folder per workspace.
pub struct FileInstalls {
    dir: PathBuf,
}

impl FileInstalls {
    /// Under `<data>/installs/`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("installs"),
        }
    }

    fn path(&self, workspace: &str, reference: &str) -> PathBuf {
        // A reference is `namespace:name` or a file path: neither may leave the folder.
        let name: String = reference
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
                _ => '-',
            })
            .collect();
        self.dir
            .join(workspace)
            .join(format!("{}.json", name.trim_start_matches('.')))
    }

    fn read(path: &Path) -> Result<Option<InstallRecord>, StoreError> {
        match std::fs::read(path) {
            // A record that no longer parses is as good as none: the next install
            // replaces it.
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new(path.display(), e)),
        }
    }
}

#[async_trait::async_trait]
impl InstallStore for FileInstalls {
    async fn get(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstallRecord>, StoreError> {
        Self::read(&self.path(workspace, reference))
    }

    async fn put(&self, workspace: &str, record: &InstallRecord) -> Result<(), StoreError> {
        let path = self.path(workspace, &record.reference);
        let io = |e: std::io::Error| StoreError::new(path.display(), e);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
        let text = serde_json::to_vec_pretty(record).map_err(|e| StoreError::new("install", e))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }

    async fn remove(&self, workspace: &str, reference: &str) -> Result<bool, StoreError> {
        let path = self.path(workspace, reference);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::new(path.display(), e)),
        }
    }

    async fn list(&self, workspace: &str) -> Result<Vec<InstallRecord>, StoreError> {
        let dir = self.dir.join(workspace);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::new(dir.display(), e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| StoreError::new(dir.display(), e))?.path();
            if path.extension().is_some_and(|x| x == "json")
                && let Some(record) = Self::read(&path)?
            {
                records.push(record);
            }
        }
        records.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(records)
    }
}

/// The policy layers read from `<data>/policy/`.
pub struct PolicyFiles {
    dir: PathBuf,
    /// Platform caps and defaults.
    pub platform: PlatformConfig,
    /// The organization policy.
    pub org: OrgPolicy,
    /// SHA-256 over both files' contents, for auditing a change.
    pub digest: String,
}

impl PolicyFiles {
    /// Reads `<data>/policy/{platform,org}.toml`, each optional.
    pub fn load(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join("policy");
        let mut hasher = Sha256::new();
        let mut layer = |name: &str| -> Result<Option<PathBuf>, StoreError> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    hasher.update(name.as_bytes());
                    hasher.update(&bytes);
                    Ok(Some(path))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::new(path.display(), e)),
            }
        };
        let parse = |e: hyyve_policy::PolicyError| StoreError(e.to_string());
        let platform = layer("platform.toml")?
            .map(|p| load_toml(&p))
            .transpose()
            .map_err(parse)?
            .unwrap_or_default();
        let org = layer("org.toml")?
            .map(|p| load_toml(&p))
            .transpose()
            .map_err(parse)?
            .unwrap_or_default();
        Ok(Self {
            dir,
            platform,
            org,
            digest: hex::encode(hasher.finalize()),
        })
    }

    /// What the workspace accepts for `id` (`grants/<namespace>-<name>.toml`).
    pub fn workspace_grant(&self, id: &PluginId) -> Result<WorkspaceGrant, StoreError> {
        let path = self
            .dir
            .join("grants")
            .join(format!("{}-{}.toml", id.namespace, id.name));
        match path.exists() {
            true => load_toml(&path).map_err(|e| StoreError(e.to_string())),
            false => Ok(WorkspaceGrant::default()),
        }
    }

    /// The explanation (and grant) for one manifest.
    pub fn explain(&self, manifest: &Manifest) -> Result<Explanation, StoreError> {
        let workspace = self.workspace_grant(&manifest.plugin.id)?;
        Ok(effective_grant(
            manifest,
            &self.platform,
            &self.org,
            &workspace,
        ))
    }

    /// Records a policy change the first time a changed policy is seen (the marker
    /// `<data>/policy/.audited-digest` holds the last one audited).
    pub async fn audit_change(
        &self,
        audit: &dyn AuditSink,
        acting: &Acting,
    ) -> Result<(), StoreError> {
        let marker = self.dir.join(".audited-digest");
        let last = std::fs::read_to_string(&marker).unwrap_or_default();
        if last.trim() == self.digest {
            return Ok(());
        }
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::PolicyChange,
            "policy",
            serde_json::json!({ "from": last.trim(), "to": self.digest }),
        );
        audit.append(&acting.workspace_id, event).await?;
        let io = |e: std::io::Error| StoreError::new(marker.display(), e);
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::write(&marker, &self.digest).map_err(io)
    }
}

#[async_trait::async_trait]
impl PolicyStore for PolicyFiles {
    async fn org_policy(&self, _acting: &Acting) -> Result<OrgPolicy, StoreError> {
        Ok(self.org.clone())
    }
}
