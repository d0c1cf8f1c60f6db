//! Deadlines: a call past its caller's deadline, or past the server's
//! `--default-timeout` when it has none, ends DEADLINE_EXCEEDED (not
//! tonic's CANCELLED), and its database work does not go on: PostgreSQL
//! is told to cancel the statement, and the connection is not pooled.

use std::time::{Duration, Instant};

use tonic::{
    Code, Request,
    transport::{Channel, Endpoint},
};
use users_client::pb;
use users_tests::{Backend, TestApp, spawn_app, spawn_app_with};

on_every_backend!(
    a_call_without_a_deadline_ends_at_the_default_timeout,
    an_export_without_a_deadline_may_outlast_the_default_timeout,
);
on_backend!(postgres_only: Postgres;
    a_call_past_its_deadline_is_deadline_exceeded_and_its_statement_is_cancelled,
    // On SQLite the chunks are read so fast that the server has read (and
    // HTTP/2 buffered) all 5000 users before any deadline worth testing.
    an_export_past_its_callers_deadline_ends_deadline_exceeded,
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
    // Back while the lock was still held, so ended by the deadline.
    assert!(took >= timeout - Duration::from_millis(5), "{took:?}");
    assert_eq!(
        app.database().wait_until_no_writes_wait().await,
        Some(0),
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
        app.database().wait_until_no_writes_wait().await,
        Some(0),
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
    // Back while the lock was still held, so ended by the deadline.
    assert!(took >= timeout - Duration::from_millis(5), "{took:?}");
    lock.release().await;
    // The server goes on serving.
    let renamed = app.client.rename_user(user.id, "Jane", None).await.unwrap();
    assert_eq!(renamed.name, "Jane");
}

/// Exports of [`EXPORT_USERS`] users of 200-odd bytes, read slowly over
/// [`narrow_channel`]: the server reads its last chunks only as the reader
/// makes room.
const EXPORT_USERS: usize = 5000;

/// A channel whose HTTP/2 windows hold 64 KiB, not the megabytes a client
/// allows by default, so a slow reader holds the server back at once.
async fn narrow_channel(app: &TestApp) -> pb::user_service_client::UserServiceClient<Channel> {
    let channel = Endpoint::from_shared(app.endpoint.clone())
        .unwrap()
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await
        .unwrap();
    pb::user_service_client::UserServiceClient::new(channel)
}

/// A server with `default_timeout`, on a database of [`EXPORT_USERS`]
/// users (stored by a server with the default timeout).
async fn app_with_users_to_export(backend: Backend, default_timeout: Duration) -> TestApp {
    let mut app = spawn_app(backend).await;
    for batch in 0..EXPORT_USERS / 1000 {
        let names: Vec<_> = (0..1000)
            .map(|n| format!("user-{batch}-{n}-{}", "x".repeat(200)))
            .collect();
        app.client.batch_create_users(names).await.unwrap();
    }
    app.restart_with(|config| config.default_timeout = default_timeout)
        .await;
    app
}

/// Reads `export`, pausing `pause` after every hundred users; how many
/// it got, and how it ended.
async fn read_slowly(
    mut export: tonic::Streaming<pb::User>,
    pause: Duration,
) -> (usize, Result<(), tonic::Status>) {
    let mut received = 0;
    loop {
        match export.message().await {
            Ok(Some(_)) => {
                received += 1;
                if received % 100 == 0 {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(None) => return (received, Ok(())),
            Err(status) => return (received, Err(status)),
        }
    }
}

/// The reader pauses a twentieth of the deadline every hundred users, so
/// reading all [`EXPORT_USERS`] takes 2.45 deadlines however fast the
/// machine: the deadline always falls mid-export. A server that has not
/// even begun the export by then (a loaded machine) has not shown what
/// this test is about, so the deadline doubles, and the export is asked
/// for again.
async fn an_export_past_its_callers_deadline_ends_deadline_exceeded(backend: Backend) {
    let app = app_with_users_to_export(backend, Duration::from_secs(30)).await;
    let mut timeout = Duration::from_millis(400);
    let (received, status, took) = loop {
        let mut request = Request::new(pb::ExportUsersRequest::default());
        request.set_timeout(timeout);
        let started = Instant::now();
        let export = match narrow_channel(&app).await.export_users(request).await {
            Ok(export) => export.into_inner(),
            Err(status) if status.code() == Code::DeadlineExceeded && timeout < MAX_TIMEOUT => {
                timeout *= 2;
                continue;
            }
            Err(status) => panic!("the export did not begin within {timeout:?}: {status:?}"),
        };
        let (received, end) = read_slowly(export, timeout / 20).await;
        let status = end.expect_err("the deadline falls mid-export");
        if received == 0 && status.code() == Code::DeadlineExceeded && timeout < MAX_TIMEOUT {
            timeout *= 2;
            continue;
        }
        break (received, status, started.elapsed());
    };

    // The status comes from the server: tonic's client bounds only the
    // wait for the response's headers.
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(0 < received && received < EXPORT_USERS, "{received}");
    assert!(took >= timeout - Duration::from_millis(5), "{took:?}");
}

/// The longest deadline the export test tries (its fifth).
const MAX_TIMEOUT: Duration = Duration::from_millis(6400);

async fn an_export_without_a_deadline_may_outlast_the_default_timeout(backend: Backend) {
    let default_timeout = Duration::from_millis(300);
    let app = app_with_users_to_export(backend, default_timeout).await;
    let started = Instant::now();
    let export = narrow_channel(&app)
        .await
        .export_users(pb::ExportUsersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let (received, end) = read_slowly(export, Duration::from_millis(50)).await;
    assert!(
        end.is_ok(),
        "a reader that keeps reading gets everything: {end:?}"
    );
    assert_eq!(received, EXPORT_USERS);
    assert!(
        started.elapsed() > default_timeout * 2,
        "{:?}",
        started.elapsed()
    );
}
