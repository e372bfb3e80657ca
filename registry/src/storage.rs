//! Where the registry keeps things: metadata in SQL (SQLite file by default, PostgreSQL
//! when the URL says so), blobs content-addressed in an object store (a local folder by
//! default, S3-compatible by URL).

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as BlobPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::error::RegistryError;
use crate::package::sha256;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Which SQL database holds the metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the embedded default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Opens the database at `url` (`sqlite://<file>` or `postgres://…`), creating a SQLite
/// file if missing, and applies the migrations of `migrations/<backend>/`.
pub async fn open_database(url: &str) -> Result<(AnyPool, Backend), RegistryError> {
    sqlx::any::install_default_drivers();
    let backend = if url.starts_with("sqlite:") {
        Backend::Sqlite
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Backend::Postgres
    } else {
        return Err(RegistryError::Config(format!(
            "database URL `{url}`: use sqlite://<file> or postgres://…"
        )));
    };
    let url = match backend {
        Backend::Sqlite if !url.contains("mode=") => {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}mode=rwc")
        }
        _ => url.to_owned(),
    };
    let pool = AnyPoolOptions::new()
        .max_connections(match backend {
            // One writer at a time anyway; a few readers beside it under WAL.
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        })
        // A ping before each use is a second round trip for every query; a SQLite file
        // has no network in between to drop the connection, a PostgreSQL server has.
        .test_before_acquire(backend == Backend::Postgres)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                // sqlx's default is 5 s. A commit's fsync can take longer than that on a
                // busy disk (a build writing back gigabytes), and every other writer then
                // waits behind it: waiting longer is right, failing the request is not.
                if backend == Backend::Sqlite {
                    sqlx::query("PRAGMA busy_timeout = 30000")
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await?;
    match backend {
        Backend::Sqlite => {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            SQLITE_MIGRATIONS
                .run(&pool)
                .await
                .map_err(|e| RegistryError::Config(format!("migrations: {e}")))?;
        }
        Backend::Postgres => POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| RegistryError::Config(format!("migrations: {e}")))?,
    }
    Ok((pool, backend))
}

/// Content-addressed blobs: `sha256/<hex>` holds the bytes whose digest that is.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
}

impl Blobs {
    /// A local folder (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, RegistryError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| RegistryError::Config(format!("blob folder {}: {e}", dir.display())))?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new_with_prefix(dir)?),
        })
    }

    /// A store named by URL: `file:///…`, `s3://bucket/prefix` (credentials and endpoint
    /// from the `AWS_*` environment variables, e.g. `AWS_ENDPOINT` for MinIO), `gs://`,
    /// `az://`… as `object_store` understands them.
    pub fn from_url(url: &str) -> Result<Self, RegistryError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| RegistryError::Config(format!("blob store URL `{url}`: {e}")))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| RegistryError::Config(format!("blob store URL `{url}`")))?;
            return Self::local(&dir);
        }
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)?;
        Ok(Self {
            store: Arc::new(object_store::prefix::PrefixStore::new(store, prefix)),
        })
    }

    fn path(digest: &str) -> BlobPath {
        BlobPath::from(format!(
            "sha256/{}",
            digest.strip_prefix("sha256:").unwrap_or(digest)
        ))
    }

    /// Stores `bytes` under their digest; storing the same bytes twice is one blob.
    pub async fn put(&self, bytes: &[u8]) -> Result<String, RegistryError> {
        let digest = sha256(bytes);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .store
            .put_opts(
                &Self::path(&digest),
                PutPayload::from(bytes.to_vec()),
                options,
            )
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(digest),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of `digest`, checked against it: a blob changed at rest is an error.
    pub async fn get(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let bytes = match self.store.get(&Self::path(digest)).await {
            Ok(result) => result.bytes().await?.to_vec(),
            Err(object_store::Error::NotFound { .. }) => {
                return Err(RegistryError::NotFound(format!("blob {digest}")));
            }
            Err(e) => return Err(e.into()),
        };
        if sha256(&bytes) != digest {
            return Err(RegistryError::DigestMismatch {
                file: format!("blob {digest}"),
            });
        }
        Ok(bytes)
    }

    /// Removes a blob (missing is fine).
    pub async fn delete(&self, digest: &str) -> Result<(), RegistryError> {
        match self.store.delete(&Self::path(digest)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Number of blobs stored (for checks that nothing was left behind).
    pub async fn count(&self) -> Result<usize, RegistryError> {
        use futures_util::TryStreamExt as _;
        let all: Vec<_> = self.store.list(None).try_collect().await?;
        Ok(all.len())
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_connections_wait_for_a_slow_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let (pool, backend) = open_database(&url).await.expect("opens");
        assert_eq!(backend, Backend::Sqlite);
        // Every connection of the pool, not only the first: hold two at once.
        let mut first = pool.acquire().await.expect("first");
        let mut second = pool.acquire().await.expect("second");
        for conn in [&mut first, &mut second] {
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .expect("reads the pragma");
            assert_eq!(timeout, 30_000);
        }
    }
}
