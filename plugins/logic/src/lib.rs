//! `condition`: routes its input to the `true` or the `false` output. Nodes wired to the
//! output that is not emitted are skipped.

use hyyve_sdk::{Context, Deserialize, Error, JsonSchema, Node, Serialize, Value};

/// How the selected value is compared.
#[derive(Deserialize, JsonSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// Equal to `value` (JSON equality).
    Equals,
    /// Not equal to `value`.
    NotEquals,
    /// A number greater than `value`.
    GreaterThan,
    /// A number less than `value`.
    LessThan,
    /// A string containing `value`, or an array containing an element equal to it.
    Contains,
    /// Present and not null.
    Exists,
    /// Truthy: not null, false, 0, "", [] or {}.
    Truthy,
}

/// Configuration of `condition`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// JSON Pointer into the input selecting the value to test (`""` = the whole input).
    #[serde(default)]
    pub pointer: String,
    /// The comparison.
    pub operator: Operator,
    /// Right-hand side, for operators that take one.
    #[serde(default)]
    pub value: Value,
}

/// Inputs of `condition`.
#[derive(Deserialize, JsonSchema)]
pub struct Inputs {
    /// The value to test; passed through to the chosen output.
    pub value: Value,
}

/// Outputs of `condition`: exactly one is emitted.
#[derive(Serialize, JsonSchema)]
pub struct Outputs {
    /// The input, when the condition holds.
    #[serde(rename = "true", skip_serializing_if = "Option::is_none")]
    pub when_true: Option<Value>,
    /// The input, when it does not.
    #[serde(rename = "false", skip_serializing_if = "Option::is_none")]
    pub when_false: Option<Value>,
}

/// The node.
pub struct Condition;

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare_numbers(
    left: Option<&Value>,
    right: &Value,
    op: fn(f64, f64) -> bool,
) -> Result<bool, Error> {
    match (left.and_then(Value::as_f64), right.as_f64()) {
        (Some(l), Some(r)) => Ok(op(l, r)),
        _ => Err(Error::invalid_input(
            "numeric comparison needs numbers on both sides",
        )),
    }
}

fn holds(config: &Config, selected: Option<&Value>) -> Result<bool, Error> {
    Ok(match config.operator {
        Operator::Equals => selected == Some(&config.value),
        Operator::NotEquals => selected != Some(&config.value),
        Operator::GreaterThan => compare_numbers(selected, &config.value, |l, r| l > r)?,
        Operator::LessThan => compare_numbers(selected, &config.value, |l, r| l < r)?,
        Operator::Contains => match (selected, &config.value) {
            (Some(Value::String(s)), Value::String(needle)) => s.contains(needle.as_str()),
            (Some(Value::Array(items)), needle) => items.contains(needle),
            _ => false,
        },
        Operator::Exists => selected.is_some_and(|v| !v.is_null()),
        Operator::Truthy => selected.is_some_and(truthy),
    })
}

impl Node for Condition {
    const NAME: &'static str = "condition";
    const TITLE: &'static str = "Condition";
    const DESCRIPTION: &'static str =
        "Tests a value and routes the input to the `true` or `false` output.";
    const CATEGORY: &'static str = "logic";
    type Config = Config;
    type Inputs = Inputs;
    type Outputs = Outputs;

    fn run(config: Config, inputs: Inputs, _ctx: &Context) -> Result<Outputs, Error> {
        let selected = inputs.value.pointer(&config.pointer);
        let outcome = holds(&config, selected)?;
        Ok(if outcome {
            Outputs {
                when_true: Some(inputs.value),
                when_false: None,
            }
        } else {
            Outputs {
                when_true: None,
                when_false: Some(inputs.value),
            }
        })
    }
}

hyyve_sdk::export_nodes!(Condition);
