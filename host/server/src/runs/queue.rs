//! The in-process run queue: one FIFO per workspace, served round-robin, each workspace
//! bounded by its concurrency quota. A workspace that queues 10,000 runs gets one turn
//! per round like a workspace that queues one, so the latter waits at most for one
//! run of each busy workspace to start, never for the backlog.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde_json::Value;
use tokio::sync::Notify;

/// A run waiting for a worker: everything needed to execute it.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The run.
    pub run_id: String,
    /// Its workspace (the unit of fairness and concurrency).
    pub workspace_id: String,
    /// Its organization (the unit of plan quotas).
    pub org_id: String,
    /// The workflow and the version it runs.
    pub workflow_id: String,
    /// Immutable version number.
    pub version: i64,
    /// Run input.
    pub input: Value,
    /// Most runs of this workspace executing at once.
    pub concurrency: usize,
    /// When it was accepted (Unix ms), for the queueing delay.
    pub accepted_at: i64,
    /// Invocations reserved against the plan quota (released when it ends; 0 for a
    /// run recovered after a restart).
    pub reserved: i64,
    /// Pickups so far (above 0: it was interrupted while executing).
    pub executions: i64,
}

#[derive(Default)]
struct State {
    waiting: HashMap<String, VecDeque<Ticket>>,
    /// Workspaces with waiting runs, in turn order.
    turns: VecDeque<String>,
    running: HashMap<String, usize>,
    depth: usize,
}

/// The fair queue.
#[derive(Default)]
pub struct FairQueue {
    state: Mutex<State>,
    ready: Notify,
}

impl FairQueue {
    /// Adds a run at the end of its workspace's queue.
    pub fn push(&self, ticket: Ticket) {
        let mut state = self.state.lock().expect("not poisoned");
        let queue = state
            .waiting
            .entry(ticket.workspace_id.clone())
            .or_default();
        if queue.is_empty() {
            let workspace = ticket.workspace_id.clone();
            queue.push_back(ticket);
            state.turns.push_back(workspace);
        } else {
            queue.push_back(ticket);
        }
        state.depth += 1;
        drop(state);
        self.ready.notify_one();
    }

    /// Waits for the next run whose workspace is under its concurrency quota, taking
    /// workspaces in turn. The caller must call [`FairQueue::finished`] after it.
    pub async fn pop(&self) -> Ticket {
        loop {
            let notified = self.ready.notified();
            if let Some(ticket) = self.try_pop() {
                // Another run may be startable too: pass the wake-up on.
                self.ready.notify_one();
                return ticket;
            }
            notified.await;
        }
    }

    fn try_pop(&self) -> Option<Ticket> {
        let mut state = self.state.lock().expect("not poisoned");
        let state = &mut *state;
        for _ in 0..state.turns.len() {
            let workspace = state.turns.pop_front()?;
            let queue = state.waiting.get_mut(&workspace)?;
            let running = state.running.entry(workspace.clone()).or_default();
            let limit = queue.front().map(|t| t.concurrency.max(1)).unwrap_or(1);
            if *running >= limit {
                state.turns.push_back(workspace);
                continue;
            }
            let ticket = queue.pop_front()?;
            *running += 1;
            state.depth -= 1;
            if queue.is_empty() {
                state.waiting.remove(&workspace);
            } else {
                state.turns.push_back(workspace);
            }
            return Some(ticket);
        }
        None
    }

    /// A run of `workspace` stopped executing: its slot is free.
    pub fn finished(&self, workspace: &str) {
        let mut state = self.state.lock().expect("not poisoned");
        if let Some(running) = state.running.get_mut(workspace) {
            *running = running.saturating_sub(1);
            if *running == 0 {
                state.running.remove(workspace);
            }
        }
        drop(state);
        self.ready.notify_one();
    }

    /// Runs waiting (not executing).
    pub fn depth(&self) -> usize {
        self.state.lock().expect("not poisoned").depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(workspace: &str, n: usize, concurrency: usize) -> Ticket {
        Ticket {
            run_id: format!("{workspace}-{n}"),
            workspace_id: workspace.into(),
            org_id: "org".into(),
            workflow_id: "wf".into(),
            version: 1,
            input: Value::Null,
            concurrency,
            accepted_at: 0,
            reserved: 0,
            executions: 0,
        }
    }

    #[tokio::test]
    async fn a_flood_does_not_delay_another_workspace_beyond_one_turn() {
        let queue = FairQueue::default();
        for n in 0..10_000 {
            queue.push(ticket("flood", n, 64));
        }
        queue.push(ticket("single", 0, 64));
        let first = queue.pop().await;
        let second = queue.pop().await;
        assert_eq!(first.run_id, "flood-0");
        assert_eq!(
            second.run_id, "single-0",
            "the single run gets the next turn"
        );
        assert_eq!(queue.depth(), 9_999);
    }

    #[tokio::test]
    async fn a_workspace_at_its_concurrency_waits_while_others_run() {
        let queue = FairQueue::default();
        for n in 0..3 {
            queue.push(ticket("capped", n, 2));
        }
        queue.push(ticket("other", 0, 2));
        let mut started: Vec<String> = Vec::new();
        for _ in 0..3 {
            started.push(queue.pop().await.run_id);
        }
        assert_eq!(started, ["capped-0", "other-0", "capped-1"]);
        // capped-2 waits for a slot of its own workspace.
        assert!(queue.try_pop().is_none());
        queue.finished("capped");
        assert_eq!(queue.pop().await.run_id, "capped-2");
    }
}
