//! The server's SQLite table and statements, reproduced with diesel's sync
//! `SqliteConnection` so that the ceiling runs the same SQL on the same
//! bundled SQLite without the service around it.
//!
//! Every statement is built with diesel's query DSL in a fixed shape (all
//! values bound, LIMIT included), which makes diesel prepare it once per
//! connection and reuse it from its statement cache, as the server does.
//! `diesel::sql_query` would be re-prepared on every call.

use std::path::Path;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;

use crate::error::BenchError;

/// The server's own table definition, so both query the same columns.
pub use users_server::db::schema::{create_requests, users};

/// The columns FindUsers and CreateUser return.
pub type UserRow = (i64, String, NaiveDateTime, NaiveDateTime, i64);

/// Rows a find fetches: one more than the page, as the server does to learn
/// whether another page follows.
pub const FIND_LIMIT: i64 = 11;

/// Opens the database at `path`, which the server has already migrated,
/// and configures the connection as the server does.
pub fn open(path: &Path) -> Result<SqliteConnection, BenchError> {
    let error = |detail: String| BenchError::Database {
        path: path.display().to_string(),
        detail,
    };
    // Opening a missing file would create an empty database and fail later
    // with a puzzling "no such table".
    if !path.is_file() {
        return Err(error(
            "no such database file; start users-server once with \
             --database-url sqlite://PATH so that it creates the users table"
                .to_owned(),
        ));
    }
    let url = path
        .to_str()
        .ok_or_else(|| error("the path is not valid UTF-8".to_owned()))?;
    let mut conn = SqliteConnection::establish(url).map_err(|e| error(e.to_string()))?;
    // The server's own settings, so both run the same SQLite.
    conn.batch_execute(users_server::db::sqlite::PRAGMAS)
        .map_err(|e| error(format!("cannot set the PRAGMAs: {e}")))?;
    users::table
        .select(users::id)
        .limit(1)
        .load::<i64>(&mut conn)
        .map_err(|e| {
            error(format!(
                "cannot read the users table ({e}); has users-server migrated this database?"
            ))
        })?;
    Ok(conn)
}

/// The columns FindUsers and CreateUser return, in [`UserRow`] order.
const USER_COLUMNS: (
    users::id,
    users::name,
    users::create_time,
    users::update_time,
    users::revision,
) = (
    users::id,
    users::name,
    users::create_time,
    users::update_time,
    users::revision,
);

/// `SELECT id, name, create_time, update_time, revision FROM users
///  WHERE name = ? ORDER BY id LIMIT 11` (a first page)
pub fn find_by_name(conn: &mut SqliteConnection, name: &str) -> QueryResult<Vec<UserRow>> {
    users::table
        .select(USER_COLUMNS)
        .filter(users::name.eq(name))
        .order(users::id)
        .limit(FIND_LIMIT)
        .load(conn)
}

/// `... WHERE name >= ? AND name < ? ORDER BY id LIMIT 11`
pub fn find_by_name_range(
    conn: &mut SqliteConnection,
    low: &str,
    high: &str,
) -> QueryResult<Vec<UserRow>> {
    users::table
        .select(USER_COLUMNS)
        .filter(users::name.ge(low))
        .filter(users::name.lt(high))
        .order(users::id)
        .limit(FIND_LIMIT)
        .load(conn)
}

/// `SELECT id, name, create_time, update_time, revision FROM users
///  WHERE id = ? LIMIT 1`
pub fn get(conn: &mut SqliteConnection, id: i64) -> QueryResult<UserRow> {
    users::table.find(id).select(USER_COLUMNS).first(conn)
}

/// CreateUser with a new request id, as the server runs it on SQLite:
/// insert the user and record the request id, in one transaction (the
/// server's is a savepoint in its writer's group).
pub fn insert_with_request_id(
    conn: &mut SqliteConnection,
    name: &str,
    request_id: &str,
) -> QueryResult<UserRow> {
    conn.immediate_transaction(|conn| {
        let user = insert(conn, name)?;
        diesel::insert_into(create_requests::table)
            .values((
                create_requests::request_id.eq(request_id),
                create_requests::name.eq(name),
                create_requests::user_id.eq(user.0),
                create_requests::create_time.eq(user.2),
            ))
            .execute(conn)?;
        Ok(user)
    })
}

/// `INSERT INTO users (name, create_time, update_time) VALUES (?, ?, ?)
///  RETURNING id, name, create_time, update_time, revision`
pub fn insert(conn: &mut SqliteConnection, name: &str) -> QueryResult<UserRow> {
    let now = now();
    diesel::insert_into(users::table)
        .values((
            users::name.eq(name),
            users::create_time.eq(now),
            users::update_time.eq(now),
        ))
        .returning(USER_COLUMNS)
        .get_result(conn)
}

