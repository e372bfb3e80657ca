//! `/v1/usage`: metered usage of the workspace aggregated by day and plugin, the custom
//! units plugins reported by day, plugin and unit, the plan's quotas, and a CSV export
//! for billing.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use utoipa::ToSchema;

use crate::AppState;
use crate::api::extract::QueryParams;
use crate::error::{ApiError, ErrorBody};
use crate::roles::Action;
use crate::runs::quota::{PlanLimits, limits};
use crate::tenancy::{Plan, Principal};

/// Which days.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UsageParams {
    /// First day, `YYYY-MM-DD` (absent or empty: the first of this month).
    #[serde(default, deserialize_with = "crate::api::extract::empty_as_none")]
    #[param(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub from: Option<String>,
    /// Last day, inclusive (absent or empty: today).
    #[serde(default, deserialize_with = "crate::api::extract::empty_as_none")]
    #[param(pattern = "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$")]
    pub to: Option<String>,
}

/// One day × plugin aggregate.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// `namespace:name`.
    pub plugin: String,
    /// Invocation attempts.
    pub invocations: i64,
    /// Attempts that failed.
    pub failed: i64,
    /// Fuel.
    pub fuel: i64,
    /// Wall time, microseconds.
    pub wall_time_us: i64,
    /// Outgoing HTTP requests.
    pub http_requests: i64,
    /// Capability denials.
    pub denials: i64,
}

/// One day × plugin × unit aggregate of what plugins reported (`usage.report`).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnitUsageRow {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// `namespace:name`.
    pub plugin: String,
    /// The unit, e.g. `llm.output-tokens`.
    pub unit: String,
    /// Its sum.
    pub quantity: i64,
}

/// Usage of the workspace and its organization's plan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// The organization's plan.
    pub plan: Plan,
    /// Its limits.
    pub limits: PlanLimits,
    /// First day covered.
    pub from: String,
    /// Last day covered.
    pub to: String,
    /// Per day and plugin.
    pub rows: Vec<UsageRow>,
    /// Custom units per day, plugin and unit.
    pub units: Vec<UnitUsageRow>,
}

fn check_day(day: &str) -> Result<(), ApiError> {
    let ok = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    match ok {
        true => Ok(()),
        false => Err(ApiError::BadRequest(format!(
            "`{day}`: expected YYYY-MM-DD"
        ))),
    }
}

async fn usage(
    state: &AppState,
    principal: &Principal,
    params: UsageParams,
) -> Result<Usage, ApiError> {
    let today = hyyve_registry::marketplace::today();
    let from = params.from.unwrap_or_else(|| format!("{}-01", &today[..7]));
    let to = params.to.unwrap_or(today);
    check_day(&from)?;
    check_day(&to)?;
    let rows = sqlx::query(
        "SELECT day, plugin_id, COUNT(*) AS invocations, \
         CAST(SUM(CASE WHEN failure IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS failed, \
         CAST(SUM(fuel) AS BIGINT) AS fuel, CAST(SUM(wall_time_us) AS BIGINT) AS wall, \
         CAST(SUM(http_requests) AS BIGINT) AS http, CAST(SUM(denials) AS BIGINT) AS denials \
         FROM metering_records WHERE workspace_id = $1 AND day >= $2 AND day <= $3 \
         GROUP BY day, plugin_id ORDER BY day, plugin_id",
    )
    .bind(&principal.workspace_id)
    .bind(&from)
    .bind(&to)
    .fetch_all(state.tenancy.pool())
    .await?;
    let rows = rows
        .iter()
        .map(|r| {
            Ok(UsageRow {
                day: r.try_get("day")?,
                plugin: r.try_get("plugin_id")?,
                invocations: r.try_get("invocations")?,
                failed: r.try_get("failed")?,
                fuel: r.try_get("fuel")?,
                wall_time_us: r.try_get("wall")?,
                http_requests: r.try_get("http")?,
                denials: r.try_get("denials")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let units = sqlx::query_as::<_, (String, String, String, i64)>(
        "SELECT day, plugin_id, unit, CAST(SUM(quantity) AS BIGINT) FROM metering_units \
         WHERE workspace_id = $1 AND day >= $2 AND day <= $3 \
         GROUP BY day, plugin_id, unit ORDER BY day, plugin_id, unit",
    )
    .bind(&principal.workspace_id)
    .bind(&from)
    .bind(&to)
    .fetch_all(state.tenancy.pool())
    .await?
    .into_iter()
    .map(|(day, plugin, unit, quantity)| UnitUsageRow {
        day,
        plugin,
        unit,
        quantity,
    })
    .collect();
    Ok(Usage {
        plan: principal.plan,
        limits: limits(principal.plan),
        from,
        to,
        rows,
        units,
    })
}

/// Usage per day and plugin, with the plan's limits.
#[utoipa::path(get, path = "/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, body = Usage), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<UsageParams>,
) -> Result<Json<Usage>, ApiError> {
    principal.require(Action::Read)?;
    Ok(Json(usage(&state, &principal, params).await?))
}

/// The same as CSV, for billing: one line per day and plugin
/// (`day,plugin,unit,quantity,invocations,failed,fuel,wall_time_us,http_requests,denials`,
/// `unit` and `quantity` empty), then one per day, plugin and custom unit (only `day`,
/// `plugin`, `unit` and `quantity` filled).
#[utoipa::path(get, path = "/v1/usage/export", tag = "usage", params(UsageParams),
    responses((status = 200, content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn export(
    State(state): State<AppState>,
    principal: Principal,
    QueryParams(params): QueryParams<UsageParams>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Action::Read)?;
    let usage = usage(&state, &principal, params).await?;
    let mut csv = String::from(
        "day,plugin,unit,quantity,invocations,failed,fuel,wall_time_us,http_requests,denials\n",
    );
    for r in &usage.rows {
        csv.push_str(&format!(
            "{},{},,,{},{},{},{},{},{}\n",
            r.day,
            r.plugin,
            r.invocations,
            r.failed,
            r.fuel,
            r.wall_time_us,
            r.http_requests,
            r.denials
        ));
    }
    // Unit names match the runtime's pattern (no commas or quotes): no CSV quoting needed.
    for u in &usage.units {
        csv.push_str(&format!(
            "{},{},{},{},,,,,,\n",
            u.day, u.plugin, u.unit, u.quantity
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}
