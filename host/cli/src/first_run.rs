//! What a fresh `hyyve serve` sets up so a newcomer can run something at once: the
//! `default` organization and workspace with its owner key, the first-party plugins
//! built from `plugins/`, signed by the `hyyve` publisher key of the data dir and
//! published to the registry, installed in the workspace, and the example workflow
//! stored there.

use hyyve_policy::AuditAction;
use std::path::Path;

use anyhow::Context as _;
use hyyve_policy::WorkspaceGrant;
use hyyve_registry::signing::KeyPair;
use hyyve_registry::{KeyAuthorization, OwnerKind, Registry, RegistryError};
use hyyve_server::AppState;
use hyyve_server::tenancy::{Bootstrap, Plan};
use hyyve_workflow::Workflow;

use crate::{build, registry_cli};

/// The publisher of the first-party plugins.
const FIRST_PARTY_PUBLISHER: &str = "hyyve";

/// The workflow stored in the default workspace.
const EXAMPLE_WORKFLOW: &str = "examples/summarize-tickets.json";

/// What was set up.
pub struct FirstRun {
    /// The organization, workspace and owner key.
    pub bootstrap: Bootstrap,
    /// The plugins installed in the workspace (`hyyve:json`, …).
    pub installed: Vec<String>,
    /// The example workflow's id.
    pub workflow_id: String,
}

/// Sets up an empty server. The organization is on the enterprise plan: it is the
/// operator's own, and a quota on one's own machine only gets in the way.
pub async fn seed(data_dir: &Path, repo: &Path, state: &AppState) -> anyhow::Result<FirstRun> {
    let ids = publish_first_party(data_dir, repo, &state.registry).await?;
    let bootstrap = state
        .tenancy
        .bootstrap("default", "default", "owner", Plan::Enterprise)
        .await?;
    let principal = state
        .tenancy
        .authenticate(&bootstrap.key.secret)
        .await?
        .context("the owner key just made does not authenticate")?;
    for id in &ids {
        let install = state
            .installs
            .install(&principal, id, "*", WorkspaceGrant::default())
            .await
            .with_context(|| format!("installing {id}"))?;
        // Audited like an install through the API: the grant is what a security team
        // reviews.
        state
            .audit
            .record(
                &principal,
                AuditAction::PluginInstall,
                &format!("install/{id}"),
                install.audit_detail(),
            )
            .await?;
    }
    let path = repo.join(EXAMPLE_WORKFLOW);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let workflow: Workflow =
        serde_json::from_str(&text).with_context(|| path.display().to_string())?;
    state
        .runs
        .validate(&principal.workspace_id, &workflow)
        .await?;
    let stored = state
        .workflows
        .create(&principal.workspace_id, &workflow, &principal.key_name)
        .await?;
    Ok(FirstRun {
        bootstrap,
        installed: ids,
        workflow_id: stored.workflow_id,
    })
}

/// Builds every plugin under `plugins/`, and publishes each version the registry does not
/// have yet, signed by `<data>/keys/hyyve.key` (made, and its publisher registered, on
/// first use). The plugin ids.
async fn publish_first_party(
    data_dir: &Path,
    repo: &Path,
    registry: &Registry,
) -> anyhow::Result<Vec<String>> {
    let key = publisher_key(data_dir, registry).await?;
    let mut dirs: Vec<_> = std::fs::read_dir(repo.join("plugins"))
        .context("reading plugins/")?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("hyyve.toml").is_file())
        .collect();
    dirs.sort();
    let packages: Vec<String> = dirs
        .iter()
        .filter_map(|dir| dir.file_name()?.to_str())
        .map(|name| format!("hyyve-plugin-{name}"))
        .collect();
    let repo_owned = repo.to_owned();
    let built = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = packages.iter().map(String::as_str).collect();
        build::build_packages(&repo_owned, &names, &build::guest_target_dir(&repo_owned))
    })
    .await??;
    let mut ids = Vec::new();
    for (dir, component) in dirs.iter().zip(built) {
        let component = std::fs::read(&component)
            .with_context(|| format!("reading {}", component.display()))?;
        let (manifest, mut package) = registry_cli::package_dir(dir, component)?;
        registry_cli::sign_as_publisher(&mut package, &key)?;
        match registry.publish(&package.to_bytes()).await {
            Ok(_) | Err(RegistryError::VersionExists { .. }) => {}
            Err(e) => return Err(registry_cli::coded(e)),
        }
        ids.push(manifest.plugin.id.to_string());
    }
    Ok(ids)
}

/// The first-party publisher's key: the data dir's, else a new one registered with the
/// registry. When the registry already has the publisher (another data dir made it, or
/// `hyyve registry add-publisher` did) but this data dir has no key of it, the new key
/// is added to the account as the operator: whoever runs `serve` on this database
/// administers its registry anyway.
async fn publisher_key(data_dir: &Path, registry: &Registry) -> anyhow::Result<KeyPair> {
    let dir = data_dir.join("keys");
    let path = dir.join(format!("{FIRST_PARTY_PUBLISHER}.key"));
    if path.exists() {
        return Ok(KeyPair::load(&path)?);
    }
    let key = KeyPair::generate(FIRST_PARTY_PUBLISHER)?;
    match registry
        .add_publisher(FIRST_PARTY_PUBLISHER, &key.public_file(), "serve")
        .await
    {
        Ok(()) => {}
        Err(RegistryError::AlreadyRegistered(_)) => {
            registry
                .add_key(
                    OwnerKind::Publisher,
                    &key.public_file(),
                    KeyAuthorization::Admin("serve".into()),
                )
                .await
                .map_err(registry_cli::coded)?;
            eprintln!(
                "the registry's `{FIRST_PARTY_PUBLISHER}` publisher had no key in {}: added key {}",
                dir.display(),
                key.public().id()
            );
        }
        Err(e) => return Err(registry_cli::coded(e)),
    }
    key.save(&dir)?;
    Ok(key)
}
