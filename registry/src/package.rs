//! The package file: one uncompressed tar archive holding a component, its manifest,
//! optional listing files, the sha256 digest of each, and signatures over those digests.
//!
//! Entries, each a regular file at the archive root, each at most once:
//!
//! | entry | content |
//! | --- | --- |
//! | `package.json` | `{format: 1, id, version, files: {<entry>: {sha256, size}}}` |
//! | `hyyve.toml` | the manifest |
//! | `component.wasm` | the component |
//! | `README.md` | optional: the listing's readme |
//! | `icon.png` or `icon.svg` | optional: the listing's icon |
//! | `signatures.json` | optional until publish: `[{role, signer, key_id, signature}]` |
//!
//! A signature covers [`Package::signed_message`]: the id, the version and every file's
//! digest and size, so changing any packaged byte, or the digests, breaks it.

use std::collections::BTreeMap;
use std::io::Read as _;

use hyyve_policy::Manifest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The only format this code writes and reads.
pub const FORMAT: u32 = 1;
/// The manifest entry.
pub const MANIFEST: &str = "hyyve.toml";
/// The component entry.
pub const COMPONENT: &str = "component.wasm";
/// The readme entry.
pub const README: &str = "README.md";
const HEADER: &str = "package.json";
const SIGNATURES: &str = "signatures.json";
const ICONS: [&str; 2] = ["icon.png", "icon.svg"];

/// Why bytes are not a usable package.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// Not a tar archive of the expected entries.
    #[error("malformed package: {0}")]
    Malformed(String),
    /// A file's bytes do not match the digest recorded for it (changed after packaging).
    #[error("`{file}` does not match its recorded digest: the package was altered")]
    DigestMismatch {
        /// The entry.
        file: String,
    },
}

/// Digest and size of one packaged file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// `sha256:<hex>`.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            sha256: sha256(bytes),
            size: bytes.len() as u64,
        }
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `package.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// [`FORMAT`].
    pub format: u32,
    /// `namespace:name`.
    pub id: String,
    /// Semantic version.
    pub version: String,
    /// Every other entry except the signatures.
    pub files: BTreeMap<String, FileDigest>,
}

/// Who signed: the publisher, or an organization vouching for a version it vetted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignerRole {
    /// The publisher of the package.
    Publisher,
    /// An organization that vetted this exact version.
    Cosigner,
}

/// One signature in `signatures.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageSignature {
    /// Publisher or co-signer.
    pub role: SignerRole,
    /// The publisher or organization account.
    pub signer: String,
    /// Id of the key that signed.
    pub key_id: String,
    /// ed25519 signature of [`Package::signed_message`], base64.
    pub signature: String,
}

/// A package in memory.
#[derive(Debug, Clone)]
pub struct Package {
    /// The digests.
    pub header: Header,
    /// The manifest's text, exactly as packaged (its digest is signed).
    pub manifest_text: String,
    /// The component.
    pub component: Vec<u8>,
    /// The listing's readme.
    pub readme: Option<String>,
    /// The listing's icon: entry name and bytes.
    pub icon: Option<(String, Vec<u8>)>,
    /// Signatures collected so far.
    pub signatures: Vec<PackageSignature>,
}

impl Package {
    /// Packages a component with its manifest; the manifest must parse and name the
    /// listing files given.
    pub fn new(
        manifest: &Manifest,
        manifest_text: String,
        component: Vec<u8>,
        readme: Option<String>,
        icon: Option<(String, Vec<u8>)>,
    ) -> Result<Self, PackageError> {
        if let Some((name, _)) = &icon
            && !ICONS.contains(&name.as_str())
        {
            return Err(PackageError::Malformed(format!(
                "icon entry `{name}` (must be icon.png or icon.svg)"
            )));
        }
        let mut files = BTreeMap::new();
        files.insert(
            MANIFEST.to_owned(),
            FileDigest::of(manifest_text.as_bytes()),
        );
        files.insert(COMPONENT.to_owned(), FileDigest::of(&component));
        if let Some(readme) = &readme {
            files.insert(README.to_owned(), FileDigest::of(readme.as_bytes()));
        }
        if let Some((name, bytes)) = &icon {
            files.insert(name.clone(), FileDigest::of(bytes));
        }
        Ok(Self {
            header: Header {
                format: FORMAT,
                id: manifest.plugin.id.to_string(),
                version: manifest.plugin.version.to_string(),
                files,
            },
            manifest_text,
            component,
            readme,
            icon,
            signatures: Vec::new(),
        })
    }

