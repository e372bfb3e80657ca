//! Installing a plugin in a workspace, the same in both modes:
//!
//! 1. the candidate is resolved by the caller (a registry version, a first-party plugin,
//!    a local file);
//! 2. (any kind installs: nodes run in workflows, providers serve model aliases,
//!    channels their webhooks);
//! 3. vetting gate: a registry package of a publisher the organization does not trust
//!    waits for the organization's review when its policy requires vetting (the request
//!    is made and audited);
//! 4. effective grant: manifest ∩ platform caps ∩ organization policy ∩ what the
//!    workspace accepts; a refusal is audited;
//! 5. persist: the record, pinned by component digest, in the [`InstallStore`];
//! 6. audit: `plugin.install` with the grant a security team reviews.
//!
//! [`Installer::ensure`] is the local `hyyve run` path: the stored install is reused
//! while component, manifest and policy are unchanged, and nothing is audited again.

use hyyve_policy::{
    AuditAction, AuditEvent, Grant, Manifest, OrgPolicy, PlatformConfig, WorkspaceGrant,
    effective_grant,
};
use hyyve_registry::storage::now_ms;
use hyyve_registry::vetting::VettingStatus;
use hyyve_registry::{Registry, RegistryError, VersionRecord};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::StoreError;
use crate::audit::{AuditSink, install_subject, vetting_subject};

/// Who acts, in which workspace of which organization.
#[derive(Debug, Clone)]
pub struct Acting {
    /// The organization's id (local mode: `local`).
    pub org_id: String,
    /// The organization's name: its registry account, for vetting.
    pub org_name: String,
    /// The workspace's id: the key of its installs, audit log and usage (local mode:
    /// its name).
    pub workspace_id: String,
    /// The workspace's name, as vetting requests show it.
    pub workspace_name: String,
    /// Who, as the audit log names them.
    pub actor: String,
}

/// What may be installed, resolved by the caller.
pub struct Candidate {
    /// What workflows name it by: `namespace:name`, or a local file's path.
    pub reference: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest as published (its digest pins the install).
    pub manifest_text: String,
    /// `sha256:<hex>` of the component.
    pub component_digest: String,
    /// The registry version it is, when it comes from the registry: only those pass the
    /// vetting gate (a first-party or local file is the operator's own).
    pub registry_version: Option<VersionRecord>,
}

impl Candidate {
    /// A registry version.
    pub fn from_registry(version: VersionRecord) -> Result<Self, RegistryError> {
        Ok(Self {
            reference: version.id.clone(),
            manifest: version.manifest()?,
            manifest_text: version.manifest_text.clone(),
            component_digest: version.component_digest.clone(),
            registry_version: Some(version),
        })
    }

    fn display(&self) -> String {
        format!("{}@{}", self.reference, self.manifest.plugin.version)
    }
}

/// One install, as every store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstallRecord {
    /// What workflows name it by.
    pub reference: String,
    /// The installed version.
    #[serde(default)]
    pub version: String,
    /// `sha256:<hex>` the install is pinned to.
    #[serde(deserialize_with = "prefixed_digest")]
    pub component_digest: String,
    /// SHA-256 (hex) of the manifest text.
    pub manifest_digest: String,
    /// SHA-256 (hex) of the policy inputs the grant was computed from.
    pub policy_digest: String,
    /// What the workspace accepted.
    #[serde(default)]
    pub accepted: WorkspaceGrant,
    /// The effective grant the plugin runs with.
    pub grant: Grant,
    /// Who installed it.
    #[serde(default)]
    pub installed_by: String,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    pub installed_at: i64,
}

/// Install files written before digests carried their algorithm held the bare hex.
fn prefixed_digest<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let digest = String::deserialize(d)?;
    Ok(match digest.starts_with("sha256:") {
        true => digest,
        false => format!("sha256:{digest}"),
    })
}

/// Where a mode keeps its installs.
#[async_trait::async_trait]
pub trait InstallStore: Send + Sync {
    /// The install of `reference` in `workspace`, if any.
    async fn get(
        &self,
        workspace: &str,
        reference: &str,
    ) -> Result<Option<InstallRecord>, StoreError>;
    /// Stores `record`, replacing an earlier install of the same reference.
    async fn put(&self, workspace: &str, record: &InstallRecord) -> Result<(), StoreError>;
    /// Removes the install; whether there was one.
    async fn remove(&self, workspace: &str, reference: &str) -> Result<bool, StoreError>;
    /// The workspace's installs, by reference.
    async fn list(&self, workspace: &str) -> Result<Vec<InstallRecord>, StoreError>;
}

