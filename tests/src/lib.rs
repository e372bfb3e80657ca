//! Test support: builds the first-party plugins and the test guests from source (once per
//! test process) and loads them into one shared runtime.

pub mod databases;
pub mod packages;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hyyve::build;
use hyyve_runtime::{KvStore, NodePlugin, Runtime, RuntimeConfig, StaticResolver, SystemResolver};
use hyyve_secrets::{MemorySecretStore, SecretStore};
use tokio::sync::Mutex;

pub mod fake_llm;
pub mod http_server;
pub mod model_workspace;

/// Names the test resolver answers without DNS: all of them point at loopback, link-local
/// or a documentation address, so no test ever reaches beyond this machine.
pub const TEST_NAMES: [(&str, &[&str]); 3] = [
    ("api.test", &["127.0.0.1"]),
    ("metadata.test", &["169.254.169.254"]),
    // A public address beside a loopback one, as a rebinding answer looks; the address
    // check refuses before any connection, so the public one is never contacted.
    ("rebind.test", &["93.184.216.34", "127.0.0.1"]),
];

/// The secrets every test runtime reads from.
pub fn secrets() -> Arc<MemorySecretStore> {
    static SECRETS: OnceLock<Arc<MemorySecretStore>> = OnceLock::new();
    SECRETS.get_or_init(Default::default).clone()
}

/// Parent of the scratch directories of this test process.
pub fn scratch_root() -> PathBuf {
    static ROOT: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOT.get_or_init(|| tempfile::tempdir().expect("scratch root"))
        .path()
        .to_owned()
}

/// Every guest the tests use, by package name.
pub const GUESTS: [&str; 13] = [
    "hyyve-plugin-fibo",
    "hyyve-plugin-llm",
    "hyyve-plugin-openai",
    "hyyve-plugin-anthropic",
    "hyyve-plugin-text",
    "hyyve-plugin-json",
    "hyyve-plugin-logic",
    "guest-hostile",
    "guest-command",
    "guest-flaky",
    "guest-secret",
    "guest-counter",
    "guest-channel",
];

/// Path of the built component of `package` (one of [`GUESTS`]); builds all on first use.
pub fn guest_path(package: &str) -> PathBuf {
    static BUILT: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let repo = build::repo_root();
        let paths = build::build_packages(&repo, &GUESTS, &build::guest_target_dir(&repo))
            .unwrap_or_else(|e| panic!("building test guests: {e}"));
        GUESTS.iter().map(|g| g.to_string()).zip(paths).collect()
    });
    built
        .get(package)
        .unwrap_or_else(|| panic!("{package} is not a test guest"))
        .clone()
}

/// The bytes of a built guest.
pub fn guest_bytes(package: &str) -> Vec<u8> {
    std::fs::read(guest_path(package)).expect("reading built guest")
}

/// The runtime configuration of the tests: compiled artifacts cached on disk, the test
/// secrets, scratch root, host names and CA.
pub fn runtime_config() -> RuntimeConfig {
    let cache_dir = build::repo_root()
        .join("target")
        .join("test-data")
        .join("compiled");
    RuntimeConfig {
        cache_dir: Some(cache_dir),
        secrets: secrets(),
        scratch_root: Some(scratch_root()),
        resolver: Arc::new(
            StaticResolver::new(TEST_NAMES.iter().map(|(name, ips)| {
                let ips = ips.iter().map(|ip| ip.parse().expect("ip")).collect();
                (name.to_string(), ips)
            }))
            .with_fallback(SystemResolver),
        ),
        extra_root_certificates: vec![http_server::tls_server().certificate.clone()],
        ..RuntimeConfig::default()
    }
}

/// The runtime shared by the tests of one process (KV in memory).
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| Arc::new(Runtime::new(runtime_config()).expect("runtime starts")))
        .clone()
}

/// A runtime of its own whose plugins keep KV in `kv` and read secrets from `secrets`
/// (the server's database stores).
pub fn runtime_with_stores(kv: Arc<dyn KvStore>, secrets: Arc<dyn SecretStore>) -> Arc<Runtime> {
    let config = RuntimeConfig {
        kv,
        secrets,
        ..runtime_config()
    };
    Arc::new(Runtime::new(config).expect("runtime starts"))
}

/// A loaded node plugin, loaded once per process.
pub async fn plugin(package: &str) -> Arc<NodePlugin> {
    static LOADED: OnceLock<Mutex<HashMap<String, Arc<NodePlugin>>>> = OnceLock::new();
    let mut loaded = LOADED.get_or_init(Default::default).lock().await;
    if let Some(p) = loaded.get(package) {
        return p.clone();
    }
    let path = guest_path(package);
    let plugin = Arc::new(
        runtime()
            .load_node_plugin_file(&path)
            .await
            .unwrap_or_else(|e| panic!("loading {package}: {e}")),
    );
    loaded.insert(package.to_owned(), plugin.clone());
    plugin
}
