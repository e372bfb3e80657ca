//! Database URLs for tests: a fresh SQLite file, or a fresh schema on the PostgreSQL
//! server of `DATABASE_URL`, so tests never see each other's rows.

use std::path::Path;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Db {
    /// A SQLite file in a temporary folder.
    Sqlite,
    /// A fresh schema on the server of `DATABASE_URL` (default: the local test server).
    Postgres,
}

impl Db {
    /// A URL for a database nobody else uses; SQLite files go in `dir`.
    pub async fn fresh_url(self, dir: &Path) -> String {
        match self {
            Db::Sqlite => format!("sqlite://{}", dir.join("hyyve.db").display()),
            Db::Postgres => postgres_url().await,
        }
    }
}

async fn postgres_url() -> String {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    assert!(
        base.starts_with("postgres"),
        "DATABASE_URL must name a PostgreSQL server, got {base}"
    );
    let schema = format!("hyyve_test_{}", unique_suffix());
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {base}: {e}"));
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&pool)
        .await
        .expect("create schema");
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

fn unique_suffix() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}{:x}{n}", std::process::id())
}
