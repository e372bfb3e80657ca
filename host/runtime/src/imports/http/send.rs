//! Sending one request that the policy allowed: resolve, check every address, connect to
//! a checked one, TLS by the requested name, HTTP/1.1, bodies counted against the grant.

use std::future::{Future, poll_fn};
use std::net::{IpAddr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::resolve::Resolver;
use crate::denial::{DenialKind, DenialLog};
use hyyve_policy::Scheme;

/// Bytes and requests of one invocation, shared between the hook and the body wrappers.
#[derive(Default)]
pub(crate) struct HttpUsage {
    /// Requests the guest tried to send, admitted or not.
    pub(crate) attempts: AtomicU64,
    /// Requests admitted by the policy.
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
}

/// Everything a send needs, owned, so the future outlives the store borrow.
pub(crate) struct SendContext {
    pub(crate) grant: Arc<hyyve_policy::Grant>,
    pub(crate) resolver: Arc<dyn Resolver>,
    pub(crate) denials: DenialLog,
    pub(crate) usage: Arc<HttpUsage>,
    pub(crate) tls: Arc<rustls::ClientConfig>,
}

/// Where the request goes, already checked against the grant's rules.
pub(crate) struct Target {
    pub(crate) scheme: Scheme,
    pub(crate) host: String,
    pub(crate) port: u16,
}

/// Connect timeout when the guest sets none; the invocation deadline bounds it anyway.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

pub(crate) async fn send(
    mut request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
    target: Target,
    cx: SendContext,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let http = &cx.grant.http;
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let addrs = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => cx
            .resolver
            .resolve(host)
            .await
            .map_err(|e| Error::DnsError {
                rcode: Some(e.to_string()),
                info_code: None,
            })?,
    };
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    // Every address must pass: a name answering both a public and a private address is
    // exactly what a rebinding attack looks like.
    for ip in &addrs {
        if let Err(why) = http.check_address(host, *ip) {
            cx.denials.record(DenialKind::HttpAddressDenied, why);
            return Err(Error::DestinationIpProhibited);
        }
    }
    let connect_timeout = options
        .and_then(|o| o.connect_timeout)
        .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let tcp = connect(&addrs, target.port, connect_timeout).await?;
    let io: Box<dyn Stream> = match target.scheme {
        Scheme::Http => Box::new(tcp),
        Scheme::Https => Box::new(tls(&cx.tls, host, tcp).await?),
    };
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await?;

    // Origin-form on the wire; scheme and authority stay in the Host header.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
    let limit = http.max_request_bytes;
    let request = request.map(|body| {
        Counted {
            inner: body,
            counter: cx.usage.clone(),
            sent: true,
            limit,
            denials: cx.denials.clone(),
        }
        .boxed_unsync()
    });

    let mut send = pin!(sender.send_request(request));
    let mut conn = Some(conn);
    // Drive the connection while waiting for the response head.
    let response = poll_fn(|task| match send.as_mut().poll(task) {
        Poll::Ready(r) => Poll::Ready(r.map_err(Error::from)),
        Poll::Pending => {
            let Some(c) = conn.as_mut() else {
                return Poll::Pending;
            };
            let done = ready!(Pin::new(c).poll(task));
            conn = None;
            match done {
                Ok(()) => send.as_mut().poll(task).map_err(Error::from),
                Err(e) => Poll::Ready(Err(Error::from(e))),
            }
        }
    })
    .await?;

    let limit = http.max_response_bytes;
    let received = cx.usage.bytes_received.load(Ordering::Relaxed);
    if let Some(length) = content_length(&response)
        && received.saturating_add(length) > limit
    {
        cx.denials.record(
            DenialKind::HttpResponseBytes,
            format!(
                "response of {length} bytes from {} exceeds the {limit}-byte response cap",
                target.host
            ),
        );
        return Err(Error::HttpResponseBodySize(Some(limit)));
    }
    let usage = cx.usage.clone();
    let denials = cx.denials.clone();
    let response = response.map(move |body| {
        Counted {
            inner: body.map_err(Error::from),
            counter: usage,
            sent: false,
            limit,
            denials,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        match conn {
            Some(conn) => conn.await.map_err(Error::from),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

async fn connect(addrs: &[IpAddr], port: u16, timeout: Duration) -> Result<TcpStream, Error> {
    let mut last = Error::ConnectionRefused;
    for ip in addrs {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Error::Connect(e),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    Err(last)
}

async fn tls(
    config: &Arc<rustls::ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Error> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(Error::Tls)
}

fn content_length<B>(response: &http::Response<B>) -> Option<u64> {
    response
        .headers()
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A body whose bytes count against the invocation's cap for its direction.
struct Counted<B> {
    inner: B,
    counter: Arc<HttpUsage>,
    /// Request body (sent) or response body (received).
    sent: bool,
    limit: u64,
    denials: DenialLog,
}

impl<B> Body for Counted<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        task: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(task));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
        {
            let counter = if self.sent {
                &self.counter.bytes_sent
            } else {
                &self.counter.bytes_received
            };
            let total = counter.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if total > self.limit {
                let (kind, what, error) = if self.sent {
                    (
                        DenialKind::HttpRequestBytes,
                        "request",
                        Error::HttpRequestBodySize(Some(self.limit)),
                    )
                } else {
                    (
                        DenialKind::HttpResponseBytes,
                        "response",
                        Error::HttpResponseBodySize(Some(self.limit)),
                    )
                };
                self.denials.record(
                    kind,
                    format!("{what} bodies passed the {}-byte cap", self.limit),
                );
                return Poll::Ready(Some(Err(error)));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
