//! Listings, search, metered usage and creator payouts.

use hyyve_policy::{Manifest, PluginKind, Pricing};
use serde::Serialize;
use sqlx::Row as _;

use crate::error::RegistryError;
use crate::package::Package;
use crate::registry::{Registry, VersionRecord};
use crate::storage::now_ms;

/// Largest page a search returns.
pub const MAX_PAGE_SIZE: u32 = 100;

/// A marketplace listing: one plugin across its versions (camelCase in JSON, as the HTTP
/// API shows it; `pricing` keeps the manifest's spelling).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// `namespace:name`.
    pub id: String,
    /// Display title.
    pub title: String,
    /// One paragraph.
    pub description: String,
    /// Node, provider or channel.
    pub kind: String,
    /// The creator account.
    pub publisher: String,
    /// Categories.
    pub categories: Vec<String>,
    /// Pricing model and price.
    pub pricing: Pricing,
    /// Greatest published version.
    pub latest_version: String,
    /// Digest of the icon blob, if any.
    pub icon_digest: Option<String>,
}

/// A listing with its readme and versions.
#[derive(Debug, Clone, Serialize)]
pub struct ListingDetail {
    /// The listing.
    #[serde(flatten)]
    pub listing: Listing,
    /// Markdown readme.
    pub readme: Option<String>,
    /// Every version, oldest first (yanked ones marked).
    pub versions: Vec<VersionRecord>,
}

/// What to search for; empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words that must all appear in id, title, description or categories.
    pub text: String,
    /// Node, provider or channel.
    pub kind: Option<PluginKind>,
    /// One category.
    pub category: Option<String>,
    /// One publisher.
    pub publisher: Option<String>,
    /// 1-based page.
    pub page: u32,
    /// Listings per page, at most [`MAX_PAGE_SIZE`].
    pub per_page: u32,
}

/// One page of results.
#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    /// Listings matching in all.
    pub total: i64,
    /// This page (1-based).
    pub page: u32,
    /// Page size used.
    pub per_page: u32,
    /// The listings, ordered by id.
    pub listings: Vec<Listing>,
}

fn kind_str(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Node => "node",
        PluginKind::Provider => "provider",
        PluginKind::Channel => "channel",
    }
}

/// `%`, `_` and `\` in user text match themselves.
fn like_escape(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The listing row of a package's plugin, inserted or refreshed from the new version.
pub(crate) async fn upsert_listing(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    package: &Package,
    manifest: &Manifest,
    now: i64,
) -> Result<(), RegistryError> {
    let info = &manifest.plugin;
    let title = manifest
        .listing
        .title
        .clone()
        .unwrap_or_else(|| info.id.name.clone());
    let categories = format!(",{},", info.categories.join(","));
    let search_text = format!(
        "{} {} {} {}",
        info.id,
        title,
        info.description,
        info.categories.join(" ")
    )
    .to_lowercase();
    let icon_digest = package
        .icon
        .as_ref()
        .map(|(_, bytes)| crate::package::sha256(bytes));
    let pricing = serde_json::to_string(&manifest.listing.pricing).unwrap_or_default();
    sqlx::query(
        "INSERT INTO listings (plugin_id, publisher, kind, title, description, categories, \
         search_text, readme, icon_digest, pricing, latest_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) \
         ON CONFLICT (plugin_id) DO UPDATE SET publisher = $2, kind = $3, title = $4, \
         description = $5, categories = $6, search_text = $7, readme = $8, icon_digest = $9, \
         pricing = $10, latest_version = $11, updated_at = $12",
    )
    .bind(info.id.to_string())
    .bind(&info.publisher)
    .bind(kind_str(info.kind))
    .bind(title)
    .bind(&info.description)
    .bind(categories)
    .bind(search_text)
    .bind(package.readme.clone())
    .bind(icon_digest)
    .bind(pricing)
    .bind(info.version.to_string())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const LISTING_COLUMNS: &str = "plugin_id, title, description, kind, publisher, categories, \
     pricing, latest_version, icon_digest";

fn listing_from_row(row: &sqlx::any::AnyRow) -> Result<Listing, RegistryError> {
    let categories: String = row.try_get("categories")?;
    let pricing: String = row.try_get("pricing")?;
    Ok(Listing {
        id: row.try_get("plugin_id")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        kind: row.try_get("kind")?,
        publisher: row.try_get("publisher")?,
        categories: categories
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        pricing: serde_json::from_str(&pricing).unwrap_or_default(),
        latest_version: row.try_get("latest_version")?,
        icon_digest: row.try_get("icon_digest")?,
    })
}

/// A payout band: from this lifetime gross on, the platform keeps `fee_percent`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Tier {
    /// Name shown to creators.
    pub name: &'static str,
    /// Lifetime gross (micro-USD) where the band starts.
    pub from_micros: i64,
    /// Platform fee within the band.
    pub fee_percent: i64,
}

/// The revenue tiers: the first $500 of a creator's lifetime earnings carry no fee, then
/// 15 %, 12 % from $10,000 and 10 % from $100,000 lifetime. Bands apply like tax
/// brackets, so a period that crosses a threshold is split at it.
pub const TIERS: [Tier; 4] = [
    Tier {
        name: "new",
        from_micros: 0,
        fee_percent: 0,
    },
    Tier {
        name: "growing",
        from_micros: 500_000_000,
        fee_percent: 15,
    },
    Tier {
        name: "established",
        from_micros: 10_000_000_000,
        fee_percent: 12,
    },
    Tier {
        name: "premium",
        from_micros: 100_000_000_000,
        fee_percent: 10,
    },
];

/// The tier a creator with `lifetime_micros` of gross earnings is in.
pub fn tier_of(lifetime_micros: i64) -> Tier {
    TIERS
        .iter()
        .rev()
        .find(|t| lifetime_micros >= t.from_micros)
        .copied()
        .unwrap_or(TIERS[0])
}

/// The platform fee on `gross` earned by a creator who had earned `lifetime_before`.
pub fn fee_micros(lifetime_before: i64, gross: i64) -> i64 {
    let mut fee = 0;
    for (i, tier) in TIERS.iter().enumerate() {
        let band_end = TIERS.get(i + 1).map_or(i64::MAX, |t| t.from_micros);
        let start = lifetime_before.max(tier.from_micros);
        let end = (lifetime_before.saturating_add(gross)).min(band_end);
        if end > start {
            // Rounded down: the creator never loses a fraction of a micro-dollar.
            fee += ((end - start) as i128 * tier.fee_percent as i128 / 100) as i64;
        }
    }
    fee
}

/// What one plugin earned in a period.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutLine {
    /// `namespace:name`.
    pub plugin: String,
    /// Its pricing.
    pub pricing: Pricing,
    /// Metered invocations in the period.
    pub invocations: i64,
    /// Workspaces that used it in the period (subscription months).
    pub workspaces: i64,
    /// Earned, micro-USD.
    pub gross_micros: i64,
}

