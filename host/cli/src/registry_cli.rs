//! The registry commands: keys, packaging and signing, publishing, the marketplace,
//! installs from the registry and the organization's vetting queue.
//!
//! The registry lives beside the rest of the data: metadata in `<data>/registry.db`
//! (SQLite) unless `HYYVE_DATABASE_URL` or `DATABASE_URL` names another database, blobs in
//! `<data>/blobs` unless `HYYVE_BLOB_URL` names a store (`s3://…`, `file:///…`).

use hyyve_policy::AuditAction;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;
use hyyve_database::Database;
use hyyve_policy::{AuditEvent, AuditLog, Manifest, PluginId, PluginKind};
use hyyve_registry::marketplace::SearchQuery;
use hyyve_registry::package::{Package, PackageSignature, SignerRole};
use hyyve_registry::signing::{KeyPair, PublicKeyFile, key_addition_message, yank_message};
use hyyve_registry::storage::Blobs;
use hyyve_registry::{
    DEFAULT_MAX_PACKAGE_BYTES, KeyAuthorization, OwnerKind, Registry, RegistryConfig,
    RegistryError, VersionRecord,
};
use hyyve_runtime::Runtime;

use hyyve_platform::{Candidate, InstallError};

use crate::install::LocalInstalls;
use crate::local::Local;
use std::process::ExitCode;

