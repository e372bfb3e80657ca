//! Building plugin crates into components with cargo (`--target wasm32-wasip2`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

/// The wasm target every plugin builds for.
pub const TARGET: &str = "wasm32-wasip2";

/// Why a build produced no component.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A build tool (cargo, rustc) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program that did not start.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// cargo reported a failure (its diagnostics were printed to stderr).
    #[error("cargo build failed in {0} (diagnostics above)")]
    Failed(String),
    /// The crate built but produced no `.wasm` (not a `cdylib` or binary crate?).
    #[error("{0} produced no .wasm artifact; is it a cdylib crate?")]
    NoArtifact(String),
    /// The toolchain lacks the wasm target and it could not be installed here.
    #[error(
        "the {TARGET} target is not installed for the toolchain at {sysroot} and installing it \
         failed ({why}); install it with: rustup target add {TARGET}"
    )]
    TargetMissing {
        /// The sysroot of the toolchain that builds in the crate's directory.
        sysroot: String,
        /// Why the automatic install did not happen.
        why: String,
    },
}

/// Whether the toolchain at `sysroot` has the standard library of [`TARGET`].
pub fn target_installed(sysroot: &Path) -> bool {
    sysroot
        .join("lib")
        .join("rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

/// The programs the target check runs: `rustc` to find the toolchain, `rustup` to add the
/// target. Tests point them at fakes.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// `rustc` (rustup's proxy picks the toolchain of `rust-toolchain.toml` in the cwd).
    pub rustc: PathBuf,
    /// `rustup`.
    pub rustup: PathBuf,
}

impl Default for Toolchain {
    fn default() -> Self {
        Toolchain {
            rustc: std::env::var_os("RUSTC").map_or_else(|| "rustc".into(), PathBuf::from),
            rustup: "rustup".into(),
        }
    }
}

/// What [`ensure_target`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum TargetCheck {
    /// The target was already there.
    Present,
    /// The target was missing and `rustup target add` installed it.
    Installed,
}

/// Makes sure the toolchain that builds in `dir` has [`TARGET`], before a long build
/// would fail on it: rustup applies the target list of `rust-toolchain.toml` only when it
/// installs the toolchain, so a machine that already had the toolchain lacks the target.
/// A missing target is installed with `rustup target add`, said on stderr; when that is
/// not possible the error names the command to run.
pub fn ensure_target(dir: &Path, toolchain: &Toolchain) -> Result<TargetCheck, BuildError> {
    let sysroot = sysroot(dir, toolchain)?;
    if target_installed(&sysroot) {
        return Ok(TargetCheck::Present);
    }
    let missing = |why: String| BuildError::TargetMissing {
        sysroot: sysroot.display().to_string(),
        why,
    };
    // Builds started at once (parallel tests, several `hyyve` processes) install it once:
    // the first takes the lock (held to the end of this call) and installs, the others
    // find it installed.
    let lock_path = std::env::temp_dir().join("hyyve-rustup-target-add.lock");
    let _lock = std::fs::File::create(&lock_path)
        .and_then(|file| file.lock().map(|()| file))
        .map_err(|e| missing(format!("locking {}: {e}", lock_path.display())))?;
    if target_installed(&sysroot) {
        return Ok(TargetCheck::Present);
    }
    eprintln!(
        "hyyve: the {TARGET} target is not installed for the toolchain at {}; running `rustup target add {TARGET}`",
        sysroot.display()
    );
    let status = Command::new(&toolchain.rustup)
        .current_dir(dir)
        .args(["target", "add", TARGET])
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| missing(format!("cannot run {}: {e}", toolchain.rustup.display())))?;
    if !status.success() {
        return Err(missing(format!("rustup exited with {status}")));
    }
    if !target_installed(&sysroot) {
        return Err(missing(
            "rustup succeeded but the target is still absent".into(),
        ));
    }
    Ok(TargetCheck::Installed)
}

