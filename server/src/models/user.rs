//! The `users` table.

use chrono::{NaiveDateTime, SubsecRound, Utc};
use diesel::backend::Backend;
use diesel::mysql::Mysql;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::serialize::ToSql;
use diesel::sql_types::HasSqlType;
use diesel::sql_types::{BigInt, Text, Timestamp};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

use super::{CreateRequest, Event, EventKind};
use crate::db::{
    Tx,
    mysql::{WriteCheck, inserted_ids, last_insert_id, rolled_back_under_us},
    on_backend,
    schema::users,
    written_row,
};
use crate::domain::{After, Etag, NameMatch, OrderBy, RequestId, SortField, UserId, UserName};

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    /// Assigned by the database; grows in creation order.
    pub id: i64,
    /// Exactly as given.
    pub name: String,
    /// UTC.
    pub create_time: NaiveDateTime,
    /// UTC.
    pub update_time: NaiveDateTime,
    /// Incremented by every write.
    pub revision: i64,
}

/// A user about to be stored.
#[derive(Debug, Clone)]
pub struct NewUser {
    name: UserName,
    create_time: NaiveDateTime,
    update_time: NaiveDateTime,
}

/// The time now, UTC, in microseconds: the finest every backend stores, so
/// that what a write returns is exactly what a later read returns.
pub fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

impl NewUser {
    /// A user named `name`, created at `now` (see [`now()`]).
    pub fn new(name: UserName, now: NaiveDateTime) -> Self {
        Self {
            name,
            create_time: now,
            update_time: now,
        }
    }

    /// The name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The name, validated.
    pub fn user_name(&self) -> &UserName {
        &self.name
    }

    /// When it is created (UTC).
    pub fn create_time(&self) -> NaiveDateTime {
        self.create_time
    }

    /// Stores the user, with its event for the call `request_id`, and
    /// returns the stored row: on PostgreSQL one statement (so that it
    /// needs no explicit transaction and can be pipelined), on SQLite two
    /// in a savepoint inside the writer's group, on MySQL a few in the
    /// unit's own transaction.
    pub async fn create(&self, tx: &mut Tx<'_>, request_id: &str) -> QueryResult<User> {
        let statement = CreateWithEvent {
            name: self.name(),
            now: self.create_time,
            call: request_id,
        };
        match tx {
            Tx::Postgres(conn) => statement.load(&mut **conn).await.and_then(written_row),
            Tx::PostgresPipelined(conn) => statement.load(&mut **conn).await.and_then(written_row),
            Tx::Sqlite(conn) => {
                conn.transaction(async |conn| {
                    let mut tx = Tx::Sqlite(conn);
                    let user = self.insert(&mut tx).await?;
                    let created = std::slice::from_ref(&user);
                    Event::record(
                        &mut tx,
                        EventKind::Created,
                        created,
                        user.create_time,
                        request_id,
                    )
                    .await?;
                    Ok(user)
                })
                .await
            }
            Tx::Mysql(conn, check) => self.create_on_mysql(conn, *check, None, request_id).await,
        }
    }

