//! Per-invocation limits and the store's resource limiter.

use std::time::Duration;

/// What one invocation may consume. Every field is enforced; exceeding one yields its
/// own [`crate::InvocationError`] kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deterministic CPU budget (wasmtime fuel units; instantiation counts too).
    pub fuel: u64,
    /// Wall-clock deadline, including time blocked in host calls.
    pub timeout: Duration,
    /// Cap on the sum of the instance's linear memories, in bytes.
    pub memory_bytes: u64,
    /// Cap on the returned JSON text, in bytes.
    pub output_bytes: u64,
    /// Cap on what one host call may make the host copy out of the guest, in bytes.
    pub hostcall_bytes: u64,
    /// Host-side resources (resource-table entries) held at once. Each kind of entry is
    /// bounded in bytes (see [`HOST_ENTRY_MAX_BYTES`]), so this also bounds the host
    /// memory the invocation can hold.
    pub host_resources: u64,
    /// Log lines the invocation may write; more are dropped and counted.
    pub log_lines: u64,
    /// Log message bytes the invocation may write; more are dropped and counted.
    pub log_bytes: u64,
}

/// The most host memory one resource-table entry can hold, in bytes: a header map
/// ([`FIELD_SIZE_LIMIT`]) or an unsent outgoing body (two chunks of
/// [`OUTGOING_BODY_CHUNK_BYTES`]) or a file read buffer (64 KiB in wasmtime-wasi), each
/// with its bookkeeping. A per-invocation host budget is `host_resources` times this.
pub const HOST_ENTRY_MAX_BYTES: u64 = 64 << 10;

/// Cap on the in-memory size of one header map (wasmtime's default is 128 KiB).
pub(crate) const FIELD_SIZE_LIMIT: usize = 16 << 10;

/// Chunk size of an outgoing body's buffer (wasmtime's default is 1 MiB, and a body
/// that is never sent keeps its buffer).
pub(crate) const OUTGOING_BODY_CHUNK_BYTES: usize = 16 << 10;

/// Most random bytes one call may ask for (wasmtime's default is 64 MiB).
pub(crate) const RANDOM_BYTES_PER_CALL: u64 = 64 << 10;

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            timeout: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            output_bytes: 1 << 20,
            hostcall_bytes: 4 << 20,
            host_resources: 1_000,
            log_lines: 1_000,
            log_bytes: 256 << 10,
        }
    }
}

impl Limits {
    /// The default caps on output and host-call payloads with a grant's fuel, memory,
    /// deadline, host resources and log budget.
    pub fn granted(granted: &hyyve_policy::GrantedLimits) -> Self {
        Self {
            fuel: granted.fuel,
            timeout: Duration::from_millis(granted.timeout_ms),
            memory_bytes: granted.memory_bytes,
            host_resources: granted.host_resources,
            log_lines: granted.log_lines,
            log_bytes: granted.log_bytes,
            ..Self::default()
        }
    }
}

/// Caps linear memory and table growth and remembers the peak, for the metering record.
pub(crate) struct MemoryLimiter {
    cap_bytes: usize,
    current_bytes: usize,
    pub(crate) peak_bytes: usize,
    /// Set when a growth was refused: the trap that follows is a memory-limit error.
    pub(crate) refused: bool,
}

/// Tables hold function references; no plugin legitimately needs more.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    pub(crate) fn new(cap_bytes: u64) -> Self {
        Self {
            cap_bytes: usize::try_from(cap_bytes).unwrap_or(usize::MAX),
            current_bytes: 0,
            peak_bytes: 0,
            refused: false,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.current_bytes - current.min(self.current_bytes) + desired;
        if total > self.cap_bytes {
            self.refused = true;
            return Ok(false);
        }
        self.current_bytes = total;
        self.peak_bytes = self.peak_bytes.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
