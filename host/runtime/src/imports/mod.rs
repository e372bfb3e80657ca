//! Implementations of the hyyve host interfaces a plugin may import.

pub(crate) mod http;
pub mod kv;
mod log;
mod secrets;
mod usage;

use crate::bindings::types;
use crate::state::HostState;

// `types` holds only type definitions; its host trait has no methods.
impl types::Host for HostState {}