/// A creator's payout for one period.
#[derive(Debug, Clone, Serialize)]
pub struct Payout {
    /// The creator.
    pub publisher: String,
    /// `YYYY-MM`.
    pub period: String,
    /// Lifetime gross before this period, micro-USD.
    pub lifetime_before_micros: i64,
    /// Tier at the start of the period.
    pub tier: &'static str,
    /// Per plugin.
    pub lines: Vec<PayoutLine>,
    /// Earned, micro-USD.
    pub gross_micros: i64,
    /// Platform fee, micro-USD.
    pub fee_micros: i64,
    /// Paid out, micro-USD.
    pub net_micros: i64,
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    humantime::format_rfc3339(std::time::SystemTime::now()).to_string()[..10].to_owned()
}

impl Registry {
    /// Searches listings.
    pub async fn search(&self, query: &SearchQuery) -> Result<SearchPage, RegistryError> {
        let per_page = query.per_page.clamp(1, MAX_PAGE_SIZE);
        let page = query.page.max(1);
        let mut clauses = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        for word in query.text.split_whitespace() {
            binds.push(format!("%{}%", like_escape(&word.to_lowercase())));
            clauses.push(format!("search_text LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(kind) = query.kind {
            binds.push(kind_str(kind).to_owned());
            clauses.push(format!("kind = ${}", binds.len()));
        }
        if let Some(category) = &query.category {
            binds.push(format!("%,{},%", like_escape(category)));
            clauses.push(format!("categories LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(publisher) = &query.publisher {
            binds.push(publisher.clone());
            clauses.push(format!("publisher = ${}", binds.len()));
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        // Only placeholders are interpolated; every user value is bound.
        let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM listings {filter}");
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total: i64 = count.fetch_one(&self.db).await?.try_get("n")?;
        let page_sql = format!(
            "SELECT {LISTING_COLUMNS} FROM listings {filter} ORDER BY plugin_id LIMIT {} OFFSET {}",
            per_page,
            (page as i64 - 1) * per_page as i64
        );
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(page_sql));
        for b in &binds {
            rows = rows.bind(b.clone());
        }
        let listings = rows
            .fetch_all(&self.db)
            .await?
            .iter()
            .map(listing_from_row)
            .collect::<Result<_, _>>()?;
        Ok(SearchPage {
            total,
            page,
            per_page,
            listings,
        })
    }

    /// A listing with its readme and versions.
    pub async fn show(&self, id: &str) -> Result<ListingDetail, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LISTING_COLUMNS}, readme FROM listings WHERE plugin_id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("plugin {id}")))?;
        Ok(ListingDetail {
            listing: listing_from_row(&row)?,
            readme: row.try_get("readme")?,
            versions: self.versions(id).await?,
        })
    }