    /// MySQL: [`create`](Self::create), also remembering `remembered` for
    /// it if given ([`CreateRequest::create_user`]), in the unit's own
    /// transaction, rolled back whole on any error (no savepoint: see
    /// there).
    ///
    /// On MariaDB outside Galera ([`WriteCheck::Returning`]) the insert
    /// returns the row and the event is inserted as written: BEGIN, two
    /// INSERTs, COMMIT (three with a request id), no more than the least an
    /// outbox takes where no statement writes two tables.
    ///
    /// Elsewhere ([`WriteCheck::ReadBack`]) there is no RETURNING: each
    /// statement names the new row by [`last_insert_id`] instead of asking
    /// for the id first (the remembered request has no AUTO_INCREMENT
    /// column, so inserting it leaves `LAST_INSERT_ID()` the user's), the
    /// event is copied from the row, and the row is then read back through
    /// its event, after the last write, which tells that no write was
    /// rolled back under the transaction ([`rolled_back_under_us`]): three
    /// statements between BEGIN and COMMIT, four with a request id.
    pub async fn create_on_mysql(
        &self,
        conn: &mut AsyncMysqlConnection,
        check: WriteCheck,
        remembered: Option<&RequestId>,
        call: &str,
    ) -> QueryResult<User> {
        if check == WriteCheck::Returning {
            let user = self.insert_returning().get_result::<User>(conn).await?;
            let mut tx = Tx::Mysql(conn, check);
            if let Some(request_id) = remembered {
                let created = [(request_id, self.user_name(), user.id)];
                CreateRequest::record_all(&mut tx, &created, user.create_time).await?;
            }
            Event::record_as_written(&mut tx, EventKind::Created, &user, user.create_time, call)
                .await?;
            return self.as_stored(Some(user));
        }
        diesel::insert_into(users::table)
            .values(self.values())
            .execute(conn)
            .await?;
        if let Some(request_id) = remembered {
            CreateRequest::record_last_inserted(conn, request_id, &self.name, self.create_time)
                .await?;
        }
        Event::record_last_inserted(conn, EventKind::Created, self.create_time, call).await?;
        let stored = Event::last_recorded_user(conn).await?;
        self.as_stored(stored)
    }

    /// MariaDB: the INSERT that stores the user and returns its row
    /// ([`WriteCheck::Returning`]).
    pub fn insert_returning(&self) -> InsertReturning<'_> {
        InsertReturning {
            name: self.name(),
            now: self.create_time,
        }
    }

    /// Stores the user and returns the stored row; records no event.
    pub async fn insert(&self, tx: &mut Tx<'_>) -> QueryResult<User> {
        on_backend!(tx, |conn| {
            diesel::insert_into(users::table)
                .values(self.values())
                .returning(User::as_returning())
                .load(conn)
                .await
                .and_then(written_row)
        }, without_returning: |conn| {
            diesel::insert_into(users::table)
                .values(self.values())
                .execute(conn)
                .await?;
            let stored = users::table
                .filter(users::id.eq(last_insert_id()))
                .select(User::as_select())
                .first(conn)
                .await
                .optional()?;
            self.as_stored(stored)
        })
    }

    /// MySQL: `stored`, the row this transaction inserted for the user as
    /// read back in it: exactly the row it wrote, unless the database
    /// rolled the transaction back without saying so
    /// ([`rolled_back_under_us`]): then a serialization failure.
    fn as_stored(&self, stored: Option<User>) -> QueryResult<User> {
        match stored {
            Some(user) if user.name == self.name() && user.create_time == self.create_time => {
                Ok(user)
            }
            _ => Err(rolled_back_under_us(
                "the user this transaction inserted is gone",
            )),
        }
    }

    /// Stores `new_users` and returns the stored rows, in order: one
    /// multi-row INSERT where diesel has one (a thousand users cost one
    /// round trip, not a thousand), else one INSERT each (SQLite, where a
    /// statement costs no round trip).
    ///
    /// A multi-row INSERT numbers its rows in the order of its VALUES, so
    /// the rows sorted by id are the users in order; without RETURNING,
    /// MySQL reads them back by the ids it gave them ([`inserted_ids`]).
    /// Either way the rows are checked against what was written.
    pub async fn insert_all(tx: &mut Tx<'_>, new_users: &[NewUser]) -> QueryResult<Vec<User>> {
        if new_users.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<_> = new_users.iter().map(NewUser::values).collect();
        let insert = diesel::insert_into(users::table).values(rows);
        let mut users: Vec<User> = match tx {
            Tx::Postgres(conn) => {
                insert
                    .returning(User::as_returning())
                    .load(&mut **conn)
                    .await?
            }
            Tx::PostgresPipelined(conn) => {
                insert
                    .returning(User::as_returning())
                    .load(&mut **conn)
                    .await?
            }
            Tx::Mysql(conn, _) => {
                insert.execute(&mut **conn).await?;
                let ids = inserted_ids(conn, new_users.len()).await?;
                let users = users::table
                    .filter(users::id.eq_any(&ids))
                    .select(User::as_select())
                    .load(&mut **conn)
                    .await?;
                if users.len() != ids.len() {
                    return Err(rolled_back_under_us(
                        "users this transaction inserted are gone",
                    ));
                }
                users
            }
            Tx::Sqlite(conn) => {
                let mut users = Vec::with_capacity(new_users.len());
                for new_user in new_users {
                    users.push(new_user.insert(&mut Tx::Sqlite(conn)).await?);
                }
                users
            }
        };
        users.sort_unstable_by_key(|user| user.id);
        let as_written = users.len() == new_users.len()
            && users.iter().zip(new_users).all(|(user, new_user)| {
                user.name == new_user.name() && user.create_time == new_user.create_time
            });
        if !as_written {
            return Err(diesel::result::Error::DeserializationError(
                "the rows a multi-row INSERT stored are not the rows it was given, in order".into(),
            ));
        }
        Ok(users)
    }

    /// MySQL: fails with a serialization failure unless every one of
    /// `users`, inserted by this transaction, is still there. Run after the
    /// unit's last write, it tells that no write of the unit was rolled
    /// back under it without an error ([`rolled_back_under_us`]): on a
    /// Galera node, and on MySQL, checked alike ([`WriteCheck::ReadBack`]).
    /// Other servers report every rollback: nothing to check.
    pub async fn confirm_stored(tx: &mut Tx<'_>, users: &[User]) -> QueryResult<()> {
        let Tx::Mysql(conn, WriteCheck::ReadBack) = tx else {
            return Ok(());
        };
        if users.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = users.iter().map(|user| user.id).collect();
        let stored: i64 = users::table
            .filter(users::id.eq_any(&ids))
            .count()
            .get_result(&mut **conn)
            .await
            .optional()?
            .unwrap_or(0);
        if stored == i64::try_from(ids.len()).unwrap_or(i64::MAX) {
            Ok(())
        } else {
            Err(rolled_back_under_us(
                "users this transaction inserted are gone",
            ))
        }
    }

    /// The row as `column = value` pairs rather than an `Insertable`
    /// struct: diesel will not cache a prepared statement for a struct's
    /// insert (each column could be `DEFAULT`, changing the SQL), which
    /// costs PostgreSQL a parse on every call.
    fn values(&self) -> NewUserValues<'_> {
        (
            users::name.eq(self.name.as_str()),
            users::create_time.eq(self.create_time),
            users::update_time.eq(self.update_time),
        )
    }
}

