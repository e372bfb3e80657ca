//! One invocation: a fresh store and instance, limits applied, result classified,
//! metering recorded. Nothing survives the call.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hyyve_policy::Grant;

use serde_json::Value;
use wasmtime::component::{ResourceTable, ResourceTableError};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::{FieldMapError, WasiHttpCtx};

use crate::bindings::{NodePluginPre, node_export::PluginError, types as wit};
use crate::denial::DenialLog;
use crate::engine::Runtime;
use crate::error::{HostResourceExceeded, InvocationError};
use crate::imports::http::{HttpPolicy, HttpUsage};
use crate::imports::log::{LogBudget, LogState};
use crate::imports::models::{ModelAccess, ModelRoutes, ModelsState};
use crate::imports::progress::{ProgressSink, ProgressState};
use crate::imports::scratch::{SCRATCH_GUEST_PATH, ScratchQuota};
use crate::limits::{FIELD_SIZE_LIMIT, Limits, MemoryLimiter, RANDOM_BYTES_PER_CALL};
use crate::metering::MeteringRecord;
use crate::plugin::NodePlugin;
use crate::state::{HostState, InstallScope, Invocation};

/// Which execution an invocation belongs to (logs, idempotency of metering).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InvocationIds {
    /// The workflow run.
    pub run_id: String,
    /// The node instance in the workflow.
    pub node_id: String,
    /// 1 for the first try.
    pub attempt: u32,
}

/// Everything needed to execute one node.
pub struct InvocationRequest<'a> {
    /// The node type to run.
    pub node_type: &'a str,
    /// Its configuration object.
    pub config: &'a Value,
    /// Its inputs, by port name.
    pub inputs: &'a Value,
    /// Ids for logs and metering.
    pub ids: InvocationIds,
    /// Whose KV namespace, secrets and scratch directory the plugin sees.
    pub scope: InstallScope,
    /// What the install may do (HTTP, KV, secrets, scratch); checked on every use.
    pub grant: Arc<Grant>,
    /// What the invocation may consume (usually [`Limits::granted`] of the grant).
    pub limits: Limits,
    /// The workspace's model aliases, for a node granted `models`; `None`: every model
    /// call is refused.
    pub models: Option<Arc<dyn ModelRoutes>>,
    /// Where the node's `progress` deltas (and those of the providers it calls) go.
    pub progress: Option<Arc<dyn ProgressSink>>,
}

/// The result of one invocation and what it consumed.
#[derive(Debug)]
pub struct InvocationOutcome {
    /// Output object by port name, or why there is none.
    pub result: Result<Value, InvocationError>,
    /// What was consumed, also on failure.
    pub metering: MeteringRecord,
}

/// The epoch callback interrupts running guest code at the deadline; this backstop cuts
/// an invocation blocked inside a host call shortly after it (its fuel is then as of the
/// last epoch tick).
const HOST_CALL_GRACE: Duration = Duration::from_millis(20);

/// Fuel units between yields to tokio: about half a millisecond of tight guest code here.
/// A deadline-interrupted invocation's fuel is exact up to the last yield.
const FUEL_YIELD_INTERVAL: u64 = 10_000_000;

/// Panic messages are short; more stderr than this is dropped.
const STDERR_CAPTURE_BYTES: usize = 4096;

/// Where a call failed: instantiation failures are host-side, call failures guest-side.
pub(crate) enum Failure {
    Instantiate(wasmtime::Error),
    Call(wasmtime::Error),
}

/// What a fresh instance is set up with: who it runs as, under which grant and limits,
/// and what it may reach beyond the install's own capabilities.
pub(crate) struct StoreSetup {
    pub(crate) limits: Limits,
    pub(crate) ids: InvocationIds,
    pub(crate) scope: InstallScope,
    pub(crate) grant: Arc<Grant>,
    /// Model calls (`models`): the node's route to its workspace's aliases.
    pub(crate) models: Option<ModelAccess>,
    /// Where `progress` deltas go.
    pub(crate) progress: Option<Arc<dyn ProgressSink>>,
}

