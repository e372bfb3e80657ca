//! `kv`: byte values scoped to one workspace + install, behind the [`KvStore`] trait.

use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::component::{HasData, Linker};

use crate::bindings::kv::{self, Host, KvError as WitKvError};
use crate::denial::DenialKind;
use crate::state::{HostState, InstallScope, Invocation};

/// Why a KV operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The write would push the scope past its byte quota.
    #[error("kv quota of {quota_bytes} bytes exceeded")]
    QuotaExceeded {
        /// The scope's quota.
        quota_bytes: u64,
    },
    /// Key or value larger than the store accepts.
    #[error("{0}")]
    TooLarge(String),
    /// The backing store failed.
    #[error("kv store unavailable: {0}")]
    Unavailable(String),
}

/// A key-value backend. Implementations must keep scopes apart and enforce quotas.
/// Async because the guest calls it while it runs: a database round trip must not block
/// the worker thread that executes other invocations.
#[async_trait::async_trait]
pub trait KvStore: Send + Sync {
    /// The value under `key` in `scope`.
    async fn get(&self, scope: &InstallScope, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Store `value` under `key` in `scope`, keeping the scope within `quota_bytes`
    /// (keys + values; the install's grant). Keys and values are within
    /// [`MAX_KEY_BYTES`] and [`MAX_VALUE_BYTES`] (checked by the host before the call).
    async fn set(
        &self,
        scope: &InstallScope,
        key: &str,
        value: Vec<u8>,
        quota_bytes: u64,
    ) -> Result<(), KvError>;
    /// Remove `key` from `scope`.
    async fn delete(&self, scope: &InstallScope, key: &str) -> Result<(), KvError>;
}

/// The size limits every store shares, checked before a store is asked.
fn check_sizes(key: &str, value: &[u8]) -> Result<(), KvError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::TooLarge(format!(
            "key exceeds {MAX_KEY_BYTES} bytes"
        )));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::TooLarge(format!(
            "value exceeds {MAX_VALUE_BYTES} bytes"
        )));
    }
    Ok(())
}

/// The bytes an entry counts against its scope's quota.
pub fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

/// Largest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Process-local KV; each write is checked against the caller's quota for the scope.
#[derive(Default)]
pub struct InMemoryKv {
    scopes: Mutex<HashMap<InstallScope, Scope>>,
}

#[derive(Default)]
struct Scope {
    used_bytes: u64,
    entries: HashMap<String, Vec<u8>>,
}

impl InMemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn scopes(&self) -> std::sync::MutexGuard<'_, HashMap<InstallScope, Scope>> {
        // A panic while holding the lock cannot leave a scope half-updated (every update
        // is a single insert/remove after the checks), so a poisoned lock is still sound.
        self.scopes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl KvStore for InMemoryKv {
    async fn get(&self, scope: &InstallScope, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .scopes()
            .get(scope)
            .and_then(|s| s.entries.get(key).cloned()))
    }

    async fn set(
        &self,
        scope: &InstallScope,
        key: &str,
        value: Vec<u8>,
        quota_bytes: u64,
    ) -> Result<(), KvError> {
        let mut scopes = self.scopes();
        let s = scopes.entry(scope.clone()).or_default();
        let old = s.entries.get(key).map_or(0, |v| entry_bytes(key, v));
        let used = s.used_bytes - old + entry_bytes(key, &value);
        if used > quota_bytes {
            return Err(KvError::QuotaExceeded { quota_bytes });
        }
        s.used_bytes = used;
        s.entries.insert(key.to_owned(), value);
        Ok(())
    }

    async fn delete(&self, scope: &InstallScope, key: &str) -> Result<(), KvError> {
        if let Some(s) = self.scopes().get_mut(scope)
            && let Some(v) = s.entries.remove(key)
        {
            s.used_bytes -= entry_bytes(key, &v);
        }
        Ok(())
    }
}

impl From<KvError> for WitKvError {
    fn from(e: KvError) -> Self {
        match e {
            KvError::QuotaExceeded { .. } => Self::QuotaExceeded(e.to_string()),
            KvError::TooLarge(m) => Self::TooLarge(m),
            KvError::Unavailable(m) => Self::Unavailable(m),
        }
    }
}

/// The kv capability's view of an invocation: the shared context and the store.
pub(crate) struct Kv<'a> {
    pub(crate) invocation: &'a mut Invocation,
    pub(crate) store: &'a dyn KvStore,
}

