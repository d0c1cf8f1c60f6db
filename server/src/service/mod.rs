//! The gRPC services. Each RPC handler parses its request into
//! [`domain`](crate::domain) types, runs one unit of work in one
//! transaction, and converts the result back to wire types.

mod consistency;
mod deadline;
pub(crate) mod request_id;
mod users;

use std::{future::Future, time::Instant};

use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

pub use deadline::stamp_arrival;
pub use users::{UsersService, forget_expired_request_ids};

use self::request_id::{Origin, RequestId};
use crate::db::{replicas, retry};
use crate::metrics::{Handled, RpcMetrics};

/// Runs one RPC: hands the request's message to `handler`, within the
/// call's deadline (the caller's, or `default_timeout`: past it the call
/// ends DEADLINE_EXCEEDED, and retries never wait past it), maps its error to a
/// status (the one place that happens, [`ApiError`](crate::error::ApiError)),
/// logs one line with the status code and the latency, and counts the call
/// in `metrics`.
///
/// Every log line of the call, the database's included, is inside a `call`
/// span that names the method and the call's [`RequestId`], which goes back
/// to the caller as `x-request-id`, with the response or the error.
///
/// The call's reads see at least what the caller's consistency token says
/// it wrote; a call that wrote answers with a token of its own
/// ([`consistency`]).
async fn rpc<M, T, Fut>(
    metrics: &RpcMetrics,
    default_timeout: std::time::Duration,
    method: &'static str,
    request: Request<M>,
    handler: impl FnOnce(M) -> Fut,
) -> Result<Response<T>, Status>
where
    Fut: Future<Output = Result<T, crate::error::ApiError>>,
{
    let started = Instant::now();
    if let Some(handled) = request.extensions().get::<Handled>() {
        handled.mark();
    }
    let deadline = deadline::call_deadline(&request, default_timeout);
    let (request_id, origin) = RequestId::of_call(&request);
    let read_after = consistency::of_call(request.metadata());
    let mut committed = None;
    let span = tracing::info_span!("call", method, request_id = request_id.as_str());
    let mut result = async {
        if origin == Origin::Replaced {
            tracing::warn!(
                "x-request-id replaced: not 1 to {} printable ASCII characters",
                request_id::MAX_LEN
            );
        }
        let outcome = match read_after {
            Err(invalid) => Err(invalid.into()),
            Ok(read_after) => {
                let (outcome, position) = replicas::in_call(read_after, async {
                    // Called inside the span and the call's scope: a handler
                    // that returns a stream (ExportUsers) takes both along to
                    // the stream's own database work.
                    // On the heap: the handler's future (a transaction's
                    // state) is tens of KiB, and each layer wrapping it
                    // below, and every future around this one, would copy
                    // it whole when built (callgrind: 40 % of a FindUsers'
                    // instructions and half of a CreateUser's were memcpy).
                    let work = request_id::in_call(
                        request_id.clone(),
                        Box::pin(handler(request.into_inner())),
                    );
                    // Past the deadline the handler is dropped, its
                    // transaction with it (rolled back, its statement
                    // cancelled: `db`).
                    tokio::time::timeout_at(deadline, retry::with_deadline(Some(deadline), work))
                        .await
                        .unwrap_or(Err(crate::error::ApiError::DeadlineExceeded))
                })
                .await;
                committed = position;
                outcome
            }
        };
        let result = outcome.map(Response::new).map_err(Status::from);
        let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        let latency = started.elapsed();
        metrics.record(method, code, latency);
        tracing::info!(
            code = ?code,
            latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            "rpc"
        );
        result
    }
    .instrument(span)
    .await;
    match &mut result {
        Ok(response) => {
            request_id.echo(response.metadata_mut());
            if let Some(position) = committed {
                consistency::send(position, response.metadata_mut());
            }
        }
        Err(status) => request_id.echo(status.metadata_mut()),
    }
    result
}
