//! gRPC-Web (`--grpc-web`): what browsers and HTTP/1 proxies need to call
//! the service, the CORS rules for the origins allowed included, and
//! [`DecodeText`] for the text encoding.

mod text;

pub use text::DecodeText;

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// An origin in `--cors-allow-origin` that is not a header value.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid --cors-allow-origin {origin:?}: expected an origin such as https://app.example.com, or *"
)]
pub struct InvalidOrigin {
    /// What was given.
    pub origin: String,
}

/// The CORS rules for pages of `origins` (`*`: any) calling the service
/// from a browser; `None` for no origin: then only same-origin pages can.
pub fn cors(origins: &[String]) -> Result<Option<CorsLayer>, InvalidOrigin> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow_origin = if origins.iter().any(|origin| origin == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|origin| {
                HeaderValue::from_str(origin).map_err(|_| InvalidOrigin {
                    origin: origin.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow_origin)
            .allow_methods([Method::POST])
            // What gRPC-Web clients send...
            .allow_headers([
                header("content-type"),
                header("x-grpc-web"),
                header("x-user-agent"),
                header("grpc-timeout"),
                header("authorization"),
                header("x-request-id"),
                header("x-consistency-token"),
            ])
            // ...and what they must read back: the status is in headers
            // when a call fails at once.
            .expose_headers([
                header("grpc-status"),
                header("grpc-message"),
                header("grpc-status-details-bin"),
                header("x-request-id"),
                header("x-consistency-token"),
            ])
            .max_age(Duration::from_secs(24 * 60 * 60)),
    ))
}
