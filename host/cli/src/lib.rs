//! The `hyyve` command's building blocks: building plugins, resolving plugin references,
//! printing reports, benchmarks. `main.rs` only parses arguments.

pub mod bench;
pub mod bench_capabilities;
pub mod bench_hostile;
pub mod bench_registry;
pub mod bench_server;
pub mod build;
pub mod first_run;
pub mod install;
pub mod registry_cli;
pub mod report;
pub mod resolve;
pub mod serve_cli;
