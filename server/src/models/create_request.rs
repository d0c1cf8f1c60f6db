//! The `create_requests` table: which user a recent create's request id
//! made, so that a retry returns that user instead of making another.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::user::{push_insert_returning, returns_a_user};
use super::{Event, EventKind, NewUser, User};
use crate::db::{Tx, mysql::last_insert_id, on_backend, schema::create_requests, written_row};
use crate::domain::{RequestId, UserName};

/// A create remembered under its request id.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = create_requests)]
pub struct CreateRequest {
    /// The name that create asked for.
    pub name: String,
    /// The user it created.
    pub user_id: i64,
    /// When (UTC); the request id is forgotten some time after.
    pub create_time: NaiveDateTime,
}

impl CreateRequest {
    /// Stores `new_user` and remembers `request_id` for it, atomically, in
    /// as few steps as the backend allows: on PostgreSQL one statement (so
    /// that it needs no explicit transaction and can be pipelined), on
    /// SQLite two in a savepoint inside the writer's group, on MySQL two in
    /// the unit's own transaction.
    ///
    /// Fails with a unique violation, changing nothing, if `request_id` is
    /// remembered already (by a create that came first, or one that
    /// expired but was not purged yet); the caller then runs the full
    /// look-up-first transaction, which sorts out which.
    pub async fn create_user(
        tx: &mut Tx<'_>,
        new_user: &NewUser,
        request_id: &RequestId,
        call: &str,
    ) -> QueryResult<User> {
        let statement = CreateRemembered {
            name: new_user.name(),
            now: new_user.create_time(),
            request_id: request_id.as_str(),
            call,
        };
        match tx {
            Tx::Postgres(conn) => statement.load(&mut **conn).await.and_then(written_row),
            Tx::PostgresPipelined(conn) => statement.load(&mut **conn).await.and_then(written_row),
            Tx::Sqlite(conn) => {
                conn.transaction(async |conn| {
                    Self::insert_and_record(&mut Tx::Sqlite(conn), new_user, request_id, call).await
                })
                .await
            }
            // Every MySQL write is a transaction of its own already, rolled
            // back whole on any error: no savepoint. (One would also hide
            // the error: when InnoDB or Galera aborts the transaction, 1213,
            // the savepoint is gone too, and diesel reports the failed
            // ROLLBACK TO SAVEPOINT instead of the conflict, which is then
            // not run again.)
            Tx::Mysql(conn, check) => {
                new_user
                    .create_on_mysql(conn, *check, Some(request_id), call)
                    .await
            }
        }
    }

    /// The steps of [`create_user`](Self::create_user) where it takes
    /// several: the user, its request id, its event.
    async fn insert_and_record(
        tx: &mut Tx<'_>,
        new_user: &NewUser,
        request_id: &RequestId,
        call: &str,
    ) -> QueryResult<User> {
        let user = new_user.insert(tx).await?;
        let created = [(request_id, new_user.user_name(), user.id)];
        Self::record_all(tx, &created, user.create_time).await?;
        Event::record(
            tx,
            EventKind::Created,
            std::slice::from_ref(&user),
            user.create_time,
            call,
        )
        .await?;
        Ok(user)
    }

    /// The create remembered under each of `request_ids` that has one,
    /// with its request id.
    pub async fn find(
        tx: &mut Tx<'_>,
        request_ids: &[&str],
    ) -> QueryResult<Vec<(String, CreateRequest)>> {
        on_backend!(tx, |conn| {
            create_requests::table
                .filter(create_requests::request_id.eq_any(request_ids))
                .select((create_requests::request_id, CreateRequest::as_select()))
                .load(conn)
                .await
        })
    }

