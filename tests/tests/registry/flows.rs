//! What works, on SQLite and on PostgreSQL alike.

use hyyve_policy::PluginKind;
use hyyve_registry::KeyAuthorization;
use hyyve_registry::OwnerKind;
use hyyve_registry::marketplace::SearchQuery;
use hyyve_registry::signing::{KeyPair, key_addition_message};
use hyyve_registry::vetting::VettingStatus;
use hyyve_tests::guest_bytes;

use crate::{Db, Fixture, code, signed};

const LISTING: &str = "[listing]\ntitle = \"Acme Text\"\n[listing.pricing]\nmodel = \"per-invocation\"\nprice_micros = 2000\n";

async fn publish_resolve_search(db: Db) {
    let f = Fixture::new(db).await;
    for (id, version) in [
        ("acme:text", "1.0.0"),
        ("acme:text", "1.1.0"),
        ("acme:text", "2.0.0-beta.1"),
        ("acme:splitter", "0.3.0"),
    ] {
        let record = f
            .registry
            .publish(&signed(id, version, &f.acme, LISTING))
            .await
            .unwrap_or_else(|e| panic!("{id}@{version}: {e}"));
        assert_eq!(
            record.component_digest,
            hyyve_registry::package::sha256(&guest_bytes("hyyve-plugin-text"))
        );
    }
    // Ranges resolve to the greatest match; prereleases only when asked for.
    let v = |range: &'static str| {
        let r = &f.registry;
        async move {
            r.resolve("acme:text", range)
                .await
                .unwrap()
                .version
                .to_string()
        }
    };
    assert_eq!(v("^1").await, "1.1.0");
    assert_eq!(v("~1.0").await, "1.0.0");
    assert_eq!(v("*").await, "1.1.0");
    assert_eq!(v(">=2.0.0-beta.1").await, "2.0.0-beta.1");
    // Same bytes in every version: one blob.
    assert_eq!(f.registry.blobs().count().await.unwrap(), 1);

    let search = |q: SearchQuery| {
        let r = &f.registry;
        async move { r.search(&q).await.unwrap() }
    };
    let all = search(SearchQuery::default()).await;
    assert_eq!(all.total, 2);
    let by_text = search(SearchQuery {
        text: "SPLITTER text".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(by_text.listings.len(), 1);
    assert_eq!(by_text.listings[0].id, "acme:splitter");
    assert_eq!(by_text.listings[0].title, "Acme Text");
    let none = search(SearchQuery {
        text: "%".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(
        none.total, 0,
        "a LIKE wildcard in the query matches only itself"
    );
    assert_eq!(
        search(SearchQuery {
            kind: Some(PluginKind::Provider),
            ..Default::default()
        })
        .await
        .total,
        0
    );
    assert_eq!(
        search(SearchQuery {
            kind: Some(PluginKind::Node),
            category: Some("text".into()),
            publisher: Some("acme".into()),
            ..Default::default()
        })
        .await
        .total,
        2
    );
    let page2 = search(SearchQuery {
        page: 2,
        per_page: 1,
        ..Default::default()
    })
    .await;
    assert_eq!((page2.total, page2.listings.len()), (2, 1));
    assert_eq!(page2.listings[0].id, "acme:text");

    let detail = f.registry.show("acme:text").await.unwrap();
    assert_eq!(detail.versions.len(), 3);
    assert_eq!(detail.listing.latest_version, "2.0.0-beta.1");

    // Payout from metered usage: 300 invocations at $0.002, a new creator: no fee.
    let period = &hyyve_registry::marketplace::today()[..7];
    let day = hyyve_registry::marketplace::today();
    let mut usage = hyyve_platform::usage::UsageTally::default();
    for (workspace, invocations) in [("ws-a", 200), ("ws-b", 100)] {
        for _ in 0..invocations {
            usage.add("acme:text", workspace, &day);
        }
    }
    let mut conn = f.db.acquire().await.unwrap();
    usage.record(&mut conn).await.unwrap();
    let payout = f.registry.compute_payout("acme", period).await.unwrap();
    assert_eq!(payout.gross_micros, 600_000);
    assert_eq!((payout.fee_micros, payout.net_micros), (0, 600_000));
    assert_eq!(payout.tier, "new");
    assert_eq!(payout.lines[0].invocations, 300);
}

async fn keys_rotate_and_revoke(db: Db) {
    let f = Fixture::new(db).await;
    let next = KeyPair::generate("acme").unwrap();
    // Endorsed by mallory's key: refused; by acme's current key: added.
    let forged = f
        .mallory
        .sign(&key_addition_message("acme", &next.public().id()));
    let refused = f
        .registry
        .add_key(
            OwnerKind::Publisher,
            &next.public_file(),
            KeyAuthorization::SignedBy {
                key_id: f.mallory.public().id(),
                signature: forged,
            },
        )
        .await;
    assert_eq!(code(refused), "foreign_key");
    let endorsement = f
        .acme
        .sign(&key_addition_message("acme", &next.public().id()));
    f.registry
        .add_key(
            OwnerKind::Publisher,
            &next.public_file(),
            KeyAuthorization::SignedBy {
                key_id: f.acme.public().id(),
                signature: endorsement,
            },
        )
        .await
        .unwrap();
    f.registry
        .publish(&signed("acme:text", "1.0.0", &next, ""))
        .await
        .unwrap();
    f.registry.revoke_key(&f.acme.public().id()).await.unwrap();
    assert_eq!(
        code(
            f.registry
                .publish(&signed("acme:text", "1.0.1", &f.acme, ""))
                .await
        ),
        "unknown_key"
    );
}

async fn vetting(db: Db) {
    let f = Fixture::new(db).await;
    let http = "[capabilities.http]\nallow = [{ url = \"https://api.example.com\", methods = [\"GET\"] }]\n";
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        // 1.2.0 asks for outgoing HTTP it did not have.
        let extra = if version == "1.2.0" { http } else { "" };
        f.registry
            .publish(&signed("acme:text", version, &f.acme, extra))
            .await
            .unwrap();
    }
    let v1 = f.registry.resolve("acme:text", "=1.0.0").await.unwrap();
    assert!(!f.registry.is_vetted("bigcorp", &v1).await.unwrap());
    let request = f
        .registry
        .request_vetting("bigcorp", "ws-a", &v1, "dev@bigcorp")
        .await
        .unwrap();
    assert_eq!(request.status, VettingStatus::Pending);
    // Asking again does not queue twice; another organization cannot see it.
    let again = f
        .registry
        .request_vetting("bigcorp", "ws-b", &v1, "dev@bigcorp")
        .await
        .unwrap();
    assert_eq!(again.id, request.id);
    assert_eq!(
        code(f.registry.vetting_request("otherorg", request.id).await),
        "not_found"
    );
    assert_eq!(
        f.registry
            .vetting_queue("bigcorp", false)
            .await
            .unwrap()
            .len(),
        1
    );

    // A key of another account cannot co-sign for bigcorp.
    assert_eq!(
        code(
            f.registry
                .approve("bigcorp", request.id, "sec@bigcorp", "ok", Some(&f.acme))
                .await
        ),
        "foreign_key"
    );
    let approved = f
        .registry
        .approve(
            "bigcorp",
            request.id,
            "sec@bigcorp",
            "reviewed",
            Some(&f.bigcorp),
        )
        .await
        .unwrap();
    assert_eq!(approved.status, VettingStatus::Approved);
    assert!(f.registry.is_vetted("bigcorp", &v1).await.unwrap());
    assert_eq!(
        code(f.registry.reject("bigcorp", request.id, "x", "late").await),
        "not_pending"
    );

    // 1.1.0 asks for nothing new: approved automatically, recorded as such.
    let v11 = f.registry.resolve("acme:text", "=1.1.0").await.unwrap();
    let auto = f
        .registry
        .request_vetting("bigcorp", "ws-a", &v11, "dev@bigcorp")
        .await
        .unwrap();
    assert_eq!(auto.status, VettingStatus::Approved);
    assert_eq!(auto.decided_by.as_deref(), Some("auto"));

    // 1.2.0 asks for HTTP: pending again, the diff names it.
    let v12 = f.registry.resolve("acme:text", "=1.2.0").await.unwrap();
    let upgrade = f
        .registry
        .request_vetting("bigcorp", "ws-a", &v12, "dev@bigcorp")
        .await
        .unwrap();
    assert_eq!(upgrade.status, VettingStatus::Pending);
    assert_eq!(upgrade.base_version.as_deref(), Some("1.1.0"));
    assert_eq!(
        upgrade.diff.added,
        vec!["http GET https://api.example.com".to_owned()]
    );
    let rejected = f
        .registry
        .reject("bigcorp", upgrade.id, "sec@bigcorp", "no outbound calls")
        .await
        .unwrap();
    assert_eq!(rejected.reason.as_deref(), Some("no outbound calls"));
    assert!(!f.registry.is_vetted("bigcorp", &v12).await.unwrap());
}

#[tokio::test]
async fn sqlite_publish_resolve_search_payout() {
    publish_resolve_search(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_publish_resolve_search_payout() {
    publish_resolve_search(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_keys_rotate_and_revoke() {
    keys_rotate_and_revoke(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_keys_rotate_and_revoke() {
    keys_rotate_and_revoke(Db::Postgres).await;
}

#[tokio::test]
async fn sqlite_vetting_queue() {
    vetting(Db::Sqlite).await;
}

#[tokio::test]
async fn postgres_vetting_queue() {
    vetting(Db::Postgres).await;
}

#[tokio::test]
async fn postgres_rejects_and_stores_nothing() {
    let f = Fixture::new(Db::Postgres).await;
    f.registry
        .publish(&signed("acme:text", "1.0.0", &f.acme, ""))
        .await
        .unwrap();
    let before = f.stored().await;
    assert_eq!(
        code(
            f.registry
                .publish(&signed("acme:text", "1.0.0", &f.acme, ""))
                .await
        ),
        "version_exists"
    );
    assert_eq!(
        code(
            f.registry
                .publish(&signed("acme:other", "1.0.0", &f.mallory, ""))
                .await
        ),
        "namespace_not_owned"
    );
    assert_eq!(f.stored().await, before);
}
