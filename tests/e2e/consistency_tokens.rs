//! `x-consistency-token` on a server without read replicas: writes send
//! none back (every read is on the primary already), and a read that
//! presents one is served as usual; a token that is not one is
//! INVALID_ARGUMENT. With replicas, `tests/faults/read_replicas.rs`.

use tonic::{Code, Request};
use users_client::{FindUsers, pb};
use users_tests::{Backend, spawn_app};

on_every_backend!(
    without_read_replicas_writes_return_no_token_and_reads_accept_one,
    a_token_that_is_not_a_wal_position_is_invalid_argument,
);

const KEY: &str = "x-consistency-token";

fn find_with_token(token: &str) -> Request<pb::FindUsersRequest> {
    let mut request = Request::new(pb::FindUsersRequest::default());
    request.metadata_mut().insert(KEY, token.parse().unwrap());
    request
}

async fn without_read_replicas_writes_return_no_token_and_reads_accept_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let created = app
        .client
        .raw()
        .create_user(pb::CreateUserRequest {
            name: "Ada".into(),
            request_id: String::new(),
        })
        .await
        .unwrap();
    assert!(
        created.metadata().get(KEY).is_none(),
        "{:?}",
        created.metadata()
    );
    app.client.create_user("Grace").await.unwrap();
    assert_eq!(app.client.consistency_token(), None);

    let found = app
        .client
        .raw()
        .find_users(find_with_token("16/B374D848"))
        .await
        .unwrap();
    assert_eq!(found.into_inner().users.len(), 2);
    let page = app.client.find_users(&FindUsers::new()).await.unwrap();
    assert_eq!(page.users.len(), 2);
}

async fn a_token_that_is_not_a_wal_position_is_invalid_argument(backend: Backend) {
    let app = spawn_app(backend).await;
    for junk in ["", "16", "16/", "not/hex", "1/2/3", "100000000/0"] {
        let status = app
            .client
            .raw()
            .find_users(find_with_token(junk))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{junk:?}: {status:?}");
        assert_eq!(
            status.message(),
            "x-consistency-token must be the value of a write's x-consistency-token, a WAL position such as 16/B374D848",
            "{junk:?}"
        );
    }
}
