//! `secrets`: nothing is granted until the capability policy exists.

use crate::bindings::secrets::{Host, SecretError};
use crate::state::HostState;

impl Host for HostState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, SecretError>> {
        self.meter.host_calls += 1;
        tracing::info!(
            run = self.ids.run_id.as_str(),
            node = self.ids.node_id.as_str(),
            secret = name.as_str(),
            "secret read denied: not granted"
        );
        Ok(Err(SecretError::NotGranted(format!(
            "secret `{name}` is not granted to this plugin"
        ))))
    }
}
