//! `hyyve policy explain` and `hyyve schema`: what a plugin would be granted under the
//! data dir's policy files, and the JSON Schemas of the workflow and manifest formats.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use hyyve_policy::Manifest;

use crate::local::Local;
use hyyve_platform::files::PolicyFiles;

/// Which JSON Schema `hyyve schema` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SchemaKind {
    /// The workflow JSON format.
    Workflow,
    /// The plugin manifest, `hyyve.toml`.
    Manifest,
}

/// `hyyve policy …`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Per capability: requested, cut by which layer, granted.
    Explain {
        /// `hyyve:<name>` or a `hyyve.toml` file.
        plugin: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `hyyve:<name>` names an embedded first-party manifest; anything else is a file.
fn read_manifest(plugin: &str) -> anyhow::Result<Manifest> {
    if let Some(embedded) = crate::resolve::first_party(plugin) {
        return Manifest::parse(embedded.manifest).with_context(|| plugin.to_owned());
    }
    let path = PathBuf::from(plugin);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::parse(&text).with_context(|| path.display().to_string())
}

/// Runs one `hyyve policy` command: exit 1 when the policy refuses the plugin.
pub fn exec(local: &Local, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Explain { plugin, json } = command;
    let manifest = read_manifest(&plugin)?;
    let explanation = PolicyFiles::load(&local.data_dir)?.explain(&manifest)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(if explanation.refused.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Prints the JSON Schema of `of`.
pub fn schema(of: SchemaKind) -> anyhow::Result<ExitCode> {
    match of {
        SchemaKind::Workflow => print!("{}", hyyve_workflow::workflow_json_schema()),
        SchemaKind::Manifest => println!(
            "{}",
            serde_json::to_string_pretty(&Manifest::json_schema())?
        ),
    }
    Ok(ExitCode::SUCCESS)
}
