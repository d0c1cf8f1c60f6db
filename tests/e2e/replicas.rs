//! Replicas are interchangeable: several servers on one database, and
//! whatever one of them hands out (page tokens, etags, request ids) works
//! on any other.

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, SortField};
use users_tests::{Backend, spawn_app};

on_every_backend!(what_one_replica_hands_out_works_on_another);

async fn what_one_replica_hands_out_works_on_another(backend: Backend) {
    let app = spawn_app(backend).await;
    let other = app.replica().await;
    let (a, b) = (&app.client, &other.client);
    for name in ["carol", "alice", "dave", "bob", "erin", "frank", "alice"] {
        a.create_user(name).await.unwrap();
    }

    // Paging: each page from the other replica than the one before.
    let query = FindUsers::new().order_by(SortField::Name).page_size(2);
    let everyone = a
        .find_users(&query.clone().page_size(100))
        .await
        .unwrap()
        .users;
    let mut paged = Vec::new();
    let mut next = Some(query.clone());
    for turn in 0.. {
        let Some(page_query) = next.take() else { break };
        let client = if turn % 2 == 0 { a } else { b };
        let page = client.find_users(&page_query).await.unwrap();
        next = page
            .next_page_token
            .map(|token| query.clone().page_token(token));
        paged.extend(page.users);
    }
    assert_eq!(paged, everyone);
    // An export from a token the other replica issued.
    let first = a.find_users(&query).await.unwrap();
    let rest: Vec<_> = b
        .export_users(query.clone().page_token(first.next_page_token.unwrap()))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rest, everyone[2..]);

    // Etags: read on one, written on the other.
    let read = a.get_user(everyone[0].id).await.unwrap();
    let renamed = b
        .rename_user(read.id, "alice, renamed", Some(&read.etag))
        .await
        .unwrap();
    let stale = a.rename_user(read.id, "too late", Some(&read.etag)).await;
    assert!(matches!(stale, Err(ClientError::Aborted(_))), "{stale:?}");
    a.delete_user(renamed.id, Some(&renamed.etag))
        .await
        .unwrap();

    // Request ids: a retry on the other replica returns the first user.
    let request_id = "3b241101-e2bb-4255-8caf-4136c566a962";
    let created = a
        .create_user_with_request_id("grace", request_id)
        .await
        .unwrap();
    let retried = b
        .create_user_with_request_id("grace", request_id)
        .await
        .unwrap();
    assert_eq!(retried, created);
    let reused = b
        .create_user_with_request_id("heidi", request_id)
        .await
        .unwrap_err();
    assert!(
        matches!(reused, ClientError::FailedPrecondition(_)),
        "{reused:?}"
    );
    drop(other);
}
