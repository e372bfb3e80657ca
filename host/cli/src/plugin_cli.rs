//! `hyyve plugin`: build, package, sign, publish and inspect plugins.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use hyyve_policy::{AuditAction, AuditEvent};

use crate::local::Local;
use crate::{build, registry_cli, report};

/// `hyyve plugin …`.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Build a plugin crate into a component (cargo build --target wasm32-wasip2 --release).
    Build {
        /// The plugin crate's folder.
        dir: PathBuf,
        /// Cargo's target directory (default: cargo's own choice for that crate).
        #[arg(long)]
        target_dir: Option<PathBuf>,
    },
    /// Package a plugin folder (its `hyyve.toml`, component and listing files) into one
    /// file; builds the crate unless `--component` is given.
    Package {
        /// The plugin's folder (holding `hyyve.toml`).
        dir: PathBuf,
        /// A component already built.
        #[arg(long)]
        component: Option<PathBuf>,
        /// Output file (default `<namespace>-<name>-<version>.hyyvepkg`).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Sign a package with the publisher's key (in place).
    Sign {
        /// The package file.
        package: PathBuf,
        /// The publisher's key file.
        #[arg(long)]
        key: PathBuf,
    },
    /// Validate and publish a signed package to the registry.
    Publish {
        /// The package file.
        package: PathBuf,
    },
    /// Show a component's world, imports, exports and node types with their schemas.
    Inspect {
        /// The .wasm file.
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs one `hyyve plugin` command.
pub async fn exec(local: &Local, command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Build { dir, target_dir } => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("no folder {}", dir.display()))?;
            let target_dir = target_dir.map(std::path::absolute).transpose()?;
            let wasm = build::build_crate(&dir, target_dir.as_deref())?;
            println!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Package {
            dir,
            component,
            output,
        } => {
            let path = registry_cli::package(&dir, component.as_deref(), output)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Sign { package, key } => {
            let key_id = registry_cli::sign(&package, &key)?;
            println!("signed {} with {key_id}", package.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Publish { package } => {
            let bytes = std::fs::read(&package)
                .with_context(|| format!("reading {}", package.display()))?;
            let registry = registry_cli::open(&local.data_dir, local.runtime()?).await?;
            let record = registry
                .publish(&bytes)
                .await
                .map_err(registry_cli::coded)?;
            local.audit_log()?.append(AuditEvent {
                actor: local.actor.clone(),
                action: AuditAction::PackagePublish.as_str().into(),
                subject: format!("plugin/{}", record.reference()),
                detail: serde_json::json!({ "component_digest": record.component_digest }),
            })?;
            println!(
                "published {} {}",
                record.reference(),
                record.component_digest
            );
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Inspect { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let info = local.runtime()?.inspect(&bytes).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", report::render_inspect(&info));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