impl StoreSetup {
    /// A setup reaching nothing beyond `grant`.
    pub(crate) fn new(
        limits: Limits,
        ids: InvocationIds,
        scope: InstallScope,
        grant: Arc<Grant>,
    ) -> Self {
        Self {
            limits,
            ids,
            scope,
            grant,
            models: None,
            progress: None,
        }
    }
}

/// One call into a fresh instance: instantiate the component, call one export.
pub(crate) trait Call {
    /// What the export returns.
    type Output: Send;
    /// Instantiates in `store` and calls.
    fn call(
        self,
        store: &mut Store<HostState>,
    ) -> impl Future<Output = Result<Self::Output, Failure>> + Send;
}

/// What a call into a fresh instance returned and consumed.
pub(crate) struct Fresh<T> {
    pub(crate) result: Result<T, InvocationError>,
    pub(crate) metering: MeteringRecord,
}

/// `execute` of a node type.
struct Execute<'a> {
    pre: &'a NodePluginPre<HostState>,
    node_type: &'a str,
    config: String,
    inputs: String,
    ctx: wit::Invocation,
}

impl Call for Execute<'_> {
    type Output = Result<String, PluginError>;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .pre
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_node()
            .call_execute(store, self.node_type, &self.config, &self.inputs, &self.ctx)
            .await
            .map_err(Failure::Call)
    }
}

/// `describe` of a node component.
struct DescribeNodes<'a>(&'a NodePluginPre<HostState>);

impl Call for DescribeNodes<'_> {
    type Output = Vec<wit::NodeType>;

    async fn call(self, store: &mut Store<HostState>) -> Result<Self::Output, Failure> {
        let instance = self
            .0
            .instantiate_async(&mut *store)
            .await
            .map_err(Failure::Instantiate)?;
        instance
            .hyyve_plugin_node()
            .call_describe(store)
            .await
            .map_err(Failure::Call)
    }
}

impl Runtime {
    /// Runs one node in a fresh instance. Never panics on guest behaviour: every failure
    /// is an [`InvocationError`], and the metering record is always filled in.
    pub async fn invoke(
        self: &Arc<Self>,
        plugin: &NodePlugin,
        req: InvocationRequest<'_>,
    ) -> InvocationOutcome {
        if plugin.node_type(req.node_type).is_none() {
            return not_started(InvocationError::UnknownNodeType(req.node_type.to_owned()));
        }
        let call = Execute {
            pre: &plugin.pre,
            node_type: req.node_type,
            config: req.config.to_string(),
            inputs: req.inputs.to_string(),
            ctx: wit::Invocation {
                run_id: req.ids.run_id.clone(),
                node_id: req.ids.node_id.clone(),
                attempt: req.ids.attempt,
            },
        };
        let limits = req.limits;
        let mut setup = StoreSetup::new(limits, req.ids, req.scope, req.grant);
        setup.models = req.models.map(|routes| ModelAccess {
            runtime: self.clone(),
            routes,
        });
        setup.progress = req.progress;
        let Fresh {
            result,
            mut metering,
        } = self.run_fresh(setup, call).await;
        let result = match result {
            Err(e) => Err(e),
            Ok(Err(plugin_error)) => Err(plugin_error.into()),
            Ok(Ok(json)) => parse_output(&json, &limits),
        };
        let result = result.map_err(|e| blame_denial(e, &metering));
        metering.failure = result.as_ref().err().map(|e| e.kind().to_owned());
        if result.is_err() {
            // What the guest made the host hold was freed with the store.
            crate::memory::return_freed_memory();
        }
        InvocationOutcome { result, metering }
    }

    /// Calls `describe` of a node component in a fresh instance under default limits.
    pub(crate) async fn describe(
        &self,
        pre: &NodePluginPre<HostState>,
    ) -> Result<Vec<wit::NodeType>, InvocationError> {
        self.describe_fresh(DescribeNodes(pre)).await
    }

