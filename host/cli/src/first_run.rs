//! What a fresh `hyyve serve` sets up so a newcomer can run something at once: the
//! `default` organization and workspace with its owner key, the first-party plugins
//! embedded in the binary (`first_party`), signed by the `hyyve` publisher key of the data dir and
//! published to the registry, installed in the workspace, and the example workflow
//! stored there.

use std::path::Path;

use anyhow::Context as _;
use hyyve_policy::WorkspaceGrant;
use hyyve_registry::signing::KeyPair;
use hyyve_registry::{KeyAuthorization, OwnerKind, Registry, RegistryError};
use hyyve_server::AppState;
use hyyve_server::tenancy::{Bootstrap, Plan};
use hyyve_workflow::Workflow;

use crate::{first_party, registry_cli};

/// The publisher of the first-party plugins.
const FIRST_PARTY_PUBLISHER: &str = "hyyve";

/// The workflow stored in the default workspace.
const EXAMPLE_WORKFLOW: &str = include_str!("../../../examples/summarize-tickets.json");

/// An input for it, written to `<data>/examples/` for the printed curl command.
const EXAMPLE_INPUT: &str = include_str!("../../../examples/tickets-input.json");

/// What was set up.
pub struct FirstRun {
    /// The organization, workspace and owner key.
    pub bootstrap: Bootstrap,
    /// The plugins installed in the workspace (`hyyve:json`, …).
    pub installed: Vec<String>,
    /// The example workflow's id.
    pub workflow_id: String,
    /// An input file for it (absolute: the printed curl works from any directory).
    pub example_input: std::path::PathBuf,
}

/// Sets up an empty server. The organization is on the enterprise plan: it is the
/// operator's own, and a quota on one's own machine only gets in the way.
pub async fn seed(data_dir: &Path, state: &AppState) -> anyhow::Result<FirstRun> {
    let ids = publish_first_party(data_dir, &state.registry).await?;
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
        state
            .installs
            .install(&principal, id, "*", WorkspaceGrant::default())
            .await
            .with_context(|| format!("installing {id}"))?;
    }
    let workflow: Workflow =
        serde_json::from_str(EXAMPLE_WORKFLOW).context("the embedded example workflow")?;
    let example_input = data_dir.join("examples").join("tickets-input.json");
    std::fs::create_dir_all(data_dir.join("examples"))?;
    std::fs::write(&example_input, EXAMPLE_INPUT)
        .with_context(|| format!("writing {}", example_input.display()))?;
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
        example_input: std::path::absolute(&example_input)?,
    })
}

/// Publishes each embedded first-party plugin version the registry does not have yet,
/// signed by `<data>/keys/hyyve.key` (made, and its publisher registered, on first use).
/// The plugin ids.
async fn publish_first_party(data_dir: &Path, registry: &Registry) -> anyhow::Result<Vec<String>> {
    let key = publisher_key(data_dir, registry).await?;
    let mut ids = Vec::new();
    for plugin in first_party::PLUGINS {
        let (manifest, mut package) =
            registry_cli::package_parts(plugin.manifest, plugin.component.to_vec(), |name| {
                plugin
                    .listing_file(name)
                    .map(<[u8]>::to_vec)
                    .with_context(|| format!("plugin {}: no listing file {name}", plugin.name))
            })
            .with_context(|| format!("first-party plugin {}", plugin.name))?;
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
