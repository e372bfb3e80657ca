//! The host's SQL database, one per deployment: a SQLite file by default, PostgreSQL when
//! the URL says so. This crate owns every migration (`migrations/<backend>/`: registry,
//! tenancy, runs, audit, metering, KV, secrets); the registry, the platform core and the
//! server each take the pool it opens and never open one themselves.

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Which SQL engine holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file: the embedded default.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The URL names neither SQLite nor PostgreSQL.
    #[error("database URL `{0}`: use sqlite://<file> or postgres://…")]
    Url(String),
    /// Connecting or a statement failed.
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed (or the database holds one this build does not know).
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// An open, migrated database.
#[derive(Clone)]
pub struct Database {
    /// The connection pool every store shares.
    pub pool: AnyPool,
    /// Which engine it is.
    pub backend: Backend,
}

impl Database {
    /// Opens the database at `url` (`sqlite://<file>` or `postgres://…`), creating a
    /// SQLite file if missing, and applies the migrations of `migrations/<backend>/`.
    pub async fn open(url: &str) -> Result<Self, DatabaseError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DatabaseError::Url(url.to_owned()));
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
            // A ping before each use is a second round trip for every query; a SQLite
            // file has no network in between to drop the connection, a PostgreSQL
            // server has.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // sqlx's default is 5 s. A commit's fsync can take longer than that
                    // on a busy disk (a build writing back gigabytes), and every other
                    // writer then waits behind it: waiting longer is right, failing the
                    // request is not.
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
                SQLITE_MIGRATIONS.run(&pool).await?;
            }
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_connections_wait_for_a_slow_writer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        let db = Database::open(&url).await.expect("opens");
        assert_eq!(db.backend, Backend::Sqlite);
        // Every connection of the pool, not only the first: hold two at once.
        let mut first = db.pool.acquire().await.expect("first");
        let mut second = db.pool.acquire().await.expect("second");
        for conn in [&mut first, &mut second] {
            let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
                .fetch_one(&mut **conn)
                .await
                .expect("reads the pragma");
            assert_eq!(timeout, 30_000);
        }
    }

    #[tokio::test]
    async fn a_url_of_another_engine_is_refused_by_name() {
        let Err(e) = Database::open("mysql://localhost/x").await else {
            panic!("mysql opened")
        };
        assert!(matches!(e, DatabaseError::Url(_)), "{e}");
        assert!(e.to_string().contains("mysql://localhost/x"), "{e}");
    }
}