    /// Runs a `describe` export: nothing granted, default limits.
    pub(crate) async fn describe_fresh<C: Call>(
        &self,
        call: C,
    ) -> Result<C::Output, InvocationError> {
        let setup = StoreSetup::new(
            Limits::default(),
            InvocationIds::default(),
            InstallScope::default(),
            self.no_grant.clone(),
        );
        self.run_fresh(setup, call).await.result
    }

    /// Creates a fresh store under `setup`, makes `call` in it within the deadline, and
    /// classifies what went wrong. The metering record is filled in whatever happened.
    pub(crate) async fn run_fresh<C: Call>(&self, setup: StoreSetup, call: C) -> Fresh<C::Output> {
        let limits = setup.limits;
        let started = Instant::now();
        let mut store = match self.new_store(setup) {
            Ok(store) => store,
            Err(e) => {
                return Fresh {
                    metering: refused_record(&e),
                    result: Err(e),
                };
            }
        };
        let answer =
            tokio::time::timeout(limits.timeout + HOST_CALL_GRACE, call.call(&mut store)).await;
        let metering = finish(&mut store, started, &limits);
        let result = match answer {
            Err(_elapsed) => Err(deadline(&limits)),
            Ok(Err(failure)) => Err(classify(failure, &store, &limits)),
            Ok(Ok(output)) => Ok(output),
        };
        Fresh { result, metering }
    }

    fn new_store(&self, setup: StoreSetup) -> Result<Store<HostState>, InvocationError> {
        let StoreSetup {
            limits,
            ids,
            scope,
            grant,
            models,
            progress,
        } = setup;
        let limits = &limits;
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE_BYTES);
        let denials = DenialLog::default();
        // No environment, no arguments, no sockets, no name lookups; at most one
        // preopen: the install's scratch directory.
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone())
            .max_random_size(RANDOM_BYTES_PER_CALL)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let scratch = match (&self.scratch_root, grant.scratch_bytes) {
            (Some(root), quota) if quota > 0 => {
                let dir = scratch_dir(root, &scope)?;
                wasi.preopened_dir(&dir, SCRATCH_GUEST_PATH, FsPerms::ReadWrite)
                    .map_err(|e| InvocationError::Instantiate(format!("scratch directory: {e}")))?;
                Some(Arc::new(ScratchQuota::measure(
                    &dir,
                    quota,
                    grant.scratch_entries,
                    denials.clone(),
                )))
            }
            _ => None,
        };
        let memory_cap = limits.memory_bytes.min(self.max_memory_bytes);
        // Every resource the guest makes the host create (header maps, requests, bodies,
        // streams, pollables, descriptors) is a table entry; each is bounded in bytes, so
        // capping the entries bounds the host memory the invocation holds.
        let mut table = ResourceTable::new();
        table.set_max_capacity(usize::try_from(limits.host_resources).unwrap_or(usize::MAX));
        let mut http = WasiHttpCtx::new();
        http.set_field_size_limit(FIELD_SIZE_LIMIT);
        let state = HostState {
            wasi: wasi.build(),
            table,
            http,
            http_policy: HttpPolicy {
                grant: grant.clone(),
                resolver: self.resolver.clone(),
                denials: denials.clone(),
                usage: Arc::new(HttpUsage::default()),
                tls: self.tls.clone(),
            },
            limiter: MemoryLimiter::new(memory_cap),
            invocation: Invocation {
                ids,
                scope,
                grant,
                denials,
                meter: MeteringRecord::default(),
            },
            kv: self.kv.clone(),
            secrets: self.secrets.clone(),
            scratch,
            stderr,
            log: LogState {
                budget: LogBudget::new(limits.log_lines, limits.log_bytes),
                rate: self.log_rate.clone(),
            },
            models: ModelsState {
                access: models,
                deadline: Instant::now() + limits.timeout,
                progress: progress.clone(),
            },
            progress: ProgressState::new(progress),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_hostcall_fuel(usize::try_from(limits.hostcall_bytes).unwrap_or(usize::MAX));
        if self.fuel {
            // Fuel is on in the engine config, so neither call can fail. Yielding on fuel
            // (not on epochs) keeps a CPU-bound guest from holding a tokio worker and keeps
            // the store's fuel count current: wasmtime 48 does not write the running fuel
            // counter back at epoch checks, so a guest interrupted by an epoch would look
            // as if it had burned nothing since its last call.
            let _ = store.set_fuel(limits.fuel);
            let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
        }
        if self.epochs {
            // Epochs enforce the wall-clock deadline: checked every tick, interrupt past it.
            let deadline = Instant::now() + limits.timeout;
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                Ok(if Instant::now() >= deadline {
                    UpdateDeadline::Interrupt
                } else {
                    UpdateDeadline::Continue(1)
                })
            });
        }
        Ok(store)
    }
}