    /// Computes (and records, replacing an earlier computation) a creator's payout for
    /// `period` (`YYYY-MM`) from the metered usage of their listings.
    pub async fn compute_payout(
        &self,
        publisher: &str,
        period: &str,
    ) -> Result<Payout, RegistryError> {
        let valid = period.len() == 7
            && period.as_bytes()[4] == b'-'
            && period
                .bytes()
                .enumerate()
                .all(|(i, b)| i == 4 || b.is_ascii_digit());
        if !valid {
            return Err(RegistryError::Config(format!(
                "period `{period}`: use YYYY-MM"
            )));
        }
        let rows = sqlx::query(
            "SELECT l.plugin_id AS plugin_id, l.pricing AS pricing, \
             CAST(COALESCE(SUM(u.invocations), 0) AS BIGINT) AS invocations, \
             CAST(COUNT(DISTINCT u.workspace) AS BIGINT) AS workspaces \
             FROM listings l JOIN usage_daily u ON u.plugin_id = l.plugin_id \
             WHERE l.publisher = $1 AND u.day LIKE $2 \
             GROUP BY l.plugin_id, l.pricing ORDER BY l.plugin_id",
        )
        .bind(publisher)
        .bind(format!("{period}-%"))
        .fetch_all(&self.db)
        .await?;
        let mut lines = Vec::new();
        for row in &rows {
            let pricing: Pricing =
                serde_json::from_str(&row.try_get::<String, _>("pricing")?).unwrap_or_default();
            let invocations: i64 = row.try_get("invocations")?;
            let workspaces: i64 = row.try_get("workspaces")?;
            let gross_micros = match pricing {
                Pricing::Free => 0,
                Pricing::PerInvocation { price_micros } => {
                    invocations.saturating_mul(price_micros as i64)
                }
                Pricing::Subscription { price_micros } => {
                    workspaces.saturating_mul(price_micros as i64)
                }
            };
            lines.push(PayoutLine {
                plugin: row.try_get("plugin_id")?,
                pricing,
                invocations,
                workspaces,
                gross_micros,
            });
        }
        let lifetime_before: i64 = sqlx::query(
            "SELECT CAST(COALESCE(SUM(gross_micros), 0) AS BIGINT) AS total FROM payouts \
             WHERE publisher = $1 AND period < $2",
        )
        .bind(publisher)
        .bind(period)
        .fetch_one(&self.db)
        .await?
        .try_get("total")?;
        let gross: i64 = lines.iter().map(|l| l.gross_micros).sum();
        let fee = fee_micros(lifetime_before, gross);
        let payout = Payout {
            publisher: publisher.to_owned(),
            period: period.to_owned(),
            lifetime_before_micros: lifetime_before,
            tier: tier_of(lifetime_before).name,
            lines,
            gross_micros: gross,
            fee_micros: fee,
            net_micros: gross - fee,
        };
        sqlx::query(
            "INSERT INTO payouts (publisher, period, gross_micros, fee_micros, net_micros, \
             computed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (publisher, period) \
             DO UPDATE SET gross_micros = $3, fee_micros = $4, net_micros = $5, computed_at = $6",
        )
        .bind(publisher)
        .bind(period)
        .bind(payout.gross_micros)
        .bind(payout.fee_micros)
        .bind(payout.net_micros)
        .bind(now_ms())
        .execute(&self.db)
        .await?;
        Ok(payout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USD: i64 = 1_000_000;

    #[test]
    fn the_first_500_dollars_are_fee_free_then_bands_apply() {
        assert_eq!(fee_micros(0, 500 * USD), 0);
        assert_eq!(fee_micros(0, 600 * USD), 15 * USD);
        assert_eq!(fee_micros(400 * USD, 200 * USD), 15 * USD);
        assert_eq!(fee_micros(10_000 * USD, 100 * USD), 12 * USD);
        // Crossing into premium splits the period at $100,000.
        assert_eq!(fee_micros(99_900 * USD, 200 * USD), 12 * USD + 10 * USD);
        assert_eq!(tier_of(0).name, "new");
        assert_eq!(tier_of(500 * USD).name, "growing");
        assert_eq!(tier_of(10_000 * USD).name, "established");
        assert_eq!(tier_of(100_000 * USD).name, "premium");
    }

    #[test]
    fn like_wildcards_in_search_text_match_themselves() {
        assert_eq!(like_escape("50%_off\\"), "50\\%\\_off\\\\");
    }
}
