//! gRPC server reflection, v1 and v1alpha (grpcurl 1.8 speaks v1alpha,
//! newer tools v1), so that tools can call the service with no .proto
//! files at hand.
//!
//! Our own rather than tonic-reflection's server, which ends the whole
//! stream with NOT_FOUND when a client asks for a file or symbol it lacks
//! (the protocol answers an `error_response` and goes on: clients send
//! several requests on one stream), and which serves tonic-health's file
//! as `health.proto` rather than `grpc/health/v1/health.proto`, the name
//! clients import and ask for it by. The generated stubs and messages are
//! still tonic-reflection's.
//!
//! - `index`: the files served, indexed once by name, symbol and extension;
//! - `encoded`: files taken apart and renamed without decoding them;
//! - `session`: the answers on one stream.

mod encoded;
mod index;
mod session;

use std::{pin::Pin, sync::Arc};

use futures_util::{Stream, StreamExt};
use prost::Message;
use tonic::{Request, Response, Status, Streaming};
use tonic_reflection::pb::{v1, v1alpha};

pub use index::DescriptorError;

use index::Descriptors;
use session::Session;

/// The reflection services, both versions, over the same files.
#[derive(Debug, Clone)]
pub struct Reflection {
    descriptors: Arc<Descriptors>,
}

impl Reflection {
    /// Serves the users API, health, the error details our statuses carry
    /// (so that grpcurl prints them) and reflection itself.
    pub fn new() -> Result<Self, DescriptorError> {
        let descriptors = Descriptors::new(&[
            users_client::pb::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_types::pb::FILE_DESCRIPTOR_SET,
            v1::FILE_DESCRIPTOR_SET,
            v1alpha::FILE_DESCRIPTOR_SET,
        ])?;
        Ok(Self {
            descriptors: Arc::new(descriptors),
        })
    }

    /// `grpc.reflection.v1.ServerReflection`.
    pub fn v1(&self) -> v1::server_reflection_server::ServerReflectionServer<Self> {
        v1::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// `grpc.reflection.v1alpha.ServerReflection`, the same on the wire.
    pub fn v1alpha(&self) -> v1alpha::server_reflection_server::ServerReflectionServer<Self> {
        v1alpha::server_reflection_server::ServerReflectionServer::new(self.clone())
    }

    /// Answers each request of `requests` in turn, until the client
    /// half-closes (or the stream breaks: then nobody is listening).
    fn answer<S>(&self, requests: S) -> ResponseStream<v1::ServerReflectionResponse>
    where
        S: Stream<Item = Result<v1::ServerReflectionRequest, Status>> + Send + 'static,
    {
        let mut session = Session::new(self.descriptors.clone());
        Box::pin(
            requests
                .take_while(|request| std::future::ready(request.is_ok()))
                .filter_map(move |request| {
                    std::future::ready(request.ok().map(|request| Ok(session.respond(request))))
                }),
        )
    }
}

/// The replies of one reflection stream.
pub type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl v1::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = ResponseStream<v1::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        Ok(Response::new(self.answer(request.into_inner())))
    }
}

#[tonic::async_trait]
impl v1alpha::server_reflection_server::ServerReflection for Reflection {
    type ServerReflectionInfoStream = ResponseStream<v1alpha::ServerReflectionResponse>;

    async fn server_reflection_info(
        &self,
        request: Request<Streaming<v1alpha::ServerReflectionRequest>>,
    ) -> Result<Response<Self::ServerReflectionInfoStream>, Status> {
        // v1alpha's messages are v1's, field for field: converted through
        // their bytes, the answers are written once.
        let requests = request
            .into_inner()
            .map(|request| request.and_then(|request| convert(&request)));
        let responses = self
            .answer(requests)
            .map(|response| response.and_then(|response| convert(&response)));
        Ok(Response::new(Box::pin(responses)))
    }
}

/// `message` as the field-identical message `T` of the other version.
fn convert<T: Message + Default>(message: &impl Message) -> Result<T, Status> {
    T::decode(message.encode_to_vec().as_slice())
        .map_err(|error| Status::internal(format!("reflection versions differ: {error}")))
}
