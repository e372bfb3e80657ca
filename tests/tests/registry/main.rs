//! The registry against real storage: SQLite files and the PostgreSQL server of
//! `DATABASE_URL`, local blob folders, components built from source.

mod bad_input;
mod flows;
mod kinds;
mod schema_parity;

use hyyve_database::Database;
use hyyve_registry::signing::KeyPair;
use hyyve_registry::storage::Blobs;
use hyyve_registry::{Registry, RegistryConfig, RegistryError};
pub use hyyve_tests::databases::Db;
pub use hyyve_tests::packages::{manifest, package, sign, signed_guest};
use hyyve_tests::runtime;

/// A registry with publisher `acme` (owning namespace `acme`), publisher `mallory` and
/// organization `bigcorp` registered.
pub struct Fixture {
    pub registry: Registry,
    /// The database the registry is on.
    pub db: sqlx::AnyPool,
    pub acme: KeyPair,
    pub mallory: KeyPair,
    pub bigcorp: KeyPair,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn new(db: Db) -> Self {
        Self::with_limit(db, hyyve_registry::DEFAULT_MAX_PACKAGE_BYTES).await
    }

    pub async fn with_limit(db: Db, max_package_bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database_url = db.fresh_url(dir.path()).await;
        let db = Database::open(&database_url).await.expect("database opens");
        let registry = Registry::new(
            db.pool.clone(),
            RegistryConfig {
                blobs: Blobs::local(&dir.path().join("blobs")).unwrap(),
                max_package_bytes,
            },
            runtime(),
        );
        let acme = KeyPair::generate("acme").unwrap();
        let mallory = KeyPair::generate("mallory").unwrap();
        let bigcorp = KeyPair::generate("bigcorp").unwrap();
        registry
            .add_publisher("acme", &acme.public_file(), "test-admin")
            .await
            .unwrap();
        registry
            .add_publisher("mallory", &mallory.public_file(), "test-admin")
            .await
            .unwrap();
        registry
            .add_organization("bigcorp", &bigcorp.public_file(), "test-admin")
            .await
            .unwrap();
        Self {
            registry,
            db: db.pool,
            acme,
            mallory,
            bigcorp,
            _dir: dir,
        }
    }

    /// Rows and blobs stored, to show a rejected publish left nothing.
    pub async fn stored(&self) -> (usize, usize) {
        let page = self.registry.search(&Default::default()).await.unwrap();
        let mut versions = 0;
        for l in &page.listings {
            versions += self.registry.versions(&l.id).await.unwrap().len();
        }
        (versions, self.registry.blobs().count().await.unwrap())
    }
}

/// A signed package of the text plugin as `id@version`.
pub fn signed(id: &str, version: &str, key: &KeyPair, extra: &str) -> Vec<u8> {
    signed_guest("hyyve-plugin-text", id, version, key, extra)
}

/// The error code of a failed operation.
pub fn code<T: std::fmt::Debug>(result: Result<T, RegistryError>) -> &'static str {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.code(),
    }
}
