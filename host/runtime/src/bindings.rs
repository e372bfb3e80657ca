//! Host-side bindings of the `hyyve:plugin` worlds, generated from `wit/`.
//!
//! wasi:http and the WASI packages it depends on are mapped to wasmtime's own
//! implementations; only the hyyve interfaces are implemented here.

#![allow(missing_docs)]

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

pub(crate) use exports::hyyve::plugin::node as node_export;
pub(crate) use hyyve::plugin::{kv, log, secrets, types, usage};