/// `<root>/<workspace>/<install>`, created if missing. Both names come from the host,
/// but are checked anyway: a separator or `..` would point at another install's files.
fn scratch_dir(root: &std::path::Path, scope: &InstallScope) -> Result<PathBuf, InvocationError> {
    let safe = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\\', '\0']);
    if !safe(&scope.workspace) || !safe(&scope.install) {
        return Err(InvocationError::Instantiate(format!(
            "workspace `{}` / install `{}` cannot name a scratch directory",
            scope.workspace, scope.install
        )));
    }
    let dir = root.join(&scope.workspace).join(&scope.install);
    std::fs::create_dir_all(&dir)
        .map_err(|e| InvocationError::Instantiate(format!("scratch directory: {e}")))?;
    Ok(dir)
}

/// A plugin that fails after a refusal failed because of it: report the refusal.
pub(crate) fn blame_denial(error: InvocationError, metering: &MeteringRecord) -> InvocationError {
    let guest_reported = matches!(
        error,
        InvocationError::InvalidInput(_)
            | InvocationError::Failed(_)
            | InvocationError::Retryable(_)
            | InvocationError::Trap(_)
            | InvocationError::MalformedOutput(_)
    );
    match metering.denials.first() {
        Some(denial) if guest_reported => InvocationError::Denied {
            denial: denial.clone(),
            plugin_error: error.to_string(),
        },
        _ => error,
    }
}

/// An invocation refused before its instance existed: nothing consumed.
fn not_started(error: InvocationError) -> InvocationOutcome {
    InvocationOutcome {
        metering: refused_record(&error),
        result: Err(error),
    }
}

/// The record of a call refused before its instance existed: nothing consumed.
pub(crate) fn refused_record(error: &InvocationError) -> MeteringRecord {
    MeteringRecord {
        failure: Some(error.kind().to_owned()),
        ..MeteringRecord::default()
    }
}

fn finish(store: &mut Store<HostState>, started: Instant, limits: &Limits) -> MeteringRecord {
    // Without fuel metering (overhead benchmarks only) there is nothing to report.
    let fuel = match store.get_fuel() {
        Ok(remaining) => limits.fuel.saturating_sub(remaining),
        Err(_) => 0,
    };
    let state = store.data_mut();
    let mut record = std::mem::take(&mut state.invocation.meter);
    let http = &state.http_policy.usage;
    record.http_requests = http.requests.load(Ordering::Relaxed);
    record.http_bytes_sent = http.bytes_sent.load(Ordering::Relaxed);
    record.http_bytes_received = http.bytes_received.load(Ordering::Relaxed);
    record.host_calls += http.attempts.load(Ordering::Relaxed);
    record.scratch_bytes = state.scratch.as_ref().map_or(0, |q| q.used());
    record.scratch_entries = state.scratch.as_ref().map_or(0, |q| q.entries());
    record.logs_dropped = state.log.budget.dropped;
    record.denials = state.invocation.denials.take();
    record.fuel = fuel;
    record.peak_memory_bytes = state.limiter.peak_bytes as u64;
    record.wall_time_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    record
}

