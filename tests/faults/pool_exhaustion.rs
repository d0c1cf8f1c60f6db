//! More slow calls at once than the pool has connections: the calls beyond
//! it get UNAVAILABLE after the pool timeout while the database still keeps
//! the others waiting, the others succeed once the database lets them, and
//! the pool is healthy afterwards.
//!
//! Nothing here depends on the machine's speed: the lock is released once
//! the calls beyond the pool have come back, not after a set time, so a
//! slow machine can neither let an extra call through nor make one late.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use users_client::ClientError;
use users_tests::{Backend, Tally, spawn_app_with};

const POOL_SIZE: u32 = 2;
const POOL_TIMEOUT: Duration = Duration::from_millis(500);
/// One-statement calls that PostgreSQL pipelines on each shared connection
/// (the server's `PIPELINE_DEPTH`).
const PIPELINE_DEPTH: usize = 16;
/// Calls beyond the pool's capacity.
const EXTRA: usize = 8;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_calls_beyond_the_pool_are_unavailable_within_the_pool_timeout() {
    let app = spawn_app_with(Backend::Postgres, |config| {
        config.pool_size = POOL_SIZE;
        config.pool_timeout = POOL_TIMEOUT;
    })
    .await;
    let user = app.client.create_user("renamed").await.unwrap();
    // Every write now waits for the lock, holding its connection (or its
    // turn on a shared one) while it waits: slow calls.
    let lock = app.database().lock_for_writes().await;

    let transactions = POOL_SIZE as usize; // renames: a connection each
    let statements = POOL_SIZE as usize * PIPELINE_DEPTH; // creates: a turn each
    let started = Instant::now();
    let (refused_renames, refused_creates) = (Tally::default(), Tally::default());
    let renames = join_all((0..transactions + EXTRA).map(|i| {
        let client = app.client.clone();
        let refused = &refused_renames;
        async move {
            let result = client
                .rename_user(user.id, format!("rename-{i}"), None)
                .await;
            refused.add_if(matches!(result, Err(ClientError::Unavailable(_))));
            (result.map(|_| ()), started.elapsed())
        }
    }));
    let creates = join_all((0..statements + EXTRA).map(|i| {
        let client = app.client.clone();
        let refused = &refused_creates;
        async move {
            let result = client.create_user(format!("create-{i}")).await;
            refused.add_if(matches!(result, Err(ClientError::Unavailable(_))));
            (result.map(|_| ()), started.elapsed())
        }
    }));
    let release = async {
        refused_renames
            .reaches(EXTRA, "renames beyond the pool")
            .await;
        refused_creates
            .reaches(EXTRA, "creates beyond the pool")
            .await;
        lock.release().await;
    };
    let (renames, creates, ()) = tokio::join!(renames, creates, release);

    for (what, results, capacity) in [
        ("renames", renames, transactions),
        ("creates", creates, statements),
    ] {
        beyond_the_pool(what, &results, capacity);
    }

    // Healthy afterwards: as many calls again succeed.
    let again = join_all((0..statements).map(|i| {
        let client = app.client.clone();
        async move { client.create_user(format!("again-{i}")).await }
    }))
    .await;
    assert!(again.iter().all(Result::is_ok), "{again:?}");
    let renamed = app.client.rename_user(user.id, "after", None).await;
    assert!(renamed.is_ok(), "{renamed:?}");
}

