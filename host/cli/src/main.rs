//! `hyyve`: run workflows, build and inspect plugins, benchmark the host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hyyve::build;
use hyyve::report;
use hyyve::resolve::Resolver;
use hyyve_runtime::{Runtime, RuntimeConfig};
use hyyve_workflow::{Executor, ExecutorConfig, ResultCache, RunStatus, Workflow};

#[derive(Parser)]
#[command(
    name = "hyyve",
    version,
    about = "WebAssembly plugin host for node-based builders"
)]
struct Cli {
    /// Where compiled components and cached node results are kept.
    #[arg(long, global = true, default_value = "data", env = "HYYVE_DATA_DIR")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow file; exits non-zero when the run fails.
    Run {
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
    },
    /// Build and inspect plugins.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print the JSON Schema of the workflow format.
    Schema,
    /// Run the benchmarks of BENCHMARKS.md (build with --release).
    Bench {
        /// Calls measured for the instance benchmark.
        #[arg(long, default_value_t = 5000)]
        iterations: usize,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Build a plugin crate into a component (cargo build --target wasm32-wasip2 --release).
    Build {
        /// The plugin crate's folder.
        dir: PathBuf,
        /// Cargo's target directory (default: cargo's own choice for that crate).
        #[arg(long)]
        target_dir: Option<PathBuf>,
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

fn runtime(data_dir: &std::path::Path) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: Some(data_dir.join("compiled")),
        ..RuntimeConfig::default()
    })?))
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            workflow,
            input,
            json,
            no_cache,
        } => {
            let text = std::fs::read_to_string(&workflow)
                .with_context(|| format!("reading {}", workflow.display()))?;
            let spec = Workflow::from_json(&text)?;
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not JSON")?;
            let runtime = runtime(&cli.data_dir)?;
            let base = workflow.parent().map(PathBuf::from).unwrap_or_default();
            let plugins = Resolver::new(runtime.clone(), build::repo_root())
                .resolve(&spec.plugin_refs(), &base)
                .await?;
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
            let mut executor = Executor::new(runtime, ExecutorConfig::default());
            if !no_cache {
                executor = executor
                    .with_cache(Arc::new(ResultCache::on_disk(cli.data_dir.join("results"))));
            }
            let run_id = format!("run-{}", std::process::id());
            let report = executor.run(plan, &run_id, &input).await?;
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
        Command::Plugin(PluginCommand::Build { dir, target_dir }) => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("no folder {}", dir.display()))?;
            let target_dir = target_dir.map(std::path::absolute).transpose()?;
            let wasm = build::build_crate(&dir, target_dir.as_deref())?;
            println!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { file, json }) => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let info = runtime(&cli.data_dir)?.inspect(&bytes).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print!("{}", report::render_inspect(&info));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            print!("{}", hyyve_workflow::workflow_json_schema());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { iterations } => {
            print!(
                "{}",
                hyyve::bench::run_all(&build::repo_root(), iterations).await?
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