/// The current UTC time, to the microsecond as the server stores it (both
/// backends keep microseconds, so the server truncates; so do we, to do the
/// same work).
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

/// How a failed statement is counted in a report.
pub fn failure_reason(error: &DieselError) -> &'static str {
    match error {
        DieselError::DatabaseError(_, info) if info.message().contains("locked") => {
            "database_locked"
        }
        DieselError::DatabaseError(..) => "database_error",
        _ => "diesel_error",
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use diesel::connection::{Instrumentation, InstrumentationEvent};

    use super::*;

    /// The server's own migrations, so that the statements are checked
    /// against the real schema.
    const SCHEMA: [&str; 4] = [
        include_str!("../../migrations/sqlite/2026-11-25-000000_create_users/up.sql"),
        include_str!("../../migrations/sqlite/2026-11-26-000000_add_user_revision/up.sql"),
        include_str!("../../migrations/sqlite/2026-11-26-000001_index_users_by_create_time/up.sql"),
        include_str!("../../migrations/sqlite/2026-11-26-000002_create_create_requests/up.sql"),
    ];

    fn migrated() -> (tempfile::TempDir, SqliteConnection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        let mut conn = SqliteConnection::establish(path.to_str().unwrap()).unwrap();
        for step in SCHEMA {
            conn.batch_execute(step).unwrap();
        }
        drop(conn);
        let conn = open(&path).unwrap();
        (dir, conn)
    }

    #[test]
    fn a_missing_or_unmigrated_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let error = |path: &Path| open(path).err().expect("open fails").to_string();
        let missing = error(&dir.path().join("nope.db"));
        assert!(missing.contains("no such database file"), "{missing}");

        let empty = dir.path().join("empty.db");
        SqliteConnection::establish(empty.to_str().unwrap()).unwrap();
        let unmigrated = error(&empty);
        assert!(
            unmigrated.contains("has users-server migrated"),
            "{unmigrated}"
        );
    }

    #[test]
    fn the_statements_return_what_the_finds_expect() {
        let (_dir, mut conn) = migrated();
        for i in 0..300 {
            insert(&mut conn, &crate::workload::seeded_name(i, 20)).unwrap();
        }
        // 300 users over 20 names: 15 each; prefix user-0000 covers ten names.
        assert_eq!(find_by_name(&mut conn, "user-00007").unwrap().len(), 11);
        let (low, high) = crate::workload::prefix_bounds(0);
        let rows = find_by_name_range(&mut conn, &low, &high).unwrap();
        assert_eq!(rows.len(), 11);
        assert!(rows.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert!(rows.iter().all(|row| row.1.starts_with("user-0000")));
        let row = insert(&mut conn, "bench-1").unwrap();
        assert_eq!((row.0, row.1.as_str()), (301, "bench-1"));
        assert_eq!(get(&mut conn, 301).unwrap(), row);
        let row = insert_with_request_id(&mut conn, "bench-2", "r-1").unwrap();
        assert_eq!((row.0, row.1.as_str()), (302, "bench-2"));
        assert!(insert_with_request_id(&mut conn, "bench-3", "r-1").is_err());
    }

    /// Collects the SQL of every statement diesel prepares for its cache.
    #[derive(Debug, Default, Clone)]
    struct CachedStatements(Arc<Mutex<Vec<String>>>);

    impl Instrumentation for CachedStatements {
        fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
            if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                self.0.lock().unwrap().push(sql.to_owned());
            }
        }
    }

    #[test]
    fn each_statement_is_prepared_once_and_then_reused() {
        let (_dir, mut conn) = migrated();
        let cached = CachedStatements::default();
        conn.set_instrumentation(cached.clone());
        for i in 0..5 {
            insert(&mut conn, &format!("bench-{i}")).unwrap();
            find_by_name(&mut conn, &format!("bench-{i}")).unwrap();
            find_by_name_range(&mut conn, "bench-", "bench.").unwrap();
            get(&mut conn, 1).unwrap();
        }
        let cached = cached.0.lock().unwrap();
        assert_eq!(cached.len(), 4, "{cached:#?}");
        assert!(cached[0].starts_with("INSERT INTO"), "{cached:#?}");
        assert!(cached[0].contains("RETURNING"), "{cached:#?}");
        assert!(cached[1].contains("LIMIT ?"), "{cached:#?}");
    }
}
