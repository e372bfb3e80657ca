//! Publish-time checks of the component itself: it loads, implements the world of the
//! declared kind, and imports nothing the manifest does not account for.

use hyyve_policy::{Manifest, PluginKind};
use hyyve_runtime::{ComponentInfo, LoadError, PluginWorld, Runtime};

use crate::error::RegistryError;

/// Imports that only work with a capability, and how the manifest requests it.
/// Sockets have no capability: no manifest can account for them.
const CAPABILITY_IMPORTS: [(&str, &str); 6] = [
    ("wasi:http/outgoing-handler@", "http"),
    ("hyyve:plugin/models@", "models"),
    ("hyyve:plugin/kv@", "kv"),
    ("hyyve:plugin/secrets@", "secrets"),
    ("wasi:filesystem/", "scratch"),
    ("wasi:sockets/", "sockets (the host grants none)"),
];

/// Interface families the host links for plugins; anything else cannot be satisfied.
const PROVIDED: [&str; 2] = ["wasi:", "hyyve:plugin/"];

fn requested(manifest: &Manifest, capability: &str) -> bool {
    let c = &manifest.capabilities;
    match capability {
        "http" => !c.http.allow.is_empty(),
        "kv" => c.kv_bytes > 0,
        "secrets" => !c.secrets.is_empty(),
        "scratch" => c.scratch_bytes > 0,
        // Only nodes call models: a provider calling providers would have no end.
        "models" => manifest.plugin.kind == PluginKind::Node && !c.models.is_empty(),
        _ => false,
    }
}

/// Checks a component against its manifest, running nothing but its `describe` export
/// (under the runtime's limits).
pub async fn check_component(
    runtime: &Runtime,
    manifest: &Manifest,
    bytes: &[u8],
) -> Result<ComponentInfo, RegistryError> {
    let info = runtime.inspect(bytes).await.map_err(|e| match e {
        LoadError::NotWasm | LoadError::CoreModule | LoadError::InvalidComponent(_) => {
            RegistryError::NotAComponent(e.to_string())
        }
        LoadError::UnsatisfiedImport(import) => RegistryError::UnsupportedImport(import),
        LoadError::WrongWorld { found, .. } => RegistryError::WrongWorld {
            declared: kind_name(manifest.plugin.kind).into(),
            found,
        },
        LoadError::Read { .. } | LoadError::Describe(_) => {
            RegistryError::ComponentRejected(e.to_string())
        }
    })?;
    let matches = matches!(
        (manifest.plugin.kind, &info.world),
        (PluginKind::Node, PluginWorld::Node)
            | (PluginKind::Provider, PluginWorld::Provider)
            | (PluginKind::Channel, PluginWorld::Channel)
    );
    if !matches {
        return Err(RegistryError::WrongWorld {
            declared: kind_name(manifest.plugin.kind).into(),
            found: info.world.describe(),
        });
    }
    for import in &info.imports {
        if !PROVIDED.iter().any(|p| import.starts_with(p)) {
            return Err(RegistryError::UnsupportedImport(import.clone()));
        }
        for (prefix, capability) in CAPABILITY_IMPORTS {
            if import.starts_with(prefix) && !requested(manifest, capability) {
                return Err(RegistryError::UndeclaredImport {
                    import: import.clone(),
                    capability: capability.into(),
                });
            }
        }
    }
    Ok(info)
}

fn kind_name(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Node => "node",
        PluginKind::Provider => "provider",
        PluginKind::Channel => "channel",
    }
}
