//! Outgoing HTTP through wasi:http. Every request passes the host's send hook; until an
//! install carries an HTTP grant (capability policy), every request is denied there.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// The per-invocation HTTP policy: counts attempts and decides each request.
#[derive(Default)]
pub(crate) struct HttpPolicy {
    /// Requests the guest tried to send, allowed or not.
    pub(crate) attempts: u64,
    /// Requests refused by policy.
    pub(crate) denied: u64,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        self.attempts += 1;
        self.denied += 1;
        tracing::info!(
            uri = %request.uri(),
            method = %request.method(),
            "outgoing HTTP denied: no HTTP capability granted"
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}
