//! Workspace secrets as the API sees them: names listed, values written and deleted,
//! never read back. The values live in the runtime's store (sealed with AES-256-GCM by
//! `hyyve-secrets`), the one plugins read from when their grant names them.

use std::sync::Arc;

use hyyve_secrets::{SecretError, SecretStore, SecretValue};

use crate::error::ApiError;

/// Largest secret value accepted.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// The secrets of every workspace; each call names one.
#[derive(Clone)]
pub struct Secrets {
    store: Arc<dyn SecretStore>,
}

impl Secrets {
    /// Over the store plugins read.
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Self { store }
    }

    /// Names set in `workspace`, sorted.
    pub async fn names(&self, workspace: &str) -> Result<Vec<String>, ApiError> {
        let workspace = workspace.to_owned();
        self.blocking(move |store| store.names(&workspace)).await
    }

    /// Sets (or replaces) `name`; `true` when it replaced a value.
    pub async fn set(&self, workspace: &str, name: &str, value: String) -> Result<bool, ApiError> {
        hyyve_policy::check_secret_name(name).map_err(ApiError::BadRequest)?;
        if value.is_empty() || value.len() > MAX_SECRET_BYTES {
            return Err(ApiError::BadRequest(format!(
                "value: 1 to {MAX_SECRET_BYTES} bytes"
            )));
        }
        let (workspace, name) = (workspace.to_owned(), name.to_owned());
        let value = SecretValue::new(value);
        self.blocking(move |store| {
            let existed = store.names(&workspace)?.contains(&name);
            store.put(&workspace, &name, &value)?;
            Ok(existed)
        })
        .await
    }

    /// Deletes `name`; 404 when it is not set.
    pub async fn delete(&self, workspace: &str, name: &str) -> Result<(), ApiError> {
        let (workspace, owned) = (workspace.to_owned(), name.to_owned());
        let existed = self
            .blocking(move |store| store.delete(&workspace, &owned))
            .await?;
        match existed {
            true => Ok(()),
            false => Err(ApiError::NotFound(format!("secret `{name}`"))),
        }
    }

    /// Runs a store call off the async threads: the file store writes and fsyncs.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn SecretStore) -> Result<T, SecretError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || call(store.as_ref()))
            .await
            .map_err(|e| ApiError::Internal(format!("secret store task: {e}")))?
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
}