/// SQLite has one writer: while a lock held outside the server keeps it
/// waiting, every write waits for its turn, and gets UNAVAILABLE at the
/// pool timeout with nothing written; reads are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_that_cannot_start_in_time_are_unavailable_and_not_applied() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.pool_size = POOL_SIZE;
        config.pool_timeout = POOL_TIMEOUT;
    })
    .await;
    let before = app.client.create_user("before").await.unwrap();
    let lock = app.database().lock_for_writes().await;

    let started = Instant::now();
    let creates = join_all((0..40).map(|i| {
        let client = app.client.clone();
        async move {
            let result = client.create_user(format!("create-{i}")).await;
            (result, started.elapsed())
        }
    }));
    let reads = async {
        tokio::time::sleep(POOL_TIMEOUT / 2).await;
        app.client.get_user(before.id).await
    };
    let (creates, read) = tokio::join!(creates, reads);
    assert_eq!(read.expect("reads are served while writes wait"), before);
    let slowest = creates
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    println!(
        "SQLite: 40 creates while the writer waited for a lock: {} UNAVAILABLE, the slowest after {slowest:?} (pool timeout {POOL_TIMEOUT:?})",
        creates
            .iter()
            .filter(|(result, _)| matches!(result, Err(ClientError::Unavailable(_))))
            .count()
    );
    // All of them came back while the lock was still held: none waited
    // for it past the pool timeout.
    for (result, took) in &creates {
        assert!(
            matches!(result, Err(ClientError::Unavailable(_))),
            "{result:?}"
        );
        assert!(
            *took >= POOL_TIMEOUT,
            "not before the pool timeout: {took:?}"
        );
    }
    lock.release().await;

    let after = app.client.create_user("after").await.unwrap();
    let stored = crate::crash::stored_users(&app.client).await;
    let mut names: Vec<_> = stored.keys().cloned().collect();
    names.sort();
    assert_eq!(
        names,
        ["after", "before"],
        "no UNAVAILABLE create was applied"
    );
    assert!(after.id > before.id);
}

/// MySQL lends each call a connection of its own: with every write waiting
/// for a lock held outside the server, as many creates as the pool has
/// connections wait and then succeed; the rest get UNAVAILABLE at the pool
/// timeout, with nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_calls_beyond_the_pool_are_unavailable_within_the_pool_timeout() {
    let app = spawn_app_with(Backend::Mysql, |config| {
        config.pool_size = POOL_SIZE;
        config.pool_timeout = POOL_TIMEOUT;
    })
    .await;
    let lock = app.database().lock_for_writes().await;

    let started = Instant::now();
    let refused = Tally::default();
    let creates = join_all((0..POOL_SIZE as usize + EXTRA).map(|i| {
        let client = app.client.clone();
        let refused = &refused;
        async move {
            let result = client.create_user(format!("create-{i}")).await;
            refused.add_if(matches!(result, Err(ClientError::Unavailable(_))));
            (result.map(|_| ()), started.elapsed())
        }
    }));
    let release = async {
        refused.reaches(EXTRA, "creates beyond the pool").await;
        lock.release().await;
    };
    let (creates, ()) = tokio::join!(creates, release);

    beyond_the_pool(
        "MySQL creates, writes locked,",
        &creates,
        POOL_SIZE as usize,
    );

    // Only the creates that succeeded were stored, and the pool is healthy.
    let stored = crate::crash::stored_users(&app.client).await;
    assert_eq!(stored.len(), POOL_SIZE as usize, "{stored:?}");
    let again = join_all((0..4 * POOL_SIZE).map(|i| {
        let client = app.client.clone();
        async move { client.create_user(format!("again-{i}")).await }
    }))
    .await;
    assert!(again.iter().all(Result::is_ok), "{again:?}");
}

/// Checks calls made at once on a pool that could hold `capacity` of
/// them while the database kept them waiting: that many succeeded, the
/// [`EXTRA`] others got UNAVAILABLE, after the pool timeout and while the
/// lock was held (it is released only once they are back).
fn beyond_the_pool(what: &str, results: &[(Result<(), ClientError>, Duration)], capacity: usize) {
    let succeeded = results.iter().filter(|(result, _)| result.is_ok()).count();
    let unavailable: Vec<Duration> = results
        .iter()
        .filter_map(|(result, took)| match result {
            Err(ClientError::Unavailable(_)) => Some(*took),
            _ => None,
        })
        .collect();
    let slowest = unavailable.iter().max().copied().unwrap_or_default();
    println!(
        "{what}: {} at once on a pool of {capacity}: {succeeded} succeeded, {} UNAVAILABLE, \
         the slowest after {slowest:?} (pool timeout {POOL_TIMEOUT:?})",
        results.len(),
        unavailable.len(),
    );
    assert_eq!(succeeded, capacity, "{what}: {results:?}");
    assert_eq!(unavailable.len(), EXTRA, "{what}: {results:?}");
    for took in unavailable {
        assert!(
            took >= POOL_TIMEOUT,
            "{what}: UNAVAILABLE only after the pool timeout: {took:?}"
        );
    }
}
