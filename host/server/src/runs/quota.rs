//! Plan quotas: monthly invocations, fuel and custom units (LLM tokens) per organization,
//! and how many runs of one workspace execute at once. Usage is counted from the metering records (read per
//! organization and month, kept up to date in memory as this process writes records, and
//! read again after a refresh interval, so the records of other processes sharing the
//! database count within it), plus the invocations of runs this process accepted but
//! has not executed yet, so a burst of submissions cannot overshoot the quota.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// Custom units per calendar month, by unit (units not named are unlimited).
    #[schema(value_type = Vec<UnitQuota>)]
    pub monthly_units: &'static [UnitQuota],
    /// Runs of one workspace executing at once.
    pub concurrent_runs: usize,
    /// LLM tokens (input plus output) one workspace may spend per calendar month: the
    /// workspace's token budget; `None`: bounded by the organization's units only.
    pub workspace_monthly_tokens: Option<i64>,
}

/// A monthly quota on a unit plugins report (`usage.report`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitQuota {
    /// The unit, e.g. `llm.output-tokens`.
    pub unit: &'static str,
    /// Its quantity per calendar month.
    pub limit: i64,
}

const fn tokens(input: i64, output: i64) -> [UnitQuota; 2] {
    [
        UnitQuota {
            unit: "llm.input-tokens",
            limit: input,
        },
        UnitQuota {
            unit: "llm.output-tokens",
            limit: output,
        },
    ]
}

const FREE_UNITS: [UnitQuota; 2] = tokens(1_000_000, 250_000);
const PRO_UNITS: [UnitQuota; 2] = tokens(100_000_000, 25_000_000);
const TEAM_UNITS: [UnitQuota; 2] = tokens(1_000_000_000, 250_000_000);

/// The limits of `plan`.
pub fn limits(plan: Plan) -> PlanLimits {
    match plan {
        Plan::Free => PlanLimits {
            monthly_invocations: Some(10_000),
            monthly_fuel: Some(10_000_000_000),
            monthly_units: &FREE_UNITS,
            concurrent_runs: 2,
            workspace_monthly_tokens: Some(500_000),
        },
        Plan::Pro => PlanLimits {
            monthly_invocations: Some(1_000_000),
            monthly_fuel: Some(1_000_000_000_000),
            monthly_units: &PRO_UNITS,
            concurrent_runs: 8,
            workspace_monthly_tokens: Some(50_000_000),
        },
        Plan::Team => PlanLimits {
            monthly_invocations: Some(10_000_000),
            monthly_fuel: Some(10_000_000_000_000),
            monthly_units: &TEAM_UNITS,
            concurrent_runs: 16,
            workspace_monthly_tokens: Some(500_000_000),
        },
        Plan::Enterprise => PlanLimits {
            monthly_invocations: None,
            monthly_fuel: None,
            monthly_units: &[],
            concurrent_runs: 64,
            workspace_monthly_tokens: None,
        },
    }
}

#[derive(Debug, Clone)]
struct Usage {
    invocations: i64,
    fuel: i64,
    units: HashMap<String, i64>,
    reserved: i64,
    /// When `invocations` and `fuel` were read from the records.
    read_at: Instant,
}

/// The units a workspace's token budget counts.
pub const TOKEN_UNITS: [&str; 2] = ["llm.input-tokens", "llm.output-tokens"];

/// A workspace's tokens of one month, as last read plus what this process recorded since.
#[derive(Debug, Clone)]
struct Tokens {
    used: i64,
    read_at: Instant,
}

/// Per-organization usage of the current month, and per-workspace tokens.
pub struct Ledger {
    months: Mutex<HashMap<(String, String), Usage>>,
    tokens: Mutex<HashMap<(String, String), Tokens>>,
    /// How long usage read from the records is trusted before it is read again.
    refresh: Duration,
}

impl Ledger {
    /// Usage read again from the records every `refresh`.
    pub fn new(refresh: Duration) -> Self {
        Self {
            months: Mutex::default(),
            tokens: Mutex::default(),
            refresh,
        }
    }
}

/// `YYYY-MM` of a `YYYY-MM-DD` day.
fn month_of(day: &str) -> &str {
    day.get(..7).unwrap_or(day)
}