fn deadline(limits: &Limits) -> InvocationError {
    InvocationError::DeadlineExceeded {
        timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
    }
}

fn classify(failure: Failure, store: &Store<HostState>, limits: &Limits) -> InvocationError {
    let (error, instantiating) = match failure {
        Failure::Instantiate(e) => (e, true),
        Failure::Call(e) => (e, false),
    };
    let state = store.data();
    if error.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
        return InvocationError::FuelExhausted {
            budget: limits.fuel,
        };
    }
    if state.limiter.refused {
        return InvocationError::MemoryLimitExceeded {
            limit_bytes: limits.memory_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
        return deadline(limits);
    }
    if error.to_string().contains(HOSTCALL_FUEL_EXHAUSTED) {
        return InvocationError::HostcallPayloadTooLarge {
            limit_bytes: limits.hostcall_bytes,
        };
    }
    if error.downcast_ref::<Trap>() == Some(&Trap::StackOverflow) {
        return InvocationError::StackOverflow;
    }
    if let Some(exceeded) = host_resource_exceeded(&error, limits) {
        return exceeded;
    }
    if instantiating && error.downcast_ref::<Trap>().is_none() {
        return InvocationError::Instantiate(format!("{error:#}"));
    }
    if error.downcast_ref::<Trap>().is_none() {
        // Not a wasm trap: a host call returned an error the guest cannot catch.
        return InvocationError::HostCallFailed(error.root_cause().to_string());
    }
    let stderr = state.stderr.contents();
    let stderr = String::from_utf8_lossy(&stderr);
    let stderr = stderr.trim();
    if stderr.is_empty() {
        InvocationError::Trap(format!("{error}"))
    } else {
        InvocationError::Trap(format!("{error}; guest stderr: {stderr}"))
    }
}

/// A host-side budget that a host call refused to exceed: the resource table (every
/// handle) or one of the host's own counters.
fn host_resource_exceeded(error: &wasmtime::Error, limits: &Limits) -> Option<InvocationError> {
    for cause in error.chain() {
        if let Some(e) = cause.downcast_ref::<HostResourceExceeded>() {
            return Some(InvocationError::HostResourcesExceeded {
                resource: e.resource.to_owned(),
                limit: e.limit,
            });
        }
        let per_map = |resource: &str| {
            Some(InvocationError::HostResourcesExceeded {
                resource: resource.to_owned(),
                limit: FIELD_SIZE_LIMIT as u64,
            })
        };
        match cause.downcast_ref::<FieldMapError>() {
            Some(FieldMapError::TotalSizeTooBig) => return per_map("header bytes in one map"),
            Some(FieldMapError::TooManyFields) => return per_map("header fields in one map"),
            _ => {}
        }
        if matches!(
            cause.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        ) {
            return Some(InvocationError::HostResourcesExceeded {
                resource: "host resources (resource table entries)".to_owned(),
                limit: limits.host_resources,
            });
        }
    }
    None
}

/// wasmtime 48 reports host-call payload exhaustion with a private error type; its
/// message is the only handle on it.
const HOSTCALL_FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

fn parse_output(json: &str, limits: &Limits) -> Result<Value, InvocationError> {
    if json.len() as u64 > limits.output_bytes {
        return Err(InvocationError::OutputTooLarge {
            size_bytes: json.len() as u64,
            limit_bytes: limits.output_bytes,
        });
    }
    match serde_json::from_str::<Value>(json) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(InvocationError::MalformedOutput(format!(
            "expected an object of output ports, got {}",
            json_kind(&other)
        ))),
        Err(e) => Err(InvocationError::MalformedOutput(e.to_string())),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl From<PluginError> for InvocationError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::InvalidInput(m) => Self::InvalidInput(m),
            PluginError::Failed(m) => Self::Failed(m),
            PluginError::Retryable(m) => Self::Retryable(m),
        }
    }
}
