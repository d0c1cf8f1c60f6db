//! Conflicting transactions at once: renames of one user, and batches
//! creating the same request ids, each in its own order. At `--isolation
//! serializable` PostgreSQL rolls back all but one of them (40001), MySQL
//! some of them (1213, deadlocks), and the server runs the losers again; at the default level they wait for each
//! other, and never deadlock (the server writes request ids in one order).
//! Either way every call succeeds and the end state is as if the calls had
//! run one at a time.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use rand::seq::SliceRandom;
use users_client::{UsersClient, pb};
use users_tests::{Backend, TestDatabase};

use crate::server::ServerProcess;

/// Calls at once.
const RACERS: usize = 24;
/// Request ids every batch shares.
const SHARED_IDS: usize = 20;

/// What the server logs each time it runs a transaction again.
const RETRY_LINE: &str = "transaction failed, running it again";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_serializable_conflicts_are_retried_until_every_call_succeeds() {
    let retries = conflicting_calls(Backend::Postgres, "serializable").await;
    assert!(retries > 0, "the calls conflicted, and were run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_read_committed_racing_batches_never_deadlock() {
    // A deadlock (40P01) would show as a transaction run again; shuffled
    // batches deadlocked before request ids were written in one order.
    let retries = conflicting_calls(Backend::Postgres, "read-committed").await;
    assert_eq!(retries, 0, "no deadlock, nothing run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_serializable_deadlocks_are_retried_until_every_call_succeeds() {
    // InnoDB's SERIALIZABLE reads take shared locks: batches that read the
    // same missing request ids, then insert them, deadlock (1213).
    let retries = conflicting_calls(Backend::Mysql, "serializable").await;
    assert!(retries > 0, "the calls deadlocked, and were run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_read_committed_racing_batches_never_deadlock() {
    let retries = conflicting_calls(Backend::Mysql, "read-committed").await;
    assert_eq!(retries, 0, "no deadlock, nothing run again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_gives_the_same_answers_to_conflicting_calls() {
    conflicting_calls(Backend::Sqlite, "serializable").await;
}

/// Runs both races on a server at `isolation`; returns how many times it
/// ran a transaction again.
async fn conflicting_calls(backend: Backend, isolation: &str) -> usize {
    let db = TestDatabase::create(backend).await;
    let server = ServerProcess::start(&db.url(), &["--isolation", isolation]);
    let client = server.client().await;

    renames_of_one_user(&client).await;
    batches_sharing_request_ids(&client).await;

    let retried = server.log_lines_with(RETRY_LINE);
    println!(
        "{backend:?} at {isolation}: transactions run again: {}; first: {}",
        retried.len(),
        retried.first().map_or("-", String::as_str)
    );
    retried.len()
}

/// `RACERS` unconditional renames of one user at once: each succeeds, each
/// is applied on top of the previous one (its etag is new), and the last
/// one applied is what is stored.
async fn renames_of_one_user(client: &UsersClient) {
    let user = client.create_user("racer-0").await.unwrap();
    let renames = join_all((1..=RACERS).map(|i| {
        let client = client.clone();
        let id = user.id;
        async move { client.rename_user(id, format!("racer-{i}"), None).await }
    }))
    .await;
    let renamed: Vec<_> = renames
        .into_iter()
        .map(|rename| rename.expect("every rename succeeds"))
        .collect();

    let etags: HashSet<_> = renamed.iter().map(|user| user.etag.clone()).collect();
    assert_eq!(etags.len(), RACERS, "each rename applied on its own");
    assert!(!etags.contains(&user.etag));
    let stored = client.get_user(user.id).await.unwrap();
    let last = renamed
        .iter()
        .find(|renamed| renamed.name == stored.name)
        .expect("one of the renames is stored");
    assert_eq!(stored, *last, "the rename applied last is what is stored");
    println!("{RACERS} concurrent renames of one user: all succeeded, each applied once");
}

/// `RACERS` batches at once, each creating the same `SHARED_IDS` request ids
/// in its own order: each succeeds, and every batch gets the same user for
/// each request id: `SHARED_IDS` users in all.
async fn batches_sharing_request_ids(client: &UsersClient) {
    let shared: Vec<pb::CreateUserRequest> = (0..SHARED_IDS)
        .map(|i| pb::CreateUserRequest {
            name: format!("shared-{i}"),
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .collect();
    let batches = join_all((0..RACERS).map(|_| {
        let mut requests = shared.clone();
        requests.shuffle(&mut rand::rng());
        let mut raw = client.raw();
        async move {
            raw.batch_create_users(pb::BatchCreateUsersRequest { requests })
                .await
                .map(|response| response.into_inner().users)
        }
    }))
    .await;

    let mut user_of: HashMap<String, i64> = HashMap::new();
    for batch in batches {
        for user in batch.expect("every batch succeeds") {
            let id = *user_of.entry(user.name.clone()).or_insert(user.id);
            assert_eq!(id, user.id, "{} is one user in every batch", user.name);
        }
    }
    assert_eq!(user_of.len(), SHARED_IDS);
    let stored = crate::crash::stored_users(client).await;
    for (name, id) in &user_of {
        assert_eq!(stored.get(name), Some(&vec![*id]), "{name} stored once");
    }
    println!(
        "{RACERS} concurrent batches sharing {SHARED_IDS} request ids: all succeeded, {SHARED_IDS} users stored"
    );
}

/// Another process holds SQLite's write lock for longer than the server's
/// busy timeout (5 s): the server's transaction fails with SQLITE_BUSY, is
/// run again, and succeeds once the lock is released, within the call's
/// time (here a pool timeout of 20 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_busy_is_retried_until_the_lock_is_released() {
    const HELD: std::time::Duration = std::time::Duration::from_secs(6);
    let app = users_tests::spawn_app_with(Backend::Sqlite, |config| {
        config.pool_timeout = std::time::Duration::from_secs(20);
    })
    .await;
    // Once this is stored, the writer is idle (the start-up purge of
    // expired request ids has run, too).
    app.client.create_user("first").await.unwrap();
    let lock = app.database().lock_for_writes().await;
    let started = std::time::Instant::now();
    let (created, ()) = tokio::join!(app.client.create_user("patient"), async {
        tokio::time::sleep(HELD).await;
        lock.release().await;
    });
    let took = started.elapsed();
    println!("SQLite locked by another process for {HELD:?}: the create succeeded after {took:?}");
    let created = created.expect("the create outlasts the lock");
    assert!(took >= HELD);
    let stored = crate::crash::stored_users(&app.client).await;
    assert_eq!(
        stored.get("patient"),
        Some(&vec![created.id]),
        "stored once"
    );
}
