//! Host-side bindings of the `hyyve:plugin` worlds, generated from `wit/`.
//!
//! wasi:http and the WASI packages it depends on are mapped to wasmtime's own
//! implementations; only the hyyve interfaces are implemented here. The node world
//! imports every hyyve interface; the provider and channel worlds reuse its import
//! bindings, so each host interface has one implementation whatever the plugin's kind.

#![allow(missing_docs)]

pub(crate) mod node {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "hyyve:plugin/node-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

pub(crate) mod provider {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "hyyve:plugin/provider-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "hyyve:plugin/types": super::node::hyyve::plugin::types,
            "hyyve:plugin/llm": super::node::hyyve::plugin::llm,
            "hyyve:plugin/log": super::node::hyyve::plugin::log,
            "hyyve:plugin/kv": super::node::hyyve::plugin::kv,
            "hyyve:plugin/secrets": super::node::hyyve::plugin::secrets,
            "hyyve:plugin/usage": super::node::hyyve::plugin::usage,
            "hyyve:plugin/progress": super::node::hyyve::plugin::progress,
        },
    });
}

pub(crate) mod channel {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "hyyve:plugin/channel-plugin",
        imports: { default: async | trappable },
        exports: { default: async },
        require_store_data_send: true,
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "hyyve:plugin/types": super::node::hyyve::plugin::types,
            "hyyve:plugin/log": super::node::hyyve::plugin::log,
            "hyyve:plugin/kv": super::node::hyyve::plugin::kv,
            "hyyve:plugin/secrets": super::node::hyyve::plugin::secrets,
            "hyyve:plugin/usage": super::node::hyyve::plugin::usage,
            "hyyve:plugin/progress": super::node::hyyve::plugin::progress,
        },
    });
}

pub(crate) use channel::ChannelPluginPre;
pub(crate) use channel::exports::hyyve::plugin::channel as channel_export;
pub(crate) use node::NodePluginPre;
pub(crate) use node::exports::hyyve::plugin::node as node_export;
pub(crate) use node::hyyve::plugin::{kv, llm, log, models, progress, secrets, types, usage};
pub(crate) use provider::ProviderPluginPre;
pub(crate) use provider::exports::hyyve::plugin::provider as provider_export;
