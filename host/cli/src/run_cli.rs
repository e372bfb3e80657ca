//! `hyyve run`: a workflow file through the local runtime. Plugins are resolved (local
//! crates and files built, registry references installed), the workflow validated, the
//! run input checked, then executed with the result cache; denials are audited and the
//! marketplace usage of registry plugins recorded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use hyyve_workflow::{Executor, ExecutorConfig, PluginSet, ResultCache, RunStatus, Workflow};

use crate::local::Local;
use crate::resolve::Resolver;
use crate::{registry_cli, report};

/// `hyyve run`'s arguments.
#[derive(clap::Args)]
pub struct RunArgs {
    /// The workflow JSON file.
    workflow: PathBuf,
    /// Run inputs, a JSON object.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Execute every node even when its cached result is still valid.
    #[arg(long)]
    no_cache: bool,
}

/// Runs the workflow: exit 0 when it succeeded, 1 when a node failed, 2 when it is
/// invalid (or its input is).
pub async fn exec(local: &Local, args: RunArgs) -> anyhow::Result<ExitCode> {
    let RunArgs {
        workflow,
        input,
        json,
        no_cache,
    } = args;
    let text = std::fs::read_to_string(&workflow)
        .with_context(|| format!("reading {}", workflow.display()))?;
    let spec = Workflow::from_json(&text)?;
    let input: serde_json::Value = serde_json::from_str(&input).context("--input is not JSON")?;
    let runtime = local.runtime()?;
    let base = workflow.parent().map(PathBuf::from).unwrap_or_default();
    let (from_registry, from_files): (Vec<&str>, Vec<&str>) = spec
        .plugin_refs()
        .into_iter()
        .partition(|r| registry_cli::is_registry_reference(r));
    let mut resolved = Resolver::new(runtime.clone())
        .resolve(&from_files, &base)
        .await?;
    let audit = local.audit_log()?;
    let installer = local.installer(audit.clone())?;
    let registry = match from_registry.is_empty() {
        true => None,
        false => Some(registry_cli::open(&local.data_dir, runtime.clone()).await?),
    };
    if let Some(registry) = &registry {
        for reference in &from_registry {
            let r = registry_cli::load_installed(registry, &runtime, &installer, reference).await?;
            resolved.insert((*reference).to_owned(), r);
        }
    }
    let mut plugins = PluginSet::new();
    for (reference, r) in resolved {
        let installed = installer.install(&reference, r.plugin, &r.manifest, &r.manifest_text)?;
        plugins.insert(reference, installed);
    }
    let plan = match hyyve_workflow::validate(&spec, &plugins) {
        Ok(plan) => Arc::new(plan),
        Err(errors) => {
            eprintln!("workflow {} is invalid:", workflow.display());
            for e in errors {
                eprintln!("  {e}");
            }
            return Ok(ExitCode::from(2));
        }
    };
    let config = ExecutorConfig {
        workspace: local.workspace.clone(),
        ..ExecutorConfig::default()
    };
    let mut executor = Executor::new(runtime, config);
    if !no_cache {
        executor = executor.with_cache(Arc::new(ResultCache::on_disk(
            local.data_dir.join("results"),
        )));
    }
    let run_id = format!("run-{}", std::process::id());
    let report = executor.run(plan, &run_id, &input).await?;
    for node in &report.nodes {
        let plugin = spec
            .nodes
            .iter()
            .find(|n| n.id == node.id)
            .map(|n| n.plugin.as_str());
        for denial in &node.metering.denials {
            let subject = format!(
                "workspace/{}/run/{run_id}/node/{}",
                local.workspace, node.id
            );
            audit.append(denial.audit_event(
                plugin.unwrap_or_default(),
                subject,
                i64::from(node.attempts),
            ))?;
        }
    }
    if let Some(registry) = &registry {
        let mut invocations = std::collections::HashMap::new();
        for node in &report.nodes {
            let plugin = spec
                .nodes
                .iter()
                .find(|n| n.id == node.id)
                .map(|n| &n.plugin);
            if let Some(plugin) = plugin
                && node.status == hyyve_workflow::NodeStatus::Succeeded
                && from_registry.contains(&plugin.as_str())
            {
                *invocations.entry(plugin.clone()).or_insert(0i64) += 1;
            }
        }
        registry_cli::record_usage(registry, &local.workspace, &invocations).await?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report::render_run(&report));
    }
    Ok(match report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
    })
}
