//! The registry commands of the `hyyve` binary end to end, on embedded defaults (SQLite
//! under the data dir, local blobs): keys → package → sign → publish → search → install →
//! run → yank, and an organization's vetting queue in front of installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `hyyve` on `data` as `actor` in `workspace`. `DATABASE_URL` (set by CI for the
/// PostgreSQL tests) is removed so the registry is the data dir's own SQLite file.
fn hyyve(data: &Path, workspace: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyyve"))
        .current_dir(repo())
        .env_remove("DATABASE_URL")
        .env_remove("HYYVE_DATABASE_URL")
        .env_remove("HYYVE_BLOB_URL")
        .args(["--data-dir", &data.display().to_string()])
        .args(["--workspace", workspace, "--actor", "tester"])
        .args(args)
        .output()
        .expect("hyyve runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs and expects success; returns stdout.
fn ok(data: &Path, workspace: &str, args: &[&str]) -> String {
    let out = hyyve(data, workspace, args);
    assert!(
        out.status.success(),
        "hyyve {args:?} failed\nstdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs and expects failure with `code` in stderr; returns the exit status.
fn refused(data: &Path, workspace: &str, args: &[&str], code: &str) -> Option<i32> {
    let out = hyyve(data, workspace, args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "hyyve {args:?} succeeded");
    assert!(stderr.contains(code), "hyyve {args:?}: {stderr}");
    out.status.code()
}

/// The text plugin, built from source, republished as `acme:text` at `version`.
fn plugin_dir(root: &Path, component: &str, version: &str, extra: &str) -> PathBuf {
    let dir = root.join(format!("acme-text-{version}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hyyve.toml"),
        format!(
            "[plugin]\nid = \"acme:text\"\nversion = \"{version}\"\nkind = \"node\"\n\
             publisher = \"acme\"\ndescription = \"Acme's text templating\"\n\
             categories = [\"text\"]\n{extra}\n\
             [listing]\ntitle = \"Acme Text\"\nreadme = \"README.md\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("README.md"), "# Acme Text\nTemplates.\n").unwrap();
    std::fs::write(dir.join("component.path"), component).unwrap();
    dir
}

fn publish(data: &Path, dir: &Path, key: &Path) -> String {
    let component = std::fs::read_to_string(dir.join("component.path")).unwrap();
    let package = dir.join("out.hyyvepkg");
    let package = package.to_str().unwrap();
    ok(
        data,
        "local",
        &[
            "plugin",
            "package",
            dir.to_str().unwrap(),
            "--component",
            &component,
            "-o",
            package,
        ],
    );
    ok(
        data,
        "local",
        &["plugin", "sign", package, "--key", key.to_str().unwrap()],
    );
    ok(data, "local", &["plugin", "publish", package])
}

fn build_text_plugin(data: &Path) -> String {
    let out = ok(
        data,
        "local",
        &[
            "plugin",
            "build",
            "plugins/text",
            "--target-dir",
            "target/guests",
        ],
    );
    out.trim().to_owned()
}

fn workflow(root: &Path) -> PathBuf {
    let path = root.join("greet.json");
    std::fs::write(
        &path,
        r#"{ "name": "Greet", "nodes": [
             { "id": "hello", "plugin": "acme:text", "type": "template",
               "config": { "template": "Hello {{ who }}!" },
               "inputs": { "data": { "who": "Ada" } } } ],
           "edges": [] }"#,
    )
    .unwrap();
    path
}

/// Makes a key pair per account under `keys` and registers each (`add-publisher` or
/// `add-organization`).
fn accounts(data: &Path, keys: &Path, accounts: &[(&str, &str)]) {
    let dir = keys.to_str().unwrap();
    for (owner, kind) in accounts {
        ok(data, "local", &["keys", "new", owner, "--dir", dir]);
        let public = format!("{dir}/{owner}.pub");
        ok(data, "local", &["registry", kind, &public]);
    }
}

#[test]
fn publish_search_install_run_yank() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let keys = root.path().join("keys");
    accounts(
        &data,
        &keys,
        &[("acme", "add-publisher"), ("mallory", "add-publisher")],
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(keys.join("acme.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "secret key readable by others");

    let component = build_text_plugin(&data);
    let v1 = plugin_dir(root.path(), &component, "1.0.0", "");
    let published = publish(&data, &v1, &keys.join("acme.key"));
    assert!(published.contains("acme:text@1.0.0"), "{published}");

    // Signed by another publisher's key: refused with its code, nothing listed.
    let v2 = plugin_dir(root.path(), &component, "1.1.0", "");
    let package = v2.join("out.hyyvepkg");
    ok(
        &data,
        "local",
        &[
            "plugin",
            "package",
            v2.to_str().unwrap(),
            "--component",
            &component,
            "-o",
            package.to_str().unwrap(),
        ],
    );
    refused(
        &data,
        "local",
        &[
            "plugin",
            "sign",
            package.to_str().unwrap(),
            "--key",
            keys.join("mallory.key").to_str().unwrap(),
        ],
        "the package's publisher is `acme`",
    );
    refused(
        &data,
        "local",
        &["plugin", "publish", package.to_str().unwrap()],
        "[unsigned]",
    );

    let search = ok(
        &data,
        "local",
        &["registry", "search", "templating", "--json"],
    );
    let search: serde_json::Value = serde_json::from_str(&search).unwrap();
    assert_eq!(search["total"], 1, "{search}");
    assert_eq!(search["listings"][0]["id"], "acme:text");
    assert_eq!(search["listings"][0]["title"], "Acme Text");
    let show = ok(&data, "local", &["registry", "show", "acme:text"]);
    assert!(show.contains("1.0.0 sha256:"), "{show}");

    let installed = ok(&data, "local", &["install", "acme:text@^1"]);
    assert!(installed.contains("pinned to sha256:"), "{installed}");
    let flow = workflow(root.path());
    let run = ok(&data, "local", &["run", flow.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&run).unwrap();
    assert_eq!(report["status"], "succeeded", "{report}");
    assert_eq!(report["nodes"][0]["outputs"]["text"], "Hello Ada!");

    // The body of a yank over HTTP, signed by the publisher's key over exactly this
    // version and reason.
    let body = ok(
        &data,
        "local",
        &[
            "keys",
            "sign-yank",
            "--key",
            keys.join("acme.key").to_str().unwrap(),
            "acme:text@1.0.0",
            "--reason",
            "bad",
        ],
    );
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let public = hyyve_registry::signing::PublicKeyFile::load(&keys.join("acme.pub")).unwrap();
    let public = hyyve_registry::signing::PublicKey::from_base64(&public.public_key).unwrap();
    assert_eq!(body["keyId"], public.id());
    assert_eq!(body["reason"], "bad");
    let version = semver::Version::new(1, 0, 0);
    let signature = body["signature"].as_str().unwrap();
    for (reason, verifies) in [("bad", true), ("other", false)] {
        let message = hyyve_registry::signing::yank_message("acme:text", &version, reason);
        assert_eq!(public.verifies(&message, signature), verifies, "{reason}");
    }

    ok(
        &data,
        "local",
        &["registry", "yank", "acme:text@1.0.0", "--reason", "bad"],
    );
    refused(
        &data,
        "other",
        &["install", "acme:text@^1"],
        "[version_yanked]",
    );
    // The pinned install keeps working.
    let run = ok(
        &data,
        "local",
        &["run", flow.to_str().unwrap(), "--json", "--no-cache"],
    );
    assert!(run.contains("Hello Ada!"), "{run}");
    refused(
        &data,
        "local",
        &["install", "acme:text@^2"],
        "[no_matching_version]",
    );

    let audit = ok(&data, "local", &["audit", "--json"]);
    for action in ["registry.publisher_add", "package.publish", "package.yank"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}

#[test]
fn an_organization_reviews_installs_and_upgrades_asking_for_more() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let keys = root.path().join("keys");
    accounts(
        &data,
        &keys,
        &[("acme", "add-publisher"), ("bigcorp", "add-organization")],
    );
    std::fs::create_dir_all(data.join("policy")).unwrap();
    std::fs::write(
        data.join("policy/org.toml"),
        "name = \"bigcorp\"\nrequire_vetting = true\nkv = true\n",
    )
    .unwrap();

    let component = build_text_plugin(&data);
    publish(
        &data,
        &plugin_dir(root.path(), &component, "1.0.0", ""),
        &keys.join("acme.key"),
    );
    let out = hyyve(&data, "team", &["install", "acme:text@1.0.0"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("waits for review by organization bigcorp"));
    let flow = workflow(root.path());
    refused(
        &data,
        "team",
        &["run", flow.to_str().unwrap()],
        "not installed in this workspace",
    );

    let queue: serde_json::Value =
        serde_json::from_str(&ok(&data, "local", &["vet", "list", "--json"])).unwrap();
    assert_eq!(queue.as_array().unwrap().len(), 1, "{queue}");
    let id = queue[0]["id"].as_i64().unwrap().to_string();
    ok(
        &data,
        "local",
        &[
            "vet",
            "approve",
            &id,
            "--reason",
            "reviewed",
            "--key",
            keys.join("bigcorp.key").to_str().unwrap(),
        ],
    );
    ok(&data, "team", &["install", "acme:text@1.0.0"]);
    let run = ok(&data, "team", &["run", flow.to_str().unwrap(), "--json"]);
    assert!(run.contains("Hello Ada!"), "{run}");

    // 1.1.0 asks for KV storage: a new review, shown as a diff, and rejected.
    publish(
        &data,
        &plugin_dir(
            root.path(),
            &component,
            "1.1.0",
            "[capabilities]\nkv_bytes = 4096\n",
        ),
        &keys.join("acme.key"),
    );
    let out = hyyve(&data, "team", &["install", "acme:text@^1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let listing = ok(&data, "local", &["vet", "list"]);
    assert!(listing.contains("acme:text@1.1.0"), "{listing}");
    assert!(listing.contains("since approved 1.0.0"), "{listing}");
    assert!(listing.contains("+ kv_bytes"), "{listing}");
    let queue: serde_json::Value =
        serde_json::from_str(&ok(&data, "local", &["vet", "list", "--json"])).unwrap();
    let id = queue[0]["id"].as_i64().unwrap().to_string();
    ok(
        &data,
        "local",
        &["vet", "reject", &id, "--reason", "no storage for this one"],
    );
    let decided: serde_json::Value =
        serde_json::from_str(&ok(&data, "local", &["vet", "list", "--all", "--json"])).unwrap();
    let rejected = decided
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_i64().unwrap().to_string() == id)
        .expect("the rejected request is listed");
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    assert_eq!(rejected["reason"], "no storage for this one");
    // Not installed: asking again only queues a new review.
    let out = hyyve(&data, "team", &["install", "acme:text@^1"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let audit = ok(&data, "local", &["audit", "--json"]);
    for action in ["vetting.request", "vetting.approve", "vetting.reject"] {
        assert!(audit.contains(action), "{action} not audited: {audit}");
    }
}
