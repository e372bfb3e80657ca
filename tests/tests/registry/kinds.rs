//! Providers and channels publish like nodes: their world is checked against the declared
//! kind, their imports against the manifest, and their description is read at publish.

use hyyve_tests::guest_bytes;

use crate::{Db, Fixture, code, manifest, package, sign};

fn kind(text: String, kind: &str) -> String {
    text.replace("kind = \"node\"", &format!("kind = \"{kind}\""))
}

const PROVIDER_CAPS: &str = "[capabilities]\nsecrets = [\"OPENAI_API_KEY\"]\n\
    [[capabilities.http.allow]]\nurl = \"https://api.openai.com\"\nmethods = [\"POST\"]\n";

#[tokio::test]
async fn a_provider_and_a_channel_publish_under_their_kinds() {
    let f = Fixture::new(Db::Sqlite).await;
    let text = kind(
        manifest("acme:llm-provider", "1.0.0", "acme", PROVIDER_CAPS),
        "provider",
    );
    let mut p = package(&text, guest_bytes("hyyve-plugin-openai"));
    sign(&mut p, &f.acme);
    f.registry
        .publish(&p.to_bytes())
        .await
        .expect("a provider publishes");

    let text = kind(
        manifest("acme:probe-channel", "1.0.0", "acme", ""),
        "channel",
    );
    let mut p = package(&text, guest_bytes("guest-channel"));
    sign(&mut p, &f.acme);
    f.registry
        .publish(&p.to_bytes())
        .await
        .expect("a channel publishes");
}

#[tokio::test]
async fn a_kind_that_is_not_the_components_world_is_refused() {
    let f = Fixture::new(Db::Sqlite).await;
    for (component, declared) in [
        ("hyyve-plugin-openai", "node"),
        ("hyyve-plugin-openai", "channel"),
        ("guest-channel", "provider"),
    ] {
        let text = kind(
            manifest("acme:mixed", "1.0.0", "acme", PROVIDER_CAPS),
            declared,
        );
        let mut p = package(&text, guest_bytes(component));
        sign(&mut p, &f.acme);
        assert_eq!(
            code(f.registry.publish(&p.to_bytes()).await),
            "wrong_world",
            "{component} as {declared}"
        );
    }
}

#[tokio::test]
async fn a_provider_without_its_secret_or_hosts_declared_is_refused() {
    let f = Fixture::new(Db::Sqlite).await;
    let text = kind(
        manifest("acme:bare-provider", "1.0.0", "acme", ""),
        "provider",
    );
    let mut p = package(&text, guest_bytes("hyyve-plugin-openai"));
    sign(&mut p, &f.acme);
    assert_eq!(
        code(f.registry.publish(&p.to_bytes()).await),
        "undeclared_import"
    );
}

#[tokio::test]
async fn a_node_calling_models_must_declare_the_aliases() {
    let f = Fixture::new(Db::Sqlite).await;
    let kv = "[capabilities]\nkv_bytes = 1024\n";
    let mut p = package(
        &manifest("acme:ai", "1.0.0", "acme", kv),
        guest_bytes("hyyve-plugin-llm"),
    );
    sign(&mut p, &f.acme);
    let err = f.registry.publish(&p.to_bytes()).await.unwrap_err();
    assert_eq!(err.code(), "undeclared_import");
    assert!(err.to_string().contains("hyyve:plugin/models"), "{err}");

    let declared = "[capabilities]\nkv_bytes = 1024\nmodels = [\"default-chat\"]\n";
    let mut p = package(
        &manifest("acme:ai", "1.0.0", "acme", declared),
        guest_bytes("hyyve-plugin-llm"),
    );
    sign(&mut p, &f.acme);
    f.registry
        .publish(&p.to_bytes())
        .await
        .expect("declared aliases publish");
}

#[tokio::test]
async fn inspect_shows_a_providers_models_and_a_channels_description() {
    let runtime = hyyve_tests::runtime();
    let info = runtime
        .inspect(&guest_bytes("hyyve-plugin-openai"))
        .await
        .unwrap();
    let provider = info.provider.expect("a provider describes itself");
    assert_eq!(provider.name, "openai");
    assert!(
        provider
            .models
            .iter()
            .any(|m| m.id == "gpt-4o-mini" && m.kind == "chat")
    );
    assert!(provider.models.iter().any(|m| m.kind == "embedding"));
    let info = runtime
        .inspect(&guest_bytes("guest-channel"))
        .await
        .unwrap();
    assert_eq!(
        info.channel.expect("a channel describes itself").name,
        "probe"
    );
    assert!(info.node_types.is_empty());
}
