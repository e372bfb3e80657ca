//! Marketplace usage, what creators' payouts are computed from: one succeeded invocation
//! of a registry plugin counts once, under (plugin, workspace id, UTC day), in
//! `usage_daily`. Failed attempts do not count; neither do first-party plugins run from
//! the binary or local files, which no creator is paid for.
//!
//! Both modes tally a run's invocations and add the tally in one go: the server inside
//! the transaction that stores the run's metering records (so a record stored twice is
//! counted once), local mode after `hyyve run`.

use std::collections::BTreeMap;

use sqlx::AnyConnection;

/// Invocations by (plugin, workspace id, day `YYYY-MM-DD`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UsageTally(BTreeMap<(String, String, String), i64>);

impl UsageTally {
    /// Counts one succeeded invocation.
    pub fn add(&mut self, plugin: &str, workspace: &str, day: &str) {
        *self
            .0
            .entry((plugin.to_owned(), workspace.to_owned(), day.to_owned()))
            .or_default() += 1;
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The counts, by (plugin, workspace, day).
    pub fn counts(&self) -> impl Iterator<Item = (&(String, String, String), &i64)> {
        self.0.iter()
    }

    /// Adds the tally to `usage_daily` on `db` (a connection, or a transaction's).
    pub async fn record(&self, db: &mut AnyConnection) -> Result<(), sqlx::Error> {
        for ((plugin, workspace, day), invocations) in &self.0 {
            sqlx::query(
                "INSERT INTO usage_daily (plugin_id, workspace, day, invocations) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (plugin_id, workspace, day) \
                 DO UPDATE SET invocations = usage_daily.invocations + $4",
            )
            .bind(plugin)
            .bind(workspace)
            .bind(day)
            .bind(*invocations)
            .execute(&mut *db)
            .await?;
        }
        Ok(())
    }
}

/// Today, UTC, as `YYYY-MM-DD`: the day usage is counted on.
pub fn today() -> String {
    hyyve_registry::marketplace::today()
}
