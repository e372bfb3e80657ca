//! Write hyyve node plugins in Rust.
//!
//! Implement [`Node`] for each node type, then call [`export_nodes!`] once:
//!
//! ```text
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
pub mod provider;
pub mod sse;

pub use context::{Context, kv, log, models, progress, secrets, usage};
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
    pub use provider_bindings::__export_provider_plugin as export_provider;
    pub use provider_bindings::exports::hyyve::plugin::provider::{
        Guest as ProviderGuest, ImageRequest, Media, SpeechRequest, TranscriptionRequest,
    };

    /// The error of a provider function the adapter does not offer.
    pub fn not_offered(what: &str) -> PluginError {
        PluginError::Failed(format!("{what} is not offered by this provider"))
    }

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

    /// The provider world; its imports are the node world's (one set of host wrappers).
    #[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
    pub mod provider_bindings {
        wit_bindgen::generate!({
            path: "../wit",
            world: "hyyve:plugin/provider-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_provider_plugin",
            default_bindings_module: "hyyve_sdk::__private::provider_bindings",
            with: {
                "hyyve:plugin/types@0.1.0": super::bindings::hyyve::plugin::types,
                "hyyve:plugin/llm@0.1.0": super::bindings::hyyve::plugin::llm,
                "hyyve:plugin/log@0.1.0": super::bindings::hyyve::plugin::log,
                "hyyve:plugin/kv@0.1.0": super::bindings::hyyve::plugin::kv,
                "hyyve:plugin/secrets@0.1.0": super::bindings::hyyve::plugin::secrets,
                "hyyve:plugin/usage@0.1.0": super::bindings::hyyve::plugin::usage,
                "hyyve:plugin/progress@0.1.0": super::bindings::hyyve::plugin::progress,
                "wasi:http/types@0.2.12": super::bindings::wasi::http::types,
                "wasi:http/outgoing-handler@0.2.12": super::bindings::wasi::http::outgoing_handler,
            },
            generate_all,
        });
    }
}
