//! Every rejected publish and install: a distinct code, and nothing stored.

use hyyve_registry::package::{COMPONENT, FileDigest, Package};
use hyyve_tests::guest_bytes;

use crate::{Db, Fixture, code, manifest, package, sign, signed};

const HTTP: &str = "[capabilities.http]\nallow = [{ url = \"https://api.example.com\", methods = [\"GET\"] }]\n\
                    [capabilities]\nkv_bytes = 1024\nsecrets = [\"TOKEN\"]\nscratch_bytes = 1024\n";

/// Publishes `bytes` expecting `expected`, and checks nothing new was stored.
async fn rejected(f: &Fixture, bytes: &[u8], expected: &str) {
    let before = f.stored().await;
    let got = code(f.registry.publish(bytes).await);
    assert_eq!(got, expected, "publish rejected with the wrong code");
    assert_eq!(f.stored().await, before, "{expected}: something was stored");
}

#[tokio::test]
async fn each_bad_package_is_refused_with_its_own_code_and_leaves_nothing() {
    let f = Fixture::new(Db::Sqlite).await;
    let acme = &f.acme;

    // Not a component: text instead of wasm.
    let text = manifest("acme:junk", "1.0.0", "acme", "");
    let mut p = package(&text, b"this is not wasm".to_vec());
    sign(&mut p, acme);
    rejected(&f, &p.to_bytes(), "not_a_component").await;

    // Wrong world: a wasi:cli command declared as a node plugin.
    let mut p = package(
        &manifest("acme:cmd", "1.0.0", "acme", ""),
        guest_bytes("guest-command"),
    );
    sign(&mut p, acme);
    rejected(&f, &p.to_bytes(), "wrong_world").await;

    // Wrong world the other way: a node plugin declared as a provider.
    let text = manifest("acme:prov", "1.0.0", "acme", "")
        .replace("kind = \"node\"", "kind = \"provider\"");
    let mut p = package(&text, guest_bytes("hyyve-plugin-text"));
    sign(&mut p, acme);
    rejected(&f, &p.to_bytes(), "wrong_world").await;

    // Undeclared import: the hostile guest imports wasi:http, KV, secrets, files, sockets.
    let mut p = package(
        &manifest("acme:hostile", "1.0.0", "acme", ""),
        guest_bytes("guest-hostile"),
    );
    sign(&mut p, acme);
    rejected(&f, &p.to_bytes(), "undeclared_import").await;
    // Declaring everything but sockets still leaves the socket imports unaccounted for.
    let mut p = package(
        &manifest("acme:hostile", "1.0.0", "acme", HTTP),
        guest_bytes("guest-hostile"),
    );
    sign(&mut p, acme);
    let err = f.registry.publish(&p.to_bytes()).await.unwrap_err();
    assert_eq!(err.code(), "undeclared_import");
    assert!(err.to_string().contains("wasi:sockets/"), "{err}");

    // Tampered component after signing, digests left alone.
    let mut p = Package::parse(&signed("acme:text", "1.0.0", acme, "")).unwrap();
    let last = p.component.len() - 1;
    p.component[last] ^= 0xff;
    rejected(&f, &p.to_bytes(), "digest_mismatch").await;

    // Tampered manifest after signing, digests recomputed to match.
    let mut p = Package::parse(&signed("acme:text", "1.0.0", acme, "")).unwrap();
    p.manifest_text = p
        .manifest_text
        .replace("[\"text\"]", "[\"text\", \"free-money\"]");
    p.header.files.insert(
        "hyyve.toml".into(),
        FileDigest::of(p.manifest_text.as_bytes()),
    );
    rejected(&f, &p.to_bytes(), "bad_signature").await;

    // Tampered component with recomputed digest: the signature no longer covers it.
    let mut p = Package::parse(&signed("acme:text", "1.0.0", acme, "")).unwrap();
    p.component = guest_bytes("hyyve-plugin-json");
    p.header
        .files
        .insert(COMPONENT.into(), FileDigest::of(&p.component));
    rejected(&f, &p.to_bytes(), "bad_signature").await;

    // Signed by another publisher's key (a registered key, not acme's).
    let text = manifest("acme:text", "1.0.0", "acme", "");
    let p = package(&text, guest_bytes("hyyve-plugin-text"));
    let mut forged = p.clone();
    sign(&mut forged, &f.mallory);
    forged.signatures[0].signer = "acme".into();
    rejected(&f, &forged.to_bytes(), "foreign_key").await;

    // Signed by a key the registry has never seen.
    let stranger = hyyve_registry::signing::KeyPair::generate("acme").unwrap();
    let mut unknown = p.clone();
    sign(&mut unknown, &stranger);
    rejected(&f, &unknown.to_bytes(), "unknown_key").await;

    // Not signed at all.
    rejected(&f, &p.to_bytes(), "unsigned").await;

    // Namespace squatting: mallory publishing into acme's namespace, or a free one.
    rejected(
        &f,
        &signed("acme:text", "1.0.0", &f.mallory, ""),
        "namespace_not_owned",
    )
    .await;
    rejected(
        &f,
        &signed("openai:chat", "1.0.0", &f.mallory, ""),
        "namespace_not_owned",
    )
    .await;

    // Malformed manifest (valid TOML, invalid id) and malformed package bytes.
    let bad = "[plugin]\nid = \"Not Valid\"\nversion = \"1.0.0\"\nkind = \"node\"\npublisher = \"acme\"\ndescription = \"x\"\n";
    let mut p = package(
        &manifest("acme:text", "1.0.0", "acme", ""),
        guest_bytes("hyyve-plugin-text"),
    );
    p.manifest_text = bad.into();
    p.header
        .files
        .insert("hyyve.toml".into(), FileDigest::of(bad.as_bytes()));
    sign(&mut p, acme);
    rejected(&f, &p.to_bytes(), "manifest_invalid").await;
    rejected(
        &f,
        b"\x00\x01 definitely not a tar archive",
        "malformed_package",
    )
    .await;

    // Now a good one, then republishing it and publishing an older version.
    f.registry
        .publish(&signed("acme:text", "1.2.0", acme, ""))
        .await
        .expect("a valid package publishes");
    rejected(
        &f,
        &signed("acme:text", "1.2.0", acme, ""),
        "version_exists",
    )
    .await;
    rejected(
        &f,
        &signed("acme:text", "1.1.9", acme, ""),
        "version_not_greater",
    )
    .await;
    assert_eq!(f.stored().await, (1, 1));
}

