//! Organization review of third-party versions before their workspaces install them.
//!
//! A request records the capabilities asked for and, for an upgrade, the difference from
//! the last version the organization approved. An upgrade asking for nothing beyond that
//! version is approved automatically (recorded as such); anything new needs a person.
//! Approval may co-sign the version with an organization key.

use std::collections::BTreeMap;

use hyyve_policy::Capabilities;
use serde::Serialize;
use sqlx::Row as _;

use crate::error::RegistryError;
use crate::package::{Header, Package, PackageSignature, SignerRole};
use crate::registry::{OwnerKind, Registry, VersionRecord};
use crate::signing::KeyPair;
use crate::storage::now_ms;

/// One capability as a reviewer reads it, with its amount (1 for yes/no capabilities).
pub type CapabilityItems = BTreeMap<String, u64>;

/// Every capability of a manifest as items: `http GET https://api.example.com`,
/// `secret TOKEN`, `kv_bytes` → 1048576, ...
pub fn capability_items(c: &Capabilities) -> CapabilityItems {
    let mut items = CapabilityItems::new();
    for d in &c.http.allow {
        let methods = if d.methods.is_empty() {
            vec!["GET".to_owned()]
        } else {
            d.methods.iter().map(|m| m.to_uppercase()).collect()
        };
        for m in methods {
            items.insert(format!("http {m} {}", d.url), 1);
        }
    }
    for n in &c.http.private_networks {
        items.insert(format!("http private network {n}"), 1);
    }
    for (key, value) in [
        ("http max_requests", c.http.max_requests),
        ("http max_request_bytes", c.http.max_request_bytes),
        ("http max_response_bytes", c.http.max_response_bytes),
    ] {
        if let Some(v) = value {
            items.insert(key.to_owned(), v);
        }
    }
    for s in &c.secrets {
        items.insert(format!("secret {s}"), 1);
    }
    if c.kv_bytes > 0 {
        items.insert("kv_bytes".into(), c.kv_bytes);
    }
    if c.scratch_bytes > 0 {
        items.insert("scratch_bytes".into(), c.scratch_bytes);
    }
    if c.workflow_invoke {
        items.insert("workflow_invoke".into(), 1);
    }
    items
}

/// What changed from the approved version to the requested one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CapabilityDiff {
    /// Asked for now, not before.
    pub added: Vec<String>,
    /// Asked for before, not now.
    pub removed: Vec<String>,
    /// Amounts that grew: item, before, now.
    pub increased: Vec<(String, u64, u64)>,
    /// Amounts that shrank: item, before, now.
    pub decreased: Vec<(String, u64, u64)>,
}

impl CapabilityDiff {
    /// The difference from `before` to `after`.
    pub fn between(before: &CapabilityItems, after: &CapabilityItems) -> Self {
        let mut diff = Self::default();
        for (item, &now) in after {
            match before.get(item) {
                None => diff.added.push(item.clone()),
                Some(&was) if now > was => diff.increased.push((item.clone(), was, now)),
                Some(&was) if now < was => diff.decreased.push((item.clone(), was, now)),
                Some(_) => {}
            }
        }
        for item in before.keys() {
            if !after.contains_key(item) {
                diff.removed.push(item.clone());
            }
        }
        diff
    }

    /// Whether it asks for anything the approved version did not have.
    pub fn asks_for_more(&self) -> bool {
        !self.added.is_empty() || !self.increased.is_empty()
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VettingStatus {
    /// Waiting for a reviewer.
    Pending,
    /// May be installed.
    Approved,
    /// May not be installed.
    Rejected,
}

impl VettingStatus {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "approved" => Self::Approved,
            "rejected" => Self::Rejected,
            _ => Self::Pending,
        }
    }
}

/// One review request (camelCase in JSON, as the HTTP API shows it).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VettingRequest {
    /// Request id.
    pub id: i64,
    /// The reviewing organization.
    pub organization: String,
    /// The workspace that asked.
    pub workspace: String,
    /// `namespace:name`.
    pub plugin: String,
    /// Exact version.
    pub version: String,
    /// Its component digest.
    pub component_digest: String,
    /// Every capability it asks for.
    pub capabilities: CapabilityItems,
    /// The last approved version it is compared with.
    pub base_version: Option<String>,
    /// Change from that version.
    pub diff: CapabilityDiff,
    /// Where it stands.
    pub status: VettingStatus,
    /// Reviewer's reason.
    pub reason: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// Who decided (`auto` for upgrades asking nothing new).
    pub decided_by: Option<String>,
}

const REQUEST_COLUMNS: &str = "id, organization, workspace, plugin_id, version, component_digest, \
     capabilities, base_version, diff, status, reason, requested_by, decided_by";

