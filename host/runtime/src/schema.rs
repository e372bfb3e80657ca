//! A JSON Schema a plugin declared, compiled once when the plugin loads and shared by
//! every workflow that uses it.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

/// Where a value breaks a schema, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON Pointer into the value (`""` = the value itself).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A compiled JSON Schema. Dereferences to its JSON text as a [`Value`].
#[derive(Clone)]
pub struct Schema {
    json: Value,
    validator: Arc<jsonschema::Validator>,
}

impl Schema {
    /// Compiles `json`; the error says why it is not a usable schema.
    pub fn compile(json: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&json).map_err(|e| e.to_string())?;
        Ok(Self {
            json,
            validator: Arc::new(validator),
        })
    }

    /// The first way `value` breaks the schema, if any.
    pub fn violation(&self, value: &Value) -> Option<Violation> {
        self.validator.iter_errors(value).next().map(|e| Violation {
            field: e.instance_path().to_string(),
            message: e.to_string(),
        })
    }
}

impl Deref for Schema {
    type Target = Value;

    fn deref(&self) -> &Value {
        &self.json
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.json.fmt(f)
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.json.fmt(f)
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
    }
}

impl Serialize for Schema {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}
