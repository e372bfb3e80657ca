//! `hyyve`: run workflows, build and inspect plugins, publish and install, serve. This file
//! parses arguments and dispatches; each command group is a module of the `hyyve` crate
//! with its own arguments and `exec`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hyyve::audit_cli::AuditArgs;
use hyyve::local::Local;
use hyyve::models_cli::{self, ModelsCommand};
use hyyve::plugin_cli::PluginCommand;
use hyyve::policy_cli::{PolicyCommand, SchemaKind};
use hyyve::registry_cli::{self, KeysCommand, RegistryCommand, VetCommand};
use hyyve::run_cli::RunArgs;
use hyyve::secrets_cli::SecretsCommand;
use hyyve::serve_cli::{self, AdminCommand};
use hyyve::{audit_cli, plugin_cli, policy_cli, run_cli, secrets_cli};

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
    Run(RunArgs),
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
    Audit(AuditArgs),
    /// Workspace secrets (values are read from stdin and never printed).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Model aliases: names nodes call, bound to provider installs and models.
    #[command(subcommand)]
    Models(ModelsCommand),
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

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let local = Local {
        data_dir: cli.data_dir,
        workspace: cli.workspace,
        actor: cli.actor,
    };
    let done = ExitCode::SUCCESS;
    match cli.command {
        Command::Run(args) => run_cli::exec(&local, args).await,
        Command::Plugin(command) => plugin_cli::exec(&local, command).await,
        Command::Schema { of } => policy_cli::schema(of),
        Command::Policy(command) => policy_cli::exec(&local, command),
        Command::Audit(args) => audit_cli::exec(&local, args),
        Command::Secrets(command) => secrets_cli::exec(&local, command).await,
        Command::Models(command) => models_cli::exec(&local, command).await,
        Command::Keys(command) => registry_cli::keys(&local.data_dir, command).map(|()| done),
        Command::Registry(command) => registry_cli::registry_exec(&local, command)
            .await
            .map(|()| done),
        Command::Install { reference } => registry_cli::install_command(&local, &reference).await,
        Command::Vet(command) => registry_cli::vet_exec(&local, command).await.map(|()| done),
        Command::Serve { listen } => {
            let config = local.runtime_config()?;
            serve_cli::serve(&local.data_dir, config, listen).await?;
            Ok(done)
        }
        Command::Admin(command) => {
            serve_cli::admin(&local.data_dir, command).await?;
            Ok(done)
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
