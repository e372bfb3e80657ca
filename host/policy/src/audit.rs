//! The audit log: every install, grant, policy change and denial, append-only, with who,
//! what and when. Each entry carries the SHA-256 of the previous one, so an edited,
//! removed or reordered entry breaks the chain and [`AuditLog::verify`] says where.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Every action the audit log records, in local mode and in the server alike: one
/// vocabulary, so a log reads the same whichever mode wrote it. Stored as its dotted
/// name ([`AuditAction::as_str`]), which the hash chain covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    /// A package version was published to the registry.
    PackagePublish,
    /// A package version was yanked: new installs refused, pinned ones keep running.
    PackageYank,
    /// A publisher account was registered with its first key.
    PublisherAdd,
    /// An organization account was registered with its first key.
    OrganizationAdd,
    /// A signing key was added to a publisher or organization.
    SigningKeyAdd,
    /// A signing key was revoked: it signs nothing from now on.
    SigningKeyRevoke,
    /// A namespace was assigned to a publisher.
    NamespaceAssign,
    /// A plugin was installed in a workspace, with its effective grant.
    PluginInstall,
    /// An install was refused (policy, vetting, yanked version).
    PluginInstallRefused,
    /// A plugin was uninstalled from a workspace.
    PluginUninstall,
    /// An organization policy or workspace grant changed.
    PolicyChange,
    /// A third-party package awaits the organization's review.
    VettingRequest,
    /// The organization approved a package version.
    VettingApprove,
    /// The organization rejected a package version.
    VettingReject,
    /// A plugin asked for something its grant does not allow.
    CapabilityDenied,
    /// An API key was made.
    ApiKeyCreate,
    /// An API key was revoked.
    ApiKeyRevoke,
    /// A member joined a workspace.
    MemberAdd,
    /// A member's role changed.
    MemberRole,
    /// A member left a workspace.
    MemberRemove,
    /// A secret was set for the first time.
    SecretSet,
    /// A secret's value was replaced.
    SecretReplace,
    /// A secret was deleted.
    SecretDelete,
    /// A model alias was bound (or rebound) to provider targets.
    ModelAliasSet,
    /// A model alias was removed.
    ModelAliasRemove,
}

impl AuditAction {
    /// Every action, for documentation and tests.
    pub const ALL: [AuditAction; 25] = [
        Self::PackagePublish,
        Self::PackageYank,
        Self::PublisherAdd,
        Self::OrganizationAdd,
        Self::SigningKeyAdd,
        Self::SigningKeyRevoke,
        Self::NamespaceAssign,
        Self::PluginInstall,
        Self::PluginInstallRefused,
        Self::PluginUninstall,
        Self::PolicyChange,
        Self::VettingRequest,
        Self::VettingApprove,
        Self::VettingReject,
        Self::CapabilityDenied,
        Self::ApiKeyCreate,
        Self::ApiKeyRevoke,
        Self::MemberAdd,
        Self::MemberRole,
        Self::MemberRemove,
        Self::SecretSet,
        Self::SecretReplace,
        Self::SecretDelete,
        Self::ModelAliasSet,
        Self::ModelAliasRemove,
    ];

    /// The dotted name stored in the log and shown by `hyyve audit` and `GET /v1/audit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PackagePublish => "package.publish",
            Self::PackageYank => "package.yank",
            Self::PublisherAdd => "registry.publisher_add",
            Self::OrganizationAdd => "registry.organization_add",
            Self::SigningKeyAdd => "registry.key_add",
            Self::SigningKeyRevoke => "registry.key_revoke",
            Self::NamespaceAssign => "registry.namespace_assign",
            Self::PluginInstall => "plugin.install",
            Self::PluginInstallRefused => "plugin.install_refused",
            Self::PluginUninstall => "plugin.uninstall",
            Self::PolicyChange => "policy.change",
            Self::VettingRequest => "vetting.request",
            Self::VettingApprove => "vetting.approve",
            Self::VettingReject => "vetting.reject",
            Self::CapabilityDenied => "capability.denied",
            Self::ApiKeyCreate => "key.create",
            Self::ApiKeyRevoke => "key.revoke",
            Self::MemberAdd => "member.add",
            Self::MemberRole => "member.role",
            Self::MemberRemove => "member.remove",
            Self::SecretSet => "secret.set",
            Self::SecretReplace => "secret.replace",
            Self::SecretDelete => "secret.delete",
            Self::ModelAliasSet => "model_alias.set",
            Self::ModelAliasRemove => "model_alias.remove",
        }
    }

    /// The actor of a denial: the plugin that asked, whichever node of which run it ran as
    /// (the subject names the run and node).
    pub fn denial_actor(plugin: &str) -> String {
        format!("plugin:{plugin}")
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who acted: a user, an API key, `system`, or `plugin:<id>` for denials.
    pub actor: String,
    /// Dotted verb, e.g. `plugin.install`, `policy.change`, `capability.denied`.
    pub action: String,
    /// What it was done to, e.g. `workspace/local/hyyve:text`.
    pub subject: String,
    /// Action-specific details (never secret values).
    pub detail: serde_json::Value,
}

impl AuditEvent {
    /// An event of the shared vocabulary.
    pub fn new(
        actor: impl Into<String>,
        action: AuditAction,
        subject: impl Into<String>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.as_str().to_owned(),
            subject: subject.into(),
            detail,
        }
    }
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// 1-based position in the log.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub at: String,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hash of the previous entry (64 zeros for the first).
    pub prev: String,
    /// SHA-256 over this entry without `hash`.
    pub hash: String,
}

