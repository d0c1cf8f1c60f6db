//! [`UsersCodec`]: the protobuf codec of `users.v1`, which blames bytes that
//! do not decode on whoever sent them.
//!
//! tonic's own prost codec answers every message it cannot decode with
//! INTERNAL. On the server that is wrong: garbage or invalid UTF-8 in a
//! request is the caller's mistake, and INTERNAL is for our bugs. So a
//! request that does not decode is INVALID_ARGUMENT here, while a reply
//! that does not decode (the client's side) stays INTERNAL: the caller did
//! nothing wrong.
//!
//! The generated stubs use this codec (`codec_path` in `build.rs`); nothing
//! else needs to name it.

use std::{collections::HashMap, marker::PhantomData};

use prost::{Message, Name, bytes::Buf};
use tonic::{
    Code, Status,
    codec::{Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstEncoder;
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.reason` of a request that is not a valid protobuf message.
pub const MALFORMED_REQUEST: &str = "MALFORMED_REQUEST";

/// The `ErrorInfo.domain` of the users service's errors.
const ERROR_DOMAIN: &str = "users.v1";

/// tonic's prost codec, except that a request which does not decode is
/// INVALID_ARGUMENT (reason [`MALFORMED_REQUEST`]). Encodes `T`, decodes
/// `U`.
///
/// A message is a request when its name ends in `Request`, which holds for
/// every RPC of `users.v1` (`build.rs` refuses to build otherwise; note that
/// ExportUsers streams `User`s, which are replies).
#[derive(Debug)]
pub struct UsersCodec<T, U> {
    _messages: PhantomData<fn(T) -> U>,
}

impl<T, U> Default for UsersCodec<T, U> {
    fn default() -> Self {
        Self {
            _messages: PhantomData,
        }
    }
}

impl<T, U> Codec for UsersCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = UsersDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        UsersDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one `U`; see [`UsersCodec`].
#[derive(Debug)]
pub struct UsersDecoder<U> {
    _message: PhantomData<fn() -> U>,
}

impl<U: Message + Name + Default> Decoder for UsersDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_message(buf).map(Some)
    }
}

/// One `U` from `buf`, or the status that blames the right side.
fn decode_message<U: Message + Name + Default>(buf: impl Buf) -> Result<U, Status> {
    U::decode(buf).map_err(|error| undecodable::<U>(&error))
}

/// The status for bytes that are not a valid `U`.
fn undecodable<U: Name>(error: &prost::DecodeError) -> Status {
    if is_request::<U>() {
        malformed_request(format!(
            "the request is not a valid {}: {error}",
            U::full_name()
        ))
    } else {
        Status::internal(format!(
            "the reply is not a valid {}: {error}",
            U::full_name()
        ))
    }
}

/// INVALID_ARGUMENT, reason [`MALFORMED_REQUEST`]: the request's bytes
/// (`message` says how) are not a message at all. The server answers so
/// too when a gRPC-Web text body is not base64.
pub fn malformed_request(message: String) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        message,
        ErrorDetails::with_error_info(MALFORMED_REQUEST, ERROR_DOMAIN, HashMap::new()),
    )
}

/// Whether `U` is what a caller sends, rather than what the server returns.
fn is_request<U: Name>() -> bool {
    U::NAME.ends_with("Request")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    /// `name` (field 1, length-delimited) holding `bytes`.
    fn with_name_bytes(bytes: &[u8]) -> Vec<u8> {
        let mut message = vec![0x0a, u8::try_from(bytes.len()).unwrap()];
        message.extend_from_slice(bytes);
        message
    }

    const INVALID_UTF8: &[u8] = b"Jo\xffn";
    /// Starts with a tag for field 0, which no message has.
    const GARBAGE: &[u8] = b"\x00\x01\x02\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff";

    #[test]
    fn a_request_that_does_not_decode_is_invalid_argument() {
        let name = with_name_bytes(INVALID_UTF8);
        for status in [
            decode_message::<pb::CreateUserRequest>(&name[..]).unwrap_err(),
            decode_message::<pb::FindUsersRequest>(&name[..]).unwrap_err(),
            decode_message::<pb::GetUserRequest>(GARBAGE).unwrap_err(),
            decode_message::<pb::UpdateUserRequest>(GARBAGE).unwrap_err(),
            decode_message::<pb::DeleteUserRequest>(GARBAGE).unwrap_err(),
            decode_message::<pb::BatchCreateUsersRequest>(GARBAGE).unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert!(
                status
                    .message()
                    .starts_with("the request is not a valid users.v1."),
                "{status:?}"
            );
            let info = status.get_details_error_info().expect("an ErrorInfo");
            assert_eq!(info.reason, MALFORMED_REQUEST);
            assert_eq!(info.domain, "users.v1");
        }
    }

    #[test]
    fn the_message_says_which_field_is_bad() {
        let name = with_name_bytes(INVALID_UTF8);
        let status = decode_message::<pb::CreateUserRequest>(&name[..]).unwrap_err();
        assert_eq!(
            status.message(),
            "the request is not a valid users.v1.CreateUserRequest: failed to decode \
             Protobuf message: CreateUserRequest.name: invalid string value: data is not \
             UTF-8 encoded"
        );
    }

    #[test]
    fn a_reply_that_does_not_decode_is_internal() {
        // ExportUsers streams bare `User`s: replies, though not `...Response`s.
        let user_with_bad_name: &[u8] = &[0x12, 2, 0xc3, 0x28];
        for status in [
            decode_message::<pb::User>(user_with_bad_name).unwrap_err(),
            decode_message::<pb::CreateUserResponse>(GARBAGE).unwrap_err(),
            decode_message::<pb::FindUsersResponse>(GARBAGE).unwrap_err(),
        ] {
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert!(
                status
                    .message()
                    .starts_with("the reply is not a valid users.v1."),
                "{status:?}"
            );
        }
    }

    #[test]
    fn valid_messages_decode_and_unknown_fields_are_skipped() {
        let request = pb::CreateUserRequest {
            name: "Zoë 😀".into(),
            request_id: "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c".into(),
        };
        let mut bytes = request.encode_to_vec();
        assert_eq!(
            decode_message::<pb::CreateUserRequest>(&bytes[..]).unwrap(),
            request
        );
        // Field 15, varint 1: a field from a newer client, skipped as
        // protobuf requires.
        bytes.extend_from_slice(&[0x78, 0x01]);
        assert_eq!(
            decode_message::<pb::CreateUserRequest>(&bytes[..]).unwrap(),
            request
        );
    }
}
