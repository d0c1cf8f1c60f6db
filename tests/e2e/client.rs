//! The client crate's own resilience: its timeouts bound a call, retries
//! included, and the server gives up at the same moment; calls that are
//! safe to repeat are sent again after UNAVAILABLE, the others are not;
//! a server that went away is failed over to. (Killing a replica under
//! load: `tests/faults/failover.rs`.)

use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use users_client::{ClientError, FindUsers, RetryPolicy, UsersClient};
use users_tests::{Backend, spawn_app, spawn_app_with};

on_every_backend!(
    a_timeout_bounds_the_call_and_the_server_gives_up_too,
    an_export_ends_at_its_timeout,
    calls_fail_over_to_a_server_that_answers,
);
on_backend!(sqlite_writer: Sqlite;
    creates_are_retried_after_unavailable_and_renames_are_not,
);

async fn a_timeout_bounds_the_call_and_the_server_gives_up_too(backend: Backend) {
    let app = spawn_app(backend).await;
    let lock = app.database().lock_for_writes().await;

    let timeout = Duration::from_millis(300);
    let sent = Instant::now();
    let error = app
        .client
        .with_timeout(timeout)
        .create_user("Late")
        .await
        .unwrap_err();
    let took = sent.elapsed();
    // What becomes of the create depends on how the backend runs it.
    // MySQL: on a connection of its own, killed when the server gives up
    // (a moment after the client: the lock is held until then, or the
    // insert could slip through in between). PostgreSQL: one statement,
    // pipelined on a shared connection that cannot cancel it without
    // cancelling its neighbours, so it runs once the lock is gone. SQLite:
    // its writer finishes a unit it has started. As with any gRPC call past
    // its deadline, it may have been applied, then; but at most once.
    if backend == Backend::Mysql {
        assert_eq!(
            app.database().wait_until_no_writes_wait().await,
            Some(0),
            "the server killed its insert"
        );
    }
    lock.release().await;

    assert!(
        matches!(error, ClientError::DeadlineExceeded(_)),
        "{error:?}"
    );
    // Back while the lock was still held: the timeout ended the call, not
    // the lock (no upper bound on `took`: a loaded machine fires timers
    // late, and that is not what this test is about).
    assert!(took >= timeout - Duration::from_millis(5), "{took:?}");
    // Until PostgreSQL's statement is done; SQLite's writer shows nothing
    // to wait for, so it gets a moment.
    if app.database().wait_until_no_writes_wait().await.is_none() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let late = app
        .client
        .find_users(&FindUsers::new().name("Late"))
        .await
        .unwrap();
    match backend {
        Backend::Mysql => assert!(late.users.is_empty(), "{late:?}"),
        Backend::Postgres | Backend::Sqlite => assert!(late.users.len() <= 1, "{late:?}"),
    }
    // Without the lock the same client is served within its timeout.
    let user = app
        .client
        .with_timeout(timeout)
        .create_user("On time")
        .await;
    assert!(user.is_ok(), "{user:?}");
}

async fn an_export_ends_at_its_timeout(backend: Backend) {
    let app = spawn_app(backend).await;
    let names: Vec<_> = (0..1000).map(|n| format!("user-{n}")).collect();
    app.client.batch_create_users(names).await.unwrap();

    let timeout = Duration::from_millis(400);
    let started = Instant::now();
    let mut users = app
        .client
        .with_timeout(timeout)
        .export_users(FindUsers::new())
        .await
        .unwrap();
    let mut received = 0;
    let error = loop {
        match users.try_next().await {
            Ok(Some(_)) => {
                received += 1;
                // A slow reader: the whole export cannot finish in time.
                if received % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            Ok(None) => panic!("the export finished after {:?}", started.elapsed()),
            Err(error) => break error,
        }
    };
    let took = started.elapsed();
    assert!(
        matches!(error, ClientError::DeadlineExceeded(_)),
        "{error:?}"
    );
    // Ended part way (fewer than 1000), so by the timeout, not by the end.
    assert!(received > 0 && received < 1000, "{received}");
    assert!(took >= timeout, "{took:?}");
}

async fn calls_fail_over_to_a_server_that_answers(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut away = spawn_app(backend).await;
    let away_endpoint = away.endpoint.clone();
    let client = UsersClient::builder(&away_endpoint)
        .endpoint(&app.endpoint)
        .connect()
        .await
        .unwrap();
    away.stop().await;

    // Renames and deletes too: a refused connection means the call never
    // left, so any call may go to the other server.
    for n in 0..20 {
        let user = client.create_user(format!("user-{n}")).await.unwrap();
        assert_eq!(client.get_user(user.id).await.unwrap(), user);
        let renamed = client.rename_user(user.id, "renamed", None).await.unwrap();
        client
            .delete_user(renamed.id, Some(&renamed.etag))
            .await
            .unwrap();
    }

    // With only servers that are away, the error says so, fast.
    let nobody = UsersClient::connect(&away_endpoint).await;
    assert!(
        matches!(nobody, Err(ClientError::Connect { .. })),
        "{nobody:?}"
    );
    let lazy = UsersClient::builder(&app.endpoint)
        .endpoint(&away_endpoint)
        .connect()
        .await
        .unwrap();
    app.stop().await;
    let sent = Instant::now();
    let error = lazy.get_user(1).await.unwrap_err();
    assert!(matches!(error, ClientError::Unavailable(_)), "{error:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
}

/// On SQLite a write that cannot get the writer within `--pool-timeout`
/// is UNAVAILABLE and not applied: a create is sent again until the writer
/// is free, a rename (not safe to repeat in general) is not.
async fn creates_are_retried_after_unavailable_and_renames_are_not(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.pool_timeout = Duration::from_millis(100);
    })
    .await;
    let user = app.client.create_user("John").await.unwrap();
    let patient = app.client.with_retry_policy(
        RetryPolicy::default()
            .max_attempts(50)
            .backoff(Duration::from_millis(20), Duration::from_millis(50)),
    );

    let lock = app.database().lock_for_writes().await;
    let rename = patient.rename_user(user.id, "Jane", None).await;
    assert!(
        matches!(rename, Err(ClientError::Unavailable(_))),
        "{rename:?}"
    );

    let unlock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        lock.release().await;
    });
    let sent = Instant::now();
    let created = patient.create_user("Patient").await;
    let took = sent.elapsed();
    unlock.await.unwrap();
    assert!(created.is_ok(), "{created:?}");
    assert!(
        took >= Duration::from_millis(500),
        "sent again until the writer was free: {took:?}"
    );

    let stored = app
        .client
        .find_users(&FindUsers::new().name("Patient"))
        .await
        .unwrap();
    assert_eq!(stored.users.len(), 1, "stored once: {stored:?}");
    assert_eq!(app.client.get_user(user.id).await.unwrap().name, "John");
}
