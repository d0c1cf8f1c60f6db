//! [`ClientError`]: what went wrong in a call, by what the caller can do about
//! it.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::retry;

/// Why a call failed.
///
/// The variants are the statuses the users service returns on purpose; any
/// other status lands in [`ClientError::Other`]. Each carries the server's
/// [`ServerError`]: its message, meant for humans, and its reason (such as
/// `INVALID_NAME` or `ETAG_MISMATCH`) and bad fields, meant for programs.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request was malformed (an invalid name, a negative page size, a
    /// page token that the server did not issue). Retrying won't help; see
    /// [`ServerError::field_violations`] for which fields.
    #[error("invalid argument: {0}")]
    InvalidArgument(ServerError),
    /// The thing the request refers to does not exist.
    #[error("not found: {0}")]
    NotFound(ServerError),
    /// The thing the request would create exists already.
    #[error("already exists: {0}")]
    AlreadyExists(ServerError),
    /// The system is not in a state that allows the call (such as a
    /// request id reused for another user).
    #[error("failed precondition: {0}")]
    FailedPrecondition(ServerError),
    /// A conditional write found the user changed since its etag was read
    /// (`ETAG_MISMATCH`: read it again, then decide), or the call's
    /// transaction kept losing conflicts with concurrent ones until its
    /// retries ran out (`TRANSACTION_CONFLICT`: nothing was applied; send it
    /// again).
    #[error("aborted: {0}")]
    Aborted(ServerError),
    /// The service or its database can't be reached right now, or the
    /// connection broke before the answer came (then the call may have
    /// been applied); worth retrying later (creates from this client carry
    /// a request id, so a retried create never stores a second user). The
    /// client has already retried as its [`RetryPolicy`](crate::RetryPolicy)
    /// allows.
    #[error("unavailable: {0}")]
    Unavailable(ServerError),
    /// The call took longer than its deadline.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(ServerError),
    /// A watch asked for change events that are no longer kept
    /// (`EVENTS_EXPIRED`): read the users again with `export_users`, then
    /// watch after the sequence it gives.
    #[error("out of range: {0}")]
    OutOfRange(ServerError),
    /// Any other status, such as INTERNAL.
    #[error("{code:?}: {error}")]
    Other {
        /// The gRPC status code.
        code: Code,
        /// What the server said.
        error: ServerError,
    },
    /// The endpoint URL is invalid or the first connection failed (TLS
    /// included: a server certificate not trusted, a client certificate
    /// refused).
    #[error("cannot connect to {endpoint}: {}", with_causes(source))]
    Connect {
        /// The endpoint as given to [`UsersClient::connect`](crate::UsersClient::connect)
        /// or [`UsersClient::builder`](crate::UsersClient::builder).
        endpoint: String,
        /// What the transport reported.
        #[source]
        source: tonic::transport::Error,
    },
    /// A TLS file given to [`ClientBuilder`](crate::ClientBuilder) cannot be
    /// read, or holds no PEM certificate (or private key).
    #[error("cannot use TLS file {}: {source}", path.display())]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why: the OS's error, or `InvalidData` for what is in it.
        #[source]
        source: std::io::Error,
    },
    /// TLS files were given for an endpoint that is not `https://`.
    #[error("TLS files were given for {endpoint}, which is not https://")]
    TlsNeedsHttps {
        /// The endpoint as given to [`UsersClient::builder`](crate::UsersClient::builder).
        endpoint: String,
    },
    /// The bearer token given to
    /// [`ClientBuilder::bearer_token`](crate::ClientBuilder::bearer_token)
    /// holds characters that cannot be sent in a header (control
    /// characters, non-ASCII).
    #[error("the bearer token cannot be sent: it holds characters not allowed in a header")]
    InvalidBearerToken,
    /// The server answered with a message that breaks the API contract.
    #[error("malformed response: {0}")]
    MalformedResponse(&'static str),
}

/// What the server said about a failed call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerError {
    /// For humans: what went wrong and what to do.
    pub message: String,
    /// For programs: why, in UPPER_SNAKE (`google.rpc.ErrorInfo.reason`),
    /// such as `INVALID_NAME`, `USER_NOT_FOUND`, `ETAG_MISMATCH`. Empty if
    /// the status carried none (it came from a proxy, say).
    pub reason: String,
    /// For invalid requests: each bad field (`requests[3].name`) and what is
    /// wrong with it (`google.rpc.BadRequest`).
    pub field_violations: Vec<FieldViolation>,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// One bad field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field's path, such as `name` or `requests[3].request_id`.
    pub field: String,
    /// What is wrong with it.
    pub description: String,
}