impl AuditEntry {
    /// The entry that follows the one numbered `seq` with hash `hash` (`0` and
    /// [`GENESIS`] for the first entry), stamped now and hashed.
    pub fn following(seq: u64, hash: &str, event: AuditEvent) -> Self {
        let mut entry = AuditEntry {
            seq: seq + 1,
            at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            event,
            prev: hash.to_owned(),
            hash: String::new(),
        };
        entry.hash = entry_hash(&entry);
        entry
    }
}

/// Where a chain of entries stops holding together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// 1-based position of the first entry that does not fit.
    pub position: u64,
    /// What does not match.
    pub message: String,
}

/// Checks that `entries` (oldest first, the whole log) are numbered from 1, each follows
/// the previous one, and each matches its hash.
pub fn verify_chain(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
    let mut prev = GENESIS;
    for (i, entry) in entries.iter().enumerate() {
        let position = i as u64 + 1;
        let broken = |message: String| ChainBreak { position, message };
        if entry.seq != position {
            return Err(broken(format!(
                "sequence {} where {position} was expected",
                entry.seq
            )));
        }
        if entry.prev != prev {
            return Err(broken("does not follow the previous entry".into()));
        }
        if entry_hash(entry) != entry.hash {
            return Err(broken("content does not match its hash".into()));
        }
        prev = &entry.hash;
    }
    Ok(())
}

/// Why the audit log could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Reading or appending failed.
    #[error("audit log {path}: {message}")]
    Io {
        /// The log file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// An entry does not parse or does not chain: the log was altered.
    #[error("audit log {path}: entry {line} is altered or out of order: {message}")]
    Broken {
        /// The log file.
        path: String,
        /// 1-based line.
        line: u64,
        /// What does not match.
        message: String,
    },
}

/// An append-only JSON-lines audit log.
pub struct AuditLog {
    path: PathBuf,
    /// Sequence and hash of the last entry; the lock also serializes appends.
    tail: Mutex<(u64, String)>,
}

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

impl AuditLog {
    /// Opens the log at `path` (created on first append), checking its chain.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, AuditError> {
        let path = path.into();
        let entries = read_entries(&path)?;
        let tail = entries
            .last()
            .map_or((0, GENESIS.to_owned()), |e| (e.seq, e.hash.clone()));
        Ok(Self {
            path,
            tail: Mutex::new(tail),
        })
    }

    /// Appends one event and flushes it to disk.
    pub fn append(&self, event: AuditEvent) -> Result<AuditEntry, AuditError> {
        let mut tail = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let entry = AuditEntry::following(tail.0, &tail.1, event);
        let mut line = serde_json::to_vec(&entry).map_err(|e| self.io(e))?;
        line.push(b'\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| self.io(e))?;
        *tail = (entry.seq, entry.hash.clone());
        Ok(entry)
    }

    /// Every entry, oldest first, after checking the whole chain.
    pub fn entries(&self) -> Result<Vec<AuditEntry>, AuditError> {
        read_entries(&self.path)
    }

    /// Checks the chain; `Ok(n)` is the number of entries.
    pub fn verify(&self) -> Result<u64, AuditError> {
        Ok(read_entries(&self.path)?.len() as u64)
    }

    fn io(&self, e: impl std::fmt::Display) -> AuditError {
        AuditError::Io {
            path: self.path.display().to_string(),
            message: e.to_string(),
        }
    }
}

fn entry_hash(entry: &AuditEntry) -> String {
    let mut unhashed = entry.clone();
    unhashed.hash = String::new();
    let bytes = serde_json::to_vec(&unhashed).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

fn read_entries(path: &Path) -> Result<Vec<AuditEntry>, AuditError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(AuditError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            });
        }
    };
    let broken = |line: u64, message: String| AuditError::Broken {
        path: path.display().to_string(),
        line,
        message,
    };
    let mut entries: Vec<AuditEntry> = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let n = i as u64 + 1;
        let line = line.map_err(|e| broken(n, e.to_string()))?;
        let entry: AuditEntry =
            serde_json::from_str(&line).map_err(|e| broken(n, e.to_string()))?;
        entries.push(entry);
    }
    verify_chain(&entries).map_err(|b| broken(b.position, b.message))?;
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_own_dotted_name() {
        let names: std::collections::HashSet<&str> =
            AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(names.len(), AuditAction::ALL.len());
        for name in names {
            let (area, verb) = name.split_once('.').expect("dotted");
            assert!(
                !area.is_empty() && !verb.is_empty() && !verb.contains('.'),
                "{name}"
            );
        }
    }

    fn event(action: &str) -> AuditEvent {
        AuditEvent {
            actor: "alice".into(),
            action: action.into(),
            subject: "workspace/w1/acme:x".into(),
            detail: serde_json::json!({"n": 1}),
        }
    }

    #[test]
    fn entries_chain_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        log.append(event("plugin.install")).unwrap();
        log.append(event("capability.denied")).unwrap();
        let log = AuditLog::open(&path).unwrap();
        let third = log.append(event("policy.change")).unwrap();
        assert_eq!(third.seq, 3);
        let all = log.entries().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[1].event.action, "capability.denied");
        assert_eq!(all[2].prev, all[1].hash);
    }

    #[test]
    fn an_edited_or_removed_entry_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path).unwrap();
        for a in ["a", "b", "c"] {
            log.append(event(a)).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("\"actor\":\"alice\"", "\"actor\":\"mallory\""),
        )
        .unwrap();
        assert!(matches!(
            log.verify(),
            Err(AuditError::Broken { line: 1, .. })
        ));
        let lines: Vec<&str> = text.lines().collect();
        std::fs::write(&path, format!("{}\n{}\n", lines[0], lines[2])).unwrap();
        assert!(matches!(
            log.verify(),
            Err(AuditError::Broken { line: 2, .. })
        ));
        assert!(AuditLog::open(&path).is_err());
    }
}
