//! gRPC-Web (`--grpc-web`): a browser's request, made by hand over
//! HTTP/1.1 exactly as the protocol spells it, reaches the service, in
//! binary and in base64 text (whitespace and all, as browsers and proxies
//! send it); what does not decode is the caller's error, with a request id;
//! CORS lets pages of the allowed origins call it and no others.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use prost::Message;
use users_client::pb;
use users_tests::{Backend, TestApp, spawn_app_with};

on_backend!(sqlite: Sqlite;
    a_grpc_web_request_over_http1_creates_and_finds_a_user,
    a_grpc_web_error_carries_its_status,
    a_text_request_with_line_breaks_is_decoded_and_answered_in_text,
    an_undecodable_text_request_is_malformed_and_carries_a_request_id,
    undecodable_bytes_over_grpc_web_are_malformed_and_carry_a_request_id,
    cors_admits_the_allowed_origin_only,
);

const ORIGIN: &str = "https://app.example.com";

async fn app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |config| {
        config.grpc_web = true;
        config.cors_allow_origins = vec![ORIGIN.to_owned()];
    })
    .await
}

/// Sends one HTTP/1.1 request on a connection of its own.
async fn send(app: &TestApp, request: Request<Full<Bytes>>) -> http::Response<Vec<u8>> {
    let stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes().to_vec();
    http::Response::from_parts(parts, body)
}