/// Where a mode keeps organization policies.
#[async_trait::async_trait]
pub trait PolicyStore: Send + Sync {
    /// The policy of the organization `acting` belongs to.
    async fn org_policy(&self, acting: &Acting) -> Result<OrgPolicy, StoreError>;
}

/// Why an install did not happen.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The organization reviews third-party packages; this one awaits review.
    #[error("{reference} awaits review by organization {organization} (request {request})")]
    VettingPending {
        /// `namespace:name@version`.
        reference: String,
        /// The reviewing organization.
        organization: String,
        /// The vetting request.
        request: i64,
    },
    /// The effective grant is empty where the plugin needs something: policy refuses it.
    #[error("{reference} may not be installed: {reason}")]
    Refused {
        /// `namespace:name@version`.
        reference: String,
        /// What refused it.
        reason: String,
    },
    /// Not installed in the workspace (uninstall).
    #[error("install of {0} not found")]
    NotInstalled(String),
    /// The registry failed or refused (not found, yanked…).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The install steps over one mode's stores.
pub struct Installer<'a> {
    /// Platform caps and defaults every install is bounded by.
    pub platform: &'a PlatformConfig,
    /// Organization policies.
    pub policies: &'a dyn PolicyStore,
    /// The installs.
    pub installs: &'a dyn InstallStore,
    /// The audit log.
    pub audit: &'a dyn AuditSink,
    /// The registry, for the vetting gate of registry candidates.
    pub registry: Option<&'a Registry>,
}

