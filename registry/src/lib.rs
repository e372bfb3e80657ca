//! The plugin registry and marketplace: the [`package`] format, publisher and
//! organization [`signing`], publish validation ([`Registry::publish`]: every check before
//! anything is stored), metadata in SQLite or PostgreSQL and content-addressed blobs
//! ([`storage`]), listings, search and payouts ([`marketplace`]), organization review
//! ([`vetting`]) and version resolution for installs ([`Registry::resolve`]).

mod error;
pub mod marketplace;
pub mod package;
mod registry;
pub mod signing;
pub mod storage;
mod validate;
pub mod vetting;

pub use error::RegistryError;
pub use registry::{
    DEFAULT_MAX_PACKAGE_BYTES, KeyAuthorization, OwnerKind, RegisteredKey, Registry,
    RegistryConfig, VersionRecord, YANK_EFFECT,
};
pub use validate::check_component;