/// `message` as one length-prefixed frame.
fn frame(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// A gRPC-Web call of `method` with `body`, of `content_type`.
fn call_with_body(method: &str, content_type: &str, body: Vec<u8>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("/users.v1.UserService/{method}"))
        .header(header::HOST, "localhost")
        .header(header::CONTENT_TYPE, content_type)
        .header("x-grpc-web", "1")
        .header(header::ORIGIN, ORIGIN)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

/// A gRPC-Web call of `method` with `message`: one length-prefixed frame.
fn grpc_web_call(method: &str, message: &impl Message) -> Request<Full<Bytes>> {
    call_with_body(
        method,
        "application/grpc-web+proto",
        frame(&message.encode_to_vec()),
    )
}

/// A text reply's bytes: base64 chunks, each padded on its own (the
/// message, then the trailers).
fn decode_text(mut text: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::new();
    while !text.is_empty() {
        let end = text
            .iter()
            .position(|&byte| byte == b'=')
            .map_or(text.len(), |padding| (padding / 4 + 1) * 4);
        let (chunk, rest) = text.split_at(end);
        decoded.extend(
            STANDARD
                .decode(chunk)
                .unwrap_or_else(|error| panic!("{error}: {:?}", String::from_utf8_lossy(chunk))),
        );
        text = rest;
    }
    decoded
}

/// The `ErrorInfo.reason` of a trailers-only reply.
fn reason_in_headers(response: &http::Response<Vec<u8>>) -> Option<String> {
    let details = response.headers().get("grpc-status-details-bin")?;
    let status = tonic::Status::from_header_map(response.headers())?;
    assert!(!details.is_empty());
    tonic_types::StatusExt::get_details_error_info(&status).map(|info| info.reason)
}

/// The frames of a gRPC-Web response body: (is trailers, payload).
fn frames(mut body: &[u8]) -> Vec<(bool, Vec<u8>)> {
    let mut frames = Vec::new();
    while body.len() >= 5 {
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        frames.push((body[0] & 0x80 != 0, body[5..5 + length].to_vec()));
        body = &body[5 + length..];
    }
    assert!(body.is_empty(), "whole frames only");
    frames
}

async fn a_grpc_web_request_over_http1_creates_and_finds_a_user(backend: Backend) {
    let app = app(backend).await;
    let response = send(
        &app,
        grpc_web_call(
            "CreateUser",
            &pb::CreateUserRequest {
                name: "John".into(),
                request_id: String::new(),
            },
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web"),
        "{:?}",
        response.headers()
    );
    assert_eq!(
        response.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ORIGIN
    );
    let frames = frames(response.body());
    assert_eq!(frames.len(), 2, "a message, then the trailers");
    let created = pb::CreateUserResponse::decode(&frames[0].1[..]).unwrap();
    assert_eq!(created.user.unwrap().name, "John");
    let trailers = String::from_utf8(frames[1].1.clone()).unwrap();
    assert!(
        frames[1].0 && trailers.contains("grpc-status:0"),
        "{trailers}"
    );

    // And the user is there for a native gRPC client.
    let found = app
        .client
        .find_users(&users_client::FindUsers::new().name("John"))
        .await
        .unwrap();
    assert_eq!(found.users.len(), 1);
}

async fn a_grpc_web_error_carries_its_status(backend: Backend) {
    let app = app(backend).await;
    let response = send(
        &app,
        grpc_web_call("GetUser", &pb::GetUserRequest { id: 42 }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    // NOT_FOUND (5), in the headers of a trailers-only response or in the
    // trailers frame.
    let in_headers = response
        .headers()
        .get("grpc-status")
        .map(|status| status.to_str().unwrap().to_owned());
    let in_trailers = frames(response.body())
        .into_iter()
        .find(|(trailers, _)| *trailers)
        .map(|(_, payload)| String::from_utf8(payload).unwrap());
    assert!(
        in_headers.as_deref() == Some("5")
            || in_trailers
                .as_deref()
                .is_some_and(|t| t.contains("grpc-status:5")),
        "{in_headers:?} {in_trailers:?}"
    );
}

async fn a_text_request_with_line_breaks_is_decoded_and_answered_in_text(backend: Backend) {
    let app = app(backend).await;
    let request = pb::CreateUserRequest {
        name: "Ada".into(),
        request_id: String::new(),
    };
    let text = STANDARD.encode(frame(&request.encode_to_vec()));
    let (head, tail) = text.split_at(8);
    // As browsers' and proxies' encoders send it: a trailing newline, or
    // lines broken at some width.
    for (body, content_type) in [
        (format!("{text}\n"), "application/grpc-web-text"),
        (
            format!("{head}\r\n{tail}\r\n"),
            "application/grpc-web-text+proto",
        ),
    ] {
        let mut call = call_with_body("CreateUser", content_type, body.into_bytes());
        call.headers_mut()
            .insert("x-request-id", "text-1".parse().unwrap());
        let response = send(&app, call).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-request-id"], "text-1");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/grpc-web-text+proto",
            "a text caller is answered in text"
        );
        let frames = frames(&decode_text(response.body()));
        let created = pb::CreateUserResponse::decode(&frames[0].1[..]).unwrap();
        assert_eq!(created.user.unwrap().name, "Ada");
    }
    let found = app
        .client
        .find_users(&users_client::FindUsers::new().name("Ada"))
        .await
        .unwrap();
    assert_eq!(found.users.len(), 2, "one user per call, none lost");
}

async fn an_undecodable_text_request_is_malformed_and_carries_a_request_id(backend: Backend) {
    let app = app(backend).await;
    for (body, why) in [
        ("not base64!".to_owned(), "not base64 at all"),
        (
            format!("{}*", STANDARD.encode(frame(b""))),
            "a stray character",
        ),
        ("AAAAA".to_owned(), "cut short"),
    ] {
        let call = call_with_body("GetUser", "application/grpc-web-text", body.into_bytes());
        let response = send(&app, call).await;
        assert_eq!(response.status(), StatusCode::OK, "{why}");
        assert_eq!(
            response.headers()["grpc-status"],
            "3",
            "{why}: INVALID_ARGUMENT, not INTERNAL: {:?}",
            response.headers()
        );
        assert_eq!(
            reason_in_headers(&response).as_deref(),
            Some("MALFORMED_REQUEST"),
            "{why}"
        );
        assert!(
            response.headers().contains_key("x-request-id"),
            "{why}: {:?}",
            response.headers()
        );
    }
}

async fn undecodable_bytes_over_grpc_web_are_malformed_and_carry_a_request_id(backend: Backend) {
    let app = app(backend).await;
    let garbage = frame(b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
    let mut call = call_with_body("CreateUser", "application/grpc-web+proto", garbage);
    call.headers_mut()
        .insert("x-request-id", "garbage-3".parse().unwrap());
    let response = send(&app, call).await;
    assert_eq!(response.headers()["grpc-status"], "3", "{response:?}");
    assert_eq!(
        reason_in_headers(&response).as_deref(),
        Some("MALFORMED_REQUEST")
    );
    assert_eq!(response.headers()["x-request-id"], "garbage-3");
}

async fn cors_admits_the_allowed_origin_only(backend: Backend) {
    let app = app(backend).await;
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/users.v1.UserService/CreateUser")
            .header(header::HOST, "localhost")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "content-type,x-grpc-web,x-user-agent",
            )
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let allowed = send(&app, preflight(ORIGIN)).await;
    assert!(allowed.status().is_success(), "{:?}", allowed.status());
    assert_eq!(
        allowed.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        ORIGIN
    );
    let allowed_headers = allowed.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed_headers.contains("x-grpc-web"), "{allowed_headers}");

    let other = send(&app, preflight("https://evil.example.com")).await;
    assert!(
        other
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .is_none(),
        "no CORS grant for another origin: {:?}",
        other.headers()
    );
}
