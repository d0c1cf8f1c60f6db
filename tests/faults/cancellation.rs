//! Thousands of calls cancelled at random points, by their deadline (the
//! server drops the call) or by the caller dropping it (HTTP/2 RST_STREAM):
//! no pooled connection is left inside a transaction (PostgreSQL, MariaDB), every batch is stored
//! whole or not at all, and the server serves normally afterwards.

use std::{collections::BTreeMap, time::Duration};

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Text},
};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::{StreamExt, future::join_all, stream};
use rand::Rng;
use tonic::Code;
use users_client::pb;
use users_tests::{Backend, TestApp, spawn_app_with};

/// Calls cancelled at random (times [`crate::soak`]).
const CALLS: usize = 3000;
/// Users per batch.
const BATCH: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_calls_cancelled_at_random_points_leave_every_connection_clean() {
    cancelled_at_random_points(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_calls_cancelled_at_random_points_leave_no_transaction_open() {
    cancelled_at_random_points(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_calls_cancelled_at_random_points_leave_every_batch_whole() {
    cancelled_at_random_points(Backend::Sqlite).await;
}

async fn cancelled_at_random_points(backend: Backend) {
    let calls = CALLS * crate::soak();
    let app = spawn_app_with(backend, |config| config.pool_size = 4).await;
    let target = app.client.create_user("target").await.unwrap();

    let outcomes: Vec<Code> = stream::iter(0..calls)
        .map(|call| cancelled_call(&app, call, target.id))
        .buffer_unordered(8)
        .collect()
        .await;
    let mut by_code = BTreeMap::new();
    for code in &outcomes {
        *by_code.entry(format!("{code:?}")).or_insert(0) += 1;
    }
    println!("{backend:?}: {calls} calls with random deadlines and drops: {by_code:?}");
    for code in &outcomes {
        assert!(
            matches!(code, Code::Ok | Code::DeadlineExceeded | Code::Cancelled),
            "a cancelled call fails only as cancelled: {by_code:?}"
        );
    }
    assert!(
        by_code.get("Ok").copied().unwrap_or(0) > 0,
        "some calls finished"
    );
    assert!(
        by_code.get("Ok").copied().unwrap_or(0) < calls,
        "some calls were cancelled"
    );

    // The server drops a cancelled call's connection if it was inside a
    // transaction; the database notices the closed socket at once.
    match backend {
        Backend::Postgres => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let sessions = session_states(&app).await;
            println!("PostgreSQL sessions of the server afterwards, by state: {sessions:?}");
            for state in sessions.keys() {
                assert_eq!(
                    state, "idle",
                    "no session is left in a transaction: {sessions:?}"
                );
            }
        }
        Backend::Mysql => {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let (sessions, open) = mysql_sessions(&app).await;
            println!(
                "MariaDB sessions of the server afterwards: {sessions}, with a transaction open: {open}"
            );
            assert_eq!(open, 0, "no session is left in a transaction");
        }
        Backend::Sqlite => {}
    }

    // Whole or nothing.
    let stored = crate::crash::stored_users(&app.client).await;
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    for call in 0..calls {
        let size = (0..BATCH)
            .filter(|i| stored.contains_key(&format!("batch-{call}-{i}")))
            .count();
        *sizes.entry(size).or_default() += 1;
    }
    println!("{backend:?}: batches by users stored: {sizes:?}");
    assert!(
        sizes.keys().all(|size| *size == 0 || *size == BATCH),
        "every batch stored whole or not at all: {sizes:?}"
    );

    // And the pool serves as before: as many transactions at once as it
    // has connections, several times over.
    let after = join_all((0..32).map(|i| {
        let client = app.client.clone();
        async move {
            client
                .batch_create_users((0..BATCH).map(|j| format!("after-{i}-{j}")))
                .await
        }
    }))
    .await;
    for batch in after {
        batch.expect("the pool serves normally after the cancellations");
    }
    app.client
        .rename_user(target.id, "target, renamed", None)
        .await
        .expect("the pool serves normally after the cancellations");
}

/// One call, cancelled after a random 0-100 ms: half by a deadline the
/// server enforces, half by the caller dropping it. Mostly batches (a
/// transaction of several statements), some renames.
async fn cancelled_call(app: &TestApp, call: usize, target: i64) -> Code {
    let (after, by_deadline, rename) = {
        let mut rng = rand::rng();
        (
            Duration::from_micros(rng.random_range(0..100_000)),
            rng.random_bool(0.5),
            rng.random_bool(0.2),
        )
    };
    let mut raw = app.client.raw();
    let answer = async move {
        if rename {
            let mut request = tonic::Request::new(pb::UpdateUserRequest {
                user: Some(pb::User {
                    id: target,
                    name: format!("renamed-{call}"),
                    ..Default::default()
                }),
                update_mask: None,
            });
            if by_deadline {
                request.set_timeout(after);
            }
            raw.update_user(request).await.map(|_| ())
        } else {
            let requests = (0..BATCH)
                .map(|i| pb::CreateUserRequest {
                    name: format!("batch-{call}-{i}"),
                    request_id: uuid::Uuid::new_v4().to_string(),
                })
                .collect();
            let mut request = tonic::Request::new(pb::BatchCreateUsersRequest { requests });
            if by_deadline {
                request.set_timeout(after);
            }
            raw.batch_create_users(request).await.map(|_| ())
        }
    };
    if by_deadline {
        answer.await.map_or_else(
            |status| {
                if status.code() != Code::Cancelled {
                    eprintln!("{after:?} {status:?}");
                }
                status.code()
            },
            |()| Code::Ok,
        )
    } else {
        match tokio::time::timeout(after, answer).await {
            Ok(answered) => answered.map_or_else(|status| status.code(), |()| Code::Ok),
            Err(_) => Code::Cancelled,
        }
    }
}

#[derive(QueryableByName)]
struct SessionState {
    #[diesel(sql_type = Text)]
    state: String,
}

/// The server's sessions on its MariaDB database, and how many of them
/// have an InnoDB transaction open.
async fn mysql_sessions(app: &TestApp) -> (i64, i64) {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        count: i64,
    }
    let mut conn = AsyncMysqlConnection::establish(&app.database().url())
        .await
        .unwrap();
    let mut count = async |sql: &str| -> i64 {
        let rows: Vec<Count> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
        rows[0].count
    };
    let ours = "p.db = DATABASE() AND p.id <> CONNECTION_ID()";
    let sessions = count(&format!(
        "SELECT COUNT(*) AS count FROM information_schema.PROCESSLIST p WHERE {ours}"
    ))
    .await;
    let open = count(&format!(
        "SELECT COUNT(*) AS count FROM information_schema.INNODB_TRX t \
         JOIN information_schema.PROCESSLIST p ON p.id = t.trx_mysql_thread_id WHERE {ours}"
    ))
    .await;
    (sessions, open)
}

/// The server's sessions on its database, counted by `pg_stat_activity`
/// state (`idle`, `active`, `idle in transaction`, ...).
async fn session_states(app: &TestApp) -> BTreeMap<String, usize> {
    let mut conn = AsyncPgConnection::establish(&app.database().url())
        .await
        .unwrap();
    let sessions: Vec<SessionState> = diesel::sql_query(
        "SELECT coalesce(state, '') AS state FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let mut states = BTreeMap::new();
    for session in sessions {
        *states.entry(session.state).or_default() += 1;
    }
    states
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_reads_cut_short_mid_reply_leave_no_connection_that_answers_wrongly() {
    reads_cut_short(Backend::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reads_cut_short_mid_reply_leave_no_connection_that_answers_wrongly() {
    reads_cut_short(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reads_cut_short_mid_reply_leave_no_connection_that_answers_wrongly() {
    reads_cut_short(Backend::Sqlite).await;
}

/// Pages of 1,000 users: a reply long enough that a call dropped at a
/// random point is often dropped while its rows are still arriving.
const BULK: usize = 1000;
/// Reads dropped at random points (times [`crate::soak`]).
const DROPPED_READS: usize = 600;

/// FindUsers calls of 1,000 rows dropped by their callers at random
/// points, beside GetUser calls that are not: every GetUser, during the
/// storm and after it, answers with the user it asked for. (MySQL's
/// driver left a dropped query's unread rows on its connection, back in
/// the pool; the next call on it read them as its own reply.)
async fn reads_cut_short(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.pool_size = 2).await;
    let bulk = app
        .client
        .batch_create_users((0..BULK).map(|_| "bulk, a name long enough to fill the reply"))
        .await
        .unwrap();
    let singles = app
        .client
        .batch_create_users((0..50).map(|i| format!("single-{i}")))
        .await
        .unwrap();
    assert_eq!(bulk.len(), BULK);

    let dropped = stream::iter(0..DROPPED_READS * crate::soak())
        .map(|_| dropped_find(&app))
        .buffer_unordered(6);
    let checked = stream::iter(0..DROPPED_READS * crate::soak() / 3)
        .map(|call| checked_get(&app, &singles[call % singles.len()]))
        .buffer_unordered(2);
    let (dropped, wrong): (Vec<bool>, Vec<Option<String>>) =
        tokio::join!(dropped.collect(), checked.collect());
    let cut_short = dropped.iter().filter(|finished| !**finished).count();
    let wrong: Vec<String> = wrong.into_iter().flatten().collect();
    println!(
        "{backend:?}: {} FindUsers of {BULK} rows, {cut_short} dropped before their reply; \
         {} checked GetUser calls beside them, {} answered wrongly",
        dropped.len(),
        dropped.len() / 3,
        wrong.len()
    );
    assert!(cut_short > 0, "some reads were dropped");
    assert!(
        wrong.is_empty(),
        "every GetUser answers with its own user: {:?}",
        &wrong[..wrong.len().min(5)]
    );
    for user in &singles {
        if let Some(wrong) = checked_get(&app, user).await {
            panic!("after the drops, a GetUser answered wrongly: {wrong}");
        }
    }
}

/// A FindUsers of [`BULK`] rows, dropped after a random 0-20 ms; whether
/// it finished first.
async fn dropped_find(app: &TestApp) -> bool {
    let after = Duration::from_micros(rand::rng().random_range(0..20_000));
    let mut raw = app.client.raw();
    let find = raw.find_users(pb::FindUsersRequest {
        name: "bulk, a name long enough to fill the reply".to_owned(),
        page_size: BULK as i32,
        ..Default::default()
    });
    tokio::time::timeout(after, find).await.is_ok()
}

/// GetUser of `user`, not cancelled: `None` if the answer is the user,
/// else what was wrong.
async fn checked_get(app: &TestApp, user: &users_client::User) -> Option<String> {
    let answer = app
        .client
        .raw()
        .get_user(pb::GetUserRequest { id: user.id })
        .await;
    match answer.map(|response| response.into_inner().user) {
        Ok(Some(got)) if got.id == user.id && got.name == user.name => None,
        Ok(got) => Some(format!("GetUser({}) answered {got:?}", user.id)),
        Err(status) => Some(format!(
            "GetUser({}) failed: {:?} {}",
            user.id,
            status.code(),
            status.message()
        )),
    }
}
