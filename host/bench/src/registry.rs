//! `hyyve-bench --registry`: publish-to-installable latency of a 2 MB component, and
//! search latency over many listings, on SQLite or on the database of `--database-url`.
//! Figures are printed as they are measured: the listing fill takes minutes.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyyve_database::Database;
use hyyve_policy::{Manifest, PluginKind};
use hyyve_registry::marketplace::SearchQuery;
use hyyve_registry::package::{Package, PackageSignature, SignerRole};
use hyyve_registry::signing::KeyPair;
use hyyve_registry::storage::Blobs;
use hyyve_registry::{Registry, RegistryConfig};
use hyyve_runtime::{Runtime, RuntimeConfig};

use hyyve::build;

const COMPONENT_BYTES: usize = 2 * 1024 * 1024;

/// `bytes` grown to `size` with a custom section (ignored by every runtime), its content
/// varied by `salt` so each copy has its own digest and is compiled afresh.
fn padded(bytes: &[u8], size: usize, salt: u8) -> Vec<u8> {
    let name = b"hyyve-bench-padding";
    let mut out = bytes.to_vec();
    let payload = size.saturating_sub(bytes.len() + name.len() + 12);
    let mut section = Vec::new();
    leb128(&mut section, name.len() as u32);
    section.extend_from_slice(name);
    section.extend(std::iter::repeat_n(salt, payload));
    out.push(0); // custom section id
    leb128(&mut out, section.len() as u32);
    out.extend_from_slice(&section);
    out
}

fn leb128(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn signed(key: &KeyPair, id: &str, version: &str, component: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let text = format!(
        "[plugin]\nid = \"{id}\"\nversion = \"{version}\"\nkind = \"node\"\npublisher = \"bench\"\n\
         description = \"Benchmark listing {id}: text template split regex\"\n\
         categories = [\"{}\"]\n",
        if id.ends_with('7') { "rare" } else { "text" }
    );
    let manifest = Manifest::parse(&text)?;
    let mut package = Package::new(&manifest, text, component, None, None)?;
    package.signatures.push(PackageSignature {
        role: SignerRole::Publisher,
        signer: "bench".into(),
        key_id: key.public().id(),
        signature: key.sign(&package.signed_message()),
    });
    Ok(package.to_bytes())
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Runs both figures, printing each; `database_url` None: a fresh SQLite file.
pub async fn run(repo: &Path, database_url: Option<String>, listings: usize) -> anyhow::Result<()> {
    // The 2 MB component: the json plugin (~0.5 MB of code) padded; the listing fill
    // republishes the smallest plugin, since only the rows matter there.
    let built = build::build_packages(
        repo,
        &["hyyve-plugin-json", "hyyve-plugin-fibo"],
        &build::guest_target_dir(repo),
    )?;
    let json = std::fs::read(&built[0])?;
    let small = std::fs::read(&built[1])?;
    anyhow::ensure!(
        json.len() < COMPONENT_BYTES,
        "the json plugin is already over 2 MB"
    );
    let dir = tempfile::tempdir()?;
    let database_url = database_url
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("registry.db").display()));
    // The compile cache is on, as in `hyyve serve`: the 2 MB copies each have their own
    // digest and compile afresh, while the listing fill republishes one component and
    // measures storage, not Cranelift.
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..RuntimeConfig::default()
    })?);
    let db = Database::open(&database_url).await?;
    let registry = Registry::new(
        db.pool.clone(),
        RegistryConfig {
            blobs: Blobs::local(&dir.path().join("blobs"))?,
            max_package_bytes: 8 * 1024 * 1024,
        },
        runtime.clone(),
    );
    let key = KeyPair::generate("bench")?;
    registry
        .add_publisher("bench", &key.public_file(), "bench")
        .await?;
    let backend = format!("{:?}", db.backend);

    // Publish (validate, compile, describe, store) then resolve, fetch and load: the
    // moment a workspace could install it.
    let mut samples = Vec::new();
    for i in 0..10u8 {
        let package = signed(
            &key,
            "bench:big",
            &format!("1.0.{i}"),
            padded(&json, COMPONENT_BYTES, i),
        )?;
        let started = Instant::now();
        registry.publish(&package).await?;
        let version = registry.resolve("bench:big", "^1").await?;
        let component = registry.component(&version.component_digest).await?;
        runtime.load_node_plugin(&component).await?;
        samples.push(started.elapsed());
    }
    println!(
        "registry ({backend}): publish-to-installable, 2 MB component: median {:.1} ms (10 runs)",
        median(samples).as_secs_f64() * 1e3
    );

    let started = Instant::now();
    for i in 0..listings {
        let package = signed(&key, &format!("bench:listing-{i}"), "1.0.0", small.clone())?;
        registry.publish(&package).await?;
        if (i + 1) % 1000 == 0 {
            eprintln!("  {} listings published", i + 1);
        }
    }
    println!(
        "registry ({backend}): published {listings} listings in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let queries: [(&str, SearchQuery); 4] = [
        (
            "one word",
            SearchQuery {
                text: format!("listing-{}", listings * 42 / 100),
                ..SearchQuery::default()
            },
        ),
        (
            "two words, page 1 of 20",
            SearchQuery {
                text: "template split".into(),
                per_page: 20,
                ..SearchQuery::default()
            },
        ),
        (
            "kind + category",
            SearchQuery {
                kind: Some(PluginKind::Node),
                category: Some("rare".into()),
                per_page: 20,
                ..SearchQuery::default()
            },
        ),
        (
            "page 400 of 20",
            SearchQuery {
                page: 400,
                per_page: 20,
                ..SearchQuery::default()
            },
        ),
    ];
    for (name, query) in queries {
        let mut samples = Vec::new();
        for _ in 0..100 {
            let started = Instant::now();
            let page = registry.search(&query).await?;
            samples.push(started.elapsed());
            anyhow::ensure!(page.total > 0, "query `{name}` found nothing");
        }
        println!(
            "registry ({backend}): search over {listings} listings, {name}: median {:.2} ms",
            median(samples).as_secs_f64() * 1e3
        );
    }
    Ok(())
}
