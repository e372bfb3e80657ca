//! The process-wide engine: configuration, epoch ticker, linker, compile cache.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use wasmtime::component::HasSelf;

use crate::bindings::node::hyyve::plugin as hyyve;
use crate::cache::ComponentCache;
use crate::error::{LoadError, RuntimeError};
use crate::imports;
use crate::imports::http::{Resolver, SystemResolver, client_config};
use crate::imports::kv::{InMemoryKv, KvStore};
use crate::imports::log::WorkspaceLogRate;
use crate::imports::scratch::{ScratchFsData, scratch_fs};
use crate::plugin::Digest;
use crate::state::HostState;
use hyyve_policy::Grant;
use hyyve_secrets::{MemorySecretStore, SecretStore};

/// How the process-wide runtime is set up.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Platform cap on one instance's linear memory; per-invocation limits go below it.
    pub max_memory_bytes: u64,
    /// Instances that may exist at once (pool size).
    pub max_instances: u32,
    /// Epoch tick: the granularity of wall-clock deadlines and of yielding to tokio.
    pub epoch_tick: Duration,
    /// The KV backend shared by all invocations (each sees only its own scope).
    pub kv: Arc<dyn KvStore>,
    /// Workspace secrets; a plugin reads only names its grant lists.
    pub secrets: Arc<dyn SecretStore>,
    /// Parent of the per-install scratch directories (`<root>/<workspace>/<install>`);
    /// `None`: no invocation gets a scratch directory, whatever its grant.
    pub scratch_root: Option<PathBuf>,
    /// Resolves host names for outgoing HTTP before the address check.
    pub resolver: Arc<dyn Resolver>,
    /// Root certificates (DER) trusted besides the public ones, e.g. an enterprise CA.
    pub extra_root_certificates: Vec<Vec<u8>>,
    /// Fuel metering on (always, except to measure its overhead). Without it a guest is
    /// not billed and not stopped by a fuel budget.
    pub fuel: bool,
    /// Epoch deadlines on (always, except to measure their overhead). Without them a
    /// CPU-bound guest cannot be interrupted before it returns.
    pub epochs: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            max_memory_bytes: 256 << 20,
            max_instances: 256,
            epoch_tick: Duration::from_millis(1),
            kv: Arc::new(InMemoryKv::new()),
            secrets: Arc::new(MemorySecretStore::new()),
            scratch_root: None,
            resolver: Arc::new(SystemResolver),
            extra_root_certificates: Vec::new(),
            fuel: true,
            epochs: true,
        }
    }
}

/// Pool slots kept resident between instances: a fresh instance's first touches of its
/// stack and heap then hit memory that is already mapped (see BENCHMARKS.md).
const KEEP_RESIDENT_BYTES: usize = 128 << 10;

/// The sandboxed component host. Create one per process and share it.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) kv: Arc<dyn KvStore>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    pub(crate) scratch_root: Option<PathBuf>,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// The grant of `describe` calls and of nothing-granted invocations.
    pub(crate) no_grant: Arc<Grant>,
    pub(crate) max_memory_bytes: u64,
    pub(crate) fuel: bool,
    pub(crate) epochs: bool,
    /// Plugin log lines per workspace across invocations.
    pub(crate) log_rate: Arc<WorkspaceLogRate>,
    cache: Option<ComponentCache>,
}

impl Runtime {
    /// Builds the engine, starts its epoch ticker and links every host interface.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        if config.epochs {
            spawn_epoch_ticker(&engine, config.epoch_tick);
        }
        let linker = link(&engine).map_err(|e| RuntimeError::Link(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ComponentCache::open(dir, &engine)?),
            None => None,
        };
        Ok(Self {
            engine,
            linker,
            kv: config.kv,
            secrets: config.secrets,
            scratch_root: config.scratch_root,
            resolver: config.resolver,
            tls: client_config(&config.extra_root_certificates)?,
            no_grant: Arc::new(Grant::default()),
            max_memory_bytes: config.max_memory_bytes,
            fuel: config.fuel,
            epochs: config.epochs,
            log_rate: Arc::default(),
            cache,
        })
    }

    /// The workspace secrets plugins read: the store the server's secrets API writes.
    pub fn secrets(&self) -> &Arc<dyn SecretStore> {
        &self.secrets
    }

    /// Compiles `bytes` (or loads the cached artifact) after checking they are a component.
    pub(crate) fn compile(&self, bytes: &[u8]) -> Result<(Digest, Component), LoadError> {
        check_component_header(bytes)?;
        let digest = Digest::of(bytes);
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &digest))
        {
            return Ok((digest, component));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| LoadError::InvalidComponent(format!("{e:#}")))?;
        if let Some(cache) = &self.cache {
            cache.store(&digest, &component);
        }
        Ok((digest, component))
    }
}

/// Rejects what is not a component before the compiler sees it, with a precise reason.
fn check_component_header(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(LoadError::NotWasm);
    }
    // Bytes 4..8 are version + layer: 1,0 / 0,0 for core modules, 0x0d,0 / 1,0 for components.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(LoadError::CoreModule);
    }
    Ok(())
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let instances = config.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // A component holds several core instances (the guest, WASI shims).
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .total_stacks(instances)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(KEEP_RESIDENT_BYTES);

    let mut cfg = Config::new();
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .consume_fuel(config.fuel)
        .epoch_interruption(config.epochs)
        // Native stack for wasm frames: deep recursion traps instead of overflowing.
        .max_wasm_stack(1 << 20)
        // No WASIp3 / component-model async here; off trims call overhead.
        .concurrency_support(false);
    cfg
}

/// One thread advances the epoch every `tick`; it ends when the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("hyyve-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(tick);
            }
        });
    if let Err(e) = spawned {
        // Without a ticker wall-clock deadlines would never fire; the tokio timeout
        // around each invocation still bounds it, so keep serving but say so.
        tracing::error!(error = %e, "could not start the epoch ticker thread");
    }
}

/// Links WASI (nothing granted by the per-store context), the scratch filesystem's quota
/// wrapper over wasi:filesystem, wasi:http (checked by the send hook) and the hyyve
/// interfaces.
fn link(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    // Replace wasi:filesystem/types with the quota-checking wrapper around the same
    // implementation.
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::bindings::filesystem::types::add_to_linker::<HostState, ScratchFsData>(
        &mut linker,
        scratch_fs,
    )?;
    linker.allow_shadowing(false);
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    // `types` holds only type definitions: nothing to give it but the state itself.
    hyyve::types::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    imports::log::add_to_linker(&mut linker)?;
    imports::kv::add_to_linker(&mut linker)?;
    imports::secrets::add_to_linker(&mut linker)?;
    imports::usage::add_to_linker(&mut linker)?;
    imports::progress::add_to_linker(&mut linker)?;
    // Only node plugins import `models`; calls from anything else find no route.
    imports::models::add_to_linker(&mut linker)?;
    hyyve::llm::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s)?;
    Ok(linker)
}
