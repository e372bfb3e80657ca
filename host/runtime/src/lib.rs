//! The sandboxed component host.
//!
//! One process-wide [`Runtime`] owns the wasmtime engine (pooling allocator, fuel, epoch
//! ticker) and the on-disk cache of precompiled components. [`Runtime::load_node_plugin`]
//! validates and links a component once; [`Runtime::invoke`] runs one node in a fresh
//! store and instance, under the invocation's [`Limits`], and always returns a
//! [`MeteringRecord`] beside the result. Every capability is checked against the
//! install's [`hyyve_policy::Grant`] when used; refusals are [`Denial`]s on that record.

mod bindings;
mod cache;
mod channel;
mod denial;
mod engine;
mod error;
mod imports;
mod inspect;
mod invoke;
mod limits;
mod memory;
mod metering;
mod plugin;
mod provider;
mod schema;
mod state;

pub use channel::{ChannelInfo, ChannelPlugin};
pub use denial::{Denial, DenialKind};
pub use engine::{Runtime, RuntimeConfig};
pub use error::{InvocationError, LoadError, RuntimeError};
pub use imports::http::{ResolveFuture, Resolver, StaticResolver, SystemResolver};
pub use imports::kv::{InMemoryKv, KvError, KvStore, MAX_KEY_BYTES, MAX_VALUE_BYTES, entry_bytes};
pub use imports::log::{MAX_MESSAGE_BYTES, WORKSPACE_LOG_BURST, WORKSPACE_LOG_LINES_PER_SECOND};
pub use imports::models::{
    MAX_MODEL_CALLS, MAX_RETRY_AFTER, ModelRoutes, ModelTarget, RouteError, RouteFuture,
};
pub use imports::progress::{MAX_DELTA_BYTES, MAX_DELTAS, MAX_PROGRESS_BYTES, ProgressSink};
pub use imports::scratch::{
    ENTRY_METADATA_BYTES, MAX_DIRECTORY_STREAMS, MAX_OPEN_DESCRIPTORS, SCRATCH_GUEST_PATH,
};
pub use imports::usage::{
    MAX_QUANTITY_PER_REPORT, MAX_UNIT_NAME, MAX_UNITS, RESERVED_UNITS, UNIT_NAME_PATTERN,
    reserved_unit, valid_unit_name,
};
pub use inspect::{ComponentInfo, PluginWorld};
pub use invoke::{InvocationIds, InvocationOutcome, InvocationRequest};
pub use limits::{HOST_ENTRY_MAX_BYTES, Limits};
pub use metering::{MeteringRecord, ModelCall};
pub use plugin::{Digest, LoadedPlugin, NodePlugin, NodeType, Port};
pub use provider::{ModelInfo, ProviderInfo, ProviderPlugin};
pub use schema::{Schema, Violation};
pub use state::InstallScope;
