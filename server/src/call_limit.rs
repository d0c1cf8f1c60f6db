//! [`CallLimit`]: at most so many calls at once; a call beyond waits
//! briefly for a turn, then fails with RESOURCE_EXHAUSTED.
//!
//! Without a bound, a burst queues without end: in the connection pool,
//! and in memory; every call slows down, until all of them miss their
//! deadlines. Refusing the excess at once keeps the calls admitted fast,
//! and tells callers to back off.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures_util::future::BoxFuture;
use tokio::sync::Semaphore;
use tonic::Status;
use tower::{Layer, Service};

use crate::error::ApiError;

/// The layer: every call through it shares the same turns.
#[derive(Debug, Clone)]
pub struct CallLimit {
    turns: Arc<Semaphore>,
    /// How long a call beyond the limit waits for a turn.
    wait: Duration,
    max: usize,
}

impl CallLimit {
    /// `max` calls at once; the next waits up to `wait`.
    pub fn new(max: usize, wait: Duration) -> Self {
        Self {
            turns: Arc::new(Semaphore::new(max)),
            wait,
            max,
        }
    }
}

impl<S> Layer<S> for CallLimit {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            limit: self.clone(),
        }
    }
}

/// Keeps the name the service is routed by.
impl<S: tonic::server::NamedService> tonic::server::NamedService for Limited<S> {
    const NAME: &'static str = S::NAME;
}

/// A service behind a [`CallLimit`].
#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    limit: CallLimit,
}

impl<S, Request, B> Service<Request> for Limited<S>
where
    S: Service<Request, Response = http::Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    Request: Send + 'static,
    B: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        // Readiness is decided per call, in `call`, by the turns.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is ready (tonic's services always are); keep `self`'s
        // for the next call, as tower's docs recommend.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.limit.clone();
        Box::pin(async move {
            // A free turn is taken at once, without arming a timer.
            let turn = match Arc::clone(&limit.turns).try_acquire_owned() {
                Ok(turn) => Ok(Ok(turn)),
                Err(_) => {
                    tokio::time::timeout(limit.wait, Arc::clone(&limit.turns).acquire_owned()).await
                }
            };
            let Ok(Ok(_turn)) = turn else {
                let status = Status::from(ApiError::TooManyCalls {
                    max: limit.max,
                    waited: limit.wait,
                });
                return Ok(status.into_http());
            };
            // Held until the response starts: for a stream, until its
            // first message is ready.
            inner.call(request).await
        })
    }
}
