//! `secrets`: only names the manifest declared and the workspace granted; values come
//! decrypted from the secret store and are never logged.

use crate::bindings::secrets::{Host, SecretError};
use crate::denial::DenialKind;
use crate::state::HostState;

impl Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        self.meter.host_calls += 1;
        if !self.grant.secrets.contains(&name) {
            self.denials.record(
                DenialKind::SecretDenied,
                format!("secret `{name}` is not declared and granted"),
            );
            return Ok(Err(SecretError::NotGranted(format!(
                "secret `{name}` is not granted to this plugin"
            ))));
        }
        match self.secrets.get(&self.kv_scope.workspace, &name).await {
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
