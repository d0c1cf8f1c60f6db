//! [`ClientError`]: what went wrong in a call, by what the caller can do about
//! it.

use tonic::{Code, Status};

/// Why a call failed.
///
/// The variants are the statuses the users service returns on purpose; any
/// other status lands in [`ClientError::Other`]. The message is the server's
/// explanation, meant for humans.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request was malformed (an invalid name, a negative page size, a
    /// page token that the server did not issue). Retrying won't help.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The thing the request refers to does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The thing the request would create exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The system is not in a state that allows the call.
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The service or its database can't be reached right now; worth retrying
    /// later (a retried create may store a second user).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The call took longer than its deadline.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// Any other status, such as INTERNAL.
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC status code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The endpoint URL is invalid or the first connection failed.
    #[error("cannot connect to {endpoint}: {}", causes(source))]
    Connect {
        /// The endpoint as given to [`UsersClient::connect`](crate::UsersClient::connect).
        endpoint: String,
        /// What the transport reported.
        #[source]
        source: tonic::transport::Error,
    },
    /// The server answered with a message that breaks the API contract.
    #[error("malformed response: {0}")]
    MalformedResponse(&'static str),
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
            Self::Unavailable(_) => Some(Code::Unavailable),
            Self::DeadlineExceeded(_) => Some(Code::DeadlineExceeded),
            Self::Other { code, .. } => Some(*code),
            Self::Connect { .. } | Self::MalformedResponse(_) => None,
        }
    }
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument => Self::InvalidArgument(message),
            Code::NotFound => Self::NotFound(message),
            Code::AlreadyExists => Self::AlreadyExists(message),
            Code::FailedPrecondition => Self::FailedPrecondition(message),
            Code::Unavailable => Self::Unavailable(message),
            Code::DeadlineExceeded => Self::DeadlineExceeded(message),
            code => Self::Other { code, message },
        }
    }
}

/// `error` and its sources, outermost first: tonic's transport error alone
/// says only "transport error".
fn causes(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
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
    fn the_server_message_is_kept() {
        let error = ClientError::from(Status::invalid_argument("name is empty"));
        assert!(matches!(&error, ClientError::InvalidArgument(m) if m == "name is empty"));
        assert_eq!(error.to_string(), "invalid argument: name is empty");
    }
}