impl Ledger {
    async fn ensure_loaded(&self, db: &AnyPool, org: &str, month: &str) -> Result<(), ApiError> {
        let key = (org.to_owned(), month.to_owned());
        if let Some(usage) = self.months.lock().expect("not poisoned").get(&key)
            && usage.read_at.elapsed() < self.refresh
        {
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
        let units: Vec<(String, i64)> = sqlx::query_as(
            "SELECT unit, CAST(SUM(quantity) AS BIGINT) FROM metering_units \
             WHERE org_id = $1 AND day >= $2 AND day < $3 GROUP BY unit",
        )
        .bind(org)
        .bind(format!("{month}-01"))
        .bind(format!("{month}-99"))
        .fetch_all(db)
        .await?;
        let mut months = self.months.lock().expect("not poisoned");
        let usage = months.entry(key).or_insert(Usage {
            invocations: 0,
            fuel: 0,
            units: HashMap::new(),
            reserved: 0,
            read_at: Instant::now(),
        });
        // The records are the truth: what this process counted since is among them.
        usage.invocations = invocations;
        usage.fuel = fuel;
        usage.units = units.into_iter().collect();
        usage.read_at = Instant::now();
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
        for quota in limits.monthly_units {
            let used = usage.units.get(quota.unit).copied().unwrap_or(0);
            if used >= quota.limit {
                return Err(refuse(quota.unit, quota.limit, used));
            }
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

    /// The tokens `workspace` spent in `month`, read again from the records after the
    /// refresh interval (so other processes' calls count within it).
    async fn workspace_tokens(
        &self,
        db: &AnyPool,
        workspace: &str,
        month: &str,
    ) -> Result<i64, ApiError> {
        let key = (workspace.to_owned(), month.to_owned());
        if let Some(tokens) = self.tokens.lock().expect("not poisoned").get(&key)
            && tokens.read_at.elapsed() < self.refresh
        {
            return Ok(tokens.used);
        }
        let used: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM metering_units \
             WHERE workspace_id = $1 AND day >= $2 AND day < $3 AND unit IN ($4, $5)",
        )
        .bind(workspace)
        .bind(format!("{month}-01"))
        .bind(format!("{month}-99"))
        .bind(TOKEN_UNITS[0])
        .bind(TOKEN_UNITS[1])
        .fetch_one(db)
        .await?;
        self.tokens.lock().expect("not poisoned").insert(
            key,
            Tokens {
                used,
                read_at: Instant::now(),
            },
        );
        Ok(used)
    }

    /// Refuses with 429 once `workspace` has spent its plan's monthly token budget: at
    /// run submission and before each model call. A call admitted under the budget may
    /// end past it by what that call spends (at most its `max_tokens` and prompt).
    pub async fn admit_tokens(
        &self,
        db: &AnyPool,
        workspace: &str,
        plan: Plan,
        today: &str,
    ) -> Result<(), ApiError> {
        let Some(budget) = limits(plan).workspace_monthly_tokens else {
            return Ok(());
        };
        let month = month_of(today);
        let used = self.workspace_tokens(db, workspace, month).await?;
        if used < budget {
            return Ok(());
        }
        Err(ApiError::QuotaExceeded {
            message: format!(
                "the workspace's monthly token budget of the {plan:?} plan ({budget} tokens) \
                 is spent ({used}); it resets at the start of next month (UTC)"
            ),
            details: serde_json::json!({
                "quota": "workspace_tokens", "limit": budget, "used": used,
                "plan": plan, "month": month,
            }),
        })
    }

    /// Counts one metered invocation (written with its idempotency key just now).
    pub fn record(
        &self,
        org: &str,
        workspace: &str,
        day: &str,
        fuel: i64,
        units: &[(String, i64)],
    ) {
        let spent: i64 = units
            .iter()
            .filter(|(unit, _)| TOKEN_UNITS.contains(&unit.as_str()))
            .fold(0i64, |sum, (_, q)| sum.saturating_add(*q));
        if spent > 0 {
            let key = (workspace.to_owned(), month_of(day).to_owned());
            if let Some(tokens) = self.tokens.lock().expect("not poisoned").get_mut(&key) {
                tokens.used = tokens.used.saturating_add(spent);
            }
        }
        let key = (org.to_owned(), month_of(day).to_owned());
        if let Some(usage) = self.months.lock().expect("not poisoned").get_mut(&key) {
            usage.invocations += 1;
            usage.fuel = usage.fuel.saturating_add(fuel);
            for (unit, quantity) in units {
                let used = usage.units.entry(unit.clone()).or_default();
                *used = used.saturating_add(*quantity);
            }
        }
    }
}
