//! `hyyve serve` and `hyyve admin`: the multi-tenant HTTP API over the data dir's
//! registry database (SQLite by default, `DATABASE_URL` for PostgreSQL).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use hyyve_runtime::{Runtime, RuntimeConfig};
use hyyve_secrets::SecretKey;
use hyyve_server::kv::SqlKv;
use hyyve_server::runs::SchedulerConfig;
use hyyve_server::secrets::SqlSecretStore;
use hyyve_server::tenancy::{Bootstrap, Plan};
use hyyve_server::{AppState, ServerConfig, Tenancy, roles};

/// `hyyve admin`.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Make an organization, its first workspace and owner, and print the owner's API key
    /// (shown once).
    Bootstrap {
        /// Organization name (also its registry account for vetting).
        #[arg(long, default_value = "default")]
        org: String,
        /// Workspace name.
        #[arg(long, default_value = "default")]
        workspace: String,
        /// The first owner's name.
        #[arg(long, default_value = "owner")]
        owner: String,
        /// free, pro, team or enterprise.
        #[arg(long, default_value = "free")]
        plan: String,
    },
    /// Print the permission matrix (docs/permissions.md).
    Permissions,
}

/// The server over the data dir, its worker pool started (open runs resumed). Plugin KV
/// and secrets live in the server's database, so every process on it (with the same
/// `HYYVE_SECRET_KEY`) shares them.
async fn state(data_dir: &Path, runtime: RuntimeConfig) -> anyhow::Result<AppState> {
    let db = crate::registry_cli::open_database(data_dir).await?;
    let key = SecretKey::from_env_or_file(&data_dir.join("secret.key"))?;
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        kv: Arc::new(SqlKv::new(db.pool.clone())),
        secrets: Arc::new(SqlSecretStore::new(db.pool.clone(), key)),
        ..runtime
    })?);
    let registry = crate::registry_cli::registry_on(data_dir, &db, runtime)?;
    let config = ServerConfig {
        max_package_bytes: crate::registry_cli::max_package_bytes() as usize,
        platform: hyyve_platform::files::PolicyFiles::load(data_dir)?.platform,
        scheduler: SchedulerConfig {
            workers: workers()?,
            instance: instance(data_dir)?,
            ..SchedulerConfig::default()
        },
    };
    Ok(AppState::start(db.pool, Arc::new(registry), config).await?)
}

/// This data dir's server instance name (`<data>/instance`, made on first use): a server
/// restarted on the same data dir resumes the runs it held at once; servers on other
/// data dirs sharing the database wait for those runs' leases to lapse.
fn instance(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("instance");
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_owned()),
        Ok(_) => anyhow::bail!("{} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let made = hyyve_server::ids::new_id("inst");
            std::fs::create_dir_all(data_dir)?;
            std::fs::write(&path, &made).with_context(|| format!("writing {}", path.display()))?;
            Ok(made)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// `HYYVE_WORKERS`: runs executing at once (default 16).
fn workers() -> anyhow::Result<usize> {
    match std::env::var("HYYVE_WORKERS") {
        Ok(text) => text
            .parse()
            .map_err(|_| anyhow::anyhow!("HYYVE_WORKERS=`{text}`: expected a number")),
        Err(_) => Ok(SchedulerConfig::default().workers),
    }
}

fn print_key(made: &Bootstrap) {
    println!("owner API key (shown once, keep it): {}", made.key.secret);
}

/// `hyyve admin …`.
pub async fn admin(data_dir: &Path, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::Bootstrap {
            org,
            workspace,
            owner,
            plan,
        } => {
            let plan: Plan = serde_json::from_value(serde_json::Value::String(plan.clone()))
                .map_err(|_| anyhow::anyhow!("plan `{plan}`: free, pro, team or enterprise"))?;
            let db = crate::registry_cli::open_database(data_dir).await?;
            let made = Tenancy::new(db.pool)
                .bootstrap(&org, &workspace, &owner, plan)
                .await?;
            println!(
                "organization {org} ({}), workspace {workspace} ({})",
                made.org_id, made.workspace_id
            );
            print_key(&made);
        }
        AdminCommand::Permissions => print!("{}", roles::matrix_markdown()),
    }
    Ok(())
}

/// Serves until Ctrl-C. A fresh database is set up first ([`crate::first_run`]): the
/// owner key, the installed first-party plugins and the example workflow are printed.
pub async fn serve(
    data_dir: &Path,
    runtime: RuntimeConfig,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let state = state(data_dir, runtime).await?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    if state.tenancy.is_empty().await? {
        let made = crate::first_run::seed(data_dir, &state).await?;
        println!("fresh database: organization `default`, workspace `default` created");
        print_key(&made.bootstrap);
        println!("installed: {}", made.installed.join(", "));
        println!("example workflow: {}", made.workflow_id);
        println!(
            "run it: curl -s -X POST {url}/v1/workflows/{}/runs -H 'authorization: Bearer {}' \\\n  \
             -H 'content-type: application/json' -d \"{{\\\"input\\\": $(cat '{}')}}\"",
            made.workflow_id,
            made.bootstrap.key.secret,
            made.example_input.display()
        );
    }
    println!("hyyve API on {url} (OpenAPI at {url}/openapi.json)");
    hyyve_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
