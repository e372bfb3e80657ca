//! Workspace secrets, encrypted at rest with AES-256-GCM.
//!
//! Each value is sealed with a fresh 96-bit nonce and authenticated together with its
//! workspace and name, so a ciphertext copied to another workspace or name does not
//! open. Values never appear in `Debug` output or logs: [`SecretValue`] redacts itself.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

/// Why a secret operation failed. Never contains a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key is not 32 bytes of hex.
    #[error("secret key: {0}")]
    BadKey(String),
    /// The store file could not be read or written.
    #[error("secret store {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// A stored value does not decrypt: wrong key, or the file was tampered with.
    #[error("secret `{name}` in workspace `{workspace}` does not decrypt with this key")]
    Undecryptable {
        /// Workspace of the value.
        workspace: String,
        /// Its name.
        name: String,
    },
    /// The store's database could not be reached or refused the operation.
    #[error("secret store unavailable: {0}")]
    Unavailable(String),
    /// The store file is not valid.
    #[error("secret store {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Largest secret value accepted, in bytes (both modes).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// A value a store accepts: 1 to [`MAX_SECRET_BYTES`] bytes. The error says which bound,
/// never the value.
pub fn check_value(value: &str) -> Result<(), String> {
    match value.is_empty() || value.len() > MAX_SECRET_BYTES {
        true => Err(format!("secret value: 1 to {MAX_SECRET_BYTES} bytes")),
        false => Ok(()),
    }
}

/// The 256-bit key that seals every value. Zeroed on drop; never printed.
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// Parses 64 hex characters.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), &mut key[..])
            .map_err(|e| SecretError::BadKey(format!("expected 64 hex characters ({e})")))?;
        Ok(Self(key))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        Self(Zeroizing::new(Aes256Gcm::generate_key(OsRng).into()))
    }

    /// The key as hex, for writing it once to a key file.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.0))
    }

    /// The key from `HYYVE_SECRET_KEY` if set, else from `path`, created (mode 0600)
    /// with a fresh key when missing: the embedded default for a single machine.
    pub fn from_env_or_file(path: &Path) -> Result<Self, SecretError> {
        if let Ok(hex) = std::env::var("HYYVE_SECRET_KEY") {
            return Self::from_hex(&hex);
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(path, key.to_hex().as_bytes())?;
                Ok(key)
            }
            Err(e) => Err(io_error(path, e)),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.0).into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A decrypted secret. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(Zeroizing<String>);

