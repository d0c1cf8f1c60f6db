//! What `buf breaking` cannot see (proto/buf.yaml): ExportUsers took a
//! `FindUsersRequest` in v0.1.0 and takes an `ExportUsersRequest` now, which
//! is compatible only while the two messages stay field-for-field twins.

use prost::Message;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorSet,
    field_descriptor_proto::{Label, Type},
};
use users_client::pb;

/// The message `name` of package `users.v1`, as compiled into the server.
fn message(name: &str) -> DescriptorProto {
    let set = FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .into_iter()
        .filter(|file| file.package() == "users.v1")
        .flat_map(|file| file.message_type)
        .find(|message| message.name() == name)
        .unwrap_or_else(|| panic!("no message users.v1.{name}"))
}

/// What a field is on the wire and in JSON; not its comments.
fn wire_and_json(field: &FieldDescriptorProto) -> (i32, String, String, Type, Label, String) {
    (
        field.number(),
        field.name().to_owned(),
        field.json_name().to_owned(),
        field.r#type(),
        field.label(),
        field.type_name().to_owned(),
    )
}

#[test]
fn export_users_request_is_the_twin_of_find_users_request() {
    let fields = |name| {
        let mut fields: Vec<_> = message(name).field.iter().map(wire_and_json).collect();
        fields.sort();
        fields
    };
    assert_eq!(fields("ExportUsersRequest"), fields("FindUsersRequest"));
}

#[test]
fn a_find_users_request_sent_to_export_users_reads_the_same() {
    let find = pb::FindUsersRequest {
        name: "John".into(),
        name_prefix: "Jo".into(),
        page_size: 7,
        page_token: "token".into(),
        order_by: "name desc".into(),
    };
    let export = pb::ExportUsersRequest::decode(&*find.encode_to_vec()).unwrap();
    assert_eq!(export, pb::ExportUsersRequest::from(find.clone()));
    assert_eq!(pb::FindUsersRequest::from(export), find);
}
