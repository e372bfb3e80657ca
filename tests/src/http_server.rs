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
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let port = std_listener.local_addr().expect("local addr").port();
        let hits = Hits::default();
        let counter = hits.clone();
        std::thread::Builder::new()
            .name("test-http-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(serve(std_listener, counter));
            })
            .expect("server thread");
        TestServer { port, hits }
    })
}

async fn serve(listener: std::net::TcpListener, hits: Hits) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
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
