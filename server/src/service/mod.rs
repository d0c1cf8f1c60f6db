//! The gRPC services. Each RPC handler parses its request into
//! [`domain`](crate::domain) types, runs one unit of work in one
//! transaction, and converts the result back to wire types.

mod deadline;
mod users;

use std::{future::Future, time::Instant};

use tonic::{Code, Request, Response, Status};

pub use users::{UsersService, forget_expired_request_ids};

use crate::db::retry;

/// Runs one RPC: hands the request's message to `handler`, within the
/// caller's deadline (retries never wait past it), maps its error to a
/// status (the one place that happens, [`ApiError`](crate::error::ApiError)),
/// and logs one line with the method, the status code and the latency.
async fn rpc<M, T, Fut>(
    method: &'static str,
    request: Request<M>,
    handler: impl FnOnce(M) -> Fut,
) -> Result<Response<T>, Status>
where
    Fut: Future<Output = Result<T, crate::error::ApiError>>,
{
    let started = Instant::now();
    let deadline = deadline::call_deadline(request.metadata());
    let result = retry::with_deadline(deadline, handler(request.into_inner()))
        .await
        .map(Response::new)
        .map_err(Status::from);
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    tracing::info!(
        method,
        code = ?code,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "rpc"
    );
    result
}
