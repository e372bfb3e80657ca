//! The registry: accounts and keys, publishing (every check before anything is stored),
//! version resolution and yanking.

use std::sync::Arc;

use hyyve_policy::{Manifest, PluginId};
use hyyve_runtime::Runtime;
use serde::Serialize;
use sqlx::{AnyPool, Row as _};

use crate::error::RegistryError;
use crate::package::{Package, PackageSignature, SignerRole};
use crate::signing::{PublicKey, PublicKeyFile, key_addition_message, yank_message};
use crate::storage::{Blobs, now_ms};
use crate::validate::check_component;

/// Uploads above this are refused before they are parsed (the default; configurable).
pub const DEFAULT_MAX_PACKAGE_BYTES: u64 = 32 * 1024 * 1024;

/// Where the registry keeps its blobs, and what it accepts.
pub struct RegistryConfig {
    /// The blob store.
    pub blobs: Blobs,
    /// Largest package accepted, bytes.
    pub max_package_bytes: u64,
}

/// Who may add a key to an account.
pub enum KeyAuthorization {
    /// A registry administrator (named for the record).
    Admin(String),
    /// An existing, unrevoked key of the same account signed the addition
    /// ([`key_addition_message`]).
    SignedBy {
        /// The existing key.
        key_id: String,
        /// Its signature, base64.
        signature: String,
    },
}

/// Who owns a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OwnerKind {
    /// A publisher (creator) account.
    Publisher,
    /// An organization.
    Organization,
}

impl OwnerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Publisher => "publisher",
            Self::Organization => "organization",
        }
    }
}

/// A registered key.
#[derive(Debug, Clone)]
pub struct RegisteredKey {
    /// Publisher or organization.
    pub owner_kind: OwnerKind,
    /// The account.
    pub owner: String,
    /// The key.
    pub key: PublicKey,
}

/// One published version.
#[derive(Debug, Clone, Serialize)]
pub struct VersionRecord {
    /// `namespace:name`.
    pub id: String,
    /// Exact version.
    pub version: semver::Version,
    /// `sha256:<hex>` of the component: installs pin this.
    pub component_digest: String,
    /// Component bytes.
    pub component_size: i64,
    /// `sha256:<hex>` of the manifest.
    pub manifest_digest: String,
    /// The manifest as published.
    pub manifest_text: String,
    /// `package.json` as published (what signatures cover).
    pub header: String,
    /// Publisher signatures, JSON.
    pub signatures: String,
    /// Unix ms.
    pub published_at: i64,
    /// Unix ms, when yanked.
    pub yanked_at: Option<i64>,
    /// Why it was yanked.
    pub yank_reason: Option<String>,
}

impl VersionRecord {
    /// The manifest, parsed.
    pub fn manifest(&self) -> Result<Manifest, RegistryError> {
        Manifest::parse(&self.manifest_text)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))
    }

    /// `namespace:name@version`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

/// The plugin registry over its database and blob store.
pub struct Registry {
    pub(crate) db: AnyPool,
    pub(crate) blobs: Blobs,
    runtime: Arc<Runtime>,
    max_package_bytes: u64,
}

pub(crate) const VERSION_COLUMNS: &str = "plugin_id, version, component_digest, component_size, \
     manifest_digest, manifest_text, header, signatures, published_at, yanked_at, yank_reason";

pub(crate) fn version_from_row(row: &sqlx::any::AnyRow) -> Result<VersionRecord, RegistryError> {
    let version: String = row.try_get("version")?;
    Ok(VersionRecord {
        id: row.try_get("plugin_id")?,
        version: version
            .parse()
            .map_err(|e| RegistryError::Config(format!("stored version `{version}`: {e}")))?,
        component_digest: row.try_get("component_digest")?,
        component_size: row.try_get("component_size")?,
        manifest_digest: row.try_get("manifest_digest")?,
        manifest_text: row.try_get("manifest_text")?,
        header: row.try_get("header")?,
        signatures: row.try_get("signatures")?,
        published_at: row.try_get("published_at")?,
        yanked_at: row.try_get("yanked_at")?,
        yank_reason: row.try_get("yank_reason")?,
    })
}

