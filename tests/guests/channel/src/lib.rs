//! A minimal channel: it describes itself, accepts every webhook, parses none, and
//! refuses to send. Enough for the host to load, validate and inspect the channel world.

#[allow(missing_docs, unsafe_op_in_unsafe_fn, clippy::all)]
mod bindings {
    wit_bindgen::generate!({ path: "../../../wit", world: "hyyve:plugin/channel-plugin", generate_all });
}

use bindings::exports::hyyve::plugin::channel::{
    ChannelInfo, Delivery, Guest, InboundMessage, OutboundMessage, Verification, WebhookRequest,
};
use bindings::hyyve::plugin::types::PluginError;

struct Channel;

impl Guest for Channel {
    fn describe() -> ChannelInfo {
        ChannelInfo {
            name: "probe".into(),
            title: "Probe channel".into(),
            description: "Accepts every webhook; parses and sends nothing.".into(),
            config_schema: r#"{"type":"object"}"#.into(),
        }
    }

    fn verify(_: String, _: WebhookRequest) -> Result<Verification, PluginError> {
        Ok(Verification::Accepted)
    }

    fn parse_inbound(_: String, _: WebhookRequest) -> Result<Vec<InboundMessage>, PluginError> {
        Ok(Vec::new())
    }

    fn send(_: String, _: OutboundMessage) -> Result<Delivery, PluginError> {
        Err(PluginError::Failed(
            "the probe channel sends nothing".into(),
        ))
    }
}

bindings::export!(Channel with_types_in bindings);