type NewUserValues<'a> = (
    diesel::dsl::Eq<users::name, &'a str>,
    diesel::dsl::Eq<users::create_time, NaiveDateTime>,
    diesel::dsl::Eq<users::update_time, NaiveDateTime>,
);

/// What a conditional write found.
#[derive(Debug)]
pub enum Written<T> {
    /// Done.
    Done(T),
    /// No user has that id.
    Missing,
    /// The user has changed since the etag was read; nothing was written.
    Stale,
}

impl User {
    /// The user's etag.
    pub fn etag(&self) -> Etag {
        Etag::of(self.revision)
    }

    /// Where a listing in `field` order continues after this user.
    pub fn position(&self, field: SortField) -> After {
        match field {
            SortField::Id => After::Id(self.id),
            SortField::Name => After::Name(self.name.clone(), self.id),
            SortField::CreateTime => After::CreateTime(self.create_time, self.id),
        }
    }

    /// The users with these ids that exist, in no order.
    pub async fn get_many(tx: &mut Tx<'_>, ids: &[i64]) -> QueryResult<Vec<User>> {
        on_backend!(tx, |conn| {
            users::table
                .filter(users::id.eq_any(ids))
                .select(User::as_select())
                .load(conn)
                .await
        })
    }

    /// The user with this id, if any.
    pub async fn get(tx: &mut Tx<'_>, id: UserId) -> QueryResult<Option<User>> {
        on_backend!(tx, |conn| {
            users::table
                .find(id.get())
                .select(User::as_select())
                .first(conn)
                .await
                .optional()
        })
    }

