//! The generated protobuf types and gRPC stubs of `users.v1`, for callers that
//! need the wire level (the server, tests, other tooling). Most code wants
//! [`UsersClient`](crate::UsersClient) instead.

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

tonic::include_proto!("users.v1");

/// The encoded `FileDescriptorSet` of `users.v1` and its imports, for gRPC
/// server reflection.
#[cfg(feature = "server")]
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("users_descriptor");