fn sysroot(dir: &Path, toolchain: &Toolchain) -> Result<PathBuf, BuildError> {
    let output = Command::new(&toolchain.rustc)
        .current_dir(dir)
        .args(["--print", "sysroot"])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            program: toolchain.rustc.display().to_string(),
            source,
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || text.trim().is_empty() {
        return Err(BuildError::Failed(format!(
            "{}: `{} --print sysroot` failed",
            dir.display(),
            toolchain.rustc.display()
        )));
    }
    Ok(PathBuf::from(text.trim()))
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
    ensure_target(dir, &Toolchain::default())?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
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
        // Set for build scripts under `cargo clippy` (clippy-driver): the plugins are
        // built, not linted, and their fingerprints stay those of a plain build.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| BuildError::Spawn {
            program: cargo.clone(),
            source,
        })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// One test at a time: a script written by one test while another forks can be held
    /// open in the child, and executing it then fails with "text file busy".
    fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        LOCK.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A toolchain of shell scripts: `rustc` prints `sysroot`, `rustup` records its
    /// arguments in `rustup.args` and, when `installs`, creates the target's library.
    fn fake_toolchain(dir: &Path, sysroot: &Path, rustup_installs: bool) -> Toolchain {
        let script = |name: &str, body: String| {
            let path = dir.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let lib = sysroot.join("lib/rustlib").join(TARGET).join("lib");
        let install = if rustup_installs {
            format!("mkdir -p '{}'", lib.display())
        } else {
            "echo 'error: no network' >&2; exit 1".to_owned()
        };
        Toolchain {
            rustc: script("rustc", format!("echo '{}'", sysroot.display())),
            rustup: script(
                "rustup",
                format!(
                    "echo \"$@\" > '{}'\n{install}",
                    dir.join("rustup.args").display()
                ),
            ),
        }
    }

    #[test]
    fn a_present_target_is_left_alone() {
        let _serial = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("sysroot");
        std::fs::create_dir_all(sysroot.join("lib/rustlib").join(TARGET).join("lib")).unwrap();
        let toolchain = fake_toolchain(dir.path(), &sysroot, true);
        assert_eq!(
            ensure_target(dir.path(), &toolchain).unwrap(),
            TargetCheck::Present
        );
        assert!(
            !dir.path().join("rustup.args").exists(),
            "rustup must not run"
        );
    }

    #[test]
    fn a_missing_target_is_added_with_rustup() {
        let _serial = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("sysroot");
        // Another target's library does not count.
        std::fs::create_dir_all(sysroot.join("lib/rustlib/x86_64-unknown-linux-gnu/lib")).unwrap();
        assert!(!target_installed(&sysroot));
        let toolchain = fake_toolchain(dir.path(), &sysroot, true);
        assert_eq!(
            ensure_target(dir.path(), &toolchain).unwrap(),
            TargetCheck::Installed
        );
        let args = std::fs::read_to_string(dir.path().join("rustup.args")).unwrap();
        assert_eq!(args.trim(), format!("target add {TARGET}"));
        assert!(target_installed(&sysroot));
    }

    #[test]
    fn a_failed_install_names_the_command_to_run() {
        let _serial = one_at_a_time();
        let dir = tempfile::tempdir().unwrap();
        let sysroot = dir.path().join("sysroot");
        let toolchain = fake_toolchain(dir.path(), &sysroot, false);
        let err = ensure_target(dir.path(), &toolchain).unwrap_err();
        assert!(matches!(err, BuildError::TargetMissing { .. }), "{err:?}");
        assert!(
            err.to_string().contains("rustup target add wasm32-wasip2"),
            "{err}"
        );

        let without_rustup = Toolchain {
            rustup: dir.path().join("no-such-rustup"),
            ..toolchain
        };
        let err = ensure_target(dir.path(), &without_rustup).unwrap_err();
        assert!(
            err.to_string().contains("rustup target add wasm32-wasip2"),
            "{err}"
        );
    }
}
