//! Errors at the runtime's boundary, one variant per thing that can go wrong.

/// The runtime itself could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The wasmtime engine rejected the configuration.
    #[error("engine configuration rejected: {0}")]
    Engine(String),
    /// The host interfaces could not be linked.
    #[error("linking host interfaces failed: {0}")]
    Link(String),
    /// The TLS client configuration (extra root certificates) is unusable.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The precompiled-component cache directory is unusable.
    #[error("component cache at {path}: {message}")]
    Cache {
        /// The cache directory.
        path: String,
        /// What failed.
        message: String,
    },
}

/// A component could not be loaded as a plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (no \\0asm header)")]
    NotWasm,
    /// A core module was given where a component is required.
    #[error(
        "this is a core WebAssembly module, not a component; build with --target wasm32-wasip2"
    )]
    CoreModule,
    /// The component failed validation or compilation.
    #[error("invalid component: {0}")]
    InvalidComponent(String),
    /// The component imports something the host does not offer.
    #[error("component imports something the host does not provide: {0}")]
    UnsatisfiedImport(String),
    /// The component does not export the interface of the expected world.
    #[error("component is not a {expected} plugin: {found}")]
    WrongWorld {
        /// The world that was expected, e.g. `node-plugin`.
        expected: &'static str,
        /// What the component exports instead.
        found: String,
    },
    /// `describe` trapped, timed out or returned unusable node types.
    #[error("describe failed: {0}")]
    Describe(String),
}

use crate::denial::Denial;

/// Raised (as a trap) by a host call when the invocation would hold more of a host-side
/// resource than its budget; classified as [`InvocationError::HostResourcesExceeded`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("more than {limit} {resource}")]
pub(crate) struct HostResourceExceeded {
    pub(crate) resource: &'static str,
    pub(crate) limit: u64,
}

/// One invocation did not produce outputs. Each exceeded limit is its own kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// The component has no node type of that name.
    #[error("unknown node type `{0}`")]
    UnknownNodeType(String),
    /// The fuel budget ran out.
    #[error("fuel exhausted: budget of {budget} units spent")]
    FuelExhausted {
        /// The budget that was spent.
        budget: u64,
    },
    /// The wall-clock deadline passed.
    #[error("deadline of {timeout_ms} ms exceeded")]
    DeadlineExceeded {
        /// The deadline in milliseconds.
        timeout_ms: u64,
    },
    /// The guest tried to grow its linear memory past the cap.
    #[error("memory limit of {limit_bytes} bytes exceeded")]
    MemoryLimitExceeded {
        /// The cap in bytes.
        limit_bytes: u64,
    },
    /// The returned JSON is larger than the output cap.
    #[error("output of {size_bytes} bytes exceeds the cap of {limit_bytes} bytes")]
    OutputTooLarge {
        /// Bytes returned.
        size_bytes: u64,
        /// The cap.
        limit_bytes: u64,
    },
    /// A host call or the returned value moved more bytes between guest and host than
    /// allowed.
    #[error("host-call payload exceeds {limit_bytes} bytes")]
    HostcallPayloadTooLarge {
        /// The cap.
        limit_bytes: u64,
    },
    /// The returned text is not JSON, or not a JSON object.
    #[error("output is not a JSON object: {0}")]
    MalformedOutput(String),
    /// The guest recursed deeper than the stack allows.
    #[error("stack overflow")]
    StackOverflow,
    /// The guest made the host hold more of one resource than its budget allows.
    #[error("host resources exceeded: more than {limit} {resource}")]
    HostResourcesExceeded {
        /// What ran out, e.g. `resource table entries`, `open file descriptors`.
        resource: String,
        /// The budget.
        limit: u64,
    },
    /// A host call failed in a way the guest cannot handle (a request past a host-side
    /// bound, a misused handle); the host's reason, without the guest's backtrace.
    #[error("host call failed: {0}")]
    HostCallFailed(String),
    /// The guest trapped (panic, unreachable, out-of-bounds access, stack overflow...).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The pool has no free instance slot or instantiation failed for another host reason.
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The plugin rejected its inputs or configuration.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The plugin reported a failure.
    #[error("plugin failed: {0}")]
    Failed(String),
    /// The plugin reported a transient failure; the caller may retry.
    #[error("retryable failure: {0}")]
    Retryable(String),
    /// The invocation failed after the host refused a capability or a quota ran out;
    /// that refusal is the cause. Its kind names the capability or quota.
    #[error("{denial}; the plugin then reported: {plugin_error}")]
    Denied {
        /// The first refusal of the invocation.
        denial: Denial,
        /// What the plugin made of it.
        plugin_error: String,
    },
}

impl InvocationError {
    /// A stable, machine-readable name for the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::UnknownNodeType(_) => "unknown_node_type",
            Self::FuelExhausted { .. } => "fuel_exhausted",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::MemoryLimitExceeded { .. } => "memory_limit_exceeded",
            Self::OutputTooLarge { .. } => "output_too_large",
            Self::HostcallPayloadTooLarge { .. } => "hostcall_payload_too_large",
            Self::MalformedOutput(_) => "malformed_output",
            Self::StackOverflow => "stack_overflow",
            Self::HostResourcesExceeded { .. } => "host_resources_exceeded",
            Self::HostCallFailed(_) => "host_call_failed",
            Self::Trap(_) => "trap",
            Self::Instantiate(_) => "instantiate_failed",
            Self::InvalidInput(_) => "invalid_input",
            Self::Failed(_) => "failed",
            Self::Retryable(_) => "retryable",
            Self::Denied { denial, .. } => denial.kind.as_str(),
        }
    }
}
