//! Implementations of the host interfaces a plugin may import, each checked against the
//! install's grant.

pub(crate) mod http;
pub mod kv;
pub(crate) mod log;
pub(crate) mod scratch;
pub(crate) mod secrets;
pub(crate) mod usage;

use crate::bindings::types;
use crate::state::HostState;

// `types` holds only type definitions; its host trait has no methods.
impl types::Host for HostState {}
