//! Node types for scheduler and metering tests, importing nothing that needs a
//! capability (so the registry accepts them without any): one that always fails with a
//! retryable error, one that never finishes, one that reports LLM tokens.

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

/// Reports the tokens of a pretend LLM call: 1234 in, 300 out.
pub struct Tokens;

impl Node for Tokens {
    const NAME: &'static str = "tokens";
    const TITLE: &'static str = "Tokens";
    const DESCRIPTION: &'static str = "Reports llm.input-tokens and llm.output-tokens";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Nothing;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Nothing, Error> {
        hyyve_sdk::usage::report("llm.input-tokens", 1234);
        hyyve_sdk::usage::report("llm.output-tokens", 300);
        Ok(Nothing { done: true })
    }
}

hyyve_sdk::export_nodes!(Retryable, Spin, Tokens);