    /// Renames the user `id`, if `expected` is its etag (or `None`): moves
    /// `update_time` to `now` and increments the revision; and records the
    /// event, for the call `request_id`.
    pub async fn rename(
        tx: &mut Tx<'_>,
        id: UserId,
        expected: Option<Etag>,
        name: &UserName,
        now: NaiveDateTime,
        request_id: &str,
    ) -> QueryResult<Written<User>> {
        let changes = (
            users::name.eq(name.as_str()),
            users::update_time.eq(now),
            users::revision.eq(users::revision + 1),
        );
        let updated = on_backend!(tx, |conn| {
            let target = users::table.filter(users::id.eq(id.get()));
            match expected {
                None => diesel::update(target)
                    .set(changes)
                    .returning(User::as_returning())
                    .load(conn)
                    .await
                    .and_then(written_row)
                    .optional(),
                Some(etag) => diesel::update(target.filter(users::revision.eq(etag.revision())))
                    .set(changes)
                    .returning(User::as_returning())
                    .load(conn)
                    .await
                    .and_then(written_row)
                    .optional(),
            }
        }, without_returning: |conn| {
            // The UPDATE locks the row until the unit's transaction ends, so
            // the row read back is the one it wrote. (Every rename changes
            // the revision, so "rows changed" is "rows matched".)
            let target = users::table.filter(users::id.eq(id.get()));
            let changed = match expected {
                None => diesel::update(target).set(changes).execute(conn).await?,
                Some(etag) => {
                    diesel::update(target.filter(users::revision.eq(etag.revision())))
                        .set(changes)
                        .execute(conn)
                        .await?
                }
            };
            match changed {
                0 => Ok(None),
                _ => {
                    let user = users::table
                        .find(id.get())
                        .select(User::as_select())
                        .first(conn)
                        .await
                        .optional()?;
                    match user {
                        Some(user) if user.name == name.as_str() && user.update_time == now => {
                            Ok(Some(user))
                        }
                        // The row as another write left it, or gone.
                        _ => Err(rolled_back_under_us("the rename this transaction made is gone")),
                    }
                }
            }
        })?;
        match updated {
            Some(user) => {
                Event::record(
                    tx,
                    EventKind::Updated,
                    std::slice::from_ref(&user),
                    now,
                    request_id,
                )
                .await?;
                Ok(Written::Done(user))
            }
            None => Self::why_not_written(tx, id).await,
        }
    }

    /// Deletes the user `id`, if `expected` is its etag (or `None`), and
    /// records the event (the user as it was, at `now`, for the call
    /// `request_id`).
    ///
    /// The row is read first, locked until the unit ends (SQLite: its one
    /// writer), so that the event holds exactly the row deleted.
    pub async fn delete(
        tx: &mut Tx<'_>,
        id: UserId,
        expected: Option<Etag>,
        now: NaiveDateTime,
        request_id: &str,
    ) -> QueryResult<Written<()>> {
        let row = users::table.find(id.get());
        let user: Option<User> = match tx {
            Tx::Postgres(conn) => {
                row.select(User::as_select())
                    .for_update()
                    .first(&mut **conn)
                    .await
            }
            Tx::PostgresPipelined(conn) => {
                row.select(User::as_select())
                    .for_update()
                    .first(&mut **conn)
                    .await
            }
            Tx::Mysql(conn, _) => {
                row.select(User::as_select())
                    .for_update()
                    .first(&mut **conn)
                    .await
            }
            Tx::Sqlite(conn) => row.select(User::as_select()).first(&mut **conn).await,
        }
        .optional()?;
        let Some(user) = user else {
            return Ok(Written::Missing);
        };
        if expected.is_some_and(|etag| etag.revision() != user.revision) {
            return Ok(Written::Stale);
        }
        Event::record(
            tx,
            EventKind::Deleted,
            std::slice::from_ref(&user),
            now,
            request_id,
        )
        .await?;
        let deleted = on_backend!(tx, |conn| {
            diesel::delete(
                users::table
                    .filter(users::id.eq(user.id))
                    .filter(users::revision.eq(user.revision)),
            )
            .execute(conn)
            .await
        })?;
        // A Galera node (or MySQL, checked alike): as the writes that read
        // their rows back, make sure the delete stands
        // ([`rolled_back_under_us`]).
        if let Tx::Mysql(conn, WriteCheck::ReadBack) = tx {
            let still_there: bool =
                diesel::select(diesel::dsl::exists(users::table.find(id.get())))
                    .get_result(&mut **conn)
                    .await?;
            if deleted != 1 || still_there {
                return Err(rolled_back_under_us(
                    "the user this transaction deleted is back",
                ));
            }
        }
        if deleted != 1 {
            // The row is locked: only a bug gets here.
            return Err(diesel::result::Error::NotFound);
        }
        Ok(Written::Done(()))
    }