    /// The bytes every signature covers.
    pub fn signed_message(&self) -> Vec<u8> {
        let mut message = format!(
            "hyyve-package-v{}\n{}@{}\n",
            self.header.format, self.header.id, self.header.version
        );
        for (name, digest) in &self.header.files {
            message.push_str(&format!("{name} {} {}\n", digest.sha256, digest.size));
        }
        message.into_bytes()
    }

    /// The component's digest as recorded in the header.
    pub fn component_digest(&self) -> &str {
        self.header
            .files
            .get(COMPONENT)
            .map(|d| d.sha256.as_str())
            .unwrap_or_default()
    }

    /// The manifest's digest as recorded in the header.
    pub fn manifest_digest(&self) -> &str {
        self.header
            .files
            .get(MANIFEST)
            .map(|d| d.sha256.as_str())
            .unwrap_or_default()
    }

    /// Checks that every packaged file matches the digest recorded for it.
    pub fn verify_digests(&self) -> Result<(), PackageError> {
        let mut actual: BTreeMap<&str, FileDigest> = BTreeMap::new();
        actual.insert(MANIFEST, FileDigest::of(self.manifest_text.as_bytes()));
        actual.insert(COMPONENT, FileDigest::of(&self.component));
        if let Some(readme) = &self.readme {
            actual.insert(README, FileDigest::of(readme.as_bytes()));
        }
        if let Some((name, bytes)) = &self.icon {
            actual.insert(name, FileDigest::of(bytes));
        }
        for (name, digest) in &actual {
            if self.header.files.get(*name) != Some(digest) {
                return Err(PackageError::DigestMismatch {
                    file: (*name).to_owned(),
                });
            }
        }
        if let Some(extra) = self
            .header
            .files
            .keys()
            .find(|k| !actual.contains_key(k.as_str()))
        {
            return Err(PackageError::DigestMismatch {
                file: extra.clone(),
            });
        }
        Ok(())
    }

