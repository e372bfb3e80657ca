//! KV through the server: a counter that must keep counting across runs and restarts,
//! and a flood that must stop at the install's quota. It imports the kv interface and
//! nothing else, so a manifest declaring `kv_bytes` publishes it.

use hyyve_sdk::{Context, Error, JsonSchema, NoConfig, NoInputs, Node, Serialize};

/// The counter after this run.
#[derive(Serialize, JsonSchema)]
pub struct Counted {
    /// How many runs have counted in this install, this one included.
    pub count: u64,
}

/// Adds one to the `counter` key.
pub struct Count;

impl Node for Count {
    const NAME: &'static str = "count";
    const TITLE: &'static str = "Count";
    const DESCRIPTION: &'static str = "Adds one to the install's KV counter and returns it";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Counted;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Counted, Error> {
        let failed = |e| Error::failed(format!("{e:?}"));
        let before = hyyve_sdk::kv::get("counter").map_err(failed)?;
        let count = before
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or(0, u64::from_le_bytes)
            + 1;
        hyyve_sdk::kv::set("counter", &count.to_le_bytes()).map_err(failed)?;
        Ok(Counted { count })
    }
}

/// How many writes went through before one was refused.
#[derive(Serialize, JsonSchema)]
pub struct Filled {
    /// Writes accepted.
    pub writes: u32,
}

/// Writes 64 KiB values until the store refuses one, then fails with that error.
pub struct Fill;

impl Node for Fill {
    const NAME: &'static str = "fill";
    const TITLE: &'static str = "Fill";
    const DESCRIPTION: &'static str = "Writes 64 KiB values until the KV quota refuses one";
    type Config = NoConfig;
    type Inputs = NoInputs;
    type Outputs = Filled;
    fn run(_: NoConfig, _: NoInputs, _: &Context) -> Result<Filled, Error> {
        let chunk = vec![7u8; 64 << 10];
        for writes in 0..1000 {
            if let Err(e) = hyyve_sdk::kv::set(&format!("k{writes}"), &chunk) {
                return Err(Error::failed(format!("after {writes} writes: {e:?}")));
            }
        }
        Ok(Filled { writes: 1000 })
    }
}

hyyve_sdk::export_nodes!(Count, Fill);
