//! `fibo`: naive recursive Fibonacci, the standard "lightweight task" of workflow-engine
//! orchestration benchmarks. An optional `after` input lets nodes be chained.

use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, Node, Serialize, Value};

/// Configuration of `fibo`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which Fibonacci number to compute (at most 40).
    #[schemars(range(max = 40))]
    pub n: u32,
}

/// Inputs of `fibo`.
#[derive(Deserialize, JsonSchema)]
pub struct Inputs {
    /// Anything; only orders this node after another.
    pub after: Option<Value>,
}

/// Outputs of `fibo`.
#[derive(Serialize, JsonSchema)]
pub struct Outputs {
    /// fib(n).
    pub value: u64,
}

/// The node.
pub struct Fibo;

fn fib(n: u32) -> u64 {
    if n < 2 {
        n as u64
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

impl Node for Fibo {
    const NAME: &'static str = "fibo";
    const TITLE: &'static str = "Fibonacci";
    const DESCRIPTION: &'static str = "Computes fib(n) recursively; a CPU-bound benchmark task.";
    const CATEGORY: &'static str = "benchmark";
    type Config = Config;
    type Inputs = Inputs;
    type Outputs = Outputs;

    fn run(config: Config, _inputs: Inputs, _ctx: &Context) -> Result<Outputs, Error> {
        if config.n > 40 {
            return Err(Error::invalid_input("n must be at most 40"));
        }
        Ok(Outputs {
            value: fib(config.n),
        })
    }
}

hyyve_sdk::export_nodes!(Fibo);