/// The database of a data directory: `HYYVE_DATABASE_URL`, `DATABASE_URL`, else its
/// SQLite file.
pub fn database_url(data_dir: &Path) -> String {
    std::env::var("HYYVE_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| format!("sqlite://{}", data_dir.join("registry.db").display()))
}

/// The blob store of a data directory: `HYYVE_BLOB_URL`, else its `blobs` folder.
pub fn blobs(data_dir: &Path) -> anyhow::Result<Blobs> {
    std::fs::create_dir_all(data_dir)?;
    Ok(match std::env::var("HYYVE_BLOB_URL") {
        Ok(url) => Blobs::from_url(&url)?,
        Err(_) => Blobs::local(&data_dir.join("blobs"))?,
    })
}

/// Opens (and migrates) the database of a data directory.
pub async fn open_database(data_dir: &Path) -> anyhow::Result<Database> {
    Ok(Database::open(&database_url(data_dir)).await?)
}

/// The registry over `db`, with the data directory's blobs.
pub fn registry_on(
    data_dir: &Path,
    db: &Database,
    runtime: Arc<Runtime>,
) -> anyhow::Result<Registry> {
    let config = RegistryConfig {
        blobs: blobs(data_dir)?,
        max_package_bytes: max_package_bytes(),
    };
    Ok(Registry::new(db.pool.clone(), config, runtime))
}

/// Opens the registry of a data directory.
pub async fn open(data_dir: &Path, runtime: Arc<Runtime>) -> anyhow::Result<Registry> {
    registry_on(data_dir, &open_database(data_dir).await?, runtime)
}

/// The package size limit: `HYYVE_MAX_PACKAGE_BYTES`, else the registry's default.
pub fn max_package_bytes() -> u64 {
    std::env::var("HYYVE_MAX_PACKAGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MAX_PACKAGE_BYTES)
}

/// A registry error with its code first, so scripts can match on it.
pub fn coded(e: RegistryError) -> anyhow::Error {
    anyhow::anyhow!("[{}] {e}", e.code())
}

/// `hyyve keys`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make an ed25519 key pair: `<dir>/<owner>.key` (0600) and `<dir>/<owner>.pub`.
    New {
        /// The publisher or organization the key signs for.
        owner: String,
        /// Where to write the files (default `<data>/keys`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Sign the addition of a new key with a current one (key rotation).
    Endorse {
        /// The current key file.
        #[arg(long)]
        key: PathBuf,
        /// The new key's `.pub` file.
        new: PathBuf,
    },
    /// Sign a request to yank a version of one of your plugins, printed as the JSON
    /// body of `POST /v1/registry/listings/{id}/versions/{version}/yank`.
    SignYank {
        /// The publisher's key file.
        #[arg(long)]
        key: PathBuf,
        /// `namespace:name@version`.
        reference: String,
        /// Why (shown to anyone resolving to it).
        #[arg(long)]
        reason: String,
    },
}

/// `hyyve registry`.
#[derive(Subcommand)]
pub enum RegistryCommand {
    /// Search listings.
    Search {
        /// Words to find in id, title, description, categories.
        #[arg(default_value = "")]
        text: String,
        /// Only this kind.
        #[arg(long)]
        kind: Option<String>,
        /// Only this category.
        #[arg(long)]
        category: Option<String>,
        /// Only this publisher.
        #[arg(long)]
        publisher: Option<String>,
        /// Page (1-based).
        #[arg(long, default_value_t = 1)]
        page: u32,
        /// Listings per page (at most 100).
        #[arg(long, default_value_t = 20)]
        per_page: u32,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a listing with its versions.
    Show {
        /// `namespace:name`.
        plugin: String,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Yank a version: no new installs; pinned installs keep working.
    Yank {
        /// `namespace:name@version`.
        reference: String,
        /// Why (shown to anyone resolving to it).
        #[arg(long)]
        reason: String,
    },
    /// Register a publisher (creator account) with its first public key (admin).
    AddPublisher {
        /// The publisher's `.pub` file (its owner names the account).
        key: PathBuf,
    },
    /// Register an organization with its first public key (admin).
    AddOrganization {
        /// The organization's `.pub` file.
        key: PathBuf,
    },
    /// Add a key to an account: endorsed by a current key (`hyyve keys endorse`), or as
    /// an admin when no endorsement is given.
    AddKey {
        /// The new `.pub` file.
        key: PathBuf,
        /// The account is an organization, not a publisher.
        #[arg(long)]
        organization: bool,
        /// Endorsement printed by `hyyve keys endorse`: `<key id> <signature>`.
        #[arg(long, num_args = 2, value_names = ["KEY_ID", "SIGNATURE"])]
        endorsed_by: Option<Vec<String>>,
    },
    /// Revoke a key.
    RevokeKey {
        /// `ed25519:…`.
        key_id: String,
    },
    /// Give a namespace to a publisher (admin).
    AssignNamespace {
        /// The namespace.
        namespace: String,
        /// The publisher.
        publisher: String,
    },
    /// Compute a creator's payout for a month from metered usage.
    Payout {
        /// The publisher.
        publisher: String,
        /// `YYYY-MM`.
        period: String,
    },
}

/// `hyyve vet`.
#[derive(Subcommand)]
pub enum VetCommand {
    /// The organization's review queue: capabilities asked for and the change from the
    /// last approved version.
    List {
        /// Include decided requests.
        #[arg(long)]
        all: bool,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a request (with `--key`, co-sign the version with an organization key).
    Approve {
        /// Request id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
        /// Organization key file to co-sign with.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Reject a request.
    Reject {
        /// Request id.
        id: i64,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

/// Makes a key pair.
pub fn keys(data_dir: &Path, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { owner, dir } => {
            hyyve_policy::check_name(&owner).map_err(anyhow::Error::msg)?;
            let dir = dir.unwrap_or_else(|| data_dir.join("keys"));
            let key = KeyPair::generate(&owner)?;
            let (secret, public) = key.save(&dir)?;
            println!("key id {}", key.public().id());
            println!("secret {} (keep it private)", secret.display());
            println!("public {}", public.display());
        }
        KeysCommand::Endorse { key, new } => {
            let key = KeyPair::load(&key)?;
            let new = PublicKeyFile::load(&new)?;
            let signature = key.sign(&key_addition_message(&new.owner, &new.key_id));
            println!("{} {signature}", key.public().id());
        }
        KeysCommand::SignYank {
            key,
            reference,
            reason,
        } => {
            let key = KeyPair::load(&key)?;
            let (id, version) = reference
                .split_once('@')
                .context("give namespace:name@version")?;
            let version: semver::Version = version.parse()?;
            let signature = key.sign(&yank_message(id, &version, &reason));
            let body = serde_json::json!({
                "reason": reason,
                "keyId": key.public().id(),
                "signature": signature,
            });
            println!("{body}");
        }
    }
    Ok(())
}

/// `hyyve plugin package`: the manifest of `dir`, its component (built unless given)
/// and listing files, into one package file.
pub fn package(
    dir: &Path,
    component: Option<&Path>,
    output: Option<PathBuf>,
) -> anyhow::Result<PathBuf> {
    let component_path = match component {
        Some(path) => path.to_owned(),
        None => crate::build::build_crate(&dir.canonicalize()?, None)?,
    };
    let component = std::fs::read(&component_path)
        .with_context(|| format!("reading {}", component_path.display()))?;
    let (manifest, package) = package_dir(dir, component)?;
    let output = output.unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}-{}-{}.hyyvepkg",
            manifest.plugin.id.namespace, manifest.plugin.id.name, manifest.plugin.version
        ))
    });
    std::fs::write(&output, package.to_bytes())
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(output)
}

/// The package of the plugin in `dir` (its `hyyve.toml` and listing files) around a
/// built `component`, unsigned.
pub fn package_dir(dir: &Path, component: Vec<u8>) -> anyhow::Result<(Manifest, Package)> {
    let manifest_path = dir.join("hyyve.toml");
    let manifest_text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {}", manifest_path.display()))?;
    package_parts(&manifest_text, component, |name| {
        std::fs::read(dir.join(name)).with_context(|| format!("reading listing file {name}"))
    })
    .with_context(|| manifest_path.display().to_string())
}

/// A package of `manifest_text` and `component`, with the listing files the manifest
/// names read by `read_listing_file`.
pub fn package_parts(
    manifest_text: &str,
    component: Vec<u8>,
    read_listing_file: impl Fn(&str) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Manifest, Package)> {
    let manifest = Manifest::parse(manifest_text)?;
    let read_beside = |name: &Option<String>| -> anyhow::Result<Option<(String, Vec<u8>)>> {
        name.as_ref()
            .map(|n| read_listing_file(n).map(|b| (n.clone(), b)))
            .transpose()
    };
    let readme = read_beside(&manifest.listing.readme)?
        .map(|(_, b)| String::from_utf8(b).context("the readme is not UTF-8"))
        .transpose()?;
    let icon = read_beside(&manifest.listing.icon)?.map(|(name, bytes)| {
        let entry = if name.ends_with(".svg") {
            "icon.svg"
        } else {
            "icon.png"
        };
        (entry.to_owned(), bytes)
    });
    let package = Package::new(&manifest, manifest_text.to_owned(), component, readme, icon)?;
    Ok((manifest, package))
}

/// `hyyve plugin sign`: adds the publisher's signature (the key's owner must be the
/// manifest's publisher).
pub fn sign(package_path: &Path, key_path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(package_path)
        .with_context(|| format!("reading {}", package_path.display()))?;
    let mut package = Package::parse(&bytes)?;
    package.verify_digests()?;
    let key = KeyPair::load(key_path)?;
    let key_id = sign_as_publisher(&mut package, &key)?;
    std::fs::write(package_path, package.to_bytes())?;
    Ok(key_id)
}

/// Adds (or replaces) `key`'s publisher signature; its key id. The key's owner must be
/// the manifest's publisher.
pub fn sign_as_publisher(package: &mut Package, key: &KeyPair) -> anyhow::Result<String> {
    let manifest = Manifest::parse(&package.manifest_text)?;
    if key.owner != manifest.plugin.publisher {
        anyhow::bail!(
            "key belongs to `{}`, the package's publisher is `{}`",
            key.owner,
            manifest.plugin.publisher
        );
    }
    let key_id = key.public().id();
    package.signatures.retain(|s| s.key_id != key_id);
    package.signatures.push(PackageSignature {
        role: SignerRole::Publisher,
        signer: key.owner.clone(),
        key_id: key_id.clone(),
        signature: key.sign(&package.signed_message()),
    });
    Ok(key_id)
}

/// Resolves `namespace:name@range` (no range: `*`) and installs the version pinned by
/// digest through the platform core (vetting, grant, audit). `Ok(None)`: waiting
/// for the organization's review.
pub async fn install(
    registry: &Registry,
    runtime: &Runtime,
    installs: &LocalInstalls,
    reference: &str,
) -> anyhow::Result<Option<VersionRecord>> {
    let (id, range) = reference.split_once('@').unwrap_or((reference, "*"));
    let plugin_id: PluginId = id.parse().map_err(anyhow::Error::msg)?;
    let version = registry
        .resolve(&plugin_id.to_string(), range)
        .await
        .map_err(coded)?;
    // Loaded before it is installed: a component this host cannot run is not installed.
    let component = registry
        .component(&version.component_digest)
        .await
        .map_err(coded)?;
    runtime.load_node_plugin(&component).await?;
    let candidate = Candidate::from_registry(version.clone()).map_err(coded)?;
    let accepted = installs.policy.workspace_grant(&plugin_id)?;
    match installs
        .installer(Some(registry))
        .install(&installs.acting, &candidate, accepted)
        .await
    {
        Ok(_) => Ok(Some(version)),
        Err(InstallError::VettingPending { .. }) => Ok(None),
        Err(InstallError::Registry(e)) => Err(coded(e)),
        Err(e) => Err(e.into()),
    }
}

/// Marketplace and account commands.
pub async fn registry_command(
    registry: &Registry,
    audit: &AuditLog,
    actor: &str,
    command: RegistryCommand,
) -> anyhow::Result<()> {
    match command {
        RegistryCommand::Search {
            text,
            kind,
            category,
            publisher,
            page,
            per_page,
            json,
        } => {
            let kind = kind
                .map(|k| {
                    serde_json::from_value::<PluginKind>(serde_json::Value::String(k.clone()))
                        .map_err(|_| anyhow::anyhow!("kind `{k}`: use node, provider or channel"))
                })
                .transpose()?;
            let results = registry
                .search(&SearchQuery {
                    text,
                    kind,
                    category,
                    publisher,
                    page,
                    per_page,
                })
                .await
                .map_err(coded)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                for l in &results.listings {
                    println!(
                        "{:<32} {:<8} {:<10} {:<12} {}",
                        l.id, l.latest_version, l.kind, l.publisher, l.title
                    );
                }
                println!(
                    "page {} of {} listings ({} per page)",
                    results.page, results.total, results.per_page
                );
            }
        }
        RegistryCommand::Show { plugin, json } => {
            let detail = registry.show(&plugin).await.map_err(coded)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&detail)?);
            } else {
                let l = &detail.listing;
                println!("{} — {}\n{}", l.id, l.title, l.description);
                println!(
                    "kind {}, publisher {}, pricing {:?}",
                    l.kind, l.publisher, l.pricing
                );
                for v in &detail.versions {
                    let yanked = match (&v.yanked_at, &v.yank_reason) {
                        (Some(_), reason) => {
                            format!(" yanked ({})", reason.clone().unwrap_or_default())
                        }
                        _ => String::new(),
                    };
                    println!("  {} {}{yanked}", v.version, v.component_digest);
                }
            }
        }
        RegistryCommand::Yank { reference, reason } => {
            let (id, version) = reference
                .split_once('@')
                .context("give namespace:name@version")?;
            let version: semver::Version = version.parse()?;
            registry.yank(id, &version, &reason).await.map_err(coded)?;
            record(
                audit,
                actor,
                AuditAction::PackageYank,
                format!("plugin/{id}@{version}"),
                serde_json::json!({ "reason": reason, "effect": hyyve_registry::YANK_EFFECT }),
            )?;
            println!("yanked {id}@{version}: {}", hyyve_registry::YANK_EFFECT);
        }
        RegistryCommand::AddPublisher { key } => {
            let key = PublicKeyFile::load(&key)?;
            registry
                .add_publisher(&key.owner, &key, actor)
                .await
                .map_err(coded)?;
            audit_account(audit, actor, AuditAction::PublisherAdd, &key)?;
            println!("publisher {} registered with key {}", key.owner, key.key_id);
        }
        RegistryCommand::AddOrganization { key } => {
            let key = PublicKeyFile::load(&key)?;
            registry
                .add_organization(&key.owner, &key, actor)
                .await
                .map_err(coded)?;
            audit_account(audit, actor, AuditAction::OrganizationAdd, &key)?;
            println!(
                "organization {} registered with key {}",
                key.owner, key.key_id
            );
        }
        RegistryCommand::AddKey {
            key,
            organization,
            endorsed_by,
        } => {
            let key = PublicKeyFile::load(&key)?;
            let kind = if organization {
                OwnerKind::Organization
            } else {
                OwnerKind::Publisher
            };
            let authorization = match endorsed_by.as_deref() {
                Some([key_id, signature]) => KeyAuthorization::SignedBy {
                    key_id: key_id.clone(),
                    signature: signature.clone(),
                },
                _ => KeyAuthorization::Admin(actor.to_owned()),
            };
            registry
                .add_key(kind, &key, authorization)
                .await
                .map_err(coded)?;
            audit_account(audit, actor, AuditAction::SigningKeyAdd, &key)?;
            println!("key {} added to {}", key.key_id, key.owner);
        }
        RegistryCommand::RevokeKey { key_id } => {
            registry.revoke_key(&key_id).await.map_err(coded)?;
            record(
                audit,
                actor,
                AuditAction::SigningKeyRevoke,
                format!("key/{key_id}"),
                serde_json::Value::Null,
            )?;
            println!("revoked {key_id}");
        }
        RegistryCommand::AssignNamespace {
            namespace,
            publisher,
        } => {
            registry
                .assign_namespace(&namespace, &publisher)
                .await
                .map_err(coded)?;
            record(
                audit,
                actor,
                AuditAction::NamespaceAssign,
                format!("namespace/{namespace}"),
                serde_json::json!({ "publisher": publisher }),
            )?;
            println!("namespace {namespace} belongs to {publisher}");
        }
        RegistryCommand::Payout { publisher, period } => {
            let payout = registry
                .compute_payout(&publisher, &period)
                .await
                .map_err(coded)?;
            println!("{}", serde_json::to_string_pretty(&payout)?);
        }
    }
    Ok(())
}

