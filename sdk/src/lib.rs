//! Write hyyve node plugins in Rust.
//!
//! Implement [`Node`] for each node type, then call [`export_nodes!`] once:
//!
//! ```ignore
//! use hyyve_sdk::{Node, Context, Error, JsonSchema, Deserialize, Serialize};
//!
//! struct Shout;
//! #[derive(Deserialize, JsonSchema)] struct Config { suffix: String }
//! #[derive(Deserialize, JsonSchema)] struct Inputs { /// Text to shout.
//!                                                    text: String }
//! #[derive(Serialize, JsonSchema)] struct Outputs { text: String }
//!
//! impl Node for Shout {
//!     const NAME: &'static str = "shout";
//!     const TITLE: &'static str = "Shout";
//!     const DESCRIPTION: &'static str = "Upper-cases text.";
//!     type Config = Config; type Inputs = Inputs; type Outputs = Outputs;
//!     fn run(c: Config, i: Inputs, _: &Context) -> Result<Outputs, Error> {
//!         Ok(Outputs { text: i.text.to_uppercase() + &c.suffix })
//!     }
//! }
//! hyyve_sdk::export_nodes!(Shout);
//! ```
//!
//! Port and config schemas are derived from the Rust types (doc comments become
//! descriptions); wit-bindgen stays out of sight.

mod context;
mod describe;
mod error;
pub mod http;

pub use context::{Context, kv, log, secrets, usage};
pub use error::Error;
pub use schemars::JsonSchema;
pub use serde::{Deserialize, Serialize};
pub use serde_json::{Value, json};

/// Configuration of a node that has none.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Inputs of a node that has no input ports.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct NoInputs {}

/// One node type. Each top-level field of `Inputs` is an input port, each top-level field
/// of `Outputs` an output port; `Option` fields are optional ports. Leave an `Option`
/// output `None` (with `#[serde(skip_serializing_if = "Option::is_none")]`) to not emit
/// that port, which is how branching nodes route.
pub trait Node {
    /// Identifier, unique within the component (`kebab-case`).
    const NAME: &'static str;
    /// Human title for the palette.
    const TITLE: &'static str;
    /// What the node does.
    const DESCRIPTION: &'static str;
    /// Palette group.
    const CATEGORY: &'static str = "general";
    /// Configuration, set on the canvas.
    type Config: serde::de::DeserializeOwned + JsonSchema;
    /// Input ports.
    type Inputs: serde::de::DeserializeOwned + JsonSchema;
    /// Output ports.
    type Outputs: Serialize + JsonSchema;
    /// Execute once. Runs in a fresh instance: nothing persists between calls except
    /// through [`kv`].
    fn run(
        config: Self::Config,
        inputs: Self::Inputs,
        ctx: &Context,
    ) -> Result<Self::Outputs, Error>;
}

/// Exports the listed [`Node`] types as this component's node types.
#[macro_export]
macro_rules! export_nodes {
    ($($node:ty),+ $(,)?) => {
        #[doc(hidden)]
        pub struct __HyyveNodes;

        impl $crate::__private::Guest for __HyyveNodes {
            fn describe() -> ::std::vec::Vec<$crate::__private::NodeType> {
                ::std::vec![$($crate::__private::describe::<$node>()),+]
            }

            fn execute(
                node_type: ::std::string::String,
                config: ::std::string::String,
                inputs: ::std::string::String,
                ctx: $crate::__private::Invocation,
            ) -> ::std::result::Result<::std::string::String, $crate::__private::PluginError> {
                $(
                    if node_type == <$node as $crate::Node>::NAME {
                        return $crate::__private::execute::<$node>(&config, &inputs, ctx);
                    }
                )+
                ::std::result::Result::Err($crate::__private::unknown_node_type(&node_type))
            }
        }

        $crate::__private::export!(__HyyveNodes with_types_in $crate::__private::bindings);
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::describe::{describe, execute, unknown_node_type};
    pub use bindings::__export_node_plugin as export;
    pub use bindings::exports::hyyve::plugin::node::Guest;
    pub use bindings::hyyve::plugin::types::{Invocation, NodeType, PluginError};

    #[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hyyve:plugin/node-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_node_plugin",
            default_bindings_module: "hyyve_sdk::__private::bindings",
            generate_all,
        });
    }
}
