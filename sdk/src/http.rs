//! Outgoing HTTP through wasi:http. The host checks every request against the install's
//! capability grant; a request outside it fails with [`HttpError::Denied`].

use crate::__private::bindings::wasi::http::outgoing_handler;
use crate::__private::bindings::wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme,
};
use crate::__private::bindings::wasi::io::streams::StreamError;

/// A received response.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Headers in received order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The whole body.
    pub body: Vec<u8>,
}

/// Why a request produced no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not `http(s)://authority/path`.
    InvalidUrl(String),
    /// The host's capability policy refused the request.
    Denied,
    /// A header was refused (forbidden or malformed).
    InvalidHeader(String),
    /// Anything on the way: DNS, connection, TLS, protocol, body streaming.
    Transport(String),
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidUrl(m) => write!(f, "invalid URL: {m}"),
            Self::Denied => write!(f, "request denied by the host's capability policy"),
            Self::InvalidHeader(m) => write!(f, "invalid header: {m}"),
            Self::Transport(m) => write!(f, "transport error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<ErrorCode> for HttpError {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::HttpRequestDenied => Self::Denied,
            other => Self::Transport(format!("{other:?}")),
        }
    }
}

/// `GET url`.
pub fn get(url: &str) -> Result<Response, HttpError> {
    request("GET", url, &[], &[])
}

/// Sends one request and reads the whole response.
pub fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Response, HttpError> {
    let (status, headers, incoming) = send(method, url, headers, body)?;
    let mut body = Vec::new();
    read_body(&incoming, |chunk| {
        body.extend_from_slice(chunk);
        true
    })?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A response whose body is read as it arrives.
pub struct StreamingResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers in received order.
    pub headers: Vec<(String, Vec<u8>)>,
    incoming: IncomingBody,
}

impl StreamingResponse {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.headers, name)
    }

    /// Calls `chunk` with each piece of the body as it arrives, until the body ends or
    /// `chunk` returns `false`.
    pub fn read(self, chunk: impl FnMut(&[u8]) -> bool) -> Result<(), HttpError> {
        read_body(&self.incoming, chunk)
    }
}

impl Response {
    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<String> {
        header_of(&self.headers, name)
    }
}

fn header_of(headers: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

/// Sends one request; the body is read from the returned response as it arrives
/// (server-sent events, long downloads).
pub fn stream(
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<StreamingResponse, HttpError> {
    let (status, headers, incoming) = send(method, url, headers, body)?;
    Ok(StreamingResponse {
        status,
        headers,
        incoming,
    })
}

type Head = (u16, Vec<(String, Vec<u8>)>, IncomingBody);

fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<Head, HttpError> {
    let (scheme, authority, path) = split_url(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value)
            .map_err(|e| HttpError::InvalidHeader(format!("{name}: {e:?}")))?;
    }
    let request = OutgoingRequest::new(fields);
    let method = match method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_owned()),
    };
    let invalid = |what: &str| HttpError::InvalidUrl(format!("{what} rejected: {url}"));
    request
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| invalid("path"))?;

    let outgoing_body = request
        .body()
        .map_err(|()| HttpError::Transport("request body already taken".into()))?;
    let pending = outgoing_handler::handle(request, None)?;
    write_body(&outgoing_body, body)?;
    OutgoingBody::finish(outgoing_body, None)?;

    let response = loop {
        match pending.get() {
            Some(result) => {
                break result
                    .map_err(|()| HttpError::Transport("response already taken".into()))??;
            }
            None => pending.subscribe().block(),
        }
    };
    let headers = response.headers().entries().into_iter().collect::<Vec<_>>();
    let status = response.status();
    let incoming = response
        .consume()
        .map_err(|()| HttpError::Transport("response body already taken".into()))?;
    Ok((status, headers, incoming))
}

fn split_url(url: &str) -> Result<(Scheme, &str, &str), HttpError> {
    let (scheme, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (Scheme::Https, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (Scheme::Http, rest)
    } else {
        return Err(HttpError::InvalidUrl(format!(
            "{url}: scheme must be http or https"
        )));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(HttpError::InvalidUrl(format!("{url}: no host")));
    }
    Ok((scheme, authority, path))
}

fn write_body(outgoing: &OutgoingBody, body: &[u8]) -> Result<(), HttpError> {
    if body.is_empty() {
        return Ok(());
    }
    let stream = outgoing
        .write()
        .map_err(|()| HttpError::Transport("request body stream already taken".into()))?;
    // blocking_write_and_flush accepts at most 4096 bytes per call.
    for chunk in body.chunks(4096) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|e| HttpError::Transport(format!("writing request body: {e:?}")))?;
    }
    Ok(())
}

fn read_body(
    incoming: &IncomingBody,
    mut each: impl FnMut(&[u8]) -> bool,
) -> Result<(), HttpError> {
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Transport("response body stream already taken".into()))?;
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => {
                if !each(&chunk) {
                    return Ok(());
                }
            }
            Err(StreamError::Closed) => return Ok(()),
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(HttpError::Transport(e.to_debug_string()));
            }
        }
    }
}
