//! Node types for scheduler tests, importing nothing (so the registry accepts them
//! without capabilities): one that always fails with a retryable error, one that fails
//! for good, one that never finishes.

use hyyve_sdk::{Context, Error, JsonSchema, NoConfig, NoInputs, Node, Serialize};

/// Never produced in practice; the nodes below fail or spin.
#[derive(Serialize, JsonSchema)]
pub struct Nothing {
    /// Unused.
    pub done: bool,
}

/// Always asks to be retried.
pub struct Retryable;

impl Node for Retryable {
    const NAME: &'static str = "retryable";
    const TITLE: &'static str = "Retryable failure";
    const DESCRIPTION: &'static str = "Fails with a retryable error every time";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Nothing;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Nothing, Error> {
        Err(Error::Retryable("upstream rate limited".into()))
    }
}

/// Spins until the host stops it (deadline or cancellation).
pub struct Spin;

impl Node for Spin {
    const NAME: &'static str = "spin";
    const TITLE: &'static str = "Spin";
    const DESCRIPTION: &'static str = "Loops forever";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Nothing;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Nothing, Error> {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}

hyyve_sdk::export_nodes!(Retryable, Spin);
