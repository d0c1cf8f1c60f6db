//! [`DecodeText`]: `application/grpc-web-text` requests, decoded here rather
//! than by tonic-web, which refuses the whitespace that browsers' and
//! proxies' base64 may carry (a trailing newline, line breaks) and answers
//! what does not decode with INTERNAL and no request id.
//!
//! gRPC-Web has no client streaming, so a request is one message: its body
//! is read whole, stripped of ASCII whitespace, decoded (each chunk may end
//! in padding, as streaming encoders write them), and passed on as binary
//! gRPC-Web; the reply stays text, as the caller asked. A body that is not
//! base64 is INVALID_ARGUMENT `MALFORMED_REQUEST` and one over the size
//! limit OUT_OF_RANGE, both answered here, with the call's request id.

use std::task::{Context, Poll};

use base64::{
    Engine as _, alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
};
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderValue, header};
use http_body_util::{BodyExt, Limited};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use crate::service::request_id::RequestId;

/// Standard base64, padded or not (the last chunk of a stream may be
/// either).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The layer, outside tonic-web's.
#[derive(Debug, Clone, Copy)]
pub struct DecodeText {
    max_body: usize,
}

impl DecodeText {
    /// For requests of at most `max_request_size` bytes once decoded
    /// (`--max-request-size`). The encoded body may be up to twice its
    /// base64 length, whitespace included; tonic checks the message itself.
    pub fn new(max_request_size: usize) -> Self {
        let frame = max_request_size.saturating_add(5);
        let encoded = frame.div_ceil(3).saturating_mul(4);
        Self {
            max_body: encoded.saturating_mul(2),
        }
    }
}

impl<S> Layer<S> for DecodeText {
    type Service = TextDecoded<S>;

    fn layer(&self, inner: S) -> TextDecoded<S> {
        TextDecoded {
            inner,
            max_body: self.max_body,
        }
    }
}

/// A service behind [`DecodeText`].
#[derive(Debug, Clone)]
pub struct TextDecoded<S> {
    inner: S,
    max_body: usize,
}

impl<S> Service<http::Request<Body>> for TextDecoded<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(binary) = binary_content_type(request.headers()) else {
            return Box::pin(self.inner.call(request));
        };
        // The clone waits for readiness; the instance polled ready serves.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max_body = self.max_body;
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let text = match Limited::new(body, max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                    return Ok(refuse(
                        Status::out_of_range(format!(
                            "the request is larger than --max-request-size: over {max_body} bytes of base64"
                        )),
                        &parts.headers,
                    ));
                }
                Err(error) => return Ok(refuse(Status::from_error(error), &parts.headers)),
            };
            let decoded = match decode(&text) {
                Ok(decoded) => decoded,
                Err(error) => {
                    let status = users_client::codec::malformed_request(format!(
                        "the request is not valid base64 (application/grpc-web-text): {error}"
                    ));
                    return Ok(refuse(status, &parts.headers));
                }
            };
            let text_type = parts.headers.get(header::CONTENT_TYPE).cloned();
            parts.headers.remove(header::CONTENT_LENGTH);
            parts
                .headers
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(binary));
            if !accepts_grpc_web(&parts.headers)
                && let Some(text_type) = text_type
            {
                parts.headers.insert(header::ACCEPT, text_type);
            }
            inner
                .call(http::Request::from_parts(
                    parts,
                    Body::new(http_body_util::Full::from(decoded)),
                ))
                .await
        })
    }
}

/// The binary twin of a gRPC-Web text request's content type; `None` for
/// any other request.
fn binary_content_type(headers: &HeaderMap) -> Option<&'static str> {
    match headers.get(header::CONTENT_TYPE)?.as_bytes() {
        b"application/grpc-web-text" => Some("application/grpc-web"),
        b"application/grpc-web-text+proto" => Some("application/grpc-web+proto"),
        _ => None,
    }
}

/// Whether the caller said which gRPC-Web encoding it wants back; without
/// that, tonic-web would reply in binary to a text caller.
fn accepts_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .is_some_and(|accept| accept.as_bytes().starts_with(b"application/grpc-web"))
}

/// `text` without its ASCII whitespace, base64-decoded. A padded quad ends a
/// chunk, and the next chunk starts after it.
fn decode(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|byte| !byte.is_ascii_whitespace())
        .collect();
    let mut decoded = Vec::with_capacity(compact.len() / 4 * 3);
    let mut rest = &compact[..];
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&byte| byte == b'=')
            .map_or(rest.len(), |padding| (padding / 4 + 1) * 4)
            .min(rest.len());
        let (chunk, after) = rest.split_at(end);
        BASE64.decode_vec(chunk, &mut decoded)?;
        rest = after;
    }
    Ok(decoded)
}

/// A trailers-only gRPC-Web reply of `status`, with the call's request id,
/// in the encoding the caller reads.
fn refuse(mut status: Status, request: &HeaderMap) -> http::Response<Body> {
    let (request_id, _) = RequestId::of_headers(request);
    request_id.echo(status.metadata_mut());
    let content_type = if accepts_grpc_web(request) {
        request.get(header::ACCEPT).cloned()
    } else {
        request.get(header::CONTENT_TYPE).cloned()
    };
    let mut response = status.into_http::<Body>();
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn whitespace_anywhere_is_ignored() {
        let message = b"\x00\x00\x00\x00\x06\x0a\x04John";
        let encoded = encode(message);
        let (head, tail) = encoded.split_at(5);
        for text in [
            format!("{encoded}\n"),
            format!("{encoded}\r\n"),
            format!(" {head}\r\n\t{tail} "),
        ] {
            assert_eq!(decode(text.as_bytes()).unwrap(), message, "{text:?}");
        }
    }

    #[test]
    fn chunks_padded_one_by_one_decode_in_sequence() {
        let (first, second) = (b"\x00\x00\x00\x00\x01".as_slice(), b"ab".as_slice());
        let text = format!("{}{}", encode(first), encode(second));
        assert_eq!(text, "AAAAAAE=YWI=");
        assert_eq!(decode(text.as_bytes()).unwrap(), [first, second].concat());
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        assert_eq!(decode(b"YWI").unwrap(), b"ab");
    }

    #[test]
    fn what_is_not_base64_is_an_error() {
        for text in ["not base64!", "YW=I", "Y", "YWJj*"] {
            assert!(decode(text.as_bytes()).is_err(), "{text:?}");
        }
    }

    #[test]
    fn only_text_requests_are_decoded_here() {
        let with = |content_type: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            binary_content_type(&headers)
        };
        assert_eq!(
            with("application/grpc-web-text"),
            Some("application/grpc-web")
        );
        assert_eq!(
            with("application/grpc-web-text+proto"),
            Some("application/grpc-web+proto")
        );
        assert_eq!(with("application/grpc-web+proto"), None);
        assert_eq!(with("application/grpc"), None);
    }

    #[test]
    fn the_body_limit_leaves_room_for_whitespace() {
        let layer = DecodeText::new(4 * 1024 * 1024);
        let base64_of_largest = (4 * 1024 * 1024 + 5_usize).div_ceil(3) * 4;
        assert!(layer.max_body >= 2 * base64_of_largest);
    }
}
