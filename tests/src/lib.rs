//! Test support: builds the first-party plugins and the test guests from source (once per
//! test process) and loads them into one shared runtime.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use hyyve::build;
use hyyve_runtime::{NodePlugin, Runtime, RuntimeConfig};
use tokio::sync::Mutex;

/// Every guest the tests use, by package name.
pub const GUESTS: [&str; 6] = [
    "hyyve-plugin-fibo",
    "hyyve-plugin-text",
    "hyyve-plugin-json",
    "hyyve-plugin-logic",
    "guest-hostile",
    "guest-command",
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

/// The runtime shared by the tests of one process (compiled artifacts cached on disk).
pub fn runtime() -> Arc<Runtime> {
    static RUNTIME: OnceLock<Arc<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let cache_dir = build::repo_root()
                .join("target")
                .join("test-data")
                .join("compiled");
            Arc::new(
                Runtime::new(RuntimeConfig {
                    cache_dir: Some(cache_dir),
                    ..RuntimeConfig::default()
                })
                .expect("runtime starts"),
            )
        })
        .clone()
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