/// One audit entry.
fn record(
    audit: &AuditLog,
    actor: &str,
    action: AuditAction,
    subject: String,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    audit.append(AuditEvent::new(actor, action, subject, detail))?;
    Ok(())
}

fn audit_account(
    audit: &AuditLog,
    actor: &str,
    action: AuditAction,
    key: &PublicKeyFile,
) -> anyhow::Result<()> {
    record(
        audit,
        actor,
        action,
        format!("account/{}", key.owner),
        serde_json::json!({ "key_id": key.key_id }),
    )
}

/// The vetting queue of the organization named in `org.toml`.
pub async fn vet_command(
    registry: &Registry,
    audit: &AuditLog,
    organization: &str,
    actor: &str,
    command: VetCommand,
) -> anyhow::Result<()> {
    match command {
        VetCommand::List { all, json } => {
            let queue = registry
                .vetting_queue(organization, all)
                .await
                .map_err(coded)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&queue)?);
                return Ok(());
            }
            for r in &queue {
                println!(
                    "#{} {}@{} for workspace {} ({:?}) requested by {}",
                    r.id, r.plugin, r.version, r.workspace, r.status, r.requested_by
                );
                for (item, amount) in &r.capabilities {
                    println!("    asks {item} {amount}");
                }
                if let Some(base) = &r.base_version {
                    println!("    since approved {base}:");
                    for a in &r.diff.added {
                        println!("      + {a}");
                    }
                    for (item, was, now) in &r.diff.increased {
                        println!("      ↑ {item} {was} → {now}");
                    }
                    for item in &r.diff.removed {
                        println!("      - {item}");
                    }
                }
            }
        }
        VetCommand::Approve { id, reason, key } => {
            let key = key.map(|k| KeyPair::load(&k)).transpose()?;
            let request = registry
                .approve(organization, id, actor, &reason, key.as_ref())
                .await
                .map_err(coded)?;
            record(
                audit,
                actor,
                AuditAction::VettingApprove,
                format!("organization/{organization}/vetting/{id}"),
                serde_json::json!({
                    "plugin": request.plugin, "version": request.version,
                    "reason": reason, "cosigned": key.is_some(),
                }),
            )?;
            println!("approved #{id} {}@{}", request.plugin, request.version);
        }
        VetCommand::Reject { id, reason } => {
            let request = registry
                .reject(organization, id, actor, &reason)
                .await
                .map_err(coded)?;
            record(
                audit,
                actor,
                AuditAction::VettingReject,
                format!("organization/{organization}/vetting/{id}"),
                serde_json::json!({
                    "plugin": request.plugin, "version": request.version, "reason": reason,
                }),
            )?;
            println!("rejected #{id} {}@{}", request.plugin, request.version);
        }
    }
    Ok(())
}