    /// Remembers, for each `(request_id, name, user_id)`, that the create
    /// under `request_id` asking for `name` made `user_id`, in the order
    /// given (one INSERT, where the backend allows).
    pub async fn record_all(
        tx: &mut Tx<'_>,
        created: &[(&RequestId, &UserName, i64)],
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        if created.is_empty() {
            return Ok(());
        }
        let rows: Vec<_> = created
            .iter()
            .map(|(request_id, name, user_id)| {
                (
                    create_requests::request_id.eq(request_id.as_str()),
                    create_requests::name.eq(name.as_str()),
                    create_requests::user_id.eq(*user_id),
                    create_requests::create_time.eq(now),
                )
            })
            .collect();
        let insert = diesel::insert_into(create_requests::table);
        if let [row] = &rows[..] {
            // One row (a CreateUser): diesel keeps a single-row INSERT
            // prepared, never a multi-row one.
            on_backend!(tx, |conn| insert.values(*row).execute(conn).await)?;
            return Ok(());
        }
        match tx {
            Tx::Postgres(conn) => insert.values(rows).execute(&mut **conn).await?,
            Tx::PostgresPipelined(conn) => insert.values(rows).execute(&mut **conn).await?,
            Tx::Mysql(conn, _) => insert.values(rows).execute(&mut **conn).await?,
            // diesel has no multi-row INSERT for SQLite (it lacks DEFAULT);
            // in-process, a row at a time costs little.
            Tx::Sqlite(conn) => {
                for row in rows {
                    insert.values(row).execute(&mut **conn).await?;
                }
                created.len()
            }
        };
        Ok(())
    }

    /// MySQL: remembers that the create under `request_id` asking for
    /// `name` made the user the connection inserted last
    /// ([`last_insert_id`]), without asking for its id.
    pub async fn record_last_inserted(
        conn: &mut AsyncMysqlConnection,
        request_id: &RequestId,
        name: &UserName,
        now: NaiveDateTime,
    ) -> QueryResult<()> {
        diesel::insert_into(create_requests::table)
            .values((
                create_requests::request_id.eq(request_id.as_str()),
                create_requests::name.eq(name.as_str()),
                create_requests::user_id.eq(last_insert_id()),
                create_requests::create_time.eq(now),
            ))
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Forgets `request_id` (one that has expired).
    pub async fn forget(tx: &mut Tx<'_>, request_id: &str) -> QueryResult<()> {
        on_backend!(tx, |conn| {
            diesel::delete(create_requests::table.find(request_id))
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    /// Forgets every request id remembered since before `cutoff`; returns
    /// how many.
    pub async fn purge(tx: &mut Tx<'_>, cutoff: NaiveDateTime) -> QueryResult<usize> {
        on_backend!(tx, |conn| {
            diesel::delete(create_requests::table.filter(create_requests::create_time.lt(cutoff)))
                .execute(conn)
                .await
        })
    }
}

/// PostgreSQL's one statement for [`CreateRequest::create_user`]: the user
/// and its request id, inserted together by a data-modifying `WITH`. A
/// query type of its own, rather than `sql_query`, so that diesel keeps it
/// prepared (it never caches raw SQL).
#[derive(Debug, Clone, Copy)]
struct CreateRemembered<'a> {
    name: &'a str,
    now: NaiveDateTime,
    request_id: &'a str,
    /// The call's `x-request-id`, for the event.
    call: &'a str,
}

returns_a_user!(CreateRemembered);

impl QueryFragment<Pg> for CreateRemembered<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH new_user AS (");
        push_insert_returning(&mut out, self.name, &self.now)?;
        out.push_sql(
            "), \
             remembered AS (INSERT INTO create_requests (request_id, name, user_id, create_time) \
             SELECT ",
        );
        out.push_bind_param::<Text, _>(self.request_id)?;
        out.push_sql(", name, id, create_time FROM new_user)");
        Event::push_created_cte(&mut out, self.call)?;
        out.push_sql(" SELECT id, name, create_time, update_time, revision FROM new_user");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postgres_create_is_one_statement_diesel_keeps_prepared() {
        let statement = CreateRemembered {
            name: "Ada",
            now: NaiveDateTime::default(),
            request_id: "8d7c7ed4-4e5b-4bb4-9a6c-1f0f0e1b8a3c",
            call: "trace-1",
        };
        const { assert!(<CreateRemembered<'_> as diesel::query_builder::QueryId>::HAS_STATIC_QUERY_ID) };
        assert_eq!(statement.is_safe_to_cache_prepared(&Pg), Ok(true));
        let sql = diesel::debug_query::<Pg, _>(&statement).to_string();
        assert!(
            sql.starts_with("WITH new_user AS (INSERT INTO users"),
            "{sql}"
        );
        assert!(
            sql.contains("SELECT $4, name, id, create_time FROM new_user"),
            "{sql}"
        );
        assert!(sql.contains("INSERT INTO user_events"), "{sql}");
        assert!(!sql.contains("$6"), "{sql}");
    }
}
