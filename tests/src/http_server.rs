//! A loopback-only HTTP server for the outgoing-HTTP tests; the only address any test
//! request may reach. It runs on its own thread and runtime for the whole test process.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use wasmtime_wasi_http::io::TokioIo;

/// Size of the `/big` response body.
pub const BIG_BODY_BYTES: usize = 64 << 10;

/// The running server.
pub struct TestServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    hits: Hits,
}

/// Requests received, by path and query.
type Hits = Arc<Mutex<HashMap<String, u64>>>;

impl TestServer {
    /// Requests for `path_and_query` that reached the server (denied ones never do).
    /// Tests running at the same time use distinct queries.
    pub fn hits(&self, path_and_query: &str) -> u64 {
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.get(path_and_query).copied().unwrap_or(0)
    }
}

/// The process-wide server. Routes: `/ok` → `hello`; `/big` → 64 KiB; `/hang` → never
/// answers; anything else → the request body's length as text.
pub fn server() -> &'static TestServer {
    static SERVER: OnceLock<TestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let hits = Hits::default();
        let counter = hits.clone();
        let port = on_own_thread("test-http-server", move |listener| serve(listener, counter));
        TestServer { port, hits }
    })
}

/// Binds a loopback port and runs `serve` on it in a thread with its own runtime, so the
/// server outlives every test's runtime. Returns the port.
fn on_own_thread<F, Fut>(name: &str, serve: F) -> u16
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("local addr").port();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                serve(listener).await
            });
        })
        .expect("server thread");
    port
}

async fn serve(listener: tokio::net::TcpListener, hits: Hits) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let hits = hits.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let key = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let mut hits = hits.lock().unwrap_or_else(|p| p.into_inner());
                *hits.entry(key.to_owned()).or_default() += 1;
                respond(req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn respond(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let body = match path.as_str() {
        "/ok" => Bytes::from_static(b"hello"),
        "/big" => Bytes::from(vec![b'x'; BIG_BODY_BYTES]),
        "/hang" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Bytes::new()
        }
        _ => {
            let len = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().len())
                .unwrap_or(0);
            Bytes::from(len.to_string())
        }
    };
    Ok(Response::new(Full::new(body)))
}

/// The HTTPS test server: the same routes over TLS, with a self-signed certificate for
/// `api.test` only.
pub struct TlsTestServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The certificate (DER), to be trusted as an extra root by the test runtime.
    pub certificate: Vec<u8>,
}

/// The process-wide HTTPS server.
pub fn tls_server() -> &'static TlsTestServer {
    static SERVER: OnceLock<TlsTestServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let generated =
            rcgen::generate_simple_self_signed(vec!["api.test".to_string()]).expect("test cert");
        let certificate = generated.cert.der().to_vec();
        let key = rustls_key(generated.signing_key.serialize_der());
        let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![certificate.clone().into()], key)
        .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let port = on_own_thread("test-https-server", move |listener| async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that rejects the certificate ends the handshake here.
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service_fn(respond))
                        .await;
                });
            }
        });
        TlsTestServer { port, certificate }
    })
}

fn rustls_key(pkcs8: Vec<u8>) -> tokio_rustls::rustls::pki_types::PrivateKeyDer<'static> {
    tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(pkcs8.into())
}