/// Whether a workflow's plugin reference names a registry package (`namespace:name`,
/// not a first-party `hyyve:` plugin or a `.wasm` file).
pub fn is_registry_reference(reference: &str) -> bool {
    !reference.starts_with("hyyve:")
        && !reference.ends_with(".wasm")
        && reference.parse::<PluginId>().is_ok()
}

/// The component a workspace's install of `reference` is pinned to, with its registry
/// version. A yanked version keeps working here: only new installs avoid it.
pub async fn load_installed(
    registry: &Registry,
    runtime: &Runtime,
    installs: &LocalInstalls,
    reference: &str,
) -> anyhow::Result<(crate::resolve::Resolved, VersionRecord)> {
    let record = installs.get(reference).await?.with_context(|| {
        format!("plugin `{reference}` is not installed in this workspace (hyyve install {reference}@<range>)")
    })?;
    let digest = record.component_digest;
    let version = registry
        .version_by_digest(reference, &digest)
        .await
        .map_err(coded)?;
    let component = registry.component(&digest).await.map_err(coded)?;
    let resolved = crate::resolve::Resolved {
        plugin: Arc::new(runtime.load_node_plugin(&component).await?),
        manifest: version.manifest().map_err(coded)?,
        manifest_text: version.manifest_text.clone(),
    };
    Ok((resolved, version))
}

