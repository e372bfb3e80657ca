//! Local mode's installs: the platform core's [`Installer`] over the data directory's
//! stores ([`hyyve_platform::files`]), and the manifest of a bare component file.

use std::path::Path;
use std::sync::Arc;

use hyyve_platform::files::{FileInstalls, PolicyFiles};
use hyyve_platform::{Acting, Candidate, FileAudit, InstallRecord, InstallStore, Installer};
use hyyve_policy::{Manifest, PluginId, PluginInfo, PluginKind};
use hyyve_registry::Registry;
use hyyve_runtime::{Digest, NodePlugin};
use hyyve_workflow::Installed;

/// The data directory's install, policy and audit stores, for one workspace and actor.
pub struct LocalInstalls {
    /// Who acts where.
    pub acting: Acting,
    /// The policy layers.
    pub policy: PolicyFiles,
    installs: FileInstalls,
    audit: FileAudit,
}

impl LocalInstalls {
    /// The stores of `data_dir`; a policy changed since it was last seen is audited.
    pub async fn open(
        data_dir: &Path,
        mut acting: Acting,
        audit: FileAudit,
    ) -> anyhow::Result<Self> {
        let policy = PolicyFiles::load(data_dir)?;
        acting.org_name = policy.org.name.clone();
        policy.audit_change(&audit, &acting).await?;
        Ok(Self {
            acting,
            policy,
            installs: FileInstalls::new(data_dir),
            audit,
        })
    }

    /// The core's install steps over these stores; `registry` gates registry packages.
    pub fn installer<'a>(&'a self, registry: Option<&'a Registry>) -> Installer<'a> {
        Installer {
            platform: &self.policy.platform,
            policies: &self.policy,
            installs: &self.installs,
            audit: &self.audit,
            registry,
        }
    }

    /// The stored install of `reference`, if any.
    pub async fn get(&self, reference: &str) -> anyhow::Result<Option<InstallRecord>> {
        Ok(self
            .installs
            .get(&self.acting.workspace_id, reference)
            .await?)
    }

    /// The install of a loaded plugin under `reference` (reused while component,
    /// manifest and policy are unchanged), ready to run. `registry_version`: the
    /// registry version it is, when it is one.
    pub async fn ensure(
        &self,
        registry: Option<&Registry>,
        reference: &str,
        plugin: Arc<NodePlugin>,
        manifest: &Manifest,
        manifest_text: &str,
        registry_version: Option<hyyve_registry::VersionRecord>,
    ) -> anyhow::Result<Installed> {
        let record = self
            .ensure_record(
                registry,
                reference,
                plugin.digest(),
                manifest,
                manifest_text,
                registry_version,
            )
            .await?;
        Ok(Installed {
            id: reference.to_owned(),
            plugin,
            grant: Arc::new(record.grant),
        })
    }

    /// The install record of the component `digest` under `reference`, of any kind.
    pub async fn ensure_record(
        &self,
        registry: Option<&Registry>,
        reference: &str,
        digest: Digest,
        manifest: &Manifest,
        manifest_text: &str,
        registry_version: Option<hyyve_registry::VersionRecord>,
    ) -> anyhow::Result<InstallRecord> {
        let candidate = Candidate {
            reference: reference.to_owned(),
            manifest: manifest.clone(),
            manifest_text: manifest_text.to_owned(),
            component_digest: digest.to_string(),
            registry_version,
        };
        let accepted = self.policy.workspace_grant(&manifest.plugin.id)?;
        Ok(self
            .installer(registry)
            .ensure(&self.acting, &candidate, accepted)
            .await?)
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