    /// After a conditional write matched no row: was the user missing, or
    /// its etag stale?
    async fn why_not_written<T>(tx: &mut Tx<'_>, id: UserId) -> QueryResult<Written<T>> {
        let exists: bool = on_backend!(tx, |conn| {
            diesel::select(diesel::dsl::exists(users::table.find(id.get())))
                .get_result(conn)
                .await
        })?;
        Ok(if exists {
            Written::Stale
        } else {
            Written::Missing
        })
    }

    /// Up to `limit` users whose names match, in `order`, after `after`.
    ///
    /// Boxed queries, since the order and the page position vary; diesel
    /// still keeps each distinct statement prepared, keyed by its SQL. The
    /// page position is `key >= k AND (key > k OR id > i)` rather than
    /// `(key, id) > (k, i)`, which not every backend's planner turns into an
    /// index range: the first half bounds the scan of the `(key, id)` index,
    /// the second skips the few rows that tie with the last one.
    pub async fn find(
        tx: &mut Tx<'_>,
        names: &NameMatch<'_>,
        order: OrderBy,
        after: Option<&After>,
        limit: i64,
    ) -> QueryResult<Vec<User>> {
        on_backend!(tx, |conn| {
            let mut query = users::table
                .select(User::as_select())
                .limit(limit)
                .into_boxed();
            query = match names {
                NameMatch::Any => query,
                NameMatch::Exact(name) => query.filter(users::name.eq(*name)),
                NameMatch::Prefix { from, below } => {
                    let query = query.filter(users::name.ge(*from));
                    match below {
                        Some(below) => query.filter(users::name.lt(below.as_str())),
                        None => query,
                    }
                }
                NameMatch::Nothing => return Ok(Vec::new()),
            };
            let descending = order.descending;
            query = match (after, descending) {
                (None, _) => query,
                (Some(After::Id(id)), false) => query.filter(users::id.gt(*id)),
                (Some(After::Id(id)), true) => query.filter(users::id.lt(*id)),
                (Some(After::Name(name, id)), false) => query
                    .filter(users::name.ge(name.as_str()))
                    .filter(users::name.gt(name.as_str()).or(users::id.gt(*id))),
                (Some(After::Name(name, id)), true) => query
                    .filter(users::name.le(name.as_str()))
                    .filter(users::name.lt(name.as_str()).or(users::id.lt(*id))),
                (Some(After::CreateTime(time, id)), false) => query
                    .filter(users::create_time.ge(*time))
                    .filter(users::create_time.gt(*time).or(users::id.gt(*id))),
                (Some(After::CreateTime(time, id)), true) => query
                    .filter(users::create_time.le(*time))
                    .filter(users::create_time.lt(*time).or(users::id.lt(*id))),
            };
            query = match (order.field, descending) {
                (SortField::Id, false) => query.order(users::id.asc()),
                (SortField::Id, true) => query.order(users::id.desc()),
                (SortField::Name, false) => query.order((users::name.asc(), users::id.asc())),
                (SortField::Name, true) => query.order((users::name.desc(), users::id.desc())),
                (SortField::CreateTime, false) => {
                    query.order((users::create_time.asc(), users::id.asc()))
                }
                (SortField::CreateTime, true) => {
                    query.order((users::create_time.desc(), users::id.desc()))
                }
            };
            query.load(conn).await
        })
    }
}

