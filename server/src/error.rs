//! [`ApiError`]: every way a call can fail, and the one place where each
//! becomes a gRPC status.

use tonic::Status;

use crate::db::DbError;
use crate::domain::Invalid;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request breaks the API's rules; the message is for the caller.
    #[error(transparent)]
    InvalidArgument(#[from] Invalid),
    /// The database is down, unreachable, or too busy; worth retrying.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbError),
    /// A bug or a broken database; nothing the caller can fix.
    #[error("internal error: {0}")]
    Internal(#[source] DbError),
}

impl From<DbError> for ApiError {
    fn from(error: DbError) -> Self {
        if error.is_transient() {
            Self::Unavailable(error)
        } else {
            Self::Internal(error)
        }
    }
}

/// Database details go to the log, never to the caller.
impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::InvalidArgument(Invalid(message)) => Status::invalid_argument(message),
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "database unavailable");
                Status::unavailable("the database is unavailable; try again later")
            }
            ApiError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                Status::internal("internal error")
            }
        }
    }
}
