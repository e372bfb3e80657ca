//! Capability policy: what a plugin asks for (its `hyyve.toml` [`Manifest`]), what the
//! platform, the organization and the workspace allow ([`layers`]), and the resulting
//! [`Grant`] of one install with an [`Explanation`] of every cut.
//!
//! The [`AuditLog`] records installs, grants, policy changes and denials.
//!
//! Nothing here touches wasm: the runtime enforces a [`Grant`], this crate computes it.

pub mod audit;
mod error;
mod grant;
pub mod layers;
mod manifest;
mod pattern;

pub use audit::{AuditAction, AuditEntry, AuditError, AuditEvent, AuditLog};
pub use error::{ManifestError, PolicyError};
pub use grant::{
    Cut, ExplainedCapability, Explanation, Grant, GrantedLimits, HttpGrant, Layer, effective_grant,
};
pub use layers::{OrgPolicy, PlatformConfig, WorkspaceGrant};
pub use manifest::{
    ANY_MODEL_ALIAS, Capabilities, HttpDestination, HttpRequest, Listing, Manifest, PluginId,
    PluginInfo, PluginKind, Pricing, RequestedLimits, check_name, check_secret_name,
};
pub use pattern::{HostPattern, HttpRule, METHODS, Scheme, non_public_range};
