//! Implementations of the host interfaces a plugin may import, each checked against the
//! install's grant.

pub(crate) mod http;
pub mod kv;
pub(crate) mod log;
pub(crate) mod models;
pub(crate) mod progress;
pub(crate) mod scratch;
pub(crate) mod secrets;
pub(crate) mod usage;

use crate::bindings::{llm, types};
use crate::state::HostState;

// `types` and `llm` hold only type definitions; their host traits have no methods.
impl types::Host for HostState {}
impl llm::Host for HostState {}