    /// The archive.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let header_json = serde_json::to_vec_pretty(&self.header).unwrap_or_default();
        let mut entries: Vec<(&str, &[u8])> = vec![
            (HEADER, &header_json),
            (MANIFEST, self.manifest_text.as_bytes()),
            (COMPONENT, &self.component),
        ];
        if let Some(readme) = &self.readme {
            entries.push((README, readme.as_bytes()));
        }
        if let Some((name, bytes)) = &self.icon {
            entries.push((name, bytes));
        }
        let signatures_json;
        if !self.signatures.is_empty() {
            signatures_json = serde_json::to_vec_pretty(&self.signatures).unwrap_or_default();
            entries.push((SIGNATURES, &signatures_json));
        }
        for (name, bytes) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            // Writing into a Vec cannot fail, and every name is one of our constants.
            let _ = builder.append_data(&mut header, name, bytes);
        }
        builder.into_inner().unwrap_or_default()
    }

    /// Reads an archive. Only structure is checked here: digests by
    /// [`Package::verify_digests`], signatures and content by the registry.
    pub fn parse(bytes: &[u8]) -> Result<Self, PackageError> {
        let malformed = |m: String| PackageError::Malformed(m);
        let mut archive = tar::Archive::new(bytes);
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let entries = archive
            .entries()
            .map_err(|e| malformed(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| malformed(format!("not a tar archive: {e}")))?;
            if entry.header().entry_type() != tar::EntryType::Regular {
                return Err(malformed("an entry is not a regular file".into()));
            }
            let name = entry
                .path()
                .ok()
                .and_then(|p| p.to_str().map(str::to_owned))
                .ok_or_else(|| malformed("an entry name is not UTF-8".into()))?;
            let known = [HEADER, MANIFEST, COMPONENT, README, SIGNATURES].contains(&name.as_str())
                || ICONS.contains(&name.as_str());
            if !known {
                return Err(malformed(format!("unexpected entry `{name}`")));
            }
            if files.contains_key(&name) {
                return Err(malformed(format!("entry `{name}` appears twice")));
            }
            // The archive is in memory already (its size was checked), so an entry
            // cannot claim more than is there.
            let mut content = Vec::with_capacity(entry.size().min(bytes.len() as u64) as usize);
            entry
                .read_to_end(&mut content)
                .map_err(|e| malformed(format!("entry `{name}`: {e}")))?;
            files.insert(name, content);
        }
        let header: Header = serde_json::from_slice(
            &files
                .remove(HEADER)
                .ok_or_else(|| malformed("no package.json".into()))?,
        )
        .map_err(|e| malformed(format!("package.json: {e}")))?;
        if header.format != FORMAT {
            return Err(malformed(format!(
                "format {} (this host reads format {FORMAT})",
                header.format
            )));
        }
        let text = |name: &str, bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|_| malformed(format!("{name} is not UTF-8")))
        };
        let manifest_text = text(
            MANIFEST,
            files
                .remove(MANIFEST)
                .ok_or_else(|| malformed("no hyyve.toml".into()))?,
        )?;
        let component = files
            .remove(COMPONENT)
            .ok_or_else(|| malformed("no component.wasm".into()))?;
        let readme = files.remove(README).map(|b| text(README, b)).transpose()?;
        let signatures = match files.remove(SIGNATURES) {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| malformed(format!("signatures.json: {e}")))?,
            None => Vec::new(),
        };
        let mut icons = files.into_iter();
        let icon = icons.next();
        if icons.next().is_some() {
            return Err(malformed("more than one icon".into()));
        }
        Ok(Self {
            header,
            manifest_text,
            component,
            readme,
            icon,
            signatures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_text() -> String {
        "[plugin]\nid = \"acme:echo\"\nversion = \"1.0.0\"\nkind = \"node\"\npublisher = \"acme\"\ndescription = \"echo\"\n".into()
    }

    fn package() -> Package {
        let text = manifest_text();
        let manifest = Manifest::parse(&text).unwrap();
        Package::new(
            &manifest,
            text,
            b"\0asm-not-really".to_vec(),
            Some("# Echo".into()),
            Some(("icon.svg".into(), b"<svg/>".to_vec())),
        )
        .unwrap()
    }

    #[test]
    fn round_trips_through_bytes() {
        let mut p = package();
        p.signatures.push(PackageSignature {
            role: SignerRole::Publisher,
            signer: "acme".into(),
            key_id: "ed25519:00".into(),
            signature: "c2ln".into(),
        });
        let back = Package::parse(&p.to_bytes()).unwrap();
        assert_eq!(back.header, p.header);
        assert_eq!(back.component, p.component);
        assert_eq!(back.readme, p.readme);
        assert_eq!(back.icon, p.icon);
        assert_eq!(back.signatures, p.signatures);
        back.verify_digests().unwrap();
        assert_eq!(back.signed_message(), p.signed_message());
    }

    #[test]
    fn a_changed_byte_breaks_the_digest_and_a_changed_digest_the_message() {
        let mut p = package();
        p.component[0] ^= 1;
        assert!(matches!(
            p.verify_digests(),
            Err(PackageError::DigestMismatch { file }) if file == COMPONENT
        ));
        let before = p.signed_message();
        p.header
            .files
            .insert(COMPONENT.into(), FileDigest::of(&p.component));
        p.verify_digests().unwrap();
        assert_ne!(p.signed_message(), before);
    }

    #[test]
    fn junk_and_unknown_entries_are_malformed() {
        assert!(matches!(
            Package::parse(b"definitely not tar"),
            Err(PackageError::Malformed(_))
        ));
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_size(1);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, "evil.sh", &b"x"[..])
            .unwrap();
        let bytes = builder.into_inner().unwrap();
        assert!(matches!(
            Package::parse(&bytes),
            Err(PackageError::Malformed(m)) if m.contains("unexpected entry")
        ));
    }
}
