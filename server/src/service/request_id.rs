//! [`RequestId`]: what ties together the log lines of one call, and what
//! the caller gets back to quote when it reports a problem.
//!
//! Not to be confused with CreateUser's `request_id` field, which makes a
//! create safe to retry: this one is metadata, on every call, and only
//! ever logged.

use std::{
    future::Future,
    task::{Context, Poll},
};

use futures_util::future::BoxFuture;
use http::HeaderValue;
use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tower::{Layer, Service};

/// The metadata key, in requests and in responses.
pub const KEY: &str = "x-request-id";

/// The longest id taken from a caller: enough for any UUID, trace id or
/// ULID, short enough to repeat on every log line of the call.
pub const MAX_LEN: usize = 128;

tokio::task_local! {
    /// The request id of the call being served, for what the call stores
    /// (its change events).
    static CURRENT: RequestId;
}

/// Runs `work` as the call `id`: [`current`] returns `id` within it.
pub async fn in_call<F: Future>(id: RequestId, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// The request id of the call being served; empty outside a call.
pub fn current() -> String {
    CURRENT
        .try_with(|id| id.as_str().to_owned())
        .unwrap_or_default()
}

/// A call's request id: the caller's, or one made up here.
#[derive(Debug, Clone)]
pub struct RequestId(AsciiMetadataValue);

/// Where a call's [`RequestId`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The caller sent it.
    Caller,
    /// The caller sent none: a new UUID.
    Generated,
    /// The caller sent one we would not repeat in the logs (empty, too
    /// long, or not printable ASCII without spaces): a new UUID instead.
    Replaced,
}

impl RequestId {
    /// The call's id, as [`EchoRequestIds`] gave it, or else (a service
    /// called without the layer, as in unit tests) from its metadata.
    pub fn of_call<M>(request: &tonic::Request<M>) -> (Self, Origin) {
        match request.extensions().get::<(Self, Origin)>() {
            Some(given) => given.clone(),
            None => Self::of_headers(request.metadata().as_ref()),
        }
    }

    /// The caller's `x-request-id` if it is sane, else a new UUID.
    pub fn of_headers(headers: &http::HeaderMap) -> (Self, Origin) {
        match headers.get(KEY) {
            Some(given) if is_sane(given.as_bytes()) => (
                Self(AsciiMetadataValue::try_from(given.as_bytes()).expect("sane ids are ASCII")),
                Origin::Caller,
            ),
            Some(_) => (Self::generate(), Origin::Replaced),
            None => (Self::generate(), Origin::Generated),
        }
    }

    fn generate() -> Self {
        let mut text = uuid::Uuid::encode_buffer();
        let text = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
        Self(AsciiMetadataValue::try_from(&*text).expect("a UUID is ASCII"))
    }

    /// The id, for the logs.
    pub fn as_str(&self) -> &str {
        // Sane ids and UUIDs are visible ASCII, which `to_str` accepts.
        self.0.to_str().unwrap_or_default()
    }

    /// Sends the id back with the response (or the error status).
    pub fn echo(&self, metadata: &mut MetadataMap) {
        metadata.insert(KEY, self.0.clone());
    }

    /// The id as an HTTP header value, for replies made below gRPC.
    pub fn header_value(&self) -> HeaderValue {
        HeaderValue::from_bytes(self.0.as_encoded_bytes()).expect("a request id is visible ASCII")
    }
}

/// Gives every call its [`RequestId`] before anything else looks at it,
/// and sends the id back on every reply, those of calls refused before
/// their handler ran included (no bearer token, too many calls at once, a
/// request that does not decode): the handler's `rpc` wrapper takes the
/// id from the request's extensions, and whatever answers first, the id
/// goes back.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoRequestIds;

impl<S> Layer<S> for EchoRequestIds {
    type Service = WithRequestIds<S>;

    fn layer(&self, inner: S) -> WithRequestIds<S> {
        WithRequestIds { inner }
    }
}

/// A service behind [`EchoRequestIds`].
#[derive(Debug, Clone)]
pub struct WithRequestIds<S> {
    inner: S,
}

/// Keeps the name the service is routed by.
impl<S: tonic::server::NamedService> tonic::server::NamedService for WithRequestIds<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for WithRequestIds<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let (id, origin) = RequestId::of_headers(request.headers());
        let header = id.header_value();
        request.extensions_mut().insert((id, origin));
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            response.headers_mut().entry(KEY).or_insert(header);
            Ok(response)
        })
    }
}

/// 1 to [`MAX_LEN`] visible ASCII characters: safe to print on any log
/// line, in text or JSON, without escaping surprises.
fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len()) && id.iter().all(u8::is_ascii_graphic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_with(id: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(KEY, id.parse().unwrap());
        headers
    }

    #[test]
    fn the_callers_id_is_kept() {
        let (id, origin) = RequestId::of_headers(&headers_with("req-42/abc"));
        assert_eq!((id.as_str(), origin), ("req-42/abc", Origin::Caller));
    }

    #[test]
    fn without_one_a_uuid_is_generated() {
        let (id, origin) = RequestId::of_headers(&http::HeaderMap::new());
        assert_eq!(origin, Origin::Generated);
        assert!(
            uuid::Uuid::parse_str(id.as_str()).is_ok(),
            "{}",
            id.as_str()
        );
    }

    #[test]
    fn an_unprintable_or_overlong_id_is_replaced_by_a_uuid() {
        let too_long = "x".repeat(MAX_LEN + 1);
        for given in ["", "has space", "tab\there", &too_long] {
            let (id, origin) = RequestId::of_headers(&headers_with(given));
            assert_eq!(origin, Origin::Replaced, "{given:?}");
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok());
        }
        let mut not_ascii = MetadataMap::new();
        not_ascii.insert(
            KEY,
            AsciiMetadataValue::try_from(&b"caf\xc3\xa9"[..]).unwrap(),
        );
        assert_eq!(
            RequestId::of_headers(not_ascii.as_ref()).1,
            Origin::Replaced
        );

        let longest = "x".repeat(MAX_LEN);
        assert_eq!(
            RequestId::of_headers(&headers_with(&longest)).1,
            Origin::Caller
        );
    }

    #[test]
    fn the_id_is_echoed_under_its_key() {
        let (id, _) = RequestId::of_headers(&headers_with("abc"));
        let mut response = MetadataMap::new();
        id.echo(&mut response);
        assert_eq!(response.get(KEY).unwrap(), "abc");
    }
}
