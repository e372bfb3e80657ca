//! Local mode's context: the data directory, workspace and actor every command works in,
//! and the stores it opens there (compiled-component cache, sealed secrets, audit log).

use std::path::PathBuf;
use std::sync::Arc;

use hyyve_policy::AuditLog;
use hyyve_runtime::{Runtime, RuntimeConfig};
use hyyve_secrets::{FileSecretStore, SecretKey, SecretStore};

use hyyve_platform::{Acting, FileAudit};

use crate::install::LocalInstalls;

/// Where and as whom a command acts.
pub struct Local {
    /// Compiled components, cached node results, secrets, audit log, registry database.
    pub data_dir: PathBuf,
    /// The workspace runs, installs and secrets belong to.
    pub workspace: String,
    /// Who acts, for the audit log.
    pub actor: String,
}

impl Local {
    /// A runtime over the data dir's stores.
    pub fn runtime(&self) -> anyhow::Result<Arc<Runtime>> {
        Ok(Arc::new(Runtime::new(self.runtime_config()?)?))
    }

    /// The data dir's compiled-component cache, secrets and scratch root.
    pub fn runtime_config(&self) -> anyhow::Result<RuntimeConfig> {
        Ok(RuntimeConfig {
            cache_dir: Some(self.data_dir.join("compiled")),
            secrets: self.secret_store()?,
            scratch_root: Some(self.data_dir.join("scratch")),
            ..RuntimeConfig::default()
        })
    }

    /// Secrets sealed in `<data>/secrets.json` with `HYYVE_SECRET_KEY`, or with a key
    /// file `<data>/secret.key` created on first use.
    pub fn secret_store(&self) -> anyhow::Result<Arc<dyn SecretStore>> {
        let key = SecretKey::from_env_or_file(&self.data_dir.join("secret.key"))?;
        Ok(Arc::new(FileSecretStore::open(
            self.data_dir.join("secrets.json"),
            key,
        )?))
    }

    /// The hash-chained audit log, `<data>/audit.jsonl`.
    pub fn audit_log(&self) -> anyhow::Result<Arc<AuditLog>> {
        Ok(Arc::new(AuditLog::open(self.data_dir.join("audit.jsonl"))?))
    }

    /// This workspace and actor, to the platform core. Local mode has no ids: a
    /// workspace is keyed by its name, in the organization `local`, named as `org.toml`
    /// names it (set by [`LocalInstalls::open`], which reads it).
    pub fn acting(&self) -> Acting {
        Acting {
            org_id: "local".into(),
            org_name: String::new(),
            workspace_id: self.workspace.clone(),
            workspace_name: self.workspace.clone(),
            actor: self.actor.clone(),
        }
    }

    /// Installs into this workspace, as this actor, audited in `audit`.
    pub async fn installs(&self, audit: Arc<AuditLog>) -> anyhow::Result<LocalInstalls> {
        LocalInstalls::open(&self.data_dir, self.acting(), FileAudit(audit)).await
    }
}
