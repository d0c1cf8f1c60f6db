//! `x-request-id`: every call gets one, the caller's or a new UUID, and
//! hears it back, whether the call succeeded or failed.

use tonic::{Code, Request, metadata::MetadataMap};
use users_client::pb;
use users_tests::{Backend, spawn_app};

on_backend!(sqlite: Sqlite;
    the_callers_x_request_id_comes_back_on_success_and_on_error,
    without_an_x_request_id_each_call_gets_a_new_uuid_back,
    an_unusable_x_request_id_is_replaced_by_a_uuid,
    an_export_echoes_its_x_request_id,
);

const KEY: &str = "x-request-id";

/// `message` with `x-request-id: id`.
fn with_id<M>(message: M, id: &str) -> Request<M> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(KEY, id.parse().unwrap());
    request
}

fn echoed(metadata: &MetadataMap) -> &str {
    metadata
        .get(KEY)
        .expect("x-request-id in the response")
        .to_str()
        .unwrap()
}

fn assert_uuid(id: &str) {
    assert!(uuid::Uuid::parse_str(id).is_ok(), "not a UUID: {id:?}");
}

fn create(name: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        name: name.into(),
        request_id: String::new(),
    }
}

async fn the_callers_x_request_id_comes_back_on_success_and_on_error(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut raw = app.client.raw();

    let created = raw
        .create_user(with_id(create("Ada"), "checkout-7f3a"))
        .await
        .unwrap();
    assert_eq!(echoed(created.metadata()), "checkout-7f3a");

    let missing = raw
        .get_user(with_id(pb::GetUserRequest { id: 999 }, "lookup-1"))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(echoed(missing.metadata()), "lookup-1");

    let invalid = raw
        .create_user(with_id(create(""), "bad-name-2"))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert_eq!(echoed(invalid.metadata()), "bad-name-2");
}

async fn without_an_x_request_id_each_call_gets_a_new_uuid_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut raw = app.client.raw();

    let first = raw.create_user(create("Ada")).await.unwrap();
    let second = raw.create_user(create("Grace")).await.unwrap();
    let failed = raw
        .get_user(pb::GetUserRequest { id: 999 })
        .await
        .unwrap_err();

    let ids = [
        echoed(first.metadata()),
        echoed(second.metadata()),
        echoed(failed.metadata()),
    ];
    for id in ids {
        assert_uuid(id);
    }
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
}

async fn an_unusable_x_request_id_is_replaced_by_a_uuid(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut raw = app.client.raw();
    for unusable in ["x".repeat(129), "two words".to_owned()] {
        let response = raw
            .create_user(with_id(create("Ada"), &unusable))
            .await
            .unwrap();
        assert_uuid(echoed(response.metadata()));
    }
}

async fn an_export_echoes_its_x_request_id(backend: Backend) {
    let app = spawn_app(backend).await;
    app.client.create_user("Ada").await.unwrap();
    let mut raw = app.client.raw();
    let export = raw
        .export_users(with_id(pb::ExportUsersRequest::default(), "export-9"))
        .await
        .unwrap();
    assert_eq!(echoed(export.metadata()), "export-9");
    let mut stream = export.into_inner();
    let first = stream.message().await.unwrap().expect("one user");
    assert_eq!(first.name, "Ada");
}
