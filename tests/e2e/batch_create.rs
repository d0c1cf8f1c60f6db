//! BatchCreateUsers: all or nothing, in request order.

use std::time::Duration;

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, pb};
use users_tests::{Backend, spawn_app};

on_every_backend!(
    a_batch_stores_every_user_and_returns_them_in_request_order,
    one_invalid_entry_fails_the_whole_batch_naming_its_index,
    batches_hold_1_to_1000_entries,
    one_request_id_twice_in_a_batch_is_one_user,
    a_batch_cut_short_by_its_deadline_is_stored_whole_or_not_at_all,
);

fn entry(name: &str, request_id: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        name: name.to_owned(),
        request_id: request_id.to_owned(),
    }
}

async fn a_batch_stores_every_user_and_returns_them_in_request_order(backend: Backend) {
    let app = spawn_app(backend).await;
    let names: Vec<String> = (0..1000).map(|i| format!("batch-{:04}", 999 - i)).collect();
    let users = app.client.batch_create_users(names.clone()).await.unwrap();
    let returned: Vec<&str> = users.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(returned, names);
    assert!(users.windows(2).all(|pair| pair[0].id < pair[1].id));

    let stored = app
        .client
        .find_users(&FindUsers::new().page_size(1000))
        .await
        .unwrap();
    assert_eq!(stored.users, users);
}

async fn one_invalid_entry_fails_the_whole_batch_naming_its_index(backend: Backend) {
    let app = spawn_app(backend).await;
    let batch = pb::BatchCreateUsersRequest {
        requests: vec![
            entry("fine", ""),
            entry("also fine", ""),
            entry("", ""),
            entry("x", "nope"),
        ],
    };
    let status = app
        .client
        .raw()
        .batch_create_users(batch)
        .await
        .unwrap_err();
    let error = ClientError::from(status);
    assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "invalid argument: requests[2].name must not be empty"
    );
    assert_eq!(error.reason(), Some("INVALID_NAME"));
    assert_eq!(
        error.server_error().unwrap().field_violations[0].field,
        "requests[2].name"
    );
    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert!(
        stored.users.is_empty(),
        "nothing stored: {:?}",
        stored.users
    );
}

async fn batches_hold_1_to_1000_entries(backend: Backend) {
    let app = spawn_app(backend).await;
    for count in [0, 1001] {
        let batch = pb::BatchCreateUsersRequest {
            requests: (0..count).map(|_| entry("x", "")).collect(),
        };
        let status = app
            .client
            .raw()
            .batch_create_users(batch)
            .await
            .unwrap_err();
        let error = ClientError::from(status);
        assert_eq!(
            error.reason(),
            Some("INVALID_BATCH_SIZE"),
            "{count}: {error}"
        );
    }
    let one = app.client.batch_create_users(["only"]).await.unwrap();
    assert_eq!(one.len(), 1);
}

async fn one_request_id_twice_in_a_batch_is_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = "5f0c6a56-4f1e-4a8e-9d6b-6b1f4f1f2a10";
    let batch = || pb::BatchCreateUsersRequest {
        requests: vec![entry("twice", id), entry("other", ""), entry("twice", id)],
    };
    let users = app
        .client
        .raw()
        .batch_create_users(batch())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(users.len(), 3);
    assert_eq!(users[0], users[2]);
    assert_ne!(users[0].id, users[1].id);

    // The whole batch retried: the same users again, nothing more stored...
    // except the entry without a request id, which is a new user each time.
    let again = app
        .client
        .raw()
        .batch_create_users(batch())
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(again[0], users[0]);
    assert_ne!(again[1].id, users[1].id);
    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(stored.users.len(), 3);

    let conflicting = pb::BatchCreateUsersRequest {
        requests: vec![entry("a", id), entry("b", id)],
    };
    let status = app
        .client
        .raw()
        .batch_create_users(conflicting)
        .await
        .unwrap_err();
    assert_eq!(
        ClientError::from(status).reason(),
        Some("REQUEST_ID_REUSED")
    );
}

async fn a_batch_cut_short_by_its_deadline_is_stored_whole_or_not_at_all(backend: Backend) {
    let app = spawn_app(backend).await;
    let lock = app.database().lock_for_writes().await;
    let mut request = tonic::Request::new(pb::BatchCreateUsersRequest {
        requests: (0..1000).map(|i| entry(&format!("cut-{i}"), "")).collect(),
    });
    request.set_timeout(Duration::from_millis(300));
    let status = app
        .client
        .raw()
        .batch_create_users(request)
        .await
        .unwrap_err();
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    lock.release().await;

    // As gRPC has it, a call that ran out of time may still have been
    // applied; what must hold is all of it or none.
    let after = app.client.create_user("after").await.unwrap();
    let stored: Vec<_> = app
        .client
        .export_users(FindUsers::new().name_prefix("cut-"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(
        stored.is_empty() || stored.len() == 1000,
        "{} of 1000 stored",
        stored.len()
    );
    assert!(stored.iter().all(|user| user.id < after.id));
}