fn request_from_row(row: &sqlx::any::AnyRow) -> Result<VettingRequest, RegistryError> {
    let capabilities: String = row.try_get("capabilities")?;
    let diff: String = row.try_get("diff")?;
    let status: String = row.try_get("status")?;
    Ok(VettingRequest {
        id: row.try_get("id")?,
        organization: row.try_get("organization")?,
        workspace: row.try_get("workspace")?,
        plugin: row.try_get("plugin_id")?,
        version: row.try_get("version")?,
        component_digest: row.try_get("component_digest")?,
        capabilities: serde_json::from_str(&capabilities).unwrap_or_default(),
        base_version: row.try_get("base_version")?,
        diff: serde_json::from_str(&diff).unwrap_or_default(),
        status: VettingStatus::parse(&status),
        reason: row.try_get("reason")?,
        requested_by: row.try_get("requested_by")?,
        decided_by: row.try_get("decided_by")?,
    })
}

impl Registry {
    /// Asks `organization` to vet `version` for `workspace`. Returns the request that
    /// decides: an existing approval of the same digest, an automatic approval of an
    /// upgrade asking nothing new, an open request, or a new pending one.
    pub async fn request_vetting(
        &self,
        organization: &str,
        workspace: &str,
        version: &VersionRecord,
        requested_by: &str,
    ) -> Result<VettingRequest, RegistryError> {
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM vetting_requests WHERE organization = $1 \
             AND plugin_id = $2 AND version = $3 AND component_digest = $4 \
             AND status <> 'rejected' ORDER BY status, id DESC"
        )))
        .bind(organization)
        .bind(&version.id)
        .bind(version.version.to_string())
        .bind(&version.component_digest)
        .fetch_all(&self.db)
        .await?;
        // 'approved' sorts before 'pending'.
        if let Some(row) = existing.first() {
            return request_from_row(row);
        }
        let capabilities = capability_items(&version.manifest()?.capabilities);
        let base = self.last_approved(organization, &version.id).await?;
        let (base_version, diff) = match &base {
            Some(base) => {
                let before = capability_items(&base.manifest()?.capabilities);
                (
                    Some(base.version.to_string()),
                    CapabilityDiff::between(&before, &capabilities),
                )
            }
            None => (
                None,
                CapabilityDiff::between(&CapabilityItems::new(), &capabilities),
            ),
        };
        let auto = base.is_some() && !diff.asks_for_more();
        let (status, decided_by, reason) = if auto {
            (
                VettingStatus::Approved,
                Some("auto".to_owned()),
                Some(format!(
                    "asks for nothing beyond approved {}",
                    base_version.clone().unwrap_or_default()
                )),
            )
        } else {
            (VettingStatus::Pending, None, None)
        };
        let now = now_ms();
        let id: i64 = sqlx::query(
            "INSERT INTO vetting_requests (organization, workspace, plugin_id, version, \
             component_digest, capabilities, base_version, diff, status, reason, requested_by, \
             decided_by, requested_at, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(organization)
        .bind(workspace)
        .bind(&version.id)
        .bind(version.version.to_string())
        .bind(&version.component_digest)
        .bind(serde_json::to_string(&capabilities).unwrap_or_default())
        .bind(base_version)
        .bind(serde_json::to_string(&diff).unwrap_or_default())
        .bind(status.as_str())
        .bind(reason)
        .bind(requested_by)
        .bind(decided_by)
        .bind(now)
        .bind(auto.then_some(now))
        .fetch_one(&self.db)
        .await?
        .try_get("id")?;
        self.vetting_request(organization, id).await
    }

    async fn last_approved(
        &self,
        organization: &str,
        plugin: &str,
    ) -> Result<Option<VersionRecord>, RegistryError> {
        let approved: Vec<String> = sqlx::query_scalar(
            "SELECT version FROM vetting_requests WHERE organization = $1 AND plugin_id = $2 \
             AND status = 'approved'",
        )
        .bind(organization)
        .bind(plugin)
        .fetch_all(&self.db)
        .await?;
        let Some(latest) = approved
            .iter()
            .filter_map(|v| v.parse::<semver::Version>().ok())
            .max()
        else {
            return Ok(None);
        };
        Ok(Some(self.version(plugin, &latest).await?))
    }

    /// One request of `organization` (another organization's request is not found).
    pub async fn vetting_request(
        &self,
        organization: &str,
        id: i64,
    ) -> Result<VettingRequest, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM vetting_requests WHERE organization = $1 AND id = $2"
        )))
        .bind(organization)
        .bind(id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("vetting request {id}")))?;
        request_from_row(&row)
    }

    /// The organization's queue (pending only, or all), oldest first.
    pub async fn vetting_queue(
        &self,
        organization: &str,
        all: bool,
    ) -> Result<Vec<VettingRequest>, RegistryError> {
        let status = if all { "%" } else { "pending" };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM vetting_requests WHERE organization = $1 \
             AND status LIKE $2 ORDER BY id"
        )))
        .bind(organization)
        .bind(status)
        .fetch_all(&self.db)
        .await?
        .iter()
        .map(request_from_row)
        .collect()
    }

    /// Approves a pending request; with an organization key, also co-signs the version.
    pub async fn approve(
        &self,
        organization: &str,
        id: i64,
        actor: &str,
        reason: &str,
        cosign_with: Option<&KeyPair>,
    ) -> Result<VettingRequest, RegistryError> {
        let request = self.vetting_request(organization, id).await?;
        let cosignature = match cosign_with {
            Some(key) => {
                let version = self
                    .version(
                        &request.plugin,
                        &request
                            .version
                            .parse()
                            .map_err(|e| RegistryError::Config(format!("stored version: {e}")))?,
                    )
                    .await?;
                let package = package_of(&version)?;
                let signature = PackageSignature {
                    role: SignerRole::Cosigner,
                    signer: organization.to_owned(),
                    key_id: key.public().id(),
                    signature: key.sign(&package.signed_message()),
                };
                self.verify_signature(&package, &signature, OwnerKind::Organization, organization)
                    .await?;
                Some(signature)
            }
            None => None,
        };
        self.decide(&request, VettingStatus::Approved, actor, reason)
            .await?;
        if let Some(signature) = cosignature {
            sqlx::query(
                "INSERT INTO cosignatures (plugin_id, version, organization, key_id, signature, \
                 signed_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&request.plugin)
            .bind(&request.version)
            .bind(organization)
            .bind(&signature.key_id)
            .bind(&signature.signature)
            .bind(now_ms())
            .execute(&self.db)
            .await?;
        }
        self.vetting_request(organization, id).await
    }

    /// Rejects a pending request.
    pub async fn reject(
        &self,
        organization: &str,
        id: i64,
        actor: &str,
        reason: &str,
    ) -> Result<VettingRequest, RegistryError> {
        let request = self.vetting_request(organization, id).await?;
        self.decide(&request, VettingStatus::Rejected, actor, reason)
            .await?;
        self.vetting_request(organization, id).await
    }

    async fn decide(
        &self,
        request: &VettingRequest,
        status: VettingStatus,
        actor: &str,
        reason: &str,
    ) -> Result<(), RegistryError> {
        let done = sqlx::query(
            "UPDATE vetting_requests SET status = $1, reason = $2, decided_by = $3, \
             decided_at = $4 WHERE id = $5 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(actor)
        .bind(now_ms())
        .bind(request.id)
        .execute(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::NotPending {
                id: request.id,
                status: request.status.as_str().to_owned(),
            });
        }
        Ok(())
    }

    /// Whether `organization` vetted exactly this version: an approved request for it
    /// (version and digest: the same bytes under a new manifest are a new review), or a valid co-signature by one of the organization's keys.
    pub async fn is_vetted(
        &self,
        organization: &str,
        version: &VersionRecord,
    ) -> Result<bool, RegistryError> {
        let approved = sqlx::query(
            "SELECT id FROM vetting_requests WHERE organization = $1 AND plugin_id = $2 \
             AND version = $3 AND component_digest = $4 AND status = 'approved' LIMIT 1",
        )
        .bind(organization)
        .bind(&version.id)
        .bind(version.version.to_string())
        .bind(&version.component_digest)
        .fetch_optional(&self.db)
        .await?;
        if approved.is_some() {
            return Ok(true);
        }
        let package = package_of(version)?;
        let rows = sqlx::query(
            "SELECT key_id, signature FROM cosignatures WHERE organization = $1 \
             AND plugin_id = $2 AND version = $3",
        )
        .bind(organization)
        .bind(&version.id)
        .bind(version.version.to_string())
        .fetch_all(&self.db)
        .await?;
        for row in rows {
            let signature = PackageSignature {
                role: SignerRole::Cosigner,
                signer: organization.to_owned(),
                key_id: row.try_get("key_id")?,
                signature: row.try_get("signature")?,
            };
            if self
                .verify_signature(&package, &signature, OwnerKind::Organization, organization)
                .await
                .is_ok()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Enough of a package to recompute what its signatures cover.
fn package_of(version: &VersionRecord) -> Result<Package, RegistryError> {
    let header: Header = serde_json::from_str(&version.header)
        .map_err(|e| RegistryError::Malformed(format!("stored package.json: {e}")))?;
    Ok(Package {
        header,
        manifest_text: version.manifest_text.clone(),
        component: Vec::new(),
        readme: None,
        icon: None,
        signatures: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(pairs: &[(&str, u64)]) -> CapabilityItems {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn only_added_or_grown_capabilities_ask_for_more() {
        let before = items(&[("http GET https://a", 1), ("kv_bytes", 100)]);
        let same_or_less = items(&[("kv_bytes", 50)]);
        let diff = CapabilityDiff::between(&before, &same_or_less);
        assert!(!diff.asks_for_more());
        assert_eq!(diff.removed, vec!["http GET https://a".to_owned()]);
        let more = items(&[
            ("http GET https://a", 1),
            ("kv_bytes", 200),
            ("secret T", 1),
        ]);
        let diff = CapabilityDiff::between(&before, &more);
        assert!(diff.asks_for_more());
        assert_eq!(diff.added, vec!["secret T".to_owned()]);
        assert_eq!(diff.increased, vec![("kv_bytes".to_owned(), 100, 200)]);
    }
}
