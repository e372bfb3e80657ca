//! Building plugin crates into components with cargo (`--target wasm32-wasip2`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The wasm target every plugin builds for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a build produced no component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started.
    #[error("cannot run cargo: {0}")]
    Spawn(std::io::Error),
    /// cargo reported a failure (its diagnostics were printed to stderr).
    #[error("cargo build failed in {0} (diagnostics above)")]
    Failed(String),
    /// The crate built but produced no `.wasm` (not a `cdylib` or binary crate?).
    #[error("{0} produced no .wasm artifact; is it a cdylib crate?")]
    NoArtifact(String),
}

/// Where guests are built: beside, not inside, the host's target directory, so a build
/// started from a running test never waits on the lock of the build that runs it.
pub fn guest_target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("guests")
}

/// The repository this binary was built from (first-party plugins live in `plugins/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

#[derive(Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    package_id: String,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

/// Builds the crate at `crate_dir` in release mode and returns its component.
pub fn build_crate(crate_dir: &Path, target_dir: Option<&Path>) -> Result<PathBuf, BuildError> {
    let artifacts = run_cargo(crate_dir, &[], target_dir)?;
    artifacts
        .into_iter()
        .next()
        .map(|(_, path)| path)
        .ok_or_else(|| BuildError::NoArtifact(crate_dir.display().to_string()))
}

/// Builds the named packages of the workspace at `workspace` in one cargo run; returns
/// the component of each, in the order given.
pub fn build_packages(
    workspace: &Path,
    packages: &[&str],
    target_dir: &Path,
) -> Result<Vec<PathBuf>, BuildError> {
    let mut args = Vec::new();
    for p in packages {
        args.push("-p");
        args.push(p);
    }
    let artifacts = run_cargo(workspace, &args, Some(target_dir))?;
    packages
        .iter()
        .map(|p| {
            // package ids look like `path+file:///.../name#0.1.0`, or `registry...#name@0.1.0`.
            artifacts
                .iter()
                .find(|(id, _)| package_name_of(id) == *p)
                .map(|(_, path)| path.clone())
                .ok_or_else(|| BuildError::NoArtifact((*p).to_owned()))
        })
        .collect()
}

fn package_name_of(package_id: &str) -> &str {
    let after_hash = package_id.rsplit('#').next().unwrap_or(package_id);
    match after_hash.split_once('@') {
        Some((name, _)) => name,
        // `.../plugins/text#0.1.0` carries no name after `#`: take the path's last segment.
        None => package_id
            .split('#')
            .next()
            .and_then(|p| p.rsplit('/').next())
            .unwrap_or(after_hash),
    }
}

fn run_cargo(
    dir: &Path,
    extra: &[&str],
    target_dir: Option<&Path>,
) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    command
        .current_dir(dir)
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .args(extra);
    if let Some(target_dir) = target_dir {
        command.arg("--target-dir").arg(target_dir);
    }
    let output = command
        // Variables set by an outer cargo (tests, `cargo run`) must not leak into this build.
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stderr(Stdio::inherit())
        .output()
        .map_err(BuildError::Spawn)?;
    if !output.status.success() {
        return Err(BuildError::Failed(dir.display().to_string()));
    }
    let mut artifacts = Vec::new();
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<Message>(line) else {
            continue;
        };
        if msg.reason != "compiler-artifact" {
            continue;
        }
        if let Some(wasm) = msg
            .filenames
            .into_iter()
            .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        {
            artifacts.push((msg.package_id, wasm));
        }
    }
    Ok(artifacts)
}