/// Links `hyyve:plugin/kv` through [`Kv`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    kv::add_to_linker::<HostState, KvCapability>(linker, |s| Kv {
        invocation: &mut s.invocation,
        store: s.kv.as_ref(),
    })
}

struct KvCapability;

impl HasData for KvCapability {
    type Data<'a> = Kv<'a>;
}

impl Kv<'_> {
    /// KV needs a grant; without one every operation is refused (and recorded).
    fn granted(&mut self) -> Result<(), WitKvError> {
        self.invocation.host_call();
        if self.invocation.grant.kv_bytes > 0 {
            return Ok(());
        }
        self.invocation.denials.record(
            DenialKind::KvDenied,
            "KV storage is not granted to this plugin".into(),
        );
        Err(WitKvError::Denied(
            "KV storage is not granted to this plugin".into(),
        ))
    }
}

impl Host for Kv<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, WitKvError>> {
        if let Err(e) = self.granted() {
            return Ok(Err(e));
        }
        // No stored key is longer: the store is not asked about one.
        if key.len() > MAX_KEY_BYTES {
            return Ok(Ok(None));
        }
        let scope = &self.invocation.scope;
        Ok(self.store.get(scope, &key).await.map_err(Into::into))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), WitKvError>> {
        if let Err(e) = self.granted() {
            return Ok(Err(e));
        }
        if let Err(e) = check_sizes(&key, &value) {
            return Ok(Err(e.into()));
        }
        let quota = self.invocation.grant.kv_bytes;
        let result = self
            .store
            .set(&self.invocation.scope, &key, value, quota)
            .await;
        if let Err(KvError::QuotaExceeded { quota_bytes }) = &result {
            self.invocation.denials.record(
                DenialKind::KvQuota,
                format!("write of `{key}` would pass the KV quota of {quota_bytes} bytes"),
            );
        }
        Ok(result.map_err(Into::into))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), WitKvError>> {
        if let Err(e) = self.granted() {
            return Ok(Err(e));
        }
        if key.len() > MAX_KEY_BYTES {
            return Ok(Ok(()));
        }
        let scope = &self.invocation.scope;
        Ok(self.store.delete(scope, &key).await.map_err(Into::into))
    }
}

#[cfg(test)]
mod tests {
    use hyyve_policy::Grant;

    use super::*;

    fn granted(kv_bytes: u64) -> Invocation {
        Invocation::for_test(Grant {
            kv_bytes,
            ..Grant::default()
        })
    }

    #[tokio::test]
    async fn a_granted_install_reads_back_what_it_wrote_within_its_quota() {
        let store = InMemoryKv::new();
        let mut invocation = granted(16);
        let mut kv = Kv {
            invocation: &mut invocation,
            store: &store,
        };
        assert!(kv.set("k".into(), b"value".to_vec()).await.unwrap().is_ok());
        let read = kv.get("k".into()).await.unwrap();
        assert!(matches!(&read, Ok(Some(v)) if v == b"value"), "{read:?}");
        // 1 + 5 bytes used; 1 + 11 more would pass 16.
        let over = kv.set("j".into(), vec![0; 11]).await.unwrap();
        assert!(
            matches!(over, Err(WitKvError::QuotaExceeded(_))),
            "{over:?}"
        );
        assert!(kv.delete("k".into()).await.unwrap().is_ok());
        assert!(matches!(kv.get("k".into()).await.unwrap(), Ok(None)));
        assert_eq!(invocation.meter.host_calls, 5);
        assert_eq!(invocation.denied(), [DenialKind::KvQuota]);
    }

    #[tokio::test]
    async fn without_a_grant_every_operation_is_refused_and_recorded() {
        let store = InMemoryKv::new();
        let mut invocation = granted(0);
        let mut kv = Kv {
            invocation: &mut invocation,
            store: &store,
        };
        let refused = kv.set("k".into(), b"v".to_vec()).await.unwrap();
        assert!(matches!(refused, Err(WitKvError::Denied(_))), "{refused:?}");
        assert!(matches!(
            kv.get("k".into()).await.unwrap(),
            Err(WitKvError::Denied(_))
        ));
        assert_eq!(
            invocation.denied(),
            [DenialKind::KvDenied, DenialKind::KvDenied]
        );
        // Nothing reached the store.
        let scope = Invocation::for_test(Grant::default()).scope;
        assert_eq!(store.get(&scope, "k").await, Ok(None));
    }
}