impl Installer<'_> {
    /// Installs `candidate` in `acting`'s workspace, replacing an earlier install of the
    /// same reference, and audits it (or its refusal).
    pub async fn install(
        &self,
        acting: &Acting,
        candidate: &Candidate,
        accepted: WorkspaceGrant,
    ) -> Result<InstallRecord, InstallError> {
        let org = self.policies.org_policy(acting).await?;
        let previous = self.stored(acting, candidate).await?;
        self.install_under(acting, candidate, accepted, &org, previous)
            .await
    }

    /// The stored install of `candidate` when its component, manifest and policy inputs
    /// are those it was computed from; else a new install, as [`Installer::install`].
    pub async fn ensure(
        &self,
        acting: &Acting,
        candidate: &Candidate,
        accepted: WorkspaceGrant,
    ) -> Result<InstallRecord, InstallError> {
        let org = self.policies.org_policy(acting).await?;
        let previous = self.stored(acting, candidate).await?;
        if let Some(stored) = &previous
            && stored.component_digest == candidate.component_digest
            && stored.manifest_digest == sha256_hex(candidate.manifest_text.as_bytes())
            && stored.policy_digest == self.policy_digest(&org, &accepted)
        {
            return Ok(stored.clone());
        }
        self.install_under(acting, candidate, accepted, &org, previous)
            .await
    }

    async fn stored(
        &self,
        acting: &Acting,
        candidate: &Candidate,
    ) -> Result<Option<InstallRecord>, StoreError> {
        self.installs
            .get(&acting.workspace_id, &candidate.reference)
            .await
    }

    /// Removes the install of `reference`, audited.
    pub async fn uninstall(&self, acting: &Acting, reference: &str) -> Result<(), InstallError> {
        if !self
            .installs
            .remove(&acting.workspace_id, reference)
            .await?
        {
            return Err(InstallError::NotInstalled(reference.to_owned()));
        }
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::PluginUninstall,
            install_subject(reference),
            serde_json::json!({}),
        );
        self.audit.append(&acting.workspace_id, event).await?;
        Ok(())
    }

    async fn install_under(
        &self,
        acting: &Acting,
        candidate: &Candidate,
        accepted: WorkspaceGrant,
        org: &OrgPolicy,
        previous: Option<InstallRecord>,
    ) -> Result<InstallRecord, InstallError> {
        let manifest = &candidate.manifest;
        self.vetting_gate(acting, candidate, org).await?;
        let explanation = effective_grant(manifest, self.platform, org, &accepted);
        let Some(grant) = explanation.grant else {
            let reason = explanation.refused.unwrap_or_default();
            let event = AuditEvent::new(
                &acting.actor,
                AuditAction::PluginInstallRefused,
                install_subject(&candidate.reference),
                serde_json::json!({ "version": manifest.plugin.version.to_string(), "reason": reason }),
            );
            self.audit.append(&acting.workspace_id, event).await?;
            return Err(InstallError::Refused {
                reference: candidate.display(),
                reason,
            });
        };
        let record = InstallRecord {
            reference: candidate.reference.clone(),
            version: manifest.plugin.version.to_string(),
            component_digest: candidate.component_digest.clone(),
            manifest_digest: sha256_hex(candidate.manifest_text.as_bytes()),
            policy_digest: self.policy_digest(org, &accepted),
            accepted,
            grant,
            installed_by: acting.actor.clone(),
            installed_at: now_ms(),
        };
        self.installs.put(&acting.workspace_id, &record).await?;
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::PluginInstall,
            install_subject(&record.reference),
            serde_json::json!({
                "version": record.version,
                "digest": record.component_digest,
                "previous_digest": previous.map(|p| p.component_digest),
                "grant": record.grant,
            }),
        );
        self.audit.append(&acting.workspace_id, event).await?;
        Ok(record)
    }

    /// Passes when the candidate needs no review or has been approved; otherwise makes
    /// (or finds) the organization's review request, audits it and refuses.
    async fn vetting_gate(
        &self,
        acting: &Acting,
        candidate: &Candidate,
        org: &OrgPolicy,
    ) -> Result<(), InstallError> {
        let Some(version) = &candidate.registry_version else {
            return Ok(());
        };
        if !org.require_vetting
            || org
                .trusted_publishers
                .contains(&candidate.manifest.plugin.publisher)
        {
            return Ok(());
        }
        let registry = self.registry.ok_or_else(|| {
            StoreError("a registry package is installed without the registry".into())
        })?;
        if registry.is_vetted(&org.name, version).await? {
            return Ok(());
        }
        let request = registry
            .request_vetting(&org.name, &acting.workspace_name, version, &acting.actor)
            .await?;
        let detail =
            serde_json::to_value(&request).map_err(|e| StoreError::new("vetting request", e))?;
        let event = AuditEvent::new(
            &acting.actor,
            AuditAction::VettingRequest,
            vetting_subject(&org.name, request.id),
            detail,
        );
        self.audit.append(&acting.workspace_id, event).await?;
        match request.status {
            VettingStatus::Approved => Ok(()),
            _ => Err(InstallError::VettingPending {
                reference: candidate.display(),
                organization: org.name.clone(),
                request: request.id,
            }),
        }
    }

    /// What the grant depends on besides the manifest: platform caps, organization
    /// policy and what the workspace accepts.
    fn policy_digest(&self, org: &OrgPolicy, accepted: &WorkspaceGrant) -> String {
        let inputs = serde_json::json!([self.platform, org, accepted]);
        sha256_hex(inputs.to_string().as_bytes())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hyyve_policy::AuditLog;

    use super::*;
    use crate::FileAudit;
    use crate::files::{FileInstalls, PolicyFiles};

    const MANIFEST: &str = r#"
[plugin]
id = "acme:probe"
version = "1.2.0"
kind = "node"
publisher = "acme"
description = "probe"

[capabilities]
secrets = ["API_KEY"]
"#;

    struct Local {
        dir: tempfile::TempDir,
        log: Arc<AuditLog>,
    }

    struct Stores {
        policy: PolicyFiles,
        installs: FileInstalls,
        audit: FileAudit,
    }

    impl Stores {
        fn installer(&self) -> Installer<'_> {
            Installer {
                platform: &self.policy.platform,
                policies: &self.policy,
                installs: &self.installs,
                audit: &self.audit,
                registry: None,
            }
        }
    }

    impl Local {
        /// The stores as they are now (the policy files re-read).
        fn stores(&self) -> Stores {
            Stores {
                policy: PolicyFiles::load(self.dir.path()).unwrap(),
                installs: FileInstalls::new(self.dir.path()),
                audit: FileAudit(self.log.clone()),
            }
        }

        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let log = Arc::new(AuditLog::open(dir.path().join("audit.jsonl")).unwrap());
            Self { dir, log }
        }

        fn org(&self, toml: &str) {
            let policy = self.dir.path().join("policy");
            std::fs::create_dir_all(&policy).unwrap();
            std::fs::write(policy.join("org.toml"), toml).unwrap();
        }

        fn actions(&self) -> Vec<String> {
            let entries = self.log.entries().unwrap();
            entries.into_iter().map(|e| e.event.action).collect()
        }

        async fn install(&self, text: &str, ensure: bool) -> Result<InstallRecord, InstallError> {
            let stores = self.stores();
            let installer = stores.installer();
            let candidate = candidate(text);
            match ensure {
                true => {
                    installer
                        .ensure(&acting(), &candidate, WorkspaceGrant::default())
                        .await
                }
                false => {
                    installer
                        .install(&acting(), &candidate, WorkspaceGrant::default())
                        .await
                }
            }
        }

        async fn uninstall(&self, reference: &str) -> Result<(), InstallError> {
            let stores = self.stores();
            let installer = stores.installer();
            installer.uninstall(&acting(), reference).await
        }
    }

    fn acting() -> Acting {
        Acting {
            org_id: "local".into(),
            org_name: "default".into(),
            workspace_id: "default".into(),
            workspace_name: "default".into(),
            actor: "ada".into(),
        }
    }

    fn candidate(text: &str) -> Candidate {
        Candidate {
            reference: "acme:probe".into(),
            manifest: Manifest::parse(text).unwrap(),
            manifest_text: text.into(),
            component_digest: format!("sha256:{}", "ab".repeat(32)),
            registry_version: None,
        }
    }

    #[tokio::test]
    async fn an_install_is_stored_with_its_grant_and_audited_once_while_unchanged() {
        let local = Local::new();
        let record = local.install(MANIFEST, true).await.unwrap();
        assert_eq!(record.version, "1.2.0");
        assert!(
            record.grant.secrets.contains("API_KEY"),
            "{:?}",
            record.grant
        );
        assert_eq!(record.installed_by, "ada");
        // Unchanged: the stored install, nothing audited again.
        assert_eq!(local.install(MANIFEST, true).await.unwrap(), record);
        assert_eq!(local.actions(), ["plugin.install"]);
        let entry = &local.log.entries().unwrap()[0].event;
        assert_eq!(entry.subject, "workspace/default/install/acme:probe");
        assert_eq!(
            entry.detail["grant"]["secrets"],
            serde_json::json!(["API_KEY"])
        );
        // A changed manifest is a new install naming the one it replaces.
        let changed = MANIFEST.replace("probe\"\n\n", "probe, v2\"\n\n");
        local.install(&changed, true).await.unwrap();
        assert_eq!(local.actions(), ["plugin.install", "plugin.install"]);
        // An explicit install always installs.
        local.install(&changed, false).await.unwrap();
        assert_eq!(local.actions().len(), 3);
        let last = local.log.entries().unwrap().pop().unwrap().event;
        assert_eq!(last.detail["previous_digest"], record.component_digest);
    }

    #[tokio::test]
    async fn a_policy_change_recomputes_the_grant() {
        let local = Local::new();
        let record = local.install(MANIFEST, true).await.unwrap();
        assert!(record.grant.secrets.contains("API_KEY"));
        local.org("name = \"acme-org\"\nsecrets = false\n");
        let narrowed = local.install(MANIFEST, true).await.unwrap();
        assert!(narrowed.grant.secrets.is_empty(), "{:?}", narrowed.grant);
        assert_ne!(narrowed.policy_digest, record.policy_digest);
    }

    #[tokio::test]
    async fn a_refusal_is_audited_and_stores_nothing() {
        let local = Local::new();
        local.org("name = \"acme-org\"\npublishers = [\"hyyve\"]\n");
        let Err(InstallError::Refused { reference, reason }) = local.install(MANIFEST, true).await
        else {
            panic!("a publisher outside the allow list installed")
        };
        assert_eq!(reference, "acme:probe@1.2.0");
        assert!(reason.contains("acme"), "{reason}");
        assert_eq!(local.actions(), ["plugin.install_refused"]);
        let installs = FileInstalls::new(local.dir.path());
        assert_eq!(installs.list("default").await.unwrap(), []);
    }

    #[tokio::test]
    async fn providers_and_channels_install_under_the_same_grant_rules() {
        for kind in ["provider", "channel"] {
            let local = Local::new();
            let manifest = MANIFEST.replace("kind = \"node\"", &format!("kind = \"{kind}\""));
            let record = local.install(&manifest, false).await.unwrap();
            assert_eq!(record.reference, "acme:probe", "{kind}");
            assert_eq!(local.actions(), ["plugin.install"], "{kind}");
        }
    }

    #[tokio::test]
    async fn uninstall_is_audited_and_a_second_one_is_not_found() {
        let local = Local::new();
        local.install(MANIFEST, false).await.unwrap();
        local.uninstall("acme:probe").await.unwrap();
        assert_eq!(local.actions(), ["plugin.install", "plugin.uninstall"]);
        let again = local.uninstall("acme:probe").await;
        assert!(
            matches!(again, Err(InstallError::NotInstalled(_))),
            "{again:?}"
        );
        assert_eq!(local.actions().len(), 2);
    }

    #[tokio::test]
    async fn an_install_file_of_the_earlier_format_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("installs/default/acme-probe.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let grant = serde_json::to_value(Grant::default()).unwrap();
        let old = serde_json::json!({
            "reference": "acme:probe", "plugin": "acme:probe@1.0.0",
            "component_digest": "ab".repeat(32), "manifest_digest": "m", "policy_digest": "p",
            "grant": grant, "explanation": {},
        });
        std::fs::write(&path, old.to_string()).unwrap();
        let stored = FileInstalls::new(dir.path())
            .get("default", "acme:probe")
            .await
            .unwrap()
            .expect("read");
        assert_eq!(
            stored.component_digest,
            format!("sha256:{}", "ab".repeat(32))
        );
    }
}
