//! `log`: plugin log lines into tracing, tagged with the invocation's ids.
//!
//! A plugin decides what it logs, so every line is bounded three ways: its length
//! ([`MAX_MESSAGE_BYTES`], then cut and marked), the invocation's budget of lines and
//! bytes (from the grant), and its workspace's rate across all invocations
//! ([`WorkspaceLogRate`]). Lines past a budget are dropped and counted on the metering
//! record (`logs_dropped`). Control characters, newlines included, are escaped, so one
//! message is one line in both log formats and cannot forge another entry.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasData, Linker};

use crate::bindings::log::{self, Host, Level};
use crate::state::{HostState, Invocation};

/// Longer messages are cut (at a character boundary) and marked.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// What one invocation may still log.
pub(crate) struct LogBudget {
    lines_left: u64,
    bytes_left: u64,
    /// Lines not written: past a budget or the workspace's rate.
    pub(crate) dropped: u64,
}

impl LogBudget {
    pub(crate) fn new(lines: u64, bytes: u64) -> Self {
        Self {
            lines_left: lines,
            bytes_left: bytes,
            dropped: 0,
        }
    }

    /// Takes one line of `bytes` from the budget, or counts it as dropped.
    fn admit(&mut self, bytes: u64) -> bool {
        if self.lines_left == 0 || self.bytes_left < bytes {
            self.dropped += 1;
            return false;
        }
        self.lines_left -= 1;
        self.bytes_left -= bytes;
        true
    }
}

/// Lines per second a workspace's plugins may log together, over all invocations.
pub const WORKSPACE_LOG_LINES_PER_SECOND: f64 = 200.0;

/// Lines a workspace may log in a burst before the rate applies.
pub const WORKSPACE_LOG_BURST: f64 = 2_000.0;

/// A token bucket per workspace: many short invocations of one tenant cannot flood the
/// host's logs either.
#[derive(Default)]
pub(crate) struct WorkspaceLogRate {
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

impl WorkspaceLogRate {
    /// Takes one line from `workspace`'s bucket; false when it is empty.
    pub(crate) fn admit(&self, workspace: &str) -> bool {
        self.admit_at(workspace, Instant::now())
    }

    fn admit_at(&self, workspace: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(workspace.to_owned()).or_insert(Bucket {
            tokens: WORKSPACE_LOG_BURST,
            refilled: now,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens =
            (bucket.tokens + elapsed * WORKSPACE_LOG_LINES_PER_SECOND).min(WORKSPACE_LOG_BURST);
        bucket.refilled = now;
        if bucket.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        true
    }
}

/// `message` as one safe line: control characters (newlines, escapes, NUL) written as
/// `\n`, `\t`, `\u{1b}`..., then cut to [`MAX_MESSAGE_BYTES`] and marked.
pub(crate) fn sanitize(message: &str) -> String {
    let mut line = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES) + 32);
    let mut cut_at = None;
    for (i, c) in message.char_indices() {
        let before = line.len();
        if c.is_control() {
            // `escape_default` writes `\n`, `\r`, `\t` and `\u{..}` for the rest.
            let _ = write!(line, "{}", c.escape_default());
        } else {
            line.push(c);
        }
        if line.len() > MAX_MESSAGE_BYTES {
            line.truncate(before);
            cut_at = Some(i);
            break;
        }
    }
    if let Some(i) = cut_at {
        let _ = write!(line, "… [truncated, {} more bytes]", message.len() - i);
    }
    line
}

/// The log capability's state in one invocation.
pub(crate) struct LogState {
    /// What the invocation may still log.
    pub(crate) budget: LogBudget,
    /// The log rate of every workspace, shared by all invocations.
    pub(crate) rate: Arc<WorkspaceLogRate>,
}

/// The log capability's view of an invocation.
pub(crate) struct Log<'a> {
    pub(crate) invocation: &'a mut Invocation,
    pub(crate) state: &'a mut LogState,
}

/// Links `hyyve:plugin/log` through [`Log`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    log::add_to_linker::<HostState, LogCapability>(linker, |s| Log {
        invocation: &mut s.invocation,
        state: &mut s.log,
    })
}

struct LogCapability;

impl HasData for LogCapability {
    type Data<'a> = Log<'a>;
}

impl Host for Log<'_> {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.invocation.host_call();
        // Charged by the kept length, before any work on a line that will be dropped.
        let cost = message.len().min(MAX_MESSAGE_BYTES) as u64;
        if !self.state.budget.admit(cost) {
            return Ok(());
        }
        if !self.state.rate.admit(&self.invocation.scope.workspace) {
            self.state.budget.dropped += 1;
            return Ok(());
        }
        let line = sanitize(&message);
        let ids = &self.invocation.ids;
        let (run, node) = (ids.run_id.as_str(), ids.node_id.as_str());
        match level {
            Level::Trace => tracing::trace!(target: "plugin", run, node, "{line}"),
            Level::Debug => tracing::debug!(target: "plugin", run, node, "{line}"),
            Level::Info => tracing::info!(target: "plugin", run, node, "{line}"),
            Level::Warn => tracing::warn!(target: "plugin", run, node, "{line}"),
            Level::Error => tracing::error!(target: "plugin", run, node, "{line}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_past_the_invocations_budget_are_dropped_and_counted() {
        let mut invocation = Invocation::for_test(hyyve_policy::Grant::default());
        let mut state = LogState {
            budget: LogBudget::new(2, 1024),
            rate: Arc::new(WorkspaceLogRate::default()),
        };
        let mut log = Log {
            invocation: &mut invocation,
            state: &mut state,
        };
        for _ in 0..5 {
            log.log(Level::Info, "hello".into()).await.unwrap();
        }
        assert_eq!(state.budget.dropped, 3);
        assert_eq!(invocation.meter.host_calls, 5);
    }

    #[test]
    fn control_characters_cannot_start_a_new_line() {
        let forged =
            "ok\n{\"level\":\"INFO\",\"target\":\"auth\",\"message\":\"admin login\"}\r\x1b[2J\0";
        let line = sanitize(forged);
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.starts_with("ok\\n{"), "{line}");
        assert!(line.contains("\\r\\u{1b}[2J\\u{0}"), "{line}");
    }

    #[test]
    fn long_messages_are_cut_and_marked() {
        let long = "é".repeat(5000); // 10,000 bytes
        let line = sanitize(&long);
        let (kept, mark) = line.split_once('…').unwrap();
        assert!(kept.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(
            mark,
            format!(" [truncated, {} more bytes]", 10_000 - kept.len())
        );
        assert_eq!(sanitize("short"), "short");
    }

    #[test]
    fn the_budget_counts_what_it_drops() {
        let mut budget = LogBudget::new(2, 10);
        assert!(budget.admit(4));
        assert!(!budget.admit(7), "past the byte budget");
        assert!(budget.admit(6));
        assert!(!budget.admit(0), "past the line budget");
        assert_eq!(budget.dropped, 2);
    }

    #[test]
    fn a_workspace_rate_is_shared_by_its_invocations_only() {
        let rate = WorkspaceLogRate::default();
        let start = Instant::now();
        let burst = WORKSPACE_LOG_BURST as usize;
        let admitted = |at| {
            (0..burst * 2)
                .filter(|_| rate.admit_at("noisy", at))
                .count()
        };
        assert_eq!(admitted(start), burst);
        let per_second = WORKSPACE_LOG_LINES_PER_SECOND as usize;
        assert_eq!(
            admitted(start + std::time::Duration::from_secs(1)),
            per_second
        );
        assert!(
            rate.admit_at("quiet", start),
            "another workspace has its own bucket"
        );
    }
}