impl Registry {
    /// The registry over `db` (opened and migrated by `hyyve_database::Database`, shared
    /// with the other stores of the host), using `runtime` to validate components.
    pub fn new(db: AnyPool, config: RegistryConfig, runtime: Arc<Runtime>) -> Self {
        Self {
            db,
            blobs: config.blobs,
            runtime,
            max_package_bytes: config.max_package_bytes,
        }
    }

    /// The runtime components are validated (and loaded) with.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The blob store.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Registers a creator account with its first key; it owns the namespace of its name.
    pub async fn add_publisher(
        &self,
        name: &str,
        key: &PublicKeyFile,
        actor: &str,
    ) -> Result<(), RegistryError> {
        self.add_account(OwnerKind::Publisher, name, key, actor)
            .await
    }

    /// Registers an organization with its first key (for co-signing).
    pub async fn add_organization(
        &self,
        name: &str,
        key: &PublicKeyFile,
        actor: &str,
    ) -> Result<(), RegistryError> {
        self.add_account(OwnerKind::Organization, name, key, actor)
            .await
    }

    async fn add_account(
        &self,
        kind: OwnerKind,
        name: &str,
        key: &PublicKeyFile,
        actor: &str,
    ) -> Result<(), RegistryError> {
        hyyve_policy::check_name(name).map_err(RegistryError::Config)?;
        if key.owner != name {
            return Err(RegistryError::ForeignKey {
                key_id: key.key_id.clone(),
                owner: key.owner.clone(),
                expected: name.to_owned(),
            });
        }
        let public = PublicKey::from_base64(&key.public_key)?;
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let table = match kind {
            OwnerKind::Publisher => "INSERT INTO publishers (name, created_at) VALUES ($1, $2)",
            OwnerKind::Organization => {
                "INSERT INTO organizations (name, created_at) VALUES ($1, $2)"
            }
        };
        sqlx::query(table)
            .bind(name)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_as(e, || RegistryError::AlreadyRegistered(name.to_owned())))?;
        if kind == OwnerKind::Publisher {
            sqlx::query("INSERT INTO namespaces (namespace, publisher) VALUES ($1, $1)")
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unique_as(e, || {
                        RegistryError::AlreadyRegistered(format!("namespace {name}"))
                    })
                })?;
        }
        insert_key(&mut tx, kind, name, &public, &format!("admin:{actor}"), now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Gives `namespace` to `publisher` (an administrator's act).
    pub async fn assign_namespace(
        &self,
        namespace: &str,
        publisher: &str,
    ) -> Result<(), RegistryError> {
        hyyve_policy::check_name(namespace).map_err(RegistryError::Config)?;
        self.require_account(OwnerKind::Publisher, publisher)
            .await?;
        sqlx::query("INSERT INTO namespaces (namespace, publisher) VALUES ($1, $2)")
            .bind(namespace)
            .bind(publisher)
            .execute(&self.db)
            .await
            .map_err(|e| {
                unique_as(e, || {
                    RegistryError::AlreadyRegistered(format!("namespace {namespace}"))
                })
            })?;
        Ok(())
    }

    /// Adds a key to an existing account: rotation by a signature of a current key, or
    /// by an administrator.
    pub async fn add_key(
        &self,
        kind: OwnerKind,
        key: &PublicKeyFile,
        authorization: KeyAuthorization,
    ) -> Result<(), RegistryError> {
        let public = PublicKey::from_base64(&key.public_key)?;
        self.require_account(kind, &key.owner).await?;
        let added_by = match authorization {
            KeyAuthorization::Admin(actor) => format!("admin:{actor}"),
            KeyAuthorization::SignedBy { key_id, signature } => {
                let message = key_addition_message(&key.owner, &public.id());
                self.verify_owned(kind, &key.owner, &key_id, &message, &signature)
                    .await?;
                key_id
            }
        };
        let mut tx = self.db.begin().await?;
        insert_key(&mut tx, kind, &key.owner, &public, &added_by, now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Revokes a key: signatures by it no longer verify for new publishes or installs.
    pub async fn revoke_key(&self, key_id: &str) -> Result<(), RegistryError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(key_id)
        .execute(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            return Err(RegistryError::UnknownKey {
                key_id: key_id.to_owned(),
            });
        }
        Ok(())
    }

    /// A registered, unrevoked key.
    pub async fn key(&self, key_id: &str) -> Result<RegisteredKey, RegistryError> {
        let row = sqlx::query(
            "SELECT owner_kind, owner, public_key FROM signing_keys \
             WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| RegistryError::UnknownKey {
            key_id: key_id.to_owned(),
        })?;
        let kind: String = row.try_get("owner_kind")?;
        Ok(RegisteredKey {
            owner_kind: if kind == "organization" {
                OwnerKind::Organization
            } else {
                OwnerKind::Publisher
            },
            owner: row.try_get("owner")?,
            key: PublicKey::from_base64(&row.try_get::<String, _>("public_key")?)?,
        })
    }

    async fn require_account(&self, kind: OwnerKind, name: &str) -> Result<(), RegistryError> {
        let sql = match kind {
            OwnerKind::Publisher => "SELECT name FROM publishers WHERE name = $1",
            OwnerKind::Organization => "SELECT name FROM organizations WHERE name = $1",
        };
        match sqlx::query(sql).bind(name).fetch_optional(&self.db).await? {
            Some(_) => Ok(()),
            None => Err(match kind {
                OwnerKind::Publisher => RegistryError::UnknownPublisher(name.to_owned()),
                OwnerKind::Organization => RegistryError::UnknownOrganization(name.to_owned()),
            }),
        }
    }

    /// Checks that `signature` is by a registered key of `owner` and verifies over the
    /// package.
    pub(crate) async fn verify_signature(
        &self,
        package: &Package,
        signature: &PackageSignature,
        kind: OwnerKind,
        owner: &str,
    ) -> Result<(), RegistryError> {
        let message = package.signed_message();
        self.verify_owned(
            kind,
            owner,
            &signature.key_id,
            &message,
            &signature.signature,
        )
        .await
    }

    /// Checks that `signature` over `message` is by `key_id`, a registered, unrevoked
    /// key of `owner`.
    async fn verify_owned(
        &self,
        kind: OwnerKind,
        owner: &str,
        key_id: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), RegistryError> {
        let key = self.key(key_id).await?;
        if key.owner_kind != kind || key.owner != owner {
            return Err(RegistryError::ForeignKey {
                key_id: key_id.to_owned(),
                owner: key.owner,
                expected: owner.to_owned(),
            });
        }
        if !key.key.verifies(message, signature) {
            return Err(RegistryError::BadSignature {
                key_id: key_id.to_owned(),
            });
        }
        Ok(())
    }

    /// Validates a package and, only if every check passes, stores it. Checks run
    /// cheapest first: size, structure, manifest, digests, signature, namespace, version,
    /// then the component itself.
    pub async fn publish(&self, bytes: &[u8]) -> Result<VersionRecord, RegistryError> {
        if bytes.len() as u64 > self.max_package_bytes {
            return Err(RegistryError::TooLarge {
                size: bytes.len() as u64,
                limit: self.max_package_bytes,
            });
        }
        let package = Package::parse(bytes)?;
        let manifest = Manifest::parse(&package.manifest_text)
            .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
        let id = manifest.plugin.id.to_string();
        let version = manifest.plugin.version.clone();
        if package.header.id != id || package.header.version != version.to_string() {
            return Err(RegistryError::HeaderMismatch {
                header: format!("{}@{}", package.header.id, package.header.version),
                manifest: format!("{id}@{version}"),
            });
        }
        package.verify_digests()?;
        let publisher = &manifest.plugin.publisher;
        let signatures: Vec<&PackageSignature> = package
            .signatures
            .iter()
            .filter(|s| s.role == SignerRole::Publisher)
            .collect();
        if signatures.is_empty() {
            return Err(RegistryError::Unsigned {
                publisher: publisher.clone(),
            });
        }
        for signature in &signatures {
            self.verify_signature(&package, signature, OwnerKind::Publisher, publisher)
                .await?;
        }
        self.check_namespace(&manifest.plugin.id, publisher).await?;
        self.check_version_is_new(&id, &version).await?;
        check_component(&self.runtime, &manifest, &package.component).await?;
        self.store(&package, &manifest, &signatures).await
    }

    async fn check_namespace(&self, id: &PluginId, publisher: &str) -> Result<(), RegistryError> {
        let owner = self.namespace_owner(&id.namespace).await?;
        if owner.as_deref() == Some(publisher) {
            return Ok(());
        }
        Err(RegistryError::NamespaceNotOwned {
            namespace: id.namespace.clone(),
            publisher: publisher.to_owned(),
            owner,
        })
    }

    /// The publisher owning `namespace`, if any has published in it.
    async fn namespace_owner(&self, namespace: &str) -> Result<Option<String>, RegistryError> {
        Ok(
            sqlx::query_scalar("SELECT publisher FROM namespaces WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.db)
                .await?,
        )
    }

    async fn check_version_is_new(
        &self,
        id: &str,
        version: &semver::Version,
    ) -> Result<(), RegistryError> {
        let existing = self.versions(id).await?;
        if existing.iter().any(|v| &v.version == version) {
            return Err(RegistryError::VersionExists {
                id: id.to_owned(),
                version: version.to_string(),
            });
        }
        if let Some(latest) = existing.iter().map(|v| &v.version).max()
            && latest > version
        {
            return Err(RegistryError::VersionNotGreater {
                id: id.to_owned(),
                version: version.to_string(),
                latest: latest.to_string(),
            });
        }
        Ok(())
    }

    /// Rows in one transaction; blobs written inside it, so a failed commit leaves no
    /// row, and a blob is removed again unless another version already holds it.
    async fn store(
        &self,
        package: &Package,
        manifest: &Manifest,
        signatures: &[&PackageSignature],
    ) -> Result<VersionRecord, RegistryError> {
        let id = manifest.plugin.id.to_string();
        let now = now_ms();
        let record = VersionRecord {
            id: id.clone(),
            version: manifest.plugin.version.clone(),
            component_digest: package.component_digest().to_owned(),
            component_size: package.component.len() as i64,
            manifest_digest: package.manifest_digest().to_owned(),
            manifest_text: package.manifest_text.clone(),
            header: serde_json::to_string(&package.header).unwrap_or_default(),
            signatures: serde_json::to_string(signatures).unwrap_or_default(),
            published_at: now,
            yanked_at: None,
            yank_reason: None,
        };
        let component_was_there = self.blob_in_use(&record.component_digest).await?;
        let mut tx = self.db.begin().await?;
        crate::marketplace::upsert_listing(&mut tx, package, manifest, now).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO versions ({VERSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)"
        )))
        .bind(&record.id)
        .bind(record.version.to_string())
        .bind(&record.component_digest)
        .bind(record.component_size)
        .bind(&record.manifest_digest)
        .bind(&record.manifest_text)
        .bind(&record.header)
        .bind(&record.signatures)
        .bind(record.published_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            unique_as(e, || RegistryError::VersionExists {
                id: id.clone(),
                version: record.version.to_string(),
            })
        })?;
        let stored = async {
            self.blobs.put(&package.component).await?;
            if let Some((_, icon)) = &package.icon {
                self.blobs.put(icon).await?;
            }
            tx.commit().await?;
            Ok::<_, RegistryError>(())
        }
        .await;
        if let Err(e) = stored {
            if !component_was_there {
                self.blobs.delete(&record.component_digest).await.ok();
            }
            return Err(e);
        }
        Ok(record)
    }

    async fn blob_in_use(&self, digest: &str) -> Result<bool, RegistryError> {
        Ok(
            sqlx::query("SELECT 1 AS one FROM versions WHERE component_digest = $1 LIMIT 1")
                .bind(digest)
                .fetch_optional(&self.db)
                .await?
                .is_some(),
        )
    }

    /// Every version of `id`, oldest first.
    pub async fn versions(&self, id: &str) -> Result<Vec<VersionRecord>, RegistryError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE plugin_id = $1"
        )))
        .bind(id)
        .fetch_all(&self.db)
        .await?;
        let mut versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        Ok(versions)
    }

    /// One exact version.
    pub async fn version(
        &self,
        id: &str,
        version: &semver::Version,
    ) -> Result<VersionRecord, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE plugin_id = $1 AND version = $2"
        )))
        .bind(id)
        .bind(version.to_string())
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("{id}@{version}")))?;
        version_from_row(&row)
    }

    /// The version of `id` whose component has `digest` (`sha256:<hex>`): what an
    /// install pinned, yanked or not.
    pub async fn version_by_digest(
        &self,
        id: &str,
        digest: &str,
    ) -> Result<VersionRecord, RegistryError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM versions WHERE plugin_id = $1 \
             AND component_digest = $2 ORDER BY published_at DESC LIMIT 1"
        )))
        .bind(id)
        .bind(digest)
        .fetch_optional(&self.db)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("{id} with component {digest}")))?;
        version_from_row(&row)
    }

    /// The greatest unyanked version of `id` matching `range` (a semver requirement such
    /// as `^1.2`, `~1.2.3`, `=1.0.0` or `*`).
    pub async fn resolve(&self, id: &str, range: &str) -> Result<VersionRecord, RegistryError> {
        let requirement =
            semver::VersionReq::parse(range).map_err(|e| RegistryError::InvalidRange {
                range: range.to_owned(),
                message: e.to_string(),
            })?;
        let versions = self.versions(id).await?;
        if versions.is_empty() {
            return Err(RegistryError::NotFound(format!("plugin {id}")));
        }
        let matching: Vec<&VersionRecord> = versions
            .iter()
            .filter(|v| requirement.matches(&v.version))
            .collect();
        if let Some(best) = matching.iter().rev().find(|v| v.yanked_at.is_none()) {
            return Ok((*best).clone());
        }
        match matching.last() {
            Some(yanked) => Err(RegistryError::Yanked {
                id: id.to_owned(),
                version: yanked.version.to_string(),
                reason: yanked.yank_reason.clone(),
            }),
            None => Err(RegistryError::NoMatchingVersion {
                id: id.to_owned(),
                range: range.to_owned(),
            }),
        }
    }

    /// The component of a version, checked against its pinned digest.
    pub async fn component(&self, digest: &str) -> Result<Vec<u8>, RegistryError> {
        self.blobs.get(digest).await
    }

    /// Yanks a version at its publisher's request, as [`Registry::yank`]: `signature`
    /// (base64) is by `key_id`, a key of the publisher owning the plugin's namespace,
    /// over [`yank_message`]. Whoever holds that key may publish the plugin, so it is
    /// the one authority to withdraw it. Yanking a yanked version keeps the first reason.
    pub async fn yank_signed(
        &self,
        id: &str,
        version: &semver::Version,
        reason: &str,
        key_id: &str,
        signature: &str,
    ) -> Result<VersionRecord, RegistryError> {
        self.version(id, version).await?;
        let namespace = id.split_once(':').map_or(id, |(namespace, _)| namespace);
        let owner = self
            .namespace_owner(namespace)
            .await?
            .ok_or_else(|| RegistryError::NotFound(format!("{id}@{version}")))?;
        let message = yank_message(id, version, reason);
        self.verify_owned(OwnerKind::Publisher, &owner, key_id, &message, signature)
            .await?;
        self.yank(id, version, reason).await?;
        self.version(id, version).await
    }

    /// Marks a version yanked: no new installs resolve to it; installs pinned to its
    /// digest keep working ([`YANK_EFFECT`], in both local and server mode).
    pub async fn yank(
        &self,
        id: &str,
        version: &semver::Version,
        reason: &str,
    ) -> Result<(), RegistryError> {
        let done = sqlx::query(
            "UPDATE versions SET yanked_at = $1, yank_reason = $2 \
             WHERE plugin_id = $3 AND version = $4 AND yanked_at IS NULL",
        )
        .bind(now_ms())
        .bind(reason)
        .bind(id)
        .bind(version.to_string())
        .execute(&self.db)
        .await?;
        if done.rows_affected() == 0 {
            self.version(id, version).await?;
        }
        Ok(())
    }
}

/// What a yank does, as the audit log records it: the one meaning of "yanked".
pub const YANK_EFFECT: &str = "new installs refused; pinned installs keep running";

async fn insert_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    kind: OwnerKind,
    owner: &str,
    key: &PublicKey,
    added_by: &str,
    now: i64,
) -> Result<(), RegistryError> {
    sqlx::query(
        "INSERT INTO signing_keys (key_id, owner_kind, owner, public_key, added_by, added_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(key.id())
    .bind(kind.as_str())
    .bind(owner)
    .bind(key.to_base64())
    .bind(added_by)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| {
        unique_as(e, || {
            RegistryError::AlreadyRegistered(format!("key {}", key.id()))
        })
    })?;
    Ok(())
}

/// A unique-constraint violation becomes `error()`; anything else stays a database error.
pub(crate) fn unique_as(e: sqlx::Error, error: impl FnOnce() -> RegistryError) -> RegistryError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => error(),
        _ => RegistryError::Database(e),
    }
}
