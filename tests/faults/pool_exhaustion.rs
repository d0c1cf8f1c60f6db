//! More slow calls at once than the pool has connections: the calls beyond
//! it get UNAVAILABLE within the pool timeout, the others succeed once
//! the database lets them, and the pool is healthy afterwards.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use users_client::ClientError;
use users_tests::{Backend, spawn_app_with};

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
    let renames = join_all((0..transactions + EXTRA).map(|i| {
        let client = app.client.clone();
        async move {
            let result = client
                .rename_user(user.id, format!("rename-{i}"), None)
                .await;
            (result.map(|_| ()), started.elapsed())
        }
    }));
    let creates = join_all((0..statements + EXTRA).map(|i| {
        let client = app.client.clone();
        async move {
            let result = client.create_user(format!("create-{i}")).await;
            (result.map(|_| ()), started.elapsed())
        }
    }));
    let release = async {
        tokio::time::sleep(POOL_TIMEOUT * 4).await;
        lock.release().await;
    };
    let (renames, creates, ()) = tokio::join!(renames, creates, release);

    for (what, results, capacity) in [
        ("renames", renames, transactions),
        ("creates", creates, statements),
    ] {
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
                took >= POOL_TIMEOUT && took < POOL_TIMEOUT * 2,
                "{what}: UNAVAILABLE after the pool timeout, not later: {took:?}"
            );
        }
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
