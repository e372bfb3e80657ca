//! `hyyve`: run workflows, build and inspect plugins, publish and install, serve.

use hyyve_policy::AuditAction;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use hyyve::build;
use hyyve::install::{Installer, PolicyFiles};
use hyyve::registry_cli::{self, KeysCommand, RegistryCommand, VetCommand};
use hyyve::report;
use hyyve::resolve::Resolver;
use hyyve::serve_cli::{self, AdminCommand};
use hyyve_policy::{AuditEvent, AuditLog, Manifest};
use hyyve_runtime::{Runtime, RuntimeConfig};
use hyyve_secrets::{FileSecretStore, SecretKey, SecretStore, SecretValue};
use hyyve_workflow::{Executor, ExecutorConfig, PluginSet, ResultCache, RunStatus, Workflow};

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
    /// The workspace runs, installs and secrets belong to.
    #[arg(long, global = true, default_value = "local", env = "HYYVE_WORKSPACE")]
    workspace: String,
    /// Who is acting, for the audit log.
    #[arg(long, global = true, env = "USER", default_value = "cli")]
    actor: String,
    /// Log lines on stderr as text, or as one JSON object each (with the fields of
    /// their spans: request, run and node ids) for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "HYYVE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    /// Print the JSON Schema of the workflow format or of `hyyve.toml`.
    Schema {
        /// Which schema.
        #[arg(value_enum, default_value = "workflow")]
        of: SchemaKind,
    },
    /// Explain a plugin's effective grant under the policy in `<data>/policy/`.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Read and check the audit log.
    Audit {
        /// Only check the hash chain and print the number of entries.
        #[arg(long)]
        verify: bool,
        /// Print entries as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Workspace secrets (values are read from stdin and never printed).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Make and endorse signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The marketplace: search, show, yank; accounts and keys; payouts.
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Install `namespace:name@range` from the registry into the workspace, pinned by
    /// digest (exits 3 while the organization's review is pending).
    Install {
        /// `namespace:name@range`, e.g. `acme:weather@^1.2`.
        reference: String,
    },
    /// The organization's review queue for third-party packages.
    #[command(subcommand)]
    Vet(VetCommand),
    /// Serve the multi-tenant HTTP API (a fresh database gets a default workspace and
    /// prints its owner key).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "HYYVE_LISTEN")]
        listen: std::net::SocketAddr,
    },
    /// Tenancy administration: bootstrap an organization, print the permission matrix.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SchemaKind {
    /// The workflow JSON format.
    Workflow,
    /// The plugin manifest, `hyyve.toml`.
    Manifest,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Per capability: requested, cut by which layer, granted.
    Explain {
        /// `hyyve:<name>` or a `hyyve.toml` file.
        plugin: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Set a secret; the value is read from stdin.
    Set {
        /// Secret name, e.g. `OPENAI_API_KEY`.
        name: String,
    },
    /// List secret names of the workspace.
    List,
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
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

fn runtime(data_dir: &std::path::Path) -> anyhow::Result<Arc<Runtime>> {
    Ok(Arc::new(Runtime::new(runtime_config(data_dir)?)?))
}

/// The data dir's compiled-component cache, secrets and scratch root.
fn runtime_config(data_dir: &std::path::Path) -> anyhow::Result<RuntimeConfig> {
    Ok(RuntimeConfig {
        cache_dir: Some(data_dir.join("compiled")),
        secrets: secret_store(data_dir)?,
        scratch_root: Some(data_dir.join("scratch")),
        ..RuntimeConfig::default()
    })
}

/// Secrets sealed in `<data>/secrets.json` with `HYYVE_SECRET_KEY`, or with a key file
/// `<data>/secret.key` created on first use.
fn secret_store(data_dir: &std::path::Path) -> anyhow::Result<Arc<dyn SecretStore>> {
    let key = SecretKey::from_env_or_file(&data_dir.join("secret.key"))?;
    Ok(Arc::new(FileSecretStore::open(
        data_dir.join("secrets.json"),
        key,
    )?))
}

fn audit_log(data_dir: &std::path::Path) -> anyhow::Result<Arc<AuditLog>> {
    Ok(Arc::new(AuditLog::open(data_dir.join("audit.jsonl"))?))
}

/// `hyyve:<name>` names a first-party manifest; anything else is a manifest file.
fn read_manifest(plugin: &str) -> anyhow::Result<Manifest> {
    let path = match plugin.strip_prefix("hyyve:") {
        Some(name) => build::repo_root()
            .join("plugins")
            .join(name)
            .join("hyyve.toml"),
        None => PathBuf::from(plugin),
    };
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Manifest::parse(&text).with_context(|| path.display().to_string())
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
            let (from_registry, local): (Vec<&str>, Vec<&str>) = spec
                .plugin_refs()
                .into_iter()
                .partition(|r| registry_cli::is_registry_reference(r));
            let mut resolved = Resolver::new(runtime.clone(), build::repo_root())
                .resolve(&local, &base)
                .await?;
            let audit = audit_log(&cli.data_dir)?;
            let installer =
                Installer::new(&cli.data_dir, &cli.workspace, &cli.actor, audit.clone())?;
            let registry = match from_registry.is_empty() {
                true => None,
                false => Some(registry_cli::open(&cli.data_dir, runtime.clone()).await?),
            };
            if let Some(registry) = &registry {
                for reference in &from_registry {
                    let r = registry_cli::load_installed(registry, &runtime, &installer, reference)
                        .await?;
                    resolved.insert((*reference).to_owned(), r);
                }
            }
            let mut plugins = PluginSet::new();
            for (reference, r) in resolved {
                let installed =
                    installer.install(&reference, r.plugin, &r.manifest, &r.manifest_text)?;
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
                workspace: cli.workspace.clone(),
                ..ExecutorConfig::default()
            };
            let mut executor = Executor::new(runtime, config);
            if !no_cache {
                executor = executor
                    .with_cache(Arc::new(ResultCache::on_disk(cli.data_dir.join("results"))));
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
                    let subject =
                        format!("workspace/{}/run/{run_id}/node/{}", cli.workspace, node.id);
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
                registry_cli::record_usage(registry, &cli.workspace, &invocations).await?;
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
        Command::Plugin(PluginCommand::Build { dir, target_dir }) => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("no folder {}", dir.display()))?;
            let target_dir = target_dir.map(std::path::absolute).transpose()?;
            let wasm = build::build_crate(&dir, target_dir.as_deref())?;
            println!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Package {
            dir,
            component,
            output,
        }) => {
            let path = registry_cli::package(&dir, component.as_deref(), output)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Sign { package, key }) => {
            let key_id = registry_cli::sign(&package, &key)?;
            println!("signed {} with {key_id}", package.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Publish { package }) => {
            let bytes = std::fs::read(&package)
                .with_context(|| format!("reading {}", package.display()))?;
            let registry = registry_cli::open(&cli.data_dir, runtime(&cli.data_dir)?).await?;
            let record = registry
                .publish(&bytes)
                .await
                .map_err(registry_cli::coded)?;
            audit_log(&cli.data_dir)?.append(AuditEvent {
                actor: cli.actor.clone(),
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
        Command::Keys(command) => {
            registry_cli::keys(&cli.data_dir, command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry(command) => {
            let registry = registry_cli::open(&cli.data_dir, runtime(&cli.data_dir)?).await?;
            let audit = audit_log(&cli.data_dir)?;
            registry_cli::registry_command(&registry, &audit, &cli.actor, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Install { reference } => {
            let runtime = runtime(&cli.data_dir)?;
            let registry = registry_cli::open(&cli.data_dir, runtime.clone()).await?;
            let audit = audit_log(&cli.data_dir)?;
            let installer =
                Installer::new(&cli.data_dir, &cli.workspace, &cli.actor, audit.clone())?;
            let installed = registry_cli::install(
                &registry,
                &runtime,
                &installer,
                &audit,
                &cli.workspace,
                &cli.actor,
                &reference,
            )
            .await?;
            Ok(match installed {
                Some(version) => {
                    println!(
                        "installed {} in workspace {} pinned to {}",
                        version.reference(),
                        cli.workspace,
                        version.component_digest
                    );
                    ExitCode::SUCCESS
                }
                None => {
                    println!(
                        "{reference} waits for review by organization {} (hyyve vet list)",
                        installer.org().name
                    );
                    ExitCode::from(3)
                }
            })
        }
        Command::Vet(command) => {
            let registry = registry_cli::open(&cli.data_dir, runtime(&cli.data_dir)?).await?;
            let audit = audit_log(&cli.data_dir)?;
            let org = PolicyFiles::load(&cli.data_dir)?.org.name;
            registry_cli::vet_command(&registry, &audit, &org, &cli.actor, command).await?;
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
        Command::Schema { of } => {
            match of {
                SchemaKind::Workflow => print!("{}", hyyve_workflow::workflow_json_schema()),
                SchemaKind::Manifest => println!(
                    "{}",
                    serde_json::to_string_pretty(&Manifest::json_schema())?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(PolicyCommand::Explain { plugin, json }) => {
            let manifest = read_manifest(&plugin)?;
            let explanation = PolicyFiles::load(&cli.data_dir)?.explain(&manifest)?;
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
        Command::Audit { verify, json } => {
            let log = audit_log(&cli.data_dir)?;
            if verify {
                println!("audit log intact: {} entries", log.verify()?);
                return Ok(ExitCode::SUCCESS);
            }
            for e in log.entries()? {
                if json {
                    println!("{}", serde_json::to_string(&e)?);
                } else {
                    println!(
                        "{:>5} {} {} {} {} {}",
                        e.seq, e.at, e.event.actor, e.event.action, e.event.subject, e.event.detail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Secrets(command) => {
            let store = secret_store(&cli.data_dir)?;
            let audit = audit_log(&cli.data_dir)?;
            let ws = &cli.workspace;
            match command {
                SecretsCommand::Set { name } => {
                    hyyve_policy::check_secret_name(&name).map_err(anyhow::Error::msg)?;
                    let mut value = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut value)?;
                    let value = value.trim_end_matches(['\n', '\r']).to_owned();
                    hyyve_secrets::check_value(&value).map_err(anyhow::Error::msg)?;
                    store.put(ws, &name, &SecretValue::new(value)).await?;
                    audit.append(AuditEvent {
                        actor: cli.actor.clone(),
                        action: AuditAction::SecretSet.as_str().into(),
                        subject: format!("workspace/{ws}/secret/{name}"),
                        detail: serde_json::Value::Null,
                    })?;
                }
                SecretsCommand::List => {
                    for name in store.names(ws).await? {
                        println!("{name}");
                    }
                }
                SecretsCommand::Delete { name } => {
                    if !store.delete(ws, &name).await? {
                        anyhow::bail!("workspace `{ws}` has no secret `{name}`");
                    }
                    audit.append(AuditEvent {
                        actor: cli.actor.clone(),
                        action: AuditAction::SecretDelete.as_str().into(),
                        subject: format!("workspace/{ws}/secret/{name}"),
                        detail: serde_json::Value::Null,
                    })?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { listen } => {
            serve_cli::serve(
                &cli.data_dir,
                &build::repo_root(),
                runtime_config(&cli.data_dir)?,
                listen,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(command) => {
            serve_cli::admin(&cli.data_dir, runtime(&cli.data_dir)?, command).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG` (default: warnings and errors).
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
