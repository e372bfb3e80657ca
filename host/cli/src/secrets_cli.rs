//! `hyyve secrets`: the workspace's sealed secrets in local mode (values from stdin,
//! never printed), each change audited.

use std::process::ExitCode;

use clap::Subcommand;
use hyyve_platform::audit::secret_subject;
use hyyve_platform::{AuditSink as _, FileAudit};
use hyyve_policy::{AuditAction, AuditEvent};
use hyyve_secrets::SecretValue;

use crate::local::Local;

/// `hyyve secrets …`.
#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Set a secret; the value is read from stdin.
    Set {
        /// Secret name, e.g. `OPENAI_API_KEY`.
        name: String,
    },
    /// List secret names of the workspace.
    List,
    /// Delete a secret.
    Delete {
        /// Secret name.
        name: String,
    },
}

/// Runs one `hyyve secrets` command.
pub async fn exec(local: &Local, command: SecretsCommand) -> anyhow::Result<ExitCode> {
    let store = local.secret_store()?;
    let audit = FileAudit(local.audit_log()?);
    let ws = &local.workspace;
    match command {
        SecretsCommand::Set { name } => {
            hyyve_policy::check_secret_name(&name).map_err(anyhow::Error::msg)?;
            let mut value = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut value)?;
            let value = value.trim_end_matches(['\n', '\r']).to_owned();
            hyyve_secrets::check_value(&value).map_err(anyhow::Error::msg)?;
            store.put(ws, &name, &SecretValue::new(value)).await?;
            let event = AuditEvent::new(
                &local.actor,
                AuditAction::SecretSet,
                secret_subject(&name),
                serde_json::Value::Null,
            );
            audit.append(ws, event).await?;
        }
        SecretsCommand::List => {
            for name in store.names(ws).await? {
                println!("{name}");
            }
        }
        SecretsCommand::Delete { name } => {
            if !store.delete(ws, &name).await? {
                anyhow::bail!("workspace `{ws}` has no secret `{name}`");
            }
            let event = AuditEvent::new(
                &local.actor,
                AuditAction::SecretDelete,
                secret_subject(&name),
                serde_json::Value::Null,
            );
            audit.append(ws, event).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
