//! ExportUsers: every matching user, streamed in chunks, in order.

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, User};
use users_tests::{Backend, spawn_app};

on_every_backend!(
    an_export_streams_every_matching_user_across_chunks,
    an_export_resumes_after_a_page_token,
    an_invalid_export_fails_before_streaming,
);

async fn export(app: &users_tests::TestApp, query: FindUsers) -> Vec<User> {
    app.client
        .export_users(query)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

async fn an_export_streams_every_matching_user_across_chunks(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut wanted = Vec::new();
    for batch in 0..3 {
        let names = (0..1000).map(|i| {
            if i % 3 == 0 {
                format!("other-{batch}-{i}")
            } else {
                format!("user-{batch}-{i}")
            }
        });
        let users = app.client.batch_create_users(names).await.unwrap();
        wanted.extend(
            users
                .into_iter()
                .filter(|user| user.name.starts_with("user-")),
        );
    }
    assert_eq!(wanted.len(), 1998);

    // More than one chunk of 1,000, and a last chunk that is not full.
    let exported = export(&app, FindUsers::new().name_prefix("user-").page_size(7)).await;
    assert_eq!(exported, wanted);
    assert_eq!(export(&app, FindUsers::new()).await.len(), 3000);
    assert!(
        export(&app, FindUsers::new().name("nobody"))
            .await
            .is_empty()
    );
}

async fn an_export_resumes_after_a_page_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let users = app
        .client
        .batch_create_users((0..10).map(|i| format!("u{i}")))
        .await
        .unwrap();
    let query = FindUsers::new().page_size(4);
    let first = app.client.find_users(&query).await.unwrap();
    let rest = export(&app, query.page_token(first.next_page_token.unwrap())).await;
    assert_eq!(rest, users[4..]);
}

async fn an_invalid_export_fails_before_streaming(backend: Backend) {
    let app = spawn_app(backend).await;
    let error = app
        .client
        .export_users(FindUsers::new().page_token("made-up"))
        .await
        .err()
        .expect("refused");
    assert!(matches!(error, ClientError::InvalidArgument(_)), "{error}");
    assert_eq!(error.reason(), Some("INVALID_PAGE_TOKEN"));
}
