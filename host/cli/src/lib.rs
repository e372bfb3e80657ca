//! The `hyyve` command's building blocks: building plugins, resolving plugin references,
//! printing reports, serving, and one module per command group (`*_cli`, each with
//! its arguments and `exec`). `main.rs` only parses arguments and dispatches.

pub mod audit_cli;
pub mod build;
pub mod first_party;
pub mod first_run;
pub mod install;
pub mod local;
pub mod models_cli;
pub mod plugin_cli;
pub mod policy_cli;
pub mod registry_cli;
pub mod report;
pub mod resolve;
pub mod run_cli;
pub mod secrets_cli;
pub mod serve_cli;
