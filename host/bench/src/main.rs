//! `hyyve-bench`: the benchmarks of BENCHMARKS.md. They measure and print; they assert no
//! timings. A separate binary so that the product binary carries neither the load
//! generator nor the native baseline (`fibo-native`).
//!
//! Build with the product binary beside it: `cargo build --release -p hyyve -p hyyve-bench`
//! (the server figures start `hyyve serve` from the same folder).

mod capabilities;
mod hostile;
mod instance;
mod models;
mod models_sse;
mod registry;
mod server;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "hyyve-bench",
    about = "The benchmarks of BENCHMARKS.md (build with --release)"
)]
struct Args {
    /// Calls measured for the instance benchmark.
    #[arg(long, default_value_t = 5000)]
    iterations: usize,
    /// Run only the capability-policy benchmarks (calls per figure: --iterations / 10).
    #[arg(long)]
    capabilities: bool,
    /// Run only the registry benchmarks (publish-to-installable, search).
    #[arg(long)]
    registry: bool,
    /// Run only the hostile-plugin benchmark (RSS and a neighbour's latency while
    /// 16 plugins hoard each kind of host resource).
    #[arg(long)]
    hostile: bool,
    /// Run only the model-call benchmarks (llm-chat through the host against the same
    /// call made raw to a loopback fake; first streamed delta), --iterations / 10 calls.
    #[arg(long)]
    models: bool,
    /// Listings published for the search benchmark.
    #[arg(long, default_value_t = 10_000)]
    listings: usize,
    /// Run only the server benchmarks (runs/s through the HTTP API, latency,
    /// fairness under a flood), against a `hyyve serve` child process.
    #[arg(long)]
    server: bool,
    /// Runs of the --server throughput figure.
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    /// Runs the flooding workspace starts in the --server fairness figure.
    #[arg(long, default_value_t = 10_000)]
    flood: usize,
    /// Concurrent HTTP clients of --server.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Database for --registry or --server (default: a fresh SQLite file; for
    /// PostgreSQL, --server works in a fresh schema it drops at the end).
    #[arg(long)]
    database_url: Option<String>,
}

/// A binary built into the same folder as this one (`hyyve`, `fibo-native`).
fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?
        .parent()
        .context("executable has no folder")?
        .join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it beside hyyve-bench with \
         `cargo build --release -p hyyve -p hyyve-bench`",
        path.display()
    );
    Ok(path)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let repo = hyyve::build::repo_root();
    if args.server {
        let config = server::BenchConfig {
            database_url: args.database_url,
            runs: args.runs,
            flood: args.flood,
            concurrency: args.concurrency,
        };
        return server::run(&repo, config).await;
    }
    if args.registry {
        return registry::run(&repo, args.database_url, args.listings).await;
    }
    if args.models {
        print!("{}", models::run((args.iterations / 10).max(10)).await?);
        return Ok(());
    }
    if args.hostile {
        print!("{}", hostile::run(&repo).await?);
        return Ok(());
    }
    if !args.capabilities {
        print!("{}", instance::run_all(&repo, args.iterations).await?);
    }
    print!(
        "{}",
        capabilities::run(&repo, (args.iterations / 10).max(10)).await?
    );
    Ok(())
}
