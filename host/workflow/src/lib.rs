//! Workflows: a documented JSON format, validation before anything runs, and execution of
//! each node in its own isolated instance, in topological order with independent branches
//! in parallel, with a per-node result cache for partial re-execution.

mod cache;
mod error;
mod execute;
mod format;
mod plan;
mod schema;

pub use cache::{CacheKey, ResultCache};
pub use error::ValidationError;
pub use execute::{
    Executor, ExecutorConfig, NodeFailure, NodeReport, NodeStatus, RunInputError, RunObserver,
    RunReport, RunRequest, RunStatus,
};
pub use format::{Edge, Endpoint, NodeSpec, Workflow};
pub use plan::{Installed, NodeTypes, Plan, PluginSet, validate, validate_types};
pub use schema::workflow_json_schema;
