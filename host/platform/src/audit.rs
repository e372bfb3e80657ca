//! Auditing: one [`AuditAction`] vocabulary, one way of naming subjects, one way of
//! recording a capability denial, in both modes.
//!
//! Subjects are relative to the workspace (`install/<plugin>`, `run/<run>/node/<node>`,
//! `secret/<name>`): the server keeps one hash chain per workspace. Local mode keeps one
//! file for every workspace, so [`FileAudit`] prefixes each subject with
//! `workspace/<name>/`.

use std::sync::Arc;

use hyyve_policy::{AuditAction, AuditEvent, AuditLog};
use hyyve_runtime::Denial;

use crate::StoreError;

/// Where audit entries go: an append-only log per workspace.
#[async_trait::async_trait]
pub trait AuditSink: Send + Sync {
    /// Appends `event` to the log of the workspace `workspace` (its id; in local mode
    /// its name).
    async fn append(&self, workspace: &str, event: AuditEvent) -> Result<(), StoreError>;
}

/// Local mode's audit log: the hash-chained file `<data>/audit.jsonl`.
#[derive(Clone)]
pub struct FileAudit(pub Arc<AuditLog>);

#[async_trait::async_trait]
impl AuditSink for FileAudit {
    async fn append(&self, workspace: &str, mut event: AuditEvent) -> Result<(), StoreError> {
        if !event.subject.starts_with("organization/") && !event.subject.starts_with("account/") {
            event.subject = format!("workspace/{workspace}/{}", event.subject);
        }
        self.0
            .append(event)
            .map(drop)
            .map_err(|e| StoreError::new("audit log", e))
    }
}

/// The subject of an install's entries.
pub fn install_subject(plugin: &str) -> String {
    format!("install/{plugin}")
}

/// The subject of what happened to a node of a run.
pub fn node_subject(run_id: &str, node_id: &str) -> String {
    format!("run/{run_id}/node/{node_id}")
}

/// The subject of a workspace secret's entries (never its value).
pub fn secret_subject(name: &str) -> String {
    format!("secret/{name}")
}

/// The subject of a vetting request of an organization.
pub fn vetting_subject(organization: &str, request: i64) -> String {
    format!("organization/{organization}/vetting/{request}")
}

/// The entry for one denial: `plugin` asked for what its grant does not allow, while
/// running as node `node_id` of run `run_id`, in attempt `attempt`.
pub fn denial_event(
    plugin: &str,
    run_id: &str,
    node_id: &str,
    attempt: i64,
    denial: &Denial,
) -> AuditEvent {
    AuditEvent::new(
        AuditAction::denial_actor(plugin),
        AuditAction::CapabilityDenied,
        node_subject(run_id, node_id),
        serde_json::json!({
            "capability": denial.kind.capability(),
            "kind": denial.kind.as_str(),
            "detail": denial.detail,
            "attempt": attempt,
        }),
    )
}

/// One node attempt's denials, as the entries to append.
pub struct NodeDenials<'a> {
    /// The plugin reference the node runs.
    pub plugin: &'a str,
    /// The run.
    pub run_id: &'a str,
    /// The node.
    pub node_id: &'a str,
    /// Which attempt (1-based across the run's retries and resumes).
    pub attempt: i64,
    /// What was refused.
    pub denials: &'a [Denial],
}

/// Appends one `capability.denied` entry per denial to `workspace`'s log.
pub async fn audit_denials(
    sink: &dyn AuditSink,
    workspace: &str,
    node: NodeDenials<'_>,
) -> Result<(), StoreError> {
    for denial in node.denials {
        let event = denial_event(node.plugin, node.run_id, node.node_id, node.attempt, denial);
        sink.append(workspace, event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyyve_runtime::DenialKind;

    #[tokio::test]
    async fn the_file_log_names_the_workspace_and_keeps_organization_subjects() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(AuditLog::open(dir.path().join("audit.jsonl")).unwrap());
        let sink = FileAudit(log.clone());
        let denial = Denial {
            kind: DenialKind::SecretDenied,
            detail: "secret `X` is not declared and granted".into(),
        };
        audit_denials(
            &sink,
            "default",
            NodeDenials {
                plugin: "acme:probe",
                run_id: "run-1",
                node_id: "n",
                attempt: 2,
                denials: std::slice::from_ref(&denial),
            },
        )
        .await
        .unwrap();
        let request = AuditEvent::new(
            "ada",
            AuditAction::VettingRequest,
            vetting_subject("acme", 7),
            serde_json::json!({}),
        );
        sink.append("default", request).await.unwrap();
        let entries = log.entries().unwrap();
        assert_eq!(entries.len(), 2);
        let denied = &entries[0].event;
        assert_eq!(denied.actor, "plugin:acme:probe");
        assert_eq!(denied.action, "capability.denied");
        assert_eq!(denied.subject, "workspace/default/run/run-1/node/n");
        assert_eq!(denied.detail["capability"], "secrets");
        assert_eq!(denied.detail["attempt"], 2);
        assert_eq!(entries[1].event.subject, "organization/acme/vetting/7");
        assert_eq!(log.verify().unwrap(), 2);
    }
}
