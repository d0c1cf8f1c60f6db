//! Deadlines: a call past its caller's deadline, or past the server's
//! `--default-timeout` when it has none, ends DEADLINE_EXCEEDED (not
//! tonic's CANCELLED), and its database work does not go on: PostgreSQL
//! is told to cancel the statement, and the connection is not pooled.

use std::time::{Duration, Instant};

use diesel::{QueryableByName, sql_types::BigInt};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use tonic::{Code, Request};
use users_client::pb;
use users_tests::{Backend, TestApp, spawn_app_with};

on_every_backend!(a_call_without_a_deadline_ends_at_the_default_timeout);
on_backend!(postgres_only: Postgres;
    a_call_past_its_deadline_is_deadline_exceeded_and_its_statement_is_cancelled,
);

fn rename(id: i64, name: &str) -> pb::UpdateUserRequest {
    pb::UpdateUserRequest {
        user: Some(pb::User {
            id,
            name: name.into(),
            ..Default::default()
        }),
        update_mask: None,
    }
}

async fn a_call_past_its_deadline_is_deadline_exceeded_and_its_statement_is_cancelled(
    backend: Backend,
) {
    let timeout = Duration::from_millis(300);
    let app = spawn_app_with(backend, |config| config.default_timeout = timeout).await;
    let user = app.client.create_user("John").await.unwrap();
    // The renames' UPDATE waits for this lock.
    let lock = app.database().lock_for_writes().await;

    // Ended by the server (no deadline of the caller's; the default's).
    let sent = Instant::now();
    let status = app
        .client
        .raw()
        .update_user(rename(user.id, "Jane"))
        .await
        .unwrap_err();
    let took = sent.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        took >= timeout - Duration::from_millis(5) && took < timeout * 3,
        "{took:?}"
    );
    assert_eq!(
        wait_until_no_lock_waiters(&app).await,
        0,
        "the UPDATE was cancelled"
    );

    // Ended by the caller's own deadline: tonic's client gives up at the
    // same moment and reports CANCELLED itself; the server's work must
    // stop all the same.
    let mut request = Request::new(rename(user.id, "Joan"));
    request.set_timeout(Duration::from_millis(200));
    let status = app.client.raw().update_user(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert_eq!(
        wait_until_no_lock_waiters(&app).await,
        0,
        "the UPDATE was cancelled"
    );

    lock.release().await;
    let stored = app.client.get_user(user.id).await.unwrap();
    assert_eq!(
        stored.name, "John",
        "the abandoned renames were not applied"
    );
}

async fn a_call_without_a_deadline_ends_at_the_default_timeout(backend: Backend) {
    let timeout = Duration::from_millis(300);
    let app = spawn_app_with(backend, |config| config.default_timeout = timeout).await;
    let user = app.client.create_user("John").await.unwrap();
    let lock = app.database().lock_for_writes().await;

    let sent = Instant::now();
    let status = app
        .client
        .raw()
        .update_user(rename(user.id, "Jane"))
        .await
        .unwrap_err();
    let took = sent.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        took >= timeout - Duration::from_millis(5) && took < timeout * 3,
        "{took:?}"
    );
    lock.release().await;
    // The server goes on serving.
    let renamed = app.client.rename_user(user.id, "Jane", None).await.unwrap();
    assert_eq!(renamed.name, "Jane");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    count: i64,
}

/// Waits up to 2 s for no session of the test database to wait on a lock;
/// returns how many still do.
async fn wait_until_no_lock_waiters(app: &TestApp) -> i64 {
    let mut conn = AsyncPgConnection::establish(&app.database().url())
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let waiting: Count = diesel::sql_query(
            "SELECT count(*) AS count FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(&mut conn)
        .await
        .unwrap();
        if waiting.count == 0 || started.elapsed() > Duration::from_secs(2) {
            return waiting.count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
