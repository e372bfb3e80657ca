//! `progress`: partial results of a long call (streamed LLM tokens) passed on as they
//! arrive. The host forwards them to the run's event stream as `node.progress` of the
//! node being executed; a provider's deltas go to the node that called it.
//!
//! What a plugin can make the host forward is bounded per invocation
//! ([`MAX_PROGRESS_BYTES`], [`MAX_DELTA_BYTES`]): past the bound, deltas are dropped with
//! one denial on the record, and the call goes on.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::progress::{self, Host};
use crate::denial::DenialKind;
use crate::state::{HostState, Invocation};

/// Delta bytes one invocation may pass on in all.
pub const MAX_PROGRESS_BYTES: u64 = 1 << 20;

/// Bytes of one delta at most.
pub const MAX_DELTA_BYTES: usize = 16 << 10;

/// Deltas one invocation may pass on (a one-byte delta still costs an event).
pub const MAX_DELTAS: u64 = 65_536;

/// Receives the deltas of one node attempt. Called from the invocation's task: hand the
/// delta off, never block.
pub trait ProgressSink: Send + Sync {
    /// One delta of text, in order.
    fn delta(&self, text: &str);
}

/// The progress capability's state in one store: where deltas go and what was sent.
pub(crate) struct ProgressState {
    pub(crate) sink: Option<Arc<dyn ProgressSink>>,
    bytes: u64,
    deltas: u64,
    refused: bool,
}

impl ProgressState {
    pub(crate) fn new(sink: Option<Arc<dyn ProgressSink>>) -> Self {
        Self {
            sink,
            bytes: 0,
            deltas: 0,
            refused: false,
        }
    }
}

/// The progress capability's view of an invocation.
pub(crate) struct Progress<'a> {
    pub(crate) invocation: &'a mut Invocation,
    pub(crate) state: &'a mut ProgressState,
}

/// Links `hyyve:plugin/progress` through [`Progress`].
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    progress::add_to_linker::<HostState, ProgressCapability>(linker, |s| Progress {
        invocation: &mut s.invocation,
        state: &mut s.progress,
    })
}

struct ProgressCapability;

impl HasData for ProgressCapability {
    type Data<'a> = Progress<'a>;
}

impl Host for Progress<'_> {
    async fn delta(&mut self, text: String) -> wasmtime::Result<()> {
        self.invocation.host_call();
        let state = &mut *self.state;
        let Some(sink) = &state.sink else {
            // Nobody listens (a run without events, a describe call): nothing to bound.
            return Ok(());
        };
        let over = text.len() > MAX_DELTA_BYTES
            || state.bytes + text.len() as u64 > MAX_PROGRESS_BYTES
            || state.deltas >= MAX_DELTAS;
        if over {
            if !state.refused {
                state.refused = true;
                self.invocation.denials.record(
                    DenialKind::ProgressExceeded,
                    format!(
                        "progress past {MAX_PROGRESS_BYTES} bytes, {MAX_DELTAS} deltas or \
                         {MAX_DELTA_BYTES} bytes in one delta; later deltas are dropped"
                    ),
                );
            }
            return Ok(());
        }
        state.bytes += text.len() as u64;
        state.deltas += 1;
        sink.delta(&text);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Collect(Mutex<Vec<String>>);

    impl ProgressSink for Collect {
        fn delta(&self, text: &str) {
            self.0.lock().unwrap().push(text.to_owned());
        }
    }

    #[tokio::test]
    async fn deltas_reach_the_sink_in_order_until_the_bound() {
        let sink = Arc::new(Collect::default());
        let mut invocation = Invocation::for_test(hyyve_policy::Grant::default());
        let mut state = ProgressState::new(Some(sink.clone()));
        let mut progress = Progress {
            invocation: &mut invocation,
            state: &mut state,
        };
        progress.delta("Hel".into()).await.unwrap();
        progress.delta("lo".into()).await.unwrap();
        progress
            .delta("x".repeat(MAX_DELTA_BYTES + 1))
            .await
            .unwrap();
        progress.delta("!".into()).await.unwrap();
        assert_eq!(*sink.0.lock().unwrap(), ["Hel", "lo", "!"]);
        assert_eq!(invocation.denied(), [DenialKind::ProgressExceeded]);
    }

    #[tokio::test]
    async fn the_total_is_bounded_with_one_denial() {
        let sink = Arc::new(Collect::default());
        let mut invocation = Invocation::for_test(hyyve_policy::Grant::default());
        let mut state = ProgressState::new(Some(sink.clone()));
        let mut progress = Progress {
            invocation: &mut invocation,
            state: &mut state,
        };
        let chunk = "y".repeat(MAX_DELTA_BYTES);
        let fits = MAX_PROGRESS_BYTES as usize / MAX_DELTA_BYTES;
        for _ in 0..fits + 3 {
            progress.delta(chunk.clone()).await.unwrap();
        }
        assert_eq!(sink.0.lock().unwrap().len(), fits);
        assert_eq!(invocation.denied(), [DenialKind::ProgressExceeded]);
    }
}
