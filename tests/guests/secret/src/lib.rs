//! One node type that reads a workspace secret and returns it, for the server's secrets
//! tests: it imports the secrets interface and nothing else, so a manifest declaring one
//! secret publishes it.

use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, NoInputs, Node, Serialize};

/// Which secret to read.
#[derive(Deserialize, JsonSchema)]
pub struct Config {
    /// The secret's name.
    pub name: String,
}

/// What was read.
#[derive(Serialize, JsonSchema)]
pub struct Read {
    /// The secret's value (a test guest: real plugins never output one).
    pub value: String,
}

/// Reads the configured secret.
pub struct ReadSecret;

impl Node for ReadSecret {
    const NAME: &'static str = "read";
    const TITLE: &'static str = "Read a secret";
    const DESCRIPTION: &'static str = "Returns the value of the configured workspace secret";
    type Config = Config;
    type Inputs = NoInputs;
    type Outputs = Read;
    fn run(config: Config, _: NoInputs, _: &Context) -> Result<Read, Error> {
        hyyve_sdk::secrets::get(&config.name)
            .map(|value| Read { value })
            .map_err(|e| Error::failed(format!("{e:?}")))
    }
}

hyyve_sdk::export_nodes!(ReadSecret);
