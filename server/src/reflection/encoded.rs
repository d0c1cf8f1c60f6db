//! Encoded descriptors taken apart and renamed at the wire level, without
//! decoding them: prost drops the fields it does not know (custom options)
//! when it decodes, so a decoded and re-encoded file would lose them.

use prost::DecodeError;
use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// `FileDescriptorSet.file`.
const SET_FILE: u32 = 1;
/// `FileDescriptorProto.name`.
const FILE_NAME: u32 = 1;
/// `FileDescriptorProto.dependency`.
const FILE_DEPENDENCY: u32 = 3;

/// One field of an encoded message.
struct Field<'a> {
    number: u32,
    /// The whole field, key included, to copy it as it was.
    encoded: &'a [u8],
    /// The bytes inside a length-delimited field; `None` for other wire types.
    payload: Option<&'a [u8]>,
}

/// The fields of `message`, in their encoded order.
fn fields(message: &[u8]) -> Result<Vec<Field<'_>>, DecodeError> {
    let offset = |rest: &[u8]| message.len() - rest.len();
    let mut rest = message;
    let mut fields = Vec::new();
    while !rest.is_empty() {
        let start = offset(rest);
        let (number, wire_type) = decode_key(&mut rest)?;
        let value_start = offset(rest);
        skip_field(wire_type, number, &mut rest, DecodeContext::default())?;
        let end = offset(rest);
        let payload = match wire_type {
            WireType::LengthDelimited => {
                let mut payload = &message[value_start..end];
                // Checked by `skip_field`: what follows the length is the payload.
                decode_varint(&mut payload)?;
                Some(payload)
            }
            _ => None,
        };
        fields.push(Field {
            number,
            encoded: &message[start..end],
            payload,
        });
    }
    Ok(fields)
}

/// The encoded `FileDescriptorProto`s of an encoded `FileDescriptorSet`.
pub(super) fn files(set: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    Ok(fields(set)?
        .into_iter()
        .filter(|field| field.number == SET_FILE)
        .filter_map(|field| field.payload)
        .collect())
}

/// The encoded `file` with its name and the names of its dependencies
/// replaced where `rename` gives a new one; every other byte as it was.
pub(super) fn renamed<'n>(
    file: &[u8],
    rename: impl Fn(&str) -> Option<&'n str>,
) -> Result<Vec<u8>, DecodeError> {
    let mut renamed = Vec::with_capacity(file.len());
    for field in fields(file)? {
        let new_name = match (field.number, field.payload) {
            (FILE_NAME | FILE_DEPENDENCY, Some(name)) => {
                std::str::from_utf8(name).ok().and_then(&rename)
            }
            _ => None,
        };
        match new_name {
            Some(name) => {
                prost::encoding::string::encode(field.number, &name.to_owned(), &mut renamed)
            }
            None => renamed.extend_from_slice(field.encoded),
        }
    }
    Ok(renamed)
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use prost_types::{FileDescriptorProto, FileDescriptorSet};

    use super::*;

    fn file(name: &str, dependencies: &[&str]) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            package: Some("a.b".into()),
            dependency: dependencies.iter().map(|&name| name.into()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_set_splits_into_its_files_as_encoded() {
        let files_in = [file("a.proto", &[]), file("b.proto", &["a.proto"])];
        let set = FileDescriptorSet {
            file: files_in.to_vec(),
        }
        .encode_to_vec();
        let encoded: Vec<_> = files_in.iter().map(Message::encode_to_vec).collect();
        assert_eq!(files(&set).unwrap(), encoded);
    }

    #[test]
    fn renaming_changes_the_name_and_dependencies_and_keeps_unknown_fields() {
        let mut encoded = file("b.proto", &["a.proto", "c.proto"]).encode_to_vec();
        // Field 999, unknown to prost: a custom option would look like this.
        let unknown = [0xba, 0x3e, 0x01, 0x78];
        encoded.extend_from_slice(&unknown);

        let renamed = renamed(&encoded, |name| match name {
            "a.proto" => Some("x/a.proto"),
            "b.proto" => Some("x/b.proto"),
            _ => None,
        })
        .unwrap();

        let decoded = FileDescriptorProto::decode(renamed.as_slice()).unwrap();
        assert_eq!(decoded.name(), "x/b.proto");
        assert_eq!(decoded.dependency, ["x/a.proto", "c.proto"]);
        assert!(renamed.ends_with(&unknown), "{renamed:?}");
    }

    #[test]
    fn renaming_nothing_keeps_every_byte() {
        let encoded = file("b.proto", &["a.proto"]).encode_to_vec();
        assert_eq!(renamed(&encoded, |_| None).unwrap(), encoded);
    }

    #[test]
    fn a_truncated_set_is_an_error() {
        let set = FileDescriptorSet {
            file: vec![file("a.proto", &[])],
        }
        .encode_to_vec();
        assert!(files(&set[..set.len() - 1]).is_err());
    }
}
