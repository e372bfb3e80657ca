//! Signed registry packages of the built guests, for registry and server tests.

use hyyve_policy::Manifest;
use hyyve_registry::package::{Package, PackageSignature, SignerRole};
use hyyve_registry::signing::KeyPair;

use crate::guest_bytes;

/// A node manifest for `id@version` with extra TOML appended (capabilities, listing).
pub fn manifest(id: &str, version: &str, publisher: &str, extra: &str) -> String {
    format!(
        "[plugin]\nid = \"{id}\"\nversion = \"{version}\"\nkind = \"node\"\n\
         publisher = \"{publisher}\"\ndescription = \"Text nodes for {id}\"\n\
         categories = [\"text\"]\n{extra}"
    )
}

/// `component` packaged under `manifest_text`, unsigned.
pub fn package(manifest_text: &str, component: Vec<u8>) -> Package {
    let manifest = Manifest::parse(manifest_text).expect("test manifest parses");
    Package::new(&manifest, manifest_text.to_owned(), component, None, None).unwrap()
}

/// Adds a publisher signature by `key`.
pub fn sign(package: &mut Package, key: &KeyPair) {
    package.signatures.push(PackageSignature {
        role: SignerRole::Publisher,
        signer: key.owner.clone(),
        key_id: key.public().id(),
        signature: key.sign(&package.signed_message()),
    });
}

/// A package of the built guest `guest` as `id@version`, signed by `key`.
pub fn signed_guest(guest: &str, id: &str, version: &str, key: &KeyPair, extra: &str) -> Vec<u8> {
    let text = manifest(id, version, &key.owner, extra);
    let mut p = package(&text, guest_bytes(guest));
    sign(&mut p, key);
    p.to_bytes()
}
