//! [`CountRefused`]: counts the calls answered before their handler ran
//! (no bearer token, too many calls at once, a request too large or
//! undecodable), which the `rpc` wrapper never sees.
//!
//! Outermost on the users service, it lends each call a [`Handled`] flag
//! through the request's extensions; `rpc` raises it when it counts the
//! call itself. A response whose flag is down was made before any handler:
//! its status is in its headers (a trailers-only response), counted here.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Instant,
};

use futures_util::future::BoxFuture;
use tonic::Code;
use tower::{Layer, Service};

use super::RpcMetrics;

/// The layer.
#[derive(Debug, Clone)]
pub struct CountRefused {
    metrics: RpcMetrics,
}

impl CountRefused {
    /// Counts into `metrics`, as `rpc` does.
    pub fn new(metrics: RpcMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for CountRefused {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// Raised by whoever counts the call (the `rpc` wrapper).
#[derive(Debug, Clone, Default)]
pub struct Handled(Arc<AtomicBool>);

impl Handled {
    /// The call is counted; the layer leaves it alone.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    fn is_marked(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A service behind [`CountRefused`].
#[derive(Debug, Clone)]
pub struct Counted<S> {
    inner: S,
    metrics: RpcMetrics,
}

/// Keeps the name the service is routed by.
impl<S: tonic::server::NamedService> tonic::server::NamedService for Counted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for Counted<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let method = method_name(request.uri().path());
        let handled = Handled::default();
        request.extensions_mut().insert(handled.clone());
        let response = self.inner.call(request);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let response = response.await?;
            if !handled.is_marked()
                && let Some(code) = trailers_only_status(response.headers())
            {
                metrics.record(method, code, started.elapsed());
            }
            Ok(response)
        })
    }
}

/// The users.v1 method a request path names, as `rpc` labels it; `unknown`
/// for a path that names none.
fn method_name(path: &str) -> &'static str {
    const METHODS: [&str; 7] = [
        "CreateUser",
        "BatchCreateUsers",
        "GetUser",
        "UpdateUser",
        "DeleteUser",
        "FindUsers",
        "ExportUsers",
    ];
    let method = path.rsplit('/').next().unwrap_or_default();
    METHODS
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("unknown")
}

/// The status of a response that carries it in its headers.
fn trailers_only_status(headers: &http::HeaderMap) -> Option<Code> {
    let status = headers.get("grpc-status")?;
    Some(Code::from_bytes(status.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_named_as_rpc_names_them() {
        assert_eq!(
            method_name("/users.v1.UserService/CreateUser"),
            "CreateUser"
        );
        assert_eq!(
            method_name("/users.v1.UserService/ExportUsers"),
            "ExportUsers"
        );
        assert_eq!(method_name("/users.v1.UserService/Nope"), "unknown");
        assert_eq!(method_name(""), "unknown");
    }
}
