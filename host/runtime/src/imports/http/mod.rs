//! Outgoing HTTP through wasi:http. Every request passes the host's send hook, which
//! checks it against the install's grant (destination, method, count), then the sender
//! checks the resolved addresses and counts body bytes against the caps.

mod resolve;
mod send;
mod tls;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::HeaderName;
use wasmtime_wasi_http::{
    DEFAULT_FORBIDDEN_HEADERS, Error, ForbiddenHeaderFilter, RequestOptions, WasiBody,
    WasiHttpHooks,
};

use crate::denial::{DenialKind, DenialLog};
use hyyve_policy::{Grant, Scheme};

pub use resolve::{ResolveFuture, Resolver, StaticResolver, SystemResolver};
pub(crate) use send::HttpUsage;
use send::{IoFuture, SendContext, Target};
pub(crate) use tls::client_config;

/// The per-invocation HTTP policy.
pub(crate) struct HttpPolicy {
    pub(crate) grant: Arc<Grant>,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) denials: DenialLog,
    pub(crate) usage: Arc<HttpUsage>,
    /// The runtime's TLS client configuration.
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// Headers a plugin may not set, beyond wasmtime's defaults (hop-by-hop, `host`): ones
/// that would let it pose as a proxy or forge the client's address upstream.
const EXTRA_FORBIDDEN_HEADERS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

type ResponseFuture =
    Box<dyn Future<Output = Result<(http::Response<WasiBody>, IoFuture), Error>> + Send>;

impl HttpPolicy {
    /// Checks destination and request count; `Err` carries the denial already recorded.
    fn admit(&mut self, request: &http::Request<WasiBody>) -> Result<Target, Error> {
        self.usage.attempts.fetch_add(1, Ordering::Relaxed);
        let uri = request.uri();
        let method = request.method().as_str();
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            other => {
                self.denials.record(
                    DenialKind::HttpDestinationDenied,
                    format!("scheme {other:?} is not http or https"),
                );
                return Err(Error::HttpRequestDenied);
            }
        };
        let host = uri.host().unwrap_or_default().to_owned();
        let port = uri.port_u16().unwrap_or(scheme.default_port());
        if let Err(why) = self
            .grant
            .http
            .check_destination(scheme, &host, port, method)
        {
            self.denials.record(DenialKind::HttpDestinationDenied, why);
            return Err(Error::HttpRequestDenied);
        }
        let count = self.usage.requests.load(Ordering::Relaxed) + 1;
        if count > self.grant.http.max_requests {
            self.denials.record(
                DenialKind::HttpRequestLimit,
                format!(
                    "request {count} exceeds the grant of {} requests per invocation",
                    self.grant.http.max_requests
                ),
            );
            return Err(Error::HttpRequestDenied);
        }
        self.usage.requests.store(count, Ordering::Relaxed);
        Ok(Target { scheme, host, port })
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn forbidden_header_filter(&mut self) -> ForbiddenHeaderFilter {
        Arc::new(|name: &HeaderName| {
            DEFAULT_FORBIDDEN_HEADERS.contains(name)
                || EXTRA_FORBIDDEN_HEADERS.contains(&name.as_str())
        })
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _response_done: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let target = match self.admit(&request) {
            Ok(target) => target,
            Err(e) => return Box::new(async move { Err(e) }),
        };
        let cx = SendContext {
            grant: self.grant.clone(),
            resolver: self.resolver.clone(),
            denials: self.denials.clone(),
            usage: self.usage.clone(),
            tls: self.tls.clone(),
        };
        Box::new(send::send(request, options, target, cx))
    }

    // An outgoing body that is written but never sent keeps its buffer for the rest of
    // the invocation: one small chunk, so each body handle stays within
    // HOST_ENTRY_MAX_BYTES.
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        1
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        crate::limits::OUTGOING_BODY_CHUNK_BYTES
    }
}