impl ClientError {
    /// The gRPC status code behind this error, if the server (or the channel)
    /// produced one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::InvalidArgument(_) => Some(Code::InvalidArgument),
            Self::NotFound(_) => Some(Code::NotFound),
            Self::AlreadyExists(_) => Some(Code::AlreadyExists),
            Self::FailedPrecondition(_) => Some(Code::FailedPrecondition),
            Self::Aborted(_) => Some(Code::Aborted),
            Self::Unavailable(_) => Some(Code::Unavailable),
            Self::DeadlineExceeded(_) => Some(Code::DeadlineExceeded),
            Self::OutOfRange(_) => Some(Code::OutOfRange),
            Self::Other { code, .. } => Some(*code),
            Self::Connect { .. }
            | Self::TlsFile { .. }
            | Self::TlsNeedsHttps { .. }
            | Self::InvalidBearerToken
            | Self::MalformedResponse(_) => None,
        }
    }

    /// What the server said, if this error came from a status.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Self::InvalidArgument(error)
            | Self::NotFound(error)
            | Self::AlreadyExists(error)
            | Self::FailedPrecondition(error)
            | Self::Aborted(error)
            | Self::Unavailable(error)
            | Self::DeadlineExceeded(error)
            | Self::OutOfRange(error)
            | Self::Other { error, .. } => Some(error),
            Self::Connect { .. }
            | Self::TlsFile { .. }
            | Self::TlsNeedsHttps { .. }
            | Self::InvalidBearerToken
            | Self::MalformedResponse(_) => None,
        }
    }

    /// The server's reason (`INVALID_NAME`, `ETAG_MISMATCH`, ...), if any.
    pub fn reason(&self) -> Option<&str> {
        self.server_error()
            .map(|error| error.reason.as_str())
            .filter(|reason| !reason.is_empty())
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let details = status.get_error_details();
        // A broken connection comes from tonic as UNKNOWN "transport error";
        // the gRPC spec calls it UNAVAILABLE, and it is worth retrying.
        let broken = retry::is_transport_failure(&status);
        let error = ServerError {
            message: match broken {
                true => transport_failure_message(&status),
                false => status.message().to_owned(),
            },
            reason: details
                .error_info()
                .map(|info| info.reason.clone())
                .unwrap_or_default(),
            field_violations: details
                .bad_request()
                .map(|bad| {
                    bad.field_violations
                        .iter()
                        .map(|violation| FieldViolation {
                            field: violation.field.clone(),
                            description: violation.description.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument(error),
            Code::NotFound => Self::NotFound(error),
            Code::AlreadyExists => Self::AlreadyExists(error),
            Code::FailedPrecondition => Self::FailedPrecondition(error),
            Code::Aborted => Self::Aborted(error),
            Code::Unavailable => Self::Unavailable(error),
            Code::Unknown | Code::Internal if broken => Self::Unavailable(error),
            Code::DeadlineExceeded => Self::DeadlineExceeded(error),
            Code::OutOfRange => Self::OutOfRange(error),
            code => Self::Other { code, error },
        }
    }
}

/// The name the gRPC spec gives `code` (`UNAVAILABLE`, ...), as grpcurl
/// prints it: for logs, metrics and reports.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The message of a status the client's HTTP/2 stack made, with its
/// causes ("connection reset by peer"), which its message alone leaves out.
fn transport_failure_message(status: &Status) -> String {
    let mut text = status.message().to_owned();
    if let Some(source) = std::error::Error::source(status) {
        text.push_str(": ");
        text.push_str(&with_causes(source));
    }
    text
}

/// `error` and its causes, outermost first, for logs and error messages:
/// tonic says only "transport error", tokio-postgres only "db error", and
/// leave the why ("Connection refused") to their sources.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_maps_back_to_its_own_code() {
        for code in (0..=16)
            .map(Code::from_i32)
            .filter(|code| *code != Code::Ok)
        {
            let error = ClientError::from(Status::new(code, "why"));
            assert_eq!(error.code(), Some(code), "{error}");
        }
    }

    #[test]
    fn the_server_message_reason_and_fields_are_kept() {
        use tonic_types::ErrorDetails;

        let mut details = ErrorDetails::with_error_info(
            "INVALID_NAME",
            "users.v1",
            std::collections::HashMap::new(),
        );
        details.add_bad_request_violation("name", "must not be empty");
        let status =
            Status::with_error_details(Code::InvalidArgument, "name must not be empty", details);
        let error = ClientError::from(status);
        assert_eq!(
            error.to_string(),
            "invalid argument: name must not be empty"
        );
        assert_eq!(error.reason(), Some("INVALID_NAME"));
        assert_eq!(
            error.server_error().unwrap().field_violations,
            [FieldViolation {
                field: "name".into(),
                description: "must not be empty".into()
            }]
        );

        let bare = ClientError::from(Status::unavailable("no route"));
        assert_eq!(bare.reason(), None);
        assert!(bare.server_error().unwrap().field_violations.is_empty());
    }
}
