//! Giving host memory back after an invocation failed. A hostile plugin makes the host
//! allocate up to its budget (header maps, buffers) from many worker threads at once;
//! glibc keeps what is freed in per-thread arenas, so without a trim the process stays
//! a third above its baseline after a flood (BENCHMARKS.md, `hyyve bench --hostile`,
//! which also measured mimalloc: worse here).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// At most one trim per this many milliseconds, process-wide: a plugin failing in a loop
/// cannot make the host spend its time trimming.
const MIN_INTERVAL_MS: u64 = 100;

static LAST_TRIM_MS: AtomicU64 = AtomicU64::new(0);

/// Returns free heap pages of every arena to the OS, unless that happened just now.
pub(crate) fn return_freed_memory() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let last = LAST_TRIM_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) < MIN_INTERVAL_MS
        || LAST_TRIM_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes no pointers and may be called from any thread at any
    // time; it only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
