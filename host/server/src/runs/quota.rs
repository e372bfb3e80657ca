//! Plan quotas: monthly invocations and fuel per organization, and how many runs of one
//! workspace execute at once. Usage is counted from the metering records (loaded once per
//! organization and month, then kept up to date in memory as records are written), plus
//! the invocations of runs accepted but not yet executed, so a burst of submissions
//! cannot overshoot the quota.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use sqlx::AnyPool;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::tenancy::Plan;

/// What a plan allows.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanLimits {
    /// Node invocations per calendar month (UTC); `None`: unlimited.
    pub monthly_invocations: Option<i64>,
    /// Fuel per calendar month; `None`: unlimited.
    pub monthly_fuel: Option<i64>,
    /// Runs of one workspace executing at once.
    pub concurrent_runs: usize,
}

/// The limits of `plan`.
pub fn limits(plan: Plan) -> PlanLimits {
    match plan {
        Plan::Free => PlanLimits {
            monthly_invocations: Some(10_000),
            monthly_fuel: Some(10_000_000_000),
            concurrent_runs: 2,
        },
        Plan::Pro => PlanLimits {
            monthly_invocations: Some(1_000_000),
            monthly_fuel: Some(1_000_000_000_000),
            concurrent_runs: 8,
        },
        Plan::Team => PlanLimits {
            monthly_invocations: Some(10_000_000),
            monthly_fuel: Some(10_000_000_000_000),
            concurrent_runs: 16,
        },
        Plan::Enterprise => PlanLimits {
            monthly_invocations: None,
            monthly_fuel: None,
            concurrent_runs: 64,
        },
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    invocations: i64,
    fuel: i64,
    reserved: i64,
}

/// Per-organization usage of the current month.
#[derive(Default)]
pub struct Ledger {
    months: Mutex<HashMap<(String, String), Usage>>,
}

/// `YYYY-MM` of a `YYYY-MM-DD` day.
fn month_of(day: &str) -> &str {
    day.get(..7).unwrap_or(day)
}

impl Ledger {
    async fn ensure_loaded(&self, db: &AnyPool, org: &str, month: &str) -> Result<(), ApiError> {
        let key = (org.to_owned(), month.to_owned());
        if self.months.lock().expect("not poisoned").contains_key(&key) {
            return Ok(());
        }
        let (invocations, fuel): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), CAST(COALESCE(SUM(fuel), 0) AS BIGINT) FROM metering_records \
             WHERE org_id = $1 AND day >= $2 AND day < $3",
        )
        .bind(org)
        .bind(format!("{month}-01"))
        .bind(format!("{month}-99"))
        .fetch_one(db)
        .await?;
        self.months
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_insert(Usage {
                invocations,
                fuel,
                reserved: 0,
            });
        Ok(())
    }

    /// Reserves `invocations` for a run about to be accepted, or refuses with 429.
    pub async fn reserve(
        &self,
        db: &AnyPool,
        org: &str,
        plan: Plan,
        today: &str,
        invocations: i64,
    ) -> Result<(), ApiError> {
        let month = month_of(today);
        self.ensure_loaded(db, org, month).await?;
        let limits = limits(plan);
        let mut months = self.months.lock().expect("not poisoned");
        let usage = months
            .get_mut(&(org.to_owned(), month.to_owned()))
            .expect("loaded above");
        let refuse = |quota: &str, limit: i64, used: i64| ApiError::QuotaExceeded {
            message: format!(
                "the {plan:?} plan's monthly {quota} quota ({limit}) is used up ({used}); \
                 it resets at the start of next month (UTC)"
            ),
            details: serde_json::json!({
                "quota": quota, "limit": limit, "used": used,
                "plan": plan, "month": month,
            }),
        };
        if let Some(limit) = limits.monthly_invocations
            && usage.invocations + usage.reserved + invocations > limit
        {
            return Err(refuse(
                "invocations",
                limit,
                usage.invocations + usage.reserved,
            ));
        }
        if let Some(limit) = limits.monthly_fuel
            && usage.fuel >= limit
        {
            return Err(refuse("fuel", limit, usage.fuel));
        }
        usage.reserved += invocations;
        Ok(())
    }

    /// Releases a run's reservation (it executed, was cancelled or failed to start).
    pub fn release(&self, org: &str, today: &str, invocations: i64) {
        let key = (org.to_owned(), month_of(today).to_owned());
        if let Some(usage) = self.months.lock().expect("not poisoned").get_mut(&key) {
            usage.reserved = (usage.reserved - invocations).max(0);
        }
    }

    /// Counts one metered invocation (written with its idempotency key just now).
    pub fn record(&self, org: &str, day: &str, fuel: i64) {
        let key = (org.to_owned(), month_of(day).to_owned());
        if let Some(usage) = self.months.lock().expect("not poisoned").get_mut(&key) {
            usage.invocations += 1;
            usage.fuel += fuel;
        }
    }
}
