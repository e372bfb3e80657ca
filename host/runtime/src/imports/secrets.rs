//! `secrets`: only names the manifest declared and the workspace granted; values come
//! decrypted from the secret store and are never logged.

use hyyve_secrets::SecretStore;
use wasmtime::component::{HasData, Linker};

use crate::bindings::secrets::{self, Host, SecretError};
use crate::denial::DenialKind;
use crate::state::{HostState, Invocation};

/// The secrets capability's view of an invocation: the shared context and the store.
pub(crate) struct Secrets<'a> {
    pub(crate) invocation: &'a mut Invocation,
    pub(crate) store: &'a dyn SecretStore,
}

/// Links `hyyve:plugin/secrets` through [`Secrets`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    secrets::add_to_linker::<HostState, SecretsCapability>(linker, |s| Secrets {
        invocation: &mut s.invocation,
        store: s.secrets.as_ref(),
    })
}

struct SecretsCapability;

impl HasData for SecretsCapability {
    type Data<'a> = Secrets<'a>;
}

impl Host for Secrets<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        self.invocation.host_call();
        if !self.invocation.grant.secrets.contains(&name) {
            self.invocation.denials.record(
                DenialKind::SecretDenied,
                format!("secret `{name}` is not declared and granted"),
            );
            return Ok(Err(SecretError::NotGranted(format!(
                "secret `{name}` is not granted to this plugin"
            ))));
        }
        let workspace = &self.invocation.scope.workspace;
        match self.store.get(workspace, &name).await {
            Ok(Some(value)) => Ok(Ok(value.expose().to_owned())),
            Ok(None) => Ok(Err(SecretError::NotSet(format!(
                "secret `{name}` is granted but has no value in this workspace"
            )))),
            Err(e) => {
                // The store's errors name workspace and secret, never the value.
                tracing::error!(error = %e, "secret store failed");
                Ok(Err(SecretError::NotSet(format!(
                    "secret `{name}` could not be read"
                ))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use hyyve_policy::Grant;
    use hyyve_secrets::{MemorySecretStore, SecretValue};

    use super::*;

    async fn store() -> MemorySecretStore {
        let store = MemorySecretStore::default();
        for (workspace, value) in [("ws", "mine"), ("other", "theirs")] {
            store
                .put(workspace, "API_KEY", &SecretValue::new(value.into()))
                .await
                .unwrap();
        }
        store
    }

    #[tokio::test]
    async fn a_granted_secret_is_its_own_workspaces_value() {
        let store = store().await;
        let mut invocation = Invocation::for_test(Grant {
            secrets: ["API_KEY".to_string(), "UNSET".to_string()].into(),
            ..Grant::default()
        });
        let mut secrets = Secrets {
            invocation: &mut invocation,
            store: &store,
        };
        let value = secrets.get("API_KEY".into()).await.unwrap();
        assert!(matches!(&value, Ok(v) if v == "mine"), "{value:?}");
        let unset = secrets.get("UNSET".into()).await.unwrap();
        assert!(matches!(unset, Err(SecretError::NotSet(_))), "{unset:?}");
        assert!(invocation.denied().is_empty());
    }

    #[tokio::test]
    async fn an_ungranted_secret_is_refused_recorded_and_not_read() {
        let store = store().await;
        let mut invocation = Invocation::for_test(Grant::default());
        let mut secrets = Secrets {
            invocation: &mut invocation,
            store: &store,
        };
        let refused = secrets.get("API_KEY".into()).await.unwrap();
        assert!(
            matches!(refused, Err(SecretError::NotGranted(_))),
            "{refused:?}"
        );
        assert_eq!(invocation.denied(), [DenialKind::SecretDenied]);
        assert_eq!(invocation.meter.host_calls, 1);
    }
}
