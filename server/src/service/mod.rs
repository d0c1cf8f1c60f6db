//! The gRPC services. Each RPC handler parses its request into
//! [`domain`](crate::domain) types, runs one unit of work in one
//! transaction, and converts the result back to wire types.

mod users;

use std::{future::Future, time::Instant};

use tonic::{Code, Response, Status};

pub use users::{UsersService, forget_expired_request_ids};

/// Runs one RPC's body: maps its error to a status (the one place that
/// happens, [`ApiError`](crate::error::ApiError)) and logs one line with the
/// method, the status code and the latency.
async fn rpc<T>(
    method: &'static str,
    body: impl Future<Output = Result<T, crate::error::ApiError>>,
) -> Result<Response<T>, Status> {
    let started = Instant::now();
    let result = body.await.map(Response::new).map_err(Status::from);
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    tracing::info!(
        method,
        code = ?code,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "rpc"
    );
    result
}
