//! Opening the HTTP/2 connections the load is spread over.

use std::time::Duration;

use tonic::transport::Endpoint;
use users_client::{ClientError, UsersClient, code_name};

use crate::error::{BenchError, with_causes};

/// How long to wait for the TCP and HTTP/2 handshakes of one connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens `count` separate connections to `endpoint`, each with a per-call
/// deadline of `call_timeout` so that a stuck server cannot hang the run.
///
/// One [`UsersClient`] multiplexes every call over one HTTP/2 connection;
/// a real fleet of clients opens many, and the server spreads them over its
/// threads, so the load generator opens several and rotates calls over them.
pub async fn connect_all(
    endpoint: &str,
    count: u32,
    call_timeout: Duration,
) -> Result<Vec<UsersClient>, BenchError> {
    let connect_error = |detail: String| BenchError::Connect {
        endpoint: endpoint.to_owned(),
        detail,
    };
    let builder = Endpoint::from_shared(endpoint.to_owned())
        .map_err(|error| connect_error(with_causes(&error)))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(call_timeout);
    let mut clients = Vec::new();
    for _ in 0..count {
        let channel = builder
            .connect()
            .await
            .map_err(|error| connect_error(with_causes(&error)))?;
        clients.push(UsersClient::from_channel(channel));
    }
    Ok(clients)
}

/// Why a call failed, as counted in a report: its status code's name, or
/// `malformed_response` for a reply that breaks the API contract.
pub fn failure_reason(error: &ClientError) -> &'static str {
    match error.code() {
        Some(code) => code_name(code),
        None if matches!(error, ClientError::MalformedResponse(_)) => "malformed_response",
        None => "connect",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there, the kernel refuses.
        let error = connect_all("http://127.0.0.1:1", 2, Duration::from_secs(1))
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with("cannot connect to http://127.0.0.1:1: "),
            "{text}"
        );
        assert!(text.to_lowercase().contains("refused"), "{text}");
    }

    #[tokio::test]
    async fn an_invalid_url_is_a_clear_error() {
        let error = connect_all("not a url", 1, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("cannot connect to not a url: ")
        );
    }

    #[test]
    fn codes_have_their_canonical_names() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            code_name(tonic::Code::DeadlineExceeded),
            "DEADLINE_EXCEEDED"
        );
    }
}