/// MariaDB's insert of one user that returns its row ([`WriteCheck::Returning`]),
/// which diesel does not build for MySQL. A query type of its own, rather
/// than `sql_query`, so that diesel keeps it prepared.
#[derive(Debug, Clone, Copy)]
pub struct InsertReturning<'a> {
    name: &'a str,
    now: NaiveDateTime,
}

returns_a_user!(InsertReturning);

impl QueryFragment<Mysql> for InsertReturning<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        push_insert_returning(&mut out, self.name, &self.now)
    }
}

/// The SQL type of the user row the hand-written creates return.
pub(super) type ReturnedUser = (BigInt, Text, Timestamp, Timestamp, BigInt);

/// Makes a hand-written create (a struct with one lifetime) a query that
/// returns a [`ReturnedUser`] and that diesel keeps prepared: its SQL is
/// the same for every value.
macro_rules! returns_a_user {
    ($query:ident) => {
        impl diesel::query_builder::QueryId for $query<'_> {
            type QueryId = $query<'static>;
            const HAS_STATIC_QUERY_ID: bool = true;
        }

        impl diesel::query_builder::Query for $query<'_> {
            type SqlType = $crate::models::user::ReturnedUser;
        }
    };
}
pub(super) use returns_a_user;

/// `INSERT INTO users .. RETURNING` the row as [`ReturnedUser`]: the insert
/// every hand-written create starts with (PostgreSQL's inside a `WITH`).
pub(super) fn push_insert_returning<'b, DB>(
    out: &mut AstPass<'_, 'b, DB>,
    name: &'b str,
    now: &'b NaiveDateTime,
) -> QueryResult<()>
where
    DB: Backend + HasSqlType<Text> + HasSqlType<Timestamp>,
    str: ToSql<Text, DB>,
    NaiveDateTime: ToSql<Timestamp, DB>,
{
    out.push_sql("INSERT INTO users (name, create_time, update_time) VALUES (");
    out.push_bind_param::<Text, _>(name)?;
    out.push_sql(", ");
    out.push_bind_param::<Timestamp, _>(now)?;
    out.push_sql(", ");
    out.push_bind_param::<Timestamp, _>(now)?;
    out.push_sql(") RETURNING id, name, create_time, update_time, revision");
    Ok(())
}

/// PostgreSQL's one statement for [`NewUser::create`]: the user and its
/// event, inserted together by a data-modifying `WITH`. A query type of its
/// own, rather than `sql_query`, so that diesel keeps it prepared (it never
/// caches raw SQL).
#[derive(Debug, Clone, Copy)]
struct CreateWithEvent<'a> {
    name: &'a str,
    now: NaiveDateTime,
    /// The call's `x-request-id`.
    call: &'a str,
}

returns_a_user!(CreateWithEvent);

impl QueryFragment<Pg> for CreateWithEvent<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH new_user AS (");
        push_insert_returning(&mut out, self.name, &self.now)?;
        out.push_sql(")");
        Event::push_created_cte(&mut out, self.call)?;
        out.push_sql(" SELECT id, name, create_time, update_time, revision FROM new_user");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use diesel::query_builder::QueryFragment;

    use super::*;

    #[test]
    fn listings_are_statements_diesel_keeps_prepared() {
        let query = users::table
            .select(User::as_select())
            .filter(users::name.eq("John"))
            .filter(users::name.gt("John").or(users::id.gt(3)))
            .order((users::name.asc(), users::id.asc()))
            .limit(11)
            .into_boxed::<diesel::pg::Pg>();
        assert_eq!(
            QueryFragment::<diesel::pg::Pg>::is_safe_to_cache_prepared(&query, &diesel::pg::Pg),
            Ok(true)
        );
    }

    #[test]
    fn the_insert_is_a_statement_diesel_keeps_prepared() {
        let name = UserName::parse("name", "John".into()).unwrap();
        let new_user = NewUser::new(name, now());
        let insert = diesel::insert_into(users::table)
            .values(new_user.values())
            .returning(User::as_returning());
        assert_eq!(insert.is_safe_to_cache_prepared(&diesel::pg::Pg), Ok(true));
    }
}
