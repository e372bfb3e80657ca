//! Builds the first-party plugins (`plugins/*`) for wasm32-wasip2 and embeds them, with
//! their manifests and listing files, in the `hyyve` binary: a fresh `hyyve serve`
//! publishes them without a repository or cargo at run time. The build is the one
//! `hyyve plugin build` runs (`src/build.rs`, included here), into `target/guests`, which
//! the tests share.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// The same module the crate uses; the build script uses only part of it.
#[allow(dead_code)]
#[path = "src/build.rs"]
mod build;

fn main() {
    let repo = build::repo_root();
    for watched in ["plugins", "sdk", "wit", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo.join("plugins"))
        .expect("reading plugins/")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|dir| dir.join("hyyve.toml").is_file())
        .collect();
    dirs.sort();
    let names: Vec<String> = dirs
        .iter()
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let packages: Vec<String> = names.iter().map(|n| format!("hyyve-plugin-{n}")).collect();
    let package_refs: Vec<&str> = packages.iter().map(String::as_str).collect();
    let components = build::build_packages(&repo, &package_refs, &build::guest_target_dir(&repo))
        .unwrap_or_else(|e| panic!("building the first-party plugins: {e}"));

    let mut generated = String::from("&[\n");
    for ((dir, name), component) in dirs.iter().zip(&names).zip(&components) {
        let manifest = dir.join("hyyve.toml");
        let listing = listing_files(&manifest);
        let files: String = listing
            .iter()
            .map(|file| format!("({file:?}, include_bytes!({:?})), ", dir.join(file)))
            .collect();
        let _ = writeln!(
            generated,
            "    FirstPartyPlugin {{ name: {name:?}, manifest: include_str!({manifest:?}), \
             component: include_bytes!({component:?}), listing_files: &[{files}] }},"
        );
    }
    generated.push_str("]\n");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("first_party.rs"), generated).expect("writing first_party.rs");
}

/// The files a manifest's `[listing]` names (readme, icon), relative to its folder.
fn listing_files(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("reading a first-party manifest");
    let value: toml::Value = toml::from_str(&text).expect("a first-party manifest parses");
    ["readme", "icon"]
        .iter()
        .filter_map(|key| value.get("listing")?.get(key)?.as_str().map(String::from))
        .collect()
}
