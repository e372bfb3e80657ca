//! ed25519 keys of publishers and organizations, and the message a package signature
//! covers.
//!
//! A key file (`<name>.key`, mode 0600) holds the 32-byte secret seed as hex; the public
//! half (`<name>.pub`) is what the registry keeps. A key is named by its id,
//! `ed25519:<first 16 bytes of sha256(public key), hex>`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("key file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// The text is not a key of the expected form.
    #[error("malformed key: {0}")]
    Malformed(String),
    /// The operating system gave no randomness.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// A secret signing key with the account name it signs for.
pub struct KeyPair {
    /// The publisher or organization this key signs for.
    pub owner: String,
    key: SigningKey,
}

#[derive(Serialize, Deserialize)]
struct SecretFile {
    owner: String,
    algorithm: String,
    secret: String,
}

/// The public half of a key as stored in `<name>.pub` and in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyFile {
    /// The publisher or organization the key signs for.
    pub owner: String,
    /// `ed25519:<hex>`.
    pub key_id: String,
    /// The 32-byte public key, base64.
    pub public_key: String,
}

impl KeyPair {
    /// A fresh key from the operating system's randomness.
    pub fn generate(owner: &str) -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self {
            owner: owner.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes `<dir>/<owner>.key` (0600, never overwritten) and `<dir>/<owner>.pub`.
    pub fn save(&self, dir: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
        let secret_path = dir.join(format!("{}.key", self.owner));
        let public_path = dir.join(format!("{}.pub", self.owner));
        let file_error = |path: &Path, e: std::io::Error| KeyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let secret = serde_json::to_vec_pretty(&SecretFile {
            owner: self.owner.clone(),
            algorithm: "ed25519".into(),
            secret: hex::encode(self.key.to_bytes()),
        })
        .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&secret_path)
            .map_err(|e| file_error(&secret_path, e))?;
        file.write_all(&secret)
            .and_then(|()| file.sync_all())
            .map_err(|e| file_error(&secret_path, e))?;
        let public = serde_json::to_vec_pretty(&self.public_file())
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        std::fs::write(&public_path, public).map_err(|e| file_error(&public_path, e))?;
        Ok((secret_path, public_path))
    }

    /// Reads a key file written by [`KeyPair::save`]; refuses one others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let file_error = |message: String| KeyError::File {
            path: path.display().to_string(),
            message,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| file_error(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(file_error(format!(
                    "readable by others (mode {:o}); chmod 600 it",
                    mode & 0o777
                )));
            }
        }
        let bytes = std::fs::read(path).map_err(|e| file_error(e.to_string()))?;
        let file: SecretFile =
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed(e.to_string()))?;
        if file.algorithm != "ed25519" {
            return Err(KeyError::Malformed(format!(
                "algorithm `{}` (only ed25519)",
                file.algorithm
            )));
        }
        let seed: [u8; 32] = hex::decode(&file.secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::Malformed("secret is not 32 bytes of hex".into()))?;
        Ok(Self {
            owner: file.owner,
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// The public half with its owner, as written to `<owner>.pub`.
    pub fn public_file(&self) -> PublicKeyFile {
        let public = self.public();
        PublicKeyFile {
            owner: self.owner.clone(),
            key_id: public.id(),
            public_key: public.to_base64(),
        }
    }

    /// Signs `message`; the signature as base64.
    pub fn sign(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message).to_bytes())
    }
}

/// A public key that verifies signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses the base64 form.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes: [u8; 32] = BASE64
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| KeyError::Malformed("public key is not 32 bytes of base64".into()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|e| KeyError::Malformed(e.to_string()))
    }

    /// The base64 form.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.to_bytes())
    }

    /// `ed25519:<hex of the first 16 bytes of sha256(key)>`.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.0.to_bytes());
        format!("ed25519:{}", hex::encode(&digest[..16]))
    }

    /// Whether `signature` (base64) is this key's signature of `message`. Strict
    /// verification: no malleable or small-order forms.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(bytes) = BASE64
            .decode(signature.trim())
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
        else {
            return false;
        };
        self.0
            .verify_strict(message, &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

impl PublicKeyFile {
    /// Reads a `.pub` file and checks its id matches its key.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let file: Self =
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed(e.to_string()))?;
        let key = PublicKey::from_base64(&file.public_key)?;
        if key.id() != file.key_id {
            return Err(KeyError::Malformed(format!(
                "key id {} does not match the key ({})",
                file.key_id,
                key.id()
            )));
        }
        Ok(file)
    }
}

/// The message a key signs when it adds another key to the same account (rotation).
pub fn key_addition_message(owner: &str, new_key_id: &str) -> Vec<u8> {
    format!("hyyve-key-addition-v1\n{owner}\n{new_key_id}\n").into_bytes()
}

/// The message a publisher's key signs to yank a version of one of its plugins.
pub fn yank_message(id: &str, version: &semver::Version, reason: &str) -> Vec<u8> {
    format!("hyyve-yank-v1\n{id}\n{version}\n{reason}\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_message_and_key() {
        let a = KeyPair::generate("acme").unwrap();
        let b = KeyPair::generate("acme").unwrap();
        let sig = a.sign(b"hello");
        assert!(a.public().verifies(b"hello", &sig));
        assert!(!a.public().verifies(b"hellp", &sig));
        assert!(!b.public().verifies(b"hello", &sig));
        assert!(!a.public().verifies(b"hello", "not base64!"));
        assert_ne!(a.public().id(), b.public().id());
    }

    #[test]
    fn key_files_round_trip_and_the_secret_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate("acme").unwrap();
        let (secret, public) = key.save(dir.path()).unwrap();
        let loaded = KeyPair::load(&secret).unwrap();
        assert_eq!(loaded.public(), key.public());
        assert_eq!(PublicKeyFile::load(&public).unwrap(), key.public_file());
        assert!(
            key.save(dir.path()).is_err(),
            "an existing key is never overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(KeyPair::load(&secret), Err(KeyError::File { .. })));
        }
    }
}
