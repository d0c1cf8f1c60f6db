//! [`ApiError`]: every way a call can fail, and the one place where each
//! becomes a gRPC status.
//!
//! Every status carries a `google.rpc.ErrorInfo` (AIP-193) with a reason in
//! UPPER_SNAKE and the domain [`ERROR_DOMAIN`], so that programs branch on
//! the reason rather than on the message; invalid requests also carry a
//! `google.rpc.BadRequest` naming the field.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::db::DbError;
use crate::domain::Invalid;

/// `error` and its causes, outermost first, for logs and start-up errors
/// (one formatter for the client and the server).
pub use users_client::error::with_causes;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "users.v1";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request breaks the API's rules; the message is for the caller.
    #[error(transparent)]
    InvalidArgument(#[from] Invalid),
    /// No user has this id.
    #[error("no user has id {id}")]
    UserNotFound {
        /// The id asked for.
        id: i64,
    },
    /// The user created under a request id has been deleted since.
    #[error("user {id}, created by this request_id, has been deleted since")]
    CreatedUserDeleted {
        /// Its id.
        id: i64,
    },
    /// A conditional write found the user changed since its etag was read.
    #[error("user {id} has changed since this etag was read; read it again and retry")]
    EtagMismatch {
        /// The user's id.
        id: i64,
    },
    /// A request id came back with another request.
    #[error(
        "{field} {request_id} was already used to create a user named differently; use a new request_id for a new user"
    )]
    RequestIdReused {
        /// Where it was (`request_id`, `requests[3].request_id`).
        field: String,
        /// The id.
        request_id: String,
    },
    /// The call ran out of time (its caller's deadline, or the server's
    /// `--default-timeout`).
    #[error("the call did not finish before its deadline")]
    DeadlineExceeded,
    /// The call's transaction kept conflicting with concurrent ones, and
    /// ran out of retries or of time; the caller may try it again.
    #[error("transaction conflict: {0}")]
    Conflict(#[source] DbError),
    /// The call carries no valid bearer token.
    #[error("unauthenticated: {why}")]
    Unauthenticated {
        /// What was wrong, never the token itself.
        why: &'static str,
    },
    /// More calls at once than `--max-concurrent-calls`, for longer than
    /// `--max-call-wait`.
    #[error("the server is handling {max} calls already and none ended within {waited:?}")]
    TooManyCalls {
        /// The limit.
        max: usize,
        /// How long the call waited for a turn.
        waited: std::time::Duration,
    },
    /// A watch asked for events that are no longer kept.
    #[error(
        "the events after sequence {after} are no longer kept (kept: after {expired}); read the users again with ExportUsers, then watch from the sequence it gives"
    )]
    EventsExpired {
        /// The sequence asked for.
        after: i64,
        /// The events up to this one were deleted.
        expired: i64,
    },
    /// The server is shutting down: a watch ends; resume it elsewhere.
    #[error("the server is shutting down; resume the watch after sequence {after}")]
    ShuttingDown {
        /// The last sequence the watch sent (or started after).
        after: i64,
    },
    /// The database is down, unreachable, or too busy; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbError),
    /// A bug or a broken database; nothing the caller can fix.
    #[error("internal error: {0}")]
    Internal(#[source] DbError),
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_conflict() {
            Self::Conflict(error)
        } else if error.is_transient() {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// Database details go to the log, never to the caller.
impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let (code, reason, message, metadata) = match &error {
            ApiError::InvalidArgument(invalid) => {
                let mut details = ErrorDetails::with_error_info(
                    invalid.reason,
                    ERROR_DOMAIN,
                    HashMap::from([("field".to_owned(), invalid.field.clone())]),
                );
                details.add_bad_request_violation(&invalid.field, &invalid.description);
                return Status::with_error_details(
                    Code::InvalidArgument,
                    invalid.to_string(),
                    details,
                );
            }
            ApiError::UserNotFound { id } | ApiError::CreatedUserDeleted { id } => (
                Code::NotFound,
                "USER_NOT_FOUND",
                error.to_string(),
                HashMap::from([("id".to_owned(), id.to_string())]),
            ),
            ApiError::EtagMismatch { id } => (
                Code::Aborted,
                "ETAG_MISMATCH",
                error.to_string(),
                HashMap::from([("id".to_owned(), id.to_string())]),
            ),
            ApiError::RequestIdReused { field, request_id } => (
                Code::FailedPrecondition,
                "REQUEST_ID_REUSED",
                error.to_string(),
                HashMap::from([
                    ("field".to_owned(), field.clone()),
                    ("request_id".to_owned(), request_id.clone()),
                ]),
            ),
            ApiError::Unauthenticated { why } => (
                Code::Unauthenticated,
                "UNAUTHENTICATED",
                format!("{why}; this server requires a bearer token"),
                HashMap::new(),
            ),
            ApiError::TooManyCalls { max, .. } => (
                Code::ResourceExhausted,
                "TOO_MANY_CALLS",
                format!("{error}; retry with backoff"),
                HashMap::from([("max_concurrent_calls".to_owned(), max.to_string())]),
            ),
            ApiError::DeadlineExceeded => (
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
                "the call did not finish before its deadline; as with any gRPC call, \
                 it may or may not have been applied"
                    .to_owned(),
                HashMap::new(),
            ),
            ApiError::EventsExpired { after, expired } => (
                Code::OutOfRange,
                "EVENTS_EXPIRED",
                error.to_string(),
                HashMap::from([
                    ("after_sequence".to_owned(), after.to_string()),
                    ("expired_through".to_owned(), expired.to_string()),
                ]),
            ),
            ApiError::ShuttingDown { after } => (
                Code::Unavailable,
                "SHUTTING_DOWN",
                error.to_string(),
                HashMap::from([("after_sequence".to_owned(), after.to_string())]),
            ),
            ApiError::Conflict(source) => {
                tracing::warn!(error = %source, "transaction conflict, retries exhausted");
                (
                    Code::Aborted,
                    "TRANSACTION_CONFLICT",
                    "the call conflicted with concurrent calls and was not applied; try again"
                        .to_owned(),
                    HashMap::new(),
                )
            }
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                (
                    Code::Unavailable,
                    "DATABASE_UNAVAILABLE",
                    "the database is unavailable; try again later".to_owned(),
                    HashMap::new(),
                )
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                (
                    Code::Internal,
                    "INTERNAL",
                    "internal error".to_owned(),
                    HashMap::new(),
                )
            }
        };
        Status::with_error_details(
            code,
            message,
            ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_arguments_name_the_field_and_the_reason() {
        let status = Status::from(ApiError::from(Invalid::new(
            "requests[3].name",
            "INVALID_NAME",
            "must not be empty",
        )));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "requests[3].name must not be empty");
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.reason, "INVALID_NAME");
        assert_eq!(info.domain, ERROR_DOMAIN);
        let bad = status.get_details_bad_request().unwrap();
        assert_eq!(bad.field_violations.len(), 1);
        assert_eq!(bad.field_violations[0].field, "requests[3].name");
        assert_eq!(bad.field_violations[0].description, "must not be empty");
    }

    #[test]
    fn database_errors_say_nothing_of_the_database() {
        let error = DbError::Query(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new("relation \"users\" does not exist".to_owned()),
        ));
        let status = Status::from(ApiError::from(error));
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "internal error");
        assert_eq!(status.get_details_error_info().unwrap().reason, "INTERNAL");

        let status = Status::from(ApiError::from(DbError::Query(
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::SerializationFailure,
                Box::new("could not serialize access due to concurrent update".to_owned()),
            ),
        )));
        assert_eq!(status.code(), Code::Aborted);
        assert!(
            !status.message().contains("serialize"),
            "{}",
            status.message()
        );
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "TRANSACTION_CONFLICT"
        );

        let status = Status::from(ApiError::from(DbError::PoolTimedOut));
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "DATABASE_UNAVAILABLE"
        );
    }
}