#[tokio::test]
async fn an_oversized_upload_is_refused_before_it_is_read() {
    let f = Fixture::with_limit(Db::Sqlite, 64 * 1024).await;
    let bytes = signed("acme:text", "1.0.0", &f.acme, "");
    assert!(bytes.len() > 64 * 1024);
    rejected(&f, &bytes, "package_too_large").await;
}

#[tokio::test]
async fn installs_refuse_yanked_versions_and_ranges_that_match_nothing() {
    let f = Fixture::new(Db::Sqlite).await;
    f.registry
        .publish(&signed("acme:text", "1.0.0", &f.acme, ""))
        .await
        .unwrap();
    let pinned = f.registry.resolve("acme:text", "^1").await.unwrap();
    f.registry
        .yank("acme:text", &"1.0.0".parse().unwrap(), "leaks tokens")
        .await
        .unwrap();
    let err = f.registry.resolve("acme:text", "^1").await.unwrap_err();
    assert_eq!(err.code(), "version_yanked");
    assert!(err.to_string().contains("leaks tokens"), "{err}");
    // An install pinned before the yank keeps its version and bytes.
    let still = f
        .registry
        .version_by_digest("acme:text", &pinned.component_digest)
        .await
        .unwrap();
    assert!(still.yanked_at.is_some());
    let bytes = f
        .registry
        .component(&pinned.component_digest)
        .await
        .unwrap();
    assert_eq!(bytes, guest_bytes("hyyve-plugin-text"));

    assert_eq!(
        code(f.registry.resolve("acme:text", "^2").await),
        "no_matching_version"
    );
    assert_eq!(
        code(f.registry.resolve("acme:text", "not a range").await),
        "invalid_range"
    );
    assert_eq!(
        code(f.registry.resolve("acme:nothing", "*").await),
        "not_found"
    );
}
