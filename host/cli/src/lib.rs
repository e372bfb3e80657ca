//! The `hyyve` command's building blocks: building plugins, resolving plugin references,
//! printing reports, serving. `main.rs` only parses arguments.

pub mod build;
pub mod first_run;
pub mod install;
pub mod registry_cli;
pub mod report;
pub mod resolve;
pub mod serve_cli;
