//! [`Session`]: the answers on one reflection stream.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tonic::Status;
use tonic_reflection::pb::v1::{
    ErrorResponse, ExtensionNumberResponse, ExtensionRequest, FileDescriptorResponse,
    ListServiceResponse, ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use super::index::{Descriptors, FileId};

/// Answers one stream's requests in turn.
#[derive(Debug)]
pub(super) struct Session {
    descriptors: Arc<Descriptors>,
    /// Files already sent on this stream: clients keep what they were sent,
    /// so a dependency goes once (as grpc-go does). The file asked for goes
    /// every time.
    sent: HashSet<FileId>,
}

impl Session {
    pub(super) fn new(descriptors: Arc<Descriptors>) -> Self {
        Self {
            descriptors,
            sent: HashSet::new(),
        }
    }

    /// What `request` asks for, or an `error_response` saying why not:
    /// never an error status, which would end the stream, and with it the
    /// client's next requests.
    pub(super) fn respond(&mut self, request: ServerReflectionRequest) -> ServerReflectionResponse {
        let message_response = self
            .answer(request.message_request.as_ref())
            .unwrap_or_else(|status| {
                MessageResponse::ErrorResponse(ErrorResponse {
                    error_code: status.code() as i32,
                    error_message: status.message().to_owned(),
                })
            });
        ServerReflectionResponse {
            valid_host: request.host.clone(),
            original_request: Some(request),
            message_response: Some(message_response),
        }
    }

    fn answer(&mut self, request: Option<&MessageRequest>) -> Result<MessageResponse, Status> {
        let descriptors = &self.descriptors;
        let request = request
            .ok_or_else(|| Status::invalid_argument("no message_request: nothing to look up"))?;
        let file = match request {
            MessageRequest::FileByFilename(name) => descriptors
                .file_named(name)
                .ok_or_else(|| Status::not_found(format!("file {name:?} not found")))?,
            MessageRequest::FileContainingSymbol(symbol) => descriptors
                .file_declaring(symbol)
                .ok_or_else(|| Status::not_found(format!("symbol {symbol:?} not found")))?,
            MessageRequest::FileContainingExtension(ExtensionRequest {
                containing_type,
                extension_number,
            }) => descriptors
                .file_extending(containing_type, *extension_number)
                .ok_or_else(|| {
                    Status::not_found(format!(
                        "extension {extension_number} of {containing_type:?} not found"
                    ))
                })?,
            MessageRequest::AllExtensionNumbersOfType(type_name) => {
                let numbers = descriptors.extension_numbers(type_name).ok_or_else(|| {
                    Status::not_found(format!("message type {type_name:?} not found"))
                })?;
                return Ok(MessageResponse::AllExtensionNumbersResponse(
                    ExtensionNumberResponse {
                        base_type_name: type_name.clone(),
                        extension_number: numbers,
                    },
                ));
            }
            MessageRequest::ListServices(_) => {
                let service = descriptors
                    .services()
                    .iter()
                    .map(|name| ServiceResponse { name: name.clone() })
                    .collect();
                return Ok(MessageResponse::ListServicesResponse(ListServiceResponse {
                    service,
                }));
            }
        };
        Ok(MessageResponse::FileDescriptorResponse(self.send(file)))
    }

    /// `file`, then the files it imports, directly or not, that this stream
    /// has not been sent yet.
    fn send(&mut self, file: FileId) -> FileDescriptorResponse {
        let mut files = Vec::new();
        let mut queue = VecDeque::from([file]);
        let mut seen = HashSet::from([file]);
        while let Some(next) = queue.pop_front() {
            if self.sent.insert(next) || next == file {
                files.push(self.descriptors.encoded(next).to_vec());
            }
            for &dependency in self.descriptors.dependencies(next) {
                if seen.insert(dependency) {
                    queue.push_back(dependency);
                }
            }
        }
        FileDescriptorResponse {
            file_descriptor_proto: files,
        }
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::FileDescriptorProto;

    use super::*;

    fn session() -> Session {
        Session::new(Arc::new(
            Descriptors::new(&[
                users_client::pb::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
            ])
            .unwrap(),
        ))
    }

    fn request(message_request: MessageRequest) -> ServerReflectionRequest {
        ServerReflectionRequest {
            host: "localhost".into(),
            message_request: Some(message_request),
        }
    }

    /// The names of the files in `response`, or its error's code and message.
    fn answer(response: ServerReflectionResponse) -> Result<Vec<String>, (i32, String)> {
        match response.message_response.unwrap() {
            MessageResponse::FileDescriptorResponse(files) => Ok(files
                .file_descriptor_proto
                .iter()
                .map(|file| {
                    FileDescriptorProto::decode(file.as_slice())
                        .unwrap()
                        .name()
                        .to_owned()
                })
                .collect()),
            MessageResponse::ErrorResponse(error) => Err((error.error_code, error.error_message)),
            other => panic!("neither files nor an error: {other:?}"),
        }
    }

    #[test]
    fn a_missing_file_or_symbol_is_an_error_response_that_echoes_the_request() {
        let mut session = session();
        for asked in [
            request(MessageRequest::FileByFilename("no/such.proto".into())),
            request(MessageRequest::FileContainingSymbol("no.Such".into())),
            request(MessageRequest::FileContainingExtension(ExtensionRequest {
                containing_type: "users.v1.User".into(),
                extension_number: 100,
            })),
            request(MessageRequest::AllExtensionNumbersOfType("no.Such".into())),
        ] {
            let response = session.respond(asked.clone());
            assert_eq!(response.valid_host, "localhost");
            assert_eq!(response.original_request.as_ref(), Some(&asked));
            let (code, message) = answer(response).unwrap_err();
            assert_eq!(code, tonic::Code::NotFound as i32, "{message}");
            assert!(message.contains("not found"), "{message}");
        }
    }

    #[test]
    fn no_message_request_is_an_invalid_argument_error_response() {
        let response = session().respond(ServerReflectionRequest::default());
        let (code, _) = answer(response).unwrap_err();
        assert_eq!(code, tonic::Code::InvalidArgument as i32);
    }

    #[test]
    fn a_file_comes_with_the_dependencies_not_yet_sent() {
        let mut session = session();
        let users = || {
            request(MessageRequest::FileByFilename(
                "users/v1/users.proto".into(),
            ))
        };

        let mut first = answer(session.respond(users())).unwrap();
        assert_eq!(first.remove(0), "users/v1/users.proto");
        first.sort();
        assert_eq!(
            first,
            [
                "google/protobuf/field_mask.proto",
                "google/protobuf/timestamp.proto"
            ]
        );

        assert_eq!(
            answer(session.respond(users())).unwrap(),
            ["users/v1/users.proto"]
        );
        let timestamp = request(MessageRequest::FileContainingSymbol(
            "google.protobuf.Timestamp".into(),
        ));
        assert_eq!(
            answer(session.respond(timestamp)).unwrap(),
            ["google/protobuf/timestamp.proto"]
        );
    }

    #[test]
    fn extension_numbers_of_a_known_type_may_be_none() {
        let response = session().respond(request(MessageRequest::AllExtensionNumbersOfType(
            "users.v1.User".into(),
        )));
        assert_eq!(
            response.message_response,
            Some(MessageResponse::AllExtensionNumbersResponse(
                ExtensionNumberResponse {
                    base_type_name: "users.v1.User".into(),
                    extension_number: vec![],
                }
            ))
        );
    }
}
