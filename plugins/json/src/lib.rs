//! `query`: select and reshape JSON with a JMESPath expression.

use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, Node, Serialize, Value};

/// Configuration of `query`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// JMESPath expression, e.g. `people[?age > `30`].name`.
    pub expression: String,
}

/// Inputs of `query`.
#[derive(Deserialize, JsonSchema)]
pub struct Inputs {
    /// The document to query.
    pub data: Value,
}

/// Outputs of `query`.
#[derive(Serialize, JsonSchema)]
pub struct Outputs {
    /// What the expression selected (null when nothing matched).
    pub result: Value,
}

/// The node.
pub struct Query;

impl Node for Query {
    const NAME: &'static str = "query";
    const TITLE: &'static str = "JSON query";
    const DESCRIPTION: &'static str = "Selects and reshapes JSON with a JMESPath expression.";
    const CATEGORY: &'static str = "data";
    type Config = Config;
    type Inputs = Inputs;
    type Outputs = Outputs;

    fn run(config: Config, inputs: Inputs, _ctx: &Context) -> Result<Outputs, Error> {
        let expression = jmespath::compile(&config.expression)
            .map_err(|e| Error::invalid_input(format!("expression: {e}")))?;
        let found = expression
            .search(&inputs.data)
            .map_err(|e| Error::invalid_input(format!("evaluating expression: {e}")))?;
        let result = serde_json::to_value(&*found).map_err(Error::failed)?;
        Ok(Outputs { result })
    }
}

hyyve_sdk::export_nodes!(Query);
