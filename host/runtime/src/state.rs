//! The data of one invocation's store. Each capability keeps its own field and is reached
//! through its own view, so no module touches another's state.

use std::sync::Arc;

use hyyve_policy::Grant;
use hyyve_secrets::SecretStore;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::denial::DenialLog;
use crate::imports::http::HttpPolicy;
use crate::imports::kv::{KvScope, KvStore};
use crate::imports::log::{LogBudget, WorkspaceLogRate};
use crate::imports::scratch::ScratchQuota;
use crate::invoke::InvocationIds;
use crate::limits::MemoryLimiter;
use crate::metering::MeteringRecord;

/// Everything a store holds for one invocation; dropped with the store.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) http_policy: HttpPolicy,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) meter: MeteringRecord,
    pub(crate) ids: InvocationIds,
    /// What this install may do.
    pub(crate) grant: Arc<Grant>,
    /// Refusals so far, shared with HTTP futures and file streams.
    pub(crate) denials: DenialLog,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) kv_scope: KvScope,
    pub(crate) secrets: Arc<dyn SecretStore>,
    /// The scratch directory's quota, when one is granted.
    pub(crate) scratch: Option<Arc<ScratchQuota>>,
    /// The guest's stderr (panic messages land here), capped, for trap reports.
    pub(crate) stderr: wasmtime_wasi::p2::pipe::MemoryOutputPipe,
    /// What the invocation may still log.
    pub(crate) logs: LogBudget,
    /// The log rate of every workspace, shared by all invocations.
    pub(crate) log_rate: Arc<WorkspaceLogRate>,
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