impl SecretValue {
    /// Wraps a plaintext value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The plaintext, for handing to the plugin that was granted it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Where workspace secrets live. Implementations keep workspaces apart. Async because
/// plugins read secrets while they run, and a database store must not block the worker
/// thread that runs them.
#[async_trait::async_trait]
pub trait SecretStore: Send + Sync {
    /// The value of `name` in `workspace`, if set.
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<SecretValue>, SecretError>;
    /// Sets (or replaces) a value.
    async fn put(
        &self,
        workspace: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretError>;
    /// Removes a value; `true` if it existed.
    async fn delete(&self, workspace: &str, name: &str) -> Result<bool, SecretError>;
    /// Names set in `workspace` (never values).
    async fn names(&self, workspace: &str) -> Result<Vec<String>, SecretError>;
}

/// Sealed values by workspace, then name: base64 of nonce ‖ ciphertext ‖ tag.
type Sealed = BTreeMap<String, BTreeMap<String, String>>;

/// Secrets in one JSON file (mode 0600) of sealed values; rewritten atomically.
pub struct FileSecretStore {
    path: PathBuf,
    key: SecretKey,
    sealed: Mutex<Sealed>,
}

impl FileSecretStore {
    /// Opens (or starts) the store at `path`.
    pub fn open(path: impl Into<PathBuf>, key: SecretKey) -> Result<Self, SecretError> {
        let path = path.into();
        let sealed = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| SecretError::Corrupt {
                path: path.display().to_string(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Sealed::new(),
            Err(e) => return Err(io_error(&path, e)),
        };
        Ok(Self {
            path,
            key,
            sealed: Mutex::new(sealed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sealed> {
        self.sealed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn persist(&self, sealed: &Sealed) -> Result<(), SecretError> {
        let bytes = serde_json::to_vec_pretty(sealed).map_err(|e| SecretError::Corrupt {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("tmp");
        write_private(&tmp, &bytes)?;
        std::fs::rename(&tmp, &self.path).map_err(|e| io_error(&self.path, e))
    }
}

#[async_trait::async_trait]
impl SecretStore for FileSecretStore {
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<SecretValue>, SecretError> {
        let sealed = self.lock();
        let Some(text) = sealed.get(workspace).and_then(|w| w.get(name)) else {
            return Ok(None);
        };
        open(&self.key, workspace, name, text).map(Some)
    }

    async fn put(
        &self,
        workspace: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        let text = seal(&self.key, workspace, name, value)?;
        let mut sealed = self.lock();
        let mut next = sealed.clone();
        next.entry(workspace.to_owned())
            .or_default()
            .insert(name.to_owned(), text);
        // Written before the in-memory copy changes: a failed write changes nothing.
        self.persist(&next)?;
        *sealed = next;
        Ok(())
    }

    async fn delete(&self, workspace: &str, name: &str) -> Result<bool, SecretError> {
        let mut sealed = self.lock();
        let mut next = sealed.clone();
        let existed = next
            .get_mut(workspace)
            .is_some_and(|w| w.remove(name).is_some());
        if existed {
            self.persist(&next)?;
            *sealed = next;
        }
        Ok(existed)
    }

    async fn names(&self, workspace: &str) -> Result<Vec<String>, SecretError> {
        Ok(self
            .lock()
            .get(workspace)
            .map(|w| w.keys().cloned().collect())
            .unwrap_or_default())
    }
}

/// Secrets held in process memory only: for tests and runs that must leave nothing on
/// disk. Nothing is persisted, so nothing is at rest to encrypt.
#[derive(Default)]
pub struct MemorySecretStore {
    values: Mutex<BTreeMap<(String, String), SecretValue>>,
}

impl MemorySecretStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), SecretValue>> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl SecretStore for MemorySecretStore {
    async fn get(&self, workspace: &str, name: &str) -> Result<Option<SecretValue>, SecretError> {
        Ok(self.lock().get(&(workspace.into(), name.into())).cloned())
    }

    async fn put(
        &self,
        workspace: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        self.lock()
            .insert((workspace.into(), name.into()), value.clone());
        Ok(())
    }

    async fn delete(&self, workspace: &str, name: &str) -> Result<bool, SecretError> {
        Ok(self
            .lock()
            .remove(&(workspace.into(), name.into()))
            .is_some())
    }

    async fn names(&self, workspace: &str) -> Result<Vec<String>, SecretError> {
        Ok(self
            .lock()
            .keys()
            .filter(|(w, _)| w == workspace)
            .map(|(_, n)| n.clone())
            .collect())
    }
}

impl SecretKey {
    /// `value` sealed for `name` in `workspace`: base64 of nonce ‖ ciphertext ‖ tag,
    /// which opens only with this key and only in that place. For stores of their own
    /// (the server's database) that keep the sealed text.
    pub fn seal(
        &self,
        workspace: &str,
        name: &str,
        value: &SecretValue,
    ) -> Result<String, SecretError> {
        seal(self, workspace, name, value)
    }

    /// The value sealed by [`SecretKey::seal`] for `name` in `workspace`.
    pub fn open(
        &self,
        workspace: &str,
        name: &str,
        sealed: &str,
    ) -> Result<SecretValue, SecretError> {
        open(self, workspace, name, sealed)
    }
}

/// Binds a ciphertext to its place: moved elsewhere, it fails authentication.
fn associated_data(workspace: &str, name: &str) -> Vec<u8> {
    format!("hyyve-secret:v1:{}:{workspace}:{name}", workspace.len()).into_bytes()
}

fn seal(
    key: &SecretKey,
    workspace: &str,
    name: &str,
    value: &SecretValue,
) -> Result<String, SecretError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let aad = associated_data(workspace, name);
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: value.expose().as_bytes(),
                aad: &aad,
            },
        )
        .map_err(|_| SecretError::BadKey("encryption failed".into()))?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    Ok(BASE64.encode(out))
}

fn open(
    key: &SecretKey,
    workspace: &str,
    name: &str,
    text: &str,
) -> Result<SecretValue, SecretError> {
    let undecryptable = || SecretError::Undecryptable {
        workspace: workspace.to_owned(),
        name: name.to_owned(),
    };
    let bytes = BASE64.decode(text).map_err(|_| undecryptable())?;
    if bytes.len() < 12 {
        return Err(undecryptable());
    }
    let (nonce, ciphertext) = bytes.split_at(12);
    let aad = associated_data(workspace, name);
    let plain = key
        .cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| undecryptable())?;
    let plain = Zeroizing::new(plain);
    let text = String::from_utf8(plain.to_vec()).map_err(|_| undecryptable())?;
    Ok(SecretValue::new(text))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| io_error(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(path, e))
}

fn io_error(path: &Path, e: std::io::Error) -> SecretError {
    SecretError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> FileSecretStore {
        let key = SecretKey::from_hex(&"11".repeat(32)).unwrap();
        FileSecretStore::open(dir.join("secrets.json"), key).unwrap()
    }

    #[tokio::test]
    async fn values_round_trip_and_are_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.put(
            "ws1",
            "TOKEN",
            &SecretValue::new("hunter2-very-secret".into()),
        )
        .await
        .unwrap();
        assert_eq!(
            s.get("ws1", "TOKEN").await.unwrap().unwrap().expose(),
            "hunter2-very-secret"
        );
        assert!(s.get("ws2", "TOKEN").await.unwrap().is_none());
        let on_disk = std::fs::read_to_string(dir.path().join("secrets.json")).unwrap();
        assert!(!on_disk.contains("hunter2"));
        // Reopened from disk with the same key.
        let again = store(dir.path());
        assert_eq!(again.names("ws1").await.unwrap(), ["TOKEN"]);
        assert_eq!(
            again.get("ws1", "TOKEN").await.unwrap().unwrap().expose(),
            "hunter2-very-secret"
        );
        assert!(!format!("{:?}", again.get("ws1", "TOKEN").await.unwrap()).contains("hunter2"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("secrets.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
    }

    #[tokio::test]
    async fn a_wrong_key_or_a_moved_ciphertext_does_not_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.put("ws1", "A", &SecretValue::new("one".into()))
            .await
            .unwrap();
        let other_key = SecretKey::from_hex(&"22".repeat(32)).unwrap();
        let wrong = FileSecretStore::open(dir.path().join("secrets.json"), other_key).unwrap();
        assert!(matches!(
            wrong.get("ws1", "A").await,
            Err(SecretError::Undecryptable { .. })
        ));
        // Copy ws1's ciphertext under ws2: authentication fails.
        let path = dir.path().join("secrets.json");
        let mut sealed: Sealed = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let text = sealed["ws1"]["A"].clone();
        sealed
            .entry("ws2".into())
            .or_default()
            .insert("A".into(), text);
        std::fs::write(&path, serde_json::to_vec(&sealed).unwrap()).unwrap();
        let s = store(dir.path());
        assert!(matches!(
            s.get("ws2", "A").await,
            Err(SecretError::Undecryptable { .. })
        ));
        assert!(s.delete("ws1", "A").await.unwrap());
        assert!(!s.delete("ws1", "A").await.unwrap());
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert!(SecretKey::from_hex("abcd").is_err());
        let k = SecretKey::generate();
        assert_eq!(
            SecretKey::from_hex(&k.to_hex()).unwrap().to_hex(),
            k.to_hex()
        );
        assert!(!format!("{k:?}").contains(&k.to_hex()[..8]));
    }
}
