//! CreateUser and BatchCreateUsers under request ids: retries never store a
//! second user.

use std::time::Duration;

use futures_util::future::join_all;
use users_client::{ClientError, FindUsers, pb};
use users_tests::{Backend, spawn_app, spawn_app_with};

on_every_backend!(
    a_retried_create_returns_the_first_user_and_stores_nothing,
    racing_creates_with_one_request_id_store_one_user,
    a_request_id_reused_with_another_name_is_refused_and_changes_nothing,
    request_ids_must_be_uuids,
    a_request_id_is_forgotten_after_its_ttl,
    a_request_id_whose_user_was_deleted_is_not_found,
);

const REQUEST_ID: &str = "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c";

async fn a_retried_create_returns_the_first_user_and_stores_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let first = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    // Another spelling of the same UUID is the same request.
    for request_id in [REQUEST_ID, &REQUEST_ID.to_uppercase()] {
        let again = app
            .client
            .create_user_with_request_id("Ada", request_id)
            .await
            .unwrap();
        assert_eq!(again, first);
    }
    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(stored.users, vec![first]);
}

async fn racing_creates_with_one_request_id_store_one_user(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..5 {
        let request_id = uuid::Uuid::new_v4().to_string();
        let results = join_all((0..16).map(|_| {
            let client = app.client.clone();
            let request_id = request_id.clone();
            tokio::spawn(async move {
                client
                    .create_user_with_request_id(format!("racer {round}"), request_id)
                    .await
            })
        }))
        .await;
        let ids: Vec<i64> = results
            .into_iter()
            .map(|result| result.unwrap().unwrap().id)
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: {ids:?}");
        let stored = app
            .client
            .find_users(&FindUsers::new().name(format!("racer {round}")))
            .await
            .unwrap();
        assert_eq!(stored.users.len(), 1, "round {round}");
    }
}

async fn a_request_id_reused_with_another_name_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    let reused = app
        .client
        .create_user_with_request_id("Grace", REQUEST_ID)
        .await
        .unwrap_err();
    assert!(
        matches!(reused, ClientError::FailedPrecondition(_)),
        "{reused}"
    );
    assert_eq!(reused.reason(), Some("REQUEST_ID_REUSED"));

    // In a batch too: the whole batch is refused.
    let batch = pb::BatchCreateUsersRequest {
        requests: vec![
            pb::CreateUserRequest {
                name: "new".into(),
                request_id: String::new(),
            },
            pb::CreateUserRequest {
                name: "Grace".into(),
                request_id: REQUEST_ID.into(),
            },
        ],
    };
    let status = app
        .client
        .raw()
        .batch_create_users(batch)
        .await
        .unwrap_err();
    let error = ClientError::from(status);
    assert_eq!(error.reason(), Some("REQUEST_ID_REUSED"), "{error}");
    assert!(
        error.to_string().contains("requests[1].request_id"),
        "{error}"
    );

    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(stored.users, vec![ada]);
}

async fn request_ids_must_be_uuids(backend: Backend) {
    let app = spawn_app(backend).await;
    for request_id in ["1", "not-a-uuid", "00000000-0000-0000-0000-000000000000"] {
        let error = app
            .client
            .create_user_with_request_id("Ada", request_id)
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
        assert_eq!(error.reason(), Some("INVALID_REQUEST_ID"));
        assert_eq!(
            error.server_error().unwrap().field_violations[0].field,
            "request_id"
        );
    }
    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert!(stored.users.is_empty());
}

async fn a_request_id_is_forgotten_after_its_ttl(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.request_id_ttl = Duration::from_secs(1);
    })
    .await;
    let first = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    assert_ne!(second.id, first.id, "remembered past its ttl");
    // ... and remembered anew.
    let again = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    assert_eq!(again.id, second.id);
}

async fn a_request_id_whose_user_was_deleted_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let ada = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap();
    app.client.delete_user(ada.id, None).await.unwrap();
    let error = app
        .client
        .create_user_with_request_id("Ada", REQUEST_ID)
        .await
        .unwrap_err();
    assert!(matches!(error, ClientError::NotFound(_)), "{error}");
    let stored = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert!(
        stored.users.is_empty(),
        "a retry must not recreate a deleted user"
    );
}
