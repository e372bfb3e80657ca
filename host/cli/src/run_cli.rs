//! `hyyve run`: a workflow file through the local runtime. Plugins are resolved (local
//! crates and files built, registry references installed), the workflow validated, the
//! run input checked, then executed with the result cache; denials are audited and the
//! marketplace usage of registry plugins recorded.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use hyyve_workflow::{Executor, ExecutorConfig, PluginSet, ResultCache, RunStatus, Workflow};

use hyyve_platform::FileAudit;
use hyyve_platform::audit::{NodeDenials, audit_denials};
use hyyve_platform::usage::UsageTally;

use crate::local::Local;
use crate::resolve::Resolver;
use crate::{models_cli, registry_cli, report};

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
    let resolved = Resolver::new(runtime.clone())
        .resolve(&from_files, &base)
        .await?;
    let audit = FileAudit(local.audit_log()?);
    let installs = Arc::new(local.installs(audit.0.clone()).await?);
    let database = match from_registry.is_empty() {
        true => None,
        false => Some(registry_cli::open_database(&local.data_dir).await?),
    };
    let registry = database
        .as_ref()
        .map(|db| registry_cli::registry_on(&local.data_dir, db, runtime.clone()))
        .transpose()?;
    let mut plugins = PluginSet::new();
    if let Some(registry) = &registry {
        for reference in &from_registry {
            let (r, version) =
                registry_cli::load_installed(registry, &runtime, &installs, reference).await?;
            let installed = installs
                .ensure(
                    Some(registry),
                    reference,
                    r.plugin,
                    &r.manifest,
                    &r.manifest_text,
                    Some(version),
                )
                .await?;
            plugins.insert((*reference).to_owned(), installed);
        }
    }
    for (reference, r) in resolved {
        let installed = installs
            .ensure(
                None,
                &reference,
                r.plugin,
                &r.manifest,
                &r.manifest_text,
                None,
            )
            .await?;
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
    let routes = models_cli::routes(local, runtime.clone(), installs.clone(), Path::new("."));
    let mut executor = Executor::new(runtime, config).with_models(Arc::new(routes));
    if !no_cache {
        executor = executor.with_cache(Arc::new(ResultCache::on_disk(
            local.data_dir.join("results"),
        )));
    }
    let run_id = format!("run-{}", std::process::id());
    let report = executor.run(plan, &run_id, &input).await?;
    let mut usage = UsageTally::default();
    let today = hyyve_platform::usage::today();
    for node in &report.nodes {
        let plugin = spec
            .nodes
            .iter()
            .find(|n| n.id == node.id)
            .map(|n| n.plugin.as_str())
            .unwrap_or_default();
        let denials = NodeDenials {
            plugin,
            run_id: &run_id,
            node_id: &node.id,
            attempt: i64::from(node.attempts),
            denials: &node.metering.denials,
        };
        audit_denials(&audit, &local.workspace, denials).await?;
        if node.status == hyyve_workflow::NodeStatus::Succeeded && from_registry.contains(&plugin) {
            usage.add(plugin, &local.workspace, &today);
        }
    }
    if let Some(db) = &database
        && !usage.is_empty()
    {
        usage.record(&mut *db.pool.acquire().await?).await?;
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
