//! The server is killed with SIGKILL in the middle of a write load and
//! started again: every acknowledged create is stored exactly once, the
//! server starts cleanly on the database it left (migrations are
//! idempotent), and the creates that got no answer, sent again with their
//! request ids, are stored once too.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use users_client::{FindUsers, UsersClient};
use users_tests::{Backend, TestDatabase};

use crate::{
    load::{self, CreateLoad, Outcomes},
    server::ServerProcess,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_server_killed_mid_write_loses_no_acknowledged_create() {
    killed_mid_write(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_killed_mid_write_loses_no_acknowledged_create() {
    killed_mid_write(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_server_killed_mid_write_loses_no_acknowledged_create() {
    killed_mid_write(Backend::Mysql).await;
}

async fn killed_mid_write(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let mut server = ServerProcess::start(&db.url(), &[]);
    let mut outcomes = Outcomes::default();
    let kills = crate::soak();
    for kill in 0..kills {
        let load = CreateLoad::start(&server.client().await, 16, &format!("crash-{kill}"));
        load.wait_for_acknowledged(500).await;
        server.kill();
        outcomes.calls.extend(load.stop().await.calls);
        server.restart();
    }
    assert_eq!(
        server.log_lines_with("applied migrations").len(),
        1,
        "the restart found the schema current:\n{}",
        server.log_tail(20)
    );
    let client = server.client().await;
    let lost = acknowledged_but_not_stored_once(&client, &outcomes).await;

    // The creates that got no answer may or may not have been stored;
    // sent again under their request ids, each ends up stored once.
    let unanswered: Vec<_> = outcomes.unacknowledged().collect();
    let mut stored_before_retry = 0;
    let before = stored_users(&client).await;
    for call in &unanswered {
        stored_before_retry += usize::from(before.contains_key(&call.attempt.name));
        let retried = load::create(&client, call.attempt.clone()).await;
        assert!(retried.outcome.is_ok(), "{retried:?}");
    }
    let after = stored_users(&client).await;
    let not_once = unanswered
        .iter()
        .filter(|call| after.get(&call.attempt.name).map(Vec::len) != Some(1))
        .count();

    println!(
        "kill -9 ({backend:?}) x{kills}: {} creates acknowledged, lost or duplicated: {lost}; \
         {} unanswered ({:?}), {stored_before_retry} of them stored before they were sent again, \
         not stored exactly once after: {not_once}",
        outcomes.acknowledged().count(),
        unanswered.len(),
        outcomes.failures_by_code(),
    );
    assert_eq!(lost, 0);
    assert_eq!(not_once, 0);
}

/// Every stored user's ids, by name.
pub async fn stored_users(client: &UsersClient) -> HashMap<String, Vec<i64>> {
    let users: Vec<_> = client
        .export_users(FindUsers::new())
        .await
        .expect("export")
        .try_collect()
        .await
        .expect("export");
    let mut by_name: HashMap<String, Vec<i64>> = HashMap::new();
    for user in users {
        by_name.entry(user.name).or_default().push(user.id);
    }
    by_name
}

/// How many acknowledged creates are not stored exactly once, under the
/// id they were acknowledged with (each is listed on stderr).
pub async fn acknowledged_but_not_stored_once(client: &UsersClient, outcomes: &Outcomes) -> usize {
    let stored = stored_users(client).await;
    let mut wrong = 0;
    for (attempt, id) in outcomes.acknowledged() {
        let ids = stored.get(&attempt.name).map(Vec::as_slice);
        if ids != Some(&[id]) {
            wrong += 1;
            eprintln!(
                "{} was acknowledged as user {id}, stored as {ids:?}; user {id} now: {:?}",
                attempt.name,
                client.get_user(id).await
            );
        }
    }
    wrong
}
