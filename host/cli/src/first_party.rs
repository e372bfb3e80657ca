//! The first-party plugins (`plugins/*`), built for wasm32-wasip2 by `build.rs` and
//! embedded with their manifests and listing files: the binary needs neither the
//! repository nor cargo to publish them.

/// One embedded plugin.
pub struct FirstPartyPlugin {
    /// Its folder under `plugins/` (`text`, `json`, …).
    pub name: &'static str,
    /// Its `hyyve.toml`.
    pub manifest: &'static str,
    /// The component.
    pub component: &'static [u8],
    /// The files its `[listing]` names (readme, icon), by the name it gives them.
    pub listing_files: &'static [(&'static str, &'static [u8])],
}

/// Every first-party plugin, by folder name.
pub const PLUGINS: &[FirstPartyPlugin] = include!(concat!(env!("OUT_DIR"), "/first_party.rs"));

impl FirstPartyPlugin {
    /// A listing file by the name the manifest gives it.
    pub fn listing_file(&self, name: &str) -> Option<&'static [u8]> {
        self.listing_files
            .iter()
            .find(|(file, _)| *file == name)
            .map(|(_, bytes)| *bytes)
    }
}
