//! The generated protobuf types and gRPC stubs of `users.v1`, for callers that
//! need the wire level (the server, tests, other tooling). Most code wants
//! [`UsersClient`](crate::UsersClient) instead.

#![allow(missing_docs, clippy::all, missing_debug_implementations)]

tonic::include_proto!("users.v1");

/// The encoded `FileDescriptorSet` of `users.v1` and its imports, for gRPC
/// server reflection.
#[cfg(feature = "server")]
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("users_descriptor");

/// An export of what a find lists: the same filters, order and page token
/// (the two messages share their fields, number for number).
impl From<FindUsersRequest> for ExportUsersRequest {
    fn from(find: FindUsersRequest) -> Self {
        let FindUsersRequest {
            name,
            name_prefix,
            page_size,
            page_token,
            order_by,
        } = find;
        Self {
            name,
            name_prefix,
            page_size,
            page_token,
            order_by,
        }
    }
}

/// The find whose listing an export streams; the server validates both alike.
impl From<ExportUsersRequest> for FindUsersRequest {
    fn from(export: ExportUsersRequest) -> Self {
        let ExportUsersRequest {
            name,
            name_prefix,
            page_size,
            page_token,
            order_by,
        } = export;
        Self {
            name,
            name_prefix,
            page_size,
            page_token,
            order_by,
        }
    }
}
