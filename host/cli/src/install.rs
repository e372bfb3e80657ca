//! Local installs: a resolved plugin plus its manifest becomes an install in a workspace
//! with an effective grant, computed once (again only when the component, its manifest
//! or the policy changes), stored under `<data>/installs/`, and audited.
//!
//! Policy files live under `<data>/policy/`: `platform.toml` (caps and defaults),
//! `org.toml` (organization policy) and `grants/<namespace>-<name>.toml` (what the
//! workspace accepts for one plugin). Each is optional; absent means the defaults, an
//! organization policy that bounds nothing, and a workspace that accepts what is left.

use hyyve_policy::AuditAction;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use hyyve_policy::layers::load_toml;
use hyyve_policy::{
    AuditEvent, AuditLog, Explanation, Grant, Manifest, OrgPolicy, PlatformConfig, PluginId,
    PluginInfo, PluginKind, WorkspaceGrant, effective_grant,
};
use hyyve_runtime::NodePlugin;
use hyyve_workflow::Installed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The policy layers read from the data directory.
pub struct PolicyFiles {
    dir: PathBuf,
    /// Platform caps and defaults.
    pub platform: PlatformConfig,
    /// The organization policy.
    pub org: OrgPolicy,
    /// SHA-256 over both files' contents: an install is recomputed when it changes.
    pub digest: String,
}

