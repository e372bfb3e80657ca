//! The data of one invocation's store. Each host capability (`imports::*`) keeps its own
//! field and is linked with its own view ([`wasmtime::component::HasData`]) that borrows
//! only that field and the shared [`Invocation`], so no capability touches another's
//! state, and each can be called in a unit test without a guest.

use std::sync::Arc;

use hyyve_policy::Grant;
use hyyve_secrets::SecretStore;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::denial::DenialLog;
use crate::imports::http::HttpPolicy;
use crate::imports::kv::KvStore;
use crate::imports::log::LogState;
use crate::imports::models::ModelsState;
use crate::imports::progress::ProgressState;
use crate::imports::scratch::ScratchQuota;
use crate::invoke::InvocationIds;
use crate::limits::MemoryLimiter;
use crate::metering::MeteringRecord;

/// Whose data an invocation touches: one install (package in a workspace). KV entries,
/// the scratch directory and secrets are kept apart by it; two scopes never see each
/// other's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct InstallScope {
    /// The workspace the invocation runs in.
    pub workspace: String,
    /// The install (package in that workspace) the plugin runs as.
    pub install: String,
}

/// What every capability of one invocation shares: who runs, as which install, under
/// which grant, what was refused so far and what was metered.
pub(crate) struct Invocation {
    pub(crate) ids: InvocationIds,
    pub(crate) scope: InstallScope,
    /// What this install may do.
    pub(crate) grant: Arc<Grant>,
    /// Refusals so far, shared with HTTP futures and file streams.
    pub(crate) denials: DenialLog,
    pub(crate) meter: MeteringRecord,
}

impl Invocation {
    /// A call into the host: counted on the metering record.
    pub(crate) fn host_call(&mut self) {
        self.meter.host_calls += 1;
    }
}

/// Everything a store holds for one invocation; dropped with the store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) invocation: Invocation,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    /// The scratch directory's quota, when one is granted.
    pub(crate) scratch: Option<Arc<ScratchQuota>>,
    pub(crate) log: LogState,
    pub(crate) models: ModelsState,
    pub(crate) progress: ProgressState,
    /// The guest's stderr (panic messages land here), capped, for trap reports.
    pub(crate) stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

#[cfg(test)]
impl Invocation {
    /// An invocation of `acme:probe` in workspace `ws`, under `grant`, for unit tests of
    /// a capability.
    pub(crate) fn for_test(grant: Grant) -> Self {
        Self {
            ids: InvocationIds {
                run_id: "run-1".into(),
                node_id: "n".into(),
                ..InvocationIds::default()
            },
            scope: InstallScope {
                workspace: "ws".into(),
                install: "acme:probe".into(),
            },
            grant: Arc::new(grant),
            denials: DenialLog::default(),
            meter: MeteringRecord::default(),
        }
    }

    /// The kinds refused so far.
    pub(crate) fn denied(&self) -> Vec<crate::DenialKind> {
        self.denials.take().into_iter().map(|d| d.kind).collect()
    }
}
