//! A local-mode workspace wired for model calls against the loopback fake: its data
//! directory (an organization policy granting loopback), the OpenAI-compatible and
//! Anthropic providers beside it as component files with manifests granting the fake,
//! the keys as workspace secrets, and the routes `hyyve run` would hand its nodes. The
//! model-call tests and the model benchmark share it.

use std::path::Path;
use std::sync::Arc;

use hyyve::install::LocalInstalls;
use hyyve::models_cli::LocalProviders;
use hyyve_platform::models::{AliasStore, AliasTarget, FileAliases, ModelAlias, Routes};
use hyyve_platform::{Acting, FileAudit};
use hyyve_policy::{AuditLog, Manifest};
use hyyve_runtime::Runtime;
use hyyve_secrets::{SecretStore, SecretValue};
use hyyve_workflow::Installed;
use serde_json::json;

use crate::fake_llm::{ANTHROPIC_KEY, OPENAI_KEY, fake_llm};

/// A provider manifest granting the fake's loopback address and `secret`.
pub fn provider_manifest(id: &str, secret: &str) -> String {
    format!(
        "[plugin]\nid = \"{id}\"\nversion = \"0.1.0\"\nkind = \"provider\"\npublisher = \"hyyve\"\n\
         description = \"test provider\"\n\n[capabilities]\nsecrets = [\"{secret}\"]\n\n\
         [capabilities.http]\nprivate_networks = [\"127.0.0.0/8\"]\n\n\
         [[capabilities.http.allow]]\nurl = \"http://127.0.0.1:{}\"\nmethods = [\"POST\"]\n",
        fake_llm().port
    )
}

/// One workspace's local-mode stores, with `openai.wasm` and `anthropic.wasm` beside.
pub struct ModelWorkspace {
    /// The data directory (and the folder the providers are in).
    pub dir: tempfile::TempDir,
    /// The workspace.
    pub name: String,
    /// Its installs.
    pub installs: Arc<LocalInstalls>,
    /// Its aliases.
    pub aliases: Arc<FileAliases>,
}

impl ModelWorkspace {
    /// A fresh workspace `name` (secrets go to the shared test secret store).
    pub async fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path();
        std::fs::create_dir_all(data.join("policy/grants")).expect("policy dir");
        std::fs::write(
            data.join("policy/org.toml"),
            "[http]\nprivate_networks = [\"127.0.0.0/8\"]\n",
        )
        .expect("org policy");
        for (package, file, id, secret) in [
            (
                "hyyve-plugin-openai",
                "openai",
                "test:openai",
                "OPENAI_API_KEY",
            ),
            (
                "hyyve-plugin-anthropic",
                "anthropic",
                "test:anthropic",
                "ANTHROPIC_API_KEY",
            ),
        ] {
            std::fs::copy(
                crate::guest_path(package),
                data.join(format!("{file}.wasm")),
            )
            .expect("provider component");
            std::fs::write(
                data.join(format!("{file}.hyyve.toml")),
                provider_manifest(id, secret),
            )
            .expect("provider manifest");
        }
        let secrets = crate::secrets();
        for (key, value) in [
            ("OPENAI_API_KEY", OPENAI_KEY),
            ("ANTHROPIC_API_KEY", ANTHROPIC_KEY),
        ] {
            secrets
                .put(name, key, &SecretValue::new(value.into()))
                .await
                .expect("secret");
        }
        Self {
            installs: Arc::new(open_installs(data, name).await),
            aliases: Arc::new(FileAliases::new(data)),
            name: name.to_owned(),
            dir,
        }
    }

    /// Binds `alias` to `targets` (`(provider file stem, model)`), each configured with
    /// the fake's URL.
    pub async fn bind(&self, alias: &str, targets: &[(&str, &str)]) {
        let targets = targets
            .iter()
            .map(|(file, model)| AliasTarget {
                provider: format!("{file}.wasm"),
                model: (*model).to_owned(),
                config: match *file {
                    "openai" => json!({ "baseUrl": format!("{}/v1", fake_llm().base()) }),
                    _ => json!({ "baseUrl": fake_llm().base() }),
                },
            })
            .collect();
        let alias = ModelAlias {
            name: alias.to_owned(),
            targets,
        };
        self.aliases.put(&self.name, &alias).await.expect("alias");
    }

    /// The routes `hyyve run` hands nodes in this workspace.
    pub fn routes(&self, runtime: Arc<Runtime>) -> Routes {
        Routes {
            aliases: self.aliases.clone(),
            providers: Arc::new(LocalProviders::new(
                runtime,
                self.installs.clone(),
                self.dir.path().to_owned(),
            )),
            budget: None,
        }
    }

    /// `hyyve:llm` installed here under its first-party manifest.
    pub async fn llm(&self) -> Installed {
        let manifest_text =
            std::fs::read_to_string(hyyve::build::repo_root().join("plugins/llm/hyyve.toml"))
                .expect("llm manifest");
        let manifest = Manifest::parse(&manifest_text).expect("llm manifest parses");
        self.installs
            .ensure(
                None,
                "hyyve:llm",
                crate::plugin("hyyve-plugin-llm").await,
                &manifest,
                &manifest_text,
                None,
            )
            .await
            .expect("llm installs")
    }
}

async fn open_installs(data: &Path, workspace: &str) -> LocalInstalls {
    let log = AuditLog::open(data.join("audit.jsonl")).expect("audit log");
    let acting = Acting {
        org_id: "local".into(),
        org_name: String::new(),
        workspace_id: workspace.into(),
        workspace_name: workspace.into(),
        actor: "tester".into(),
    };
    LocalInstalls::open(data, acting, FileAudit(Arc::new(log)))
        .await
        .expect("local installs")
}