impl PolicyFiles {
    /// Reads `<data>/policy/{platform,org}.toml`, each optional.
    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let dir = data_dir.join("policy");
        let mut hasher = Sha256::new();
        let mut layer = |name: &str| -> anyhow::Result<Option<PathBuf>> {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    hasher.update(name.as_bytes());
                    hasher.update(&bytes);
                    Ok(Some(path))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
            }
        };
        let platform = layer("platform.toml")?
            .map(|p| load_toml(&p))
            .transpose()?
            .unwrap_or_default();
        let org = layer("org.toml")?
            .map(|p| load_toml(&p))
            .transpose()?
            .unwrap_or_default();
        Ok(Self {
            dir,
            platform,
            org,
            digest: hex::encode(hasher.finalize()),
        })
    }

    /// What the workspace accepts for `id` (`grants/<namespace>-<name>.toml`).
    pub fn workspace_grant(&self, id: &PluginId) -> anyhow::Result<(WorkspaceGrant, String)> {
        let path = self
            .dir
            .join("grants")
            .join(format!("{}-{}.toml", id.namespace, id.name));
        match std::fs::read(&path) {
            Ok(bytes) => Ok((load_toml(&path)?, hex::encode(Sha256::digest(bytes)))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((WorkspaceGrant::default(), String::new()))
            }
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The explanation (and grant) for one manifest.
    pub fn explain(&self, manifest: &Manifest) -> anyhow::Result<Explanation> {
        let (workspace, _) = self.workspace_grant(&manifest.plugin.id)?;
        Ok(effective_grant(
            manifest,
            &self.platform,
            &self.org,
            &workspace,
        ))
    }
}

/// What `<data>/installs/<workspace>/<id>.json` holds.
#[derive(Debug, Serialize, Deserialize)]
struct InstallRecord {
    reference: String,
    plugin: String,
    component_digest: String,
    manifest_digest: String,
    policy_digest: String,
    grant: Grant,
    explanation: Explanation,
}

/// Installs plugins into one workspace.
pub struct Installer {
    data_dir: PathBuf,
    workspace: String,
    actor: String,
    policy: PolicyFiles,
    audit: Arc<AuditLog>,
}

impl Installer {
    /// An installer for `workspace`, acting as `actor` in the audit log.
    pub fn new(
        data_dir: &Path,
        workspace: &str,
        actor: &str,
        audit: Arc<AuditLog>,
    ) -> anyhow::Result<Self> {
        let policy = PolicyFiles::load(data_dir)?;
        let installer = Self {
            data_dir: data_dir.to_owned(),
            workspace: workspace.to_owned(),
            actor: actor.to_owned(),
            policy,
            audit,
        };
        installer.audit_policy_change()?;
        Ok(installer)
    }

    /// The organization policy in force.
    pub fn org(&self) -> &OrgPolicy {
        &self.policy.org
    }

    /// The component digest (hex) `id` is pinned to in this workspace, if installed.
    pub fn pinned_digest(&self, id: &PluginId) -> Option<String> {
        let path = self.record_path(id);
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice::<InstallRecord>(&bytes)
            .ok()
            .map(|r| r.component_digest)
    }

    fn record_path(&self, id: &PluginId) -> PathBuf {
        self.data_dir
            .join("installs")
            .join(&self.workspace)
            .join(format!("{}-{}.json", id.namespace, id.name))
    }

    /// Records a policy change the first time a changed policy is seen.
    fn audit_policy_change(&self) -> anyhow::Result<()> {
        let marker = self.data_dir.join("policy").join(".audited-digest");
        let last = std::fs::read_to_string(&marker).unwrap_or_default();
        if last.trim() == self.policy.digest {
            return Ok(());
        }
        self.audit.append(AuditEvent {
            actor: self.actor.clone(),
            action: AuditAction::PolicyChange.as_str().into(),
            subject: "policy".into(),
            detail: serde_json::json!({ "from": last.trim(), "to": self.policy.digest }),
        })?;
        std::fs::create_dir_all(marker.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(&marker, &self.policy.digest)?;
        Ok(())
    }

    /// The install of `plugin` under `reference`: the stored one when component,
    /// manifest and policy are unchanged, else a new one (stored and audited).
    pub fn install(
        &self,
        reference: &str,
        plugin: Arc<NodePlugin>,
        manifest: &Manifest,
        manifest_text: &str,
    ) -> anyhow::Result<Installed> {
        let id = manifest.plugin.id.to_string();
        let (workspace_grant, grant_digest) = self.policy.workspace_grant(&manifest.plugin.id)?;
        let policy_digest = format!("{}:{grant_digest}", self.policy.digest);
        let manifest_digest = hex::encode(Sha256::digest(manifest_text.as_bytes()));
        let component_digest = plugin.digest().hex();
        let path = self.record_path(&manifest.plugin.id);
        let previous: Option<InstallRecord> = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        if let Some(p) = &previous
            && p.component_digest == component_digest
            && p.manifest_digest == manifest_digest
            && p.policy_digest == policy_digest
        {
            return Ok(Installed {
                id,
                plugin,
                grant: Arc::new(p.grant.clone()),
            });
        }
        let explanation = effective_grant(
            manifest,
            &self.policy.platform,
            &self.policy.org,
            &workspace_grant,
        );
        let Some(grant) = explanation.grant.clone() else {
            self.audit.append(AuditEvent {
                actor: self.actor.clone(),
                action: AuditAction::PluginInstallRefused.as_str().into(),
                subject: format!("workspace/{}/{id}", self.workspace),
                detail: serde_json::json!({ "reason": explanation.refused }),
            })?;
            anyhow::bail!(
                "plugin `{reference}` may not be installed: {}",
                explanation.refused.unwrap_or_default()
            );
        };
        let record = InstallRecord {
            reference: reference.to_owned(),
            plugin: format!("{}@{}", id, manifest.plugin.version),
            component_digest: component_digest.clone(),
            manifest_digest,
            policy_digest,
            grant: grant.clone(),
            explanation,
        };
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&record)?)?;
        std::fs::rename(&tmp, &path)?;
        self.audit.append(AuditEvent {
            actor: self.actor.clone(),
            action: AuditAction::PluginInstall.as_str().into(),
            subject: format!("workspace/{}/{id}", self.workspace),
            detail: serde_json::json!({
                "version": manifest.plugin.version.to_string(),
                "component_digest": component_digest,
                "previous_digest": previous.map(|p| p.component_digest),
                "grant": grant,
            }),
        })?;
        Ok(Installed {
            id,
            plugin,
            grant: Arc::new(grant),
        })
    }
}

/// A manifest that requests nothing, for a bare `.wasm` file without `hyyve.toml`: id
/// `local:<file stem>` (or `local:component` when the stem makes no valid name).
pub fn bare_manifest(reference: &str) -> Manifest {
    let stem = Path::new(reference)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let id = format!("local:{}", stem.trim_matches('-'))
        .parse()
        .unwrap_or_else(|_| PluginId {
            namespace: "local".into(),
            name: "component".into(),
        });
    Manifest {
        plugin: PluginInfo {
            id,
            version: semver::Version::new(0, 0, 0),
            kind: PluginKind::Node,
            publisher: "local".into(),
            description: format!("local component {reference}"),
            categories: Vec::new(),
        },
        capabilities: Default::default(),
        limits: Default::default(),
        listing: Default::default(),
    }
}
