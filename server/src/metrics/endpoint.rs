//! [`MetricsEndpoint`]: `GET /metrics` over HTTP/1.1, on a port of its own.

use std::{convert::Infallible, io, net::SocketAddr, sync::Arc, time::Duration};

use http_body_util::Full;
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::{encoding::prometheus_text, registry::Registry};
use tokio::{net::TcpListener, task::JoinSet};

/// The metrics listener, bound at start-up (so that an unusable address is
/// a start-up error), serving once [`serve`](Self::serve) runs.
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
}

/// How long a scraper may take to send its request's headers: a client
/// that connects and says nothing does not hold a connection for ever.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

impl MetricsEndpoint {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(addr).await?,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves `registry` until the returned future is dropped, which also
    /// closes the connections it opened.
    pub async fn serve(self, registry: Arc<Registry>) {
        let mut connections = JoinSet::new();
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, most likely: wait, as the
                    // gRPC listener does, rather than spin.
                    tracing::warn!(%error, "metrics endpoint cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            while connections.try_join_next().is_some() {}
            let registry = Arc::clone(&registry);
            connections.spawn(async move {
                let scrape = service_fn(|request| {
                    std::future::ready(Ok::<_, Infallible>(respond(&registry, &request)))
                });
                let served = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), scrape)
                    .await;
                if let Err(error) = served {
                    tracing::debug!(%error, "metrics connection");
                }
            });
        }
    }
}

/// The metrics at `/metrics` (GET or HEAD); 404 elsewhere.
fn respond(registry: &Registry, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: metrics are at /metrics\n",
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    let mut text = String::new();
    if let Err(error) = prometheus_text::encode(&mut text, registry) {
        tracing::error!(%error, "cannot encode the metrics");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode the metrics\n",
        );
    }
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}