/// `hyyve install REFERENCE`: exit 3 while the organization's review is pending.
pub async fn install_command(local: &Local, reference: &str) -> anyhow::Result<ExitCode> {
    let runtime = local.runtime()?;
    let registry = open(&local.data_dir, runtime.clone()).await?;
    let installs = local.installs(local.audit_log()?).await?;
    let installed = install(&registry, &runtime, &installs, reference).await?;
    Ok(match installed {
        Some(version) => {
            println!(
                "installed {} in workspace {} pinned to {}",
                version.reference(),
                local.workspace,
                version.component_digest
            );
            ExitCode::SUCCESS
        }
        None => {
            println!(
                "{reference} waits for review by organization {} (hyyve vet list)",
                installs.policy.org.name
            );
            ExitCode::from(3)
        }
    })
}

/// `hyyve registry …` on the data dir's registry.
pub async fn registry_exec(local: &Local, command: RegistryCommand) -> anyhow::Result<()> {
    let registry = open(&local.data_dir, local.runtime()?).await?;
    let audit = local.audit_log()?;
    registry_command(&registry, &audit, &local.actor, command).await
}

/// `hyyve vet …` for the organization named in the data dir's `org.toml`.
pub async fn vet_exec(local: &Local, command: VetCommand) -> anyhow::Result<()> {
    let registry = open(&local.data_dir, local.runtime()?).await?;
    let audit = local.audit_log()?;
    let org = hyyve_platform::files::PolicyFiles::load(&local.data_dir)?
        .org
        .name;
    vet_command(&registry, &audit, &org, &local.actor, command).await
}
