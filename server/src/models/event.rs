//! The `user_events` outbox: one row per change to a user, inserted by the
//! write itself, in its transaction, and read in `sequence` order.
//!
//! A reader follows the sequence, so a row committed after the reader
//! passed its number would be missed for good: every backend makes sure
//! the reader only reads up to where no row can still appear, the point
//! [`Event::sequenced`] returns.
//!
//! - PostgreSQL gives the sequence at insert: the inserting transaction's
//!   id, shifted left 20 bits, above an ordinal (see the migration).
//!   Transaction ids are not commit order, so the log stands just below
//!   the oldest transaction still running: every transaction with a
//!   smaller id has ended, every later one gets a larger id. No event row
//!   is written twice; the price is that a long write transaction, on any
//!   database of the cluster, holds back the events committed after it
//!   began until it ends.
//! - SQLite has one writer at a time, so insertion order is commit order:
//!   the sequence is the row id, and the log stands at the last one given.
//! - MySQL/MariaDB exposes no such horizon: the row takes an `id` at insert,
//!   and [`Event::sequence_committed`] numbers committed rows afterwards,
//!   one numberer at a time (it locks the `sequenced` cursor), so a row
//!   committed later always gets a larger number.
//!
//! Per user, the order is the commit order too: two writes to one user
//! are serialized by the user's row, so the second inserts its event
//! after the first committed: with a larger transaction id, row id, or
//! `id` that the numberer, which sees the first whenever it sees the
//! second, numbers in order.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::{AsyncMysqlConnection, RunQueryDsl};

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, SmallInt, Text, Timestamp};

use super::User;
use crate::db::{
    Tx,
    mysql::{WriteCheck, last_insert_id, rolled_back_under_us},
    on_backend,
    schema::{user_event_cursors, user_events, users},
};
use crate::domain::NameMatch;

/// What happened to a user; stored as its `WatchUsersResponse.Kind` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// CreateUser, BatchCreateUsers.
    Created,
    /// UpdateUser.
    Updated,
    /// DeleteUser.
    Deleted,
}

impl EventKind {
    /// The stored number.
    pub fn code(self) -> i16 {
        match self {
            Self::Created => 1,
            Self::Updated => 2,
            Self::Deleted => 3,
        }
    }

    /// The kind stored as `code`, if it is one.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            1 => Some(Self::Created),
            2 => Some(Self::Updated),
            3 => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// A numbered event, as watchers and the relay read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Its place in commit order.
    pub sequence: i64,
    /// What happened.
    pub kind: EventKind,
    /// The user as the write left it (for a delete, as it was).
    pub user: User,
    /// When the write happened (UTC).
    pub event_time: NaiveDateTime,
    /// The `x-request-id` of the call that wrote.
    pub request_id: String,
}

/// MySQL: the cursor that holds the last sequence number given.
const SEQUENCED: &str = "sequenced";
/// The cursor below which events were deleted.
const EXPIRED: &str = "expired";
/// The cursor up to which JetStream acknowledged the events.
pub const PUBLISHED: &str = "published";

type EventRow = (i64, i16, User, NaiveDateTime, String);

/// The columns an event is inserted with, in the order of the `SELECT`s
/// that copy them from `users`.
const EVENT_COLUMNS: (
    user_events::kind,
    user_events::user_id,
    user_events::name,
    user_events::create_time,
    user_events::update_time,
    user_events::revision,
    user_events::event_time,
    user_events::request_id,
) = (
    user_events::kind,
    user_events::user_id,
    user_events::name,
    user_events::create_time,
    user_events::update_time,
    user_events::revision,
    user_events::event_time,
    user_events::request_id,
);

impl Event {
    /// Records that the write running in `tx` did `kind` to each of
    /// `users` (the rows as it wrote them: ids and revisions), at
    /// `event_time`, for the call `request_id`; for a delete, call it
    /// before deleting.
    ///
    /// One `INSERT .. SELECT` from `users`, so that the event holds what
    /// the transaction sees in the table rather than what it believes it
    /// wrote: on a MariaDB (Galera) transaction rolled back under it
    /// without an error ([`rolled_back_under_us`]), whose later statements
    /// commit on their own, the rows are gone or changed, nothing is
    /// inserted, and the unit fails and runs again, leaving no event for a
    /// write that never happened. The rows must match every column the
    /// write set (revision, name, update time), not the revision alone: the
    /// conflicting rename that rolled this one back leaves the row at the
    /// same revision (the Galera fault test saw two renames acknowledged
    /// with one revision). `users` all share one revision, or are all new
    /// (revision 1).
    pub async fn record(
        tx: &mut Tx<'_>,
        kind: EventKind,
        users: &[User],
        event_time: NaiveDateTime,
        request_id: &str,
    ) -> QueryResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = users.iter().map(|user| user.id).collect();
        let revisions = distinct(users, |user| user.revision);
        let update_times = distinct(users, |user| user.update_time);
        let names = distinct(users, |user| user.name.as_str());
        // Every column a write sets: a row another transaction left at the
        // same revision is not the one this transaction wrote.
        let as_written = users::id
            .eq_any(&ids)
            .and(users::revision.eq_any(&revisions))
            .and(users::update_time.eq_any(&update_times))
            .and(users::name.eq_any(&names));
        let source = users::table
            .filter(as_written.clone())
            .order(users::id.asc())
            .select((
                kind.code().into_sql::<SmallInt>(),
                users::id,
                users::name,
                users::create_time,
                users::update_time,
                users::revision,
                event_time.into_sql::<Timestamp>(),
                request_id.into_sql::<Text>(),
            ));
        let inserted = on_backend!(tx, |conn| {
            diesel::insert_into(user_events::table)
                .values(source)
                .into_columns(EVENT_COLUMNS)
                .execute(conn)
                .await
        })?;
        if inserted != users.len() {
            return Err(rolled_back_under_us(
                "the users this transaction wrote are not as it wrote them",
            ));
        }
        // A Galera node (or MySQL, checked alike): the event is a write, and
        // a rollback under it would go unreported (see above): make sure the
        // users are still as written.
        if let Tx::Mysql(conn, WriteCheck::ReadBack) = tx {
            let still: i64 = users::table
                .filter(as_written)
                .count()
                .get_result(&mut **conn)
                .await?;
            if usize::try_from(still).ok() != Some(users.len()) {
                return Err(rolled_back_under_us(
                    "the users this transaction wrote are gone after it recorded their events",
                ));
            }
        }
        Ok(())
    }

    /// Records that the write running in `tx` did `kind` to `user`, as it
    /// wrote it: one INSERT of the values given. Only for a backend that
    /// reports every write that failed (MariaDB outside Galera:
    /// [`WriteCheck::Returning`]); where a rollback can go unreported,
    /// [`record`](Self::record) copies the row instead.
    pub async fn record_as_written(
        tx: &mut Tx<'_>,
        kind: EventKind,
        user: &User,
        event_time: NaiveDateTime,
        request_id: &str,
    ) -> QueryResult<()> {
        let row = (
            user_events::kind.eq(kind.code()),
            user_events::user_id.eq(user.id),
            user_events::name.eq(user.name.as_str()),
            user_events::create_time.eq(user.create_time),
            user_events::update_time.eq(user.update_time),
            user_events::revision.eq(user.revision),
            user_events::event_time.eq(event_time),
            user_events::request_id.eq(request_id),
        );
        on_backend!(tx, |conn| {
            diesel::insert_into(user_events::table)
                .values(row)
                .execute(conn)
                .await
        })?;
        Ok(())
    }

    /// MySQL: [`record`](Self::record) for the one user the connection
    /// inserted last ([`last_insert_id`]), without asking for its id: the
    /// event is copied from the row (none if it is gone: then a
    /// serialization failure, as there). Afterwards `LAST_INSERT_ID()` is
    /// the event's own id, which [`last_recorded_user`]
    /// (Self::last_recorded_user) reads by.
    pub async fn record_last_inserted(
        conn: &mut AsyncMysqlConnection,
        kind: EventKind,
        event_time: NaiveDateTime,
        request_id: &str,
    ) -> QueryResult<()> {
        let source = users::table.filter(users::id.eq(last_insert_id())).select((
            kind.code().into_sql::<SmallInt>(),
            users::id,
            users::name,
            users::create_time,
            users::update_time,
            users::revision,
            event_time.into_sql::<Timestamp>(),
            request_id.into_sql::<Text>(),
        ));
        let inserted = diesel::insert_into(user_events::table)
            .values(source)
            .into_columns(EVENT_COLUMNS)
            .execute(conn)
            .await?;
        if inserted != 1 {
            return Err(rolled_back_under_us(
                "the user this transaction inserted is gone before its event",
            ));
        }
        Ok(())
    }

    /// MySQL: the user whose event the connection inserted last
    /// ([`record_last_inserted`](Self::record_last_inserted)), read from
    /// `users` in this transaction; `None` if the event or the user is gone.
    pub async fn last_recorded_user(conn: &mut AsyncMysqlConnection) -> QueryResult<Option<User>> {
        user_events::table
            .inner_join(users::table.on(users::id.eq(user_events::user_id)))
            .filter(user_events::id.eq(last_insert_id()))
            .select(User::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// PostgreSQL: the part of a data-modifying `WITH` that records the
    /// creation of the users in its `new_user` (columns `id, name,
    /// create_time, update_time, revision`), for the call `request_id`:
    /// `, created AS (INSERT INTO user_events ..)`. It makes a create with
    /// its event one statement, which needs no explicit transaction and
    /// can be pipelined.
    pub fn push_created_cte<'b>(
        out: &mut AstPass<'_, 'b, Pg>,
        request_id: &'b str,
    ) -> QueryResult<()> {
        out.push_sql(
            ", created AS (INSERT INTO user_events \
             (kind, user_id, name, create_time, update_time, revision, event_time, request_id) \
             SELECT ",
        );
        out.push_sql(&EventKind::Created.code().to_string());
        out.push_sql(", id, name, create_time, update_time, revision, create_time, ");
        out.push_bind_param::<Text, _>(request_id)?;
        out.push_sql(" FROM new_user)");
        Ok(())
    }

    /// Where the log stands ([`sequenced`](Self::sequenced)), and whether
    /// some committed event has no number yet (MySQL): one statement, a
    /// cheap look before [`sequence_committed`](Self::sequence_committed)
    /// takes its lock.
    pub async fn numbering(tx: &mut Tx<'_>) -> QueryResult<(i64, bool)> {
        if !matches!(tx, Tx::Mysql(..)) {
            return Ok((Self::sequenced(tx).await?, false));
        }
        let unnumbered =
            diesel::dsl::exists(user_events::table.filter(user_events::sequence.is_null()));
        on_backend!(tx, |conn| {
            user_event_cursors::table
                .find(SEQUENCED)
                .select((user_event_cursors::sequence, unnumbered))
                .first(conn)
                .await
                .optional()
        })?
        .ok_or_else(|| missing_cursor(SEQUENCED))
    }

    /// MySQL: numbers up to `limit` committed events that have no number
    /// yet, in `id` order, after the last number given; returns the last
    /// number given now (or before, if there was nothing to number). Run
    /// it in a transaction: it locks the `sequenced` cursor until it
    /// commits, so that two servers never number at once. (Elsewhere
    /// events are numbered as they are inserted: it returns
    /// [`sequenced`](Self::sequenced).)
    ///
    /// The events are numbered a run of consecutive ids per statement
    /// (usually one run: ids are skipped only by rollbacks and by writes
    /// still in flight). Every id of a run was read, so no other row can
    /// take a number in between.
    pub async fn sequence_committed(tx: &mut Tx<'_>, limit: i64) -> QueryResult<i64> {
        if !matches!(tx, Tx::Mysql(..)) {
            return Self::sequenced(tx).await;
        }
        // An UPDATE locks the cursor row until the commit.
        let cursor = user_event_cursors::table.find(SEQUENCED);
        on_backend!(tx, |conn| {
            diesel::update(cursor)
                .set(user_event_cursors::sequence.eq(user_event_cursors::sequence))
                .execute(conn)
                .await
        })?;
        let mut last = Self::cursor(tx, SEQUENCED).await?;
        let ids: Vec<i64> = on_backend!(tx, |conn| {
            user_events::table
                .filter(user_events::sequence.is_null())
                .order(user_events::id.asc())
                .select(user_events::id)
                .limit(limit)
                .load(conn)
                .await
        })?;
        let before = last;
        for (first, end) in runs(&ids) {
            let offset = last + 1 - first;
            let run = user_events::table
                .filter(user_events::id.between(first, end))
                .filter(user_events::sequence.is_null());
            on_backend!(tx, |conn| {
                diesel::update(run)
                    .set(user_events::sequence.eq((user_events::id + offset).nullable()))
                    .execute(conn)
                    .await
            })?;
            last += end - first + 1;
        }
        if last != before {
            Self::set_cursor(tx, SEQUENCED, last).await?;
        }
        Ok(last)
    }

    /// PostgreSQL: where the log will stand once the write transactions
    /// running now have ended (below the first transaction id not given
    /// yet); every event committed before the call is up to it, every one
    /// committed after is past it. `None` elsewhere: [`sequenced`]
    /// (Self::sequenced) is past every committed event already.
    pub async fn running_end(tx: &mut Tx<'_>) -> QueryResult<Option<i64>> {
        let query = PostgresPosition(
            "SELECT (pg_snapshot_xmax(pg_current_snapshot())::text::bigint << 20) - 1",
        );
        match tx {
            Tx::Postgres(conn) => query.get_result(&mut **conn).await.map(Some),
            Tx::PostgresPipelined(conn) => query.get_result(&mut **conn).await.map(Some),
            Tx::Sqlite(_) | Tx::Mysql(..) => Ok(None),
        }
    }

    /// Where the log stands: no event committed from now on can take a
    /// sequence number up to it, so a reader that read every event up to
    /// it, and follows on after it, misses nothing. Read it before the
    /// events (it may stand below some of them that are committed, never
    /// above one that is not).
    pub async fn sequenced(tx: &mut Tx<'_>) -> QueryResult<i64> {
        // Below the oldest transaction still running that may write to
        // this database: every one with a smaller id has ended, or runs in
        // another database of the cluster and cannot write here.
        let postgres = PostgresPosition(SEQUENCED_POSTGRES);
        match tx {
            Tx::Postgres(conn) => postgres.get_result(&mut **conn).await,
            Tx::PostgresPipelined(conn) => postgres.get_result(&mut **conn).await,
            // The last row id given (AUTOINCREMENT keeps it when the
            // latest rows expire); by a commit, as writes are one at a time.
            Tx::Sqlite(conn) => {
                diesel::select(diesel::dsl::sql::<BigInt>(
                    "coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'user_events'), 0)",
                ))
                .get_result(&mut **conn)
                .await
            }
            Tx::Mysql(..) => Self::cursor(tx, SEQUENCED).await,
        }
    }

    /// Up to `limit` events after `after` and up to `upto` (where the log
    /// stood, [`sequenced`](Self::sequenced), read before) whose user's
    /// name matches `names`, in sequence order.
    pub async fn after(
        tx: &mut Tx<'_>,
        after: i64,
        upto: i64,
        names: &NameMatch<'_>,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        let rows: Vec<EventRow> = on_backend!(tx, |conn| {
            let mut query = user_events::table
                .filter(user_events::sequence.gt(after))
                .filter(user_events::sequence.le(upto))
                .order(user_events::sequence.asc())
                .select((
                    user_events::sequence.assume_not_null(),
                    user_events::kind,
                    (
                        user_events::user_id,
                        user_events::name,
                        user_events::create_time,
                        user_events::update_time,
                        user_events::revision,
                    ),
                    user_events::event_time,
                    user_events::request_id,
                ))
                .limit(limit)
                .into_boxed();
            query = match names {
                NameMatch::Any => query,
                NameMatch::Exact(name) => query.filter(user_events::name.eq(*name)),
                NameMatch::Prefix { from, below } => {
                    let query = query.filter(user_events::name.ge(*from));
                    match below {
                        Some(below) => query.filter(user_events::name.lt(below.as_str())),
                        None => query,
                    }
                }
                NameMatch::Nothing => return Ok(Vec::new()),
            };
            query.load(conn).await
        })?;
        rows.into_iter().map(Event::from_row).collect()
    }

    fn from_row((sequence, kind, user, event_time, request_id): EventRow) -> QueryResult<Self> {
        let kind = EventKind::from_code(kind).ok_or_else(|| {
            diesel::result::Error::DeserializationError(
                format!("user_events.kind {kind} is no event kind").into(),
            )
        })?;
        Ok(Self {
            sequence,
            kind,
            user,
            event_time,
            request_id,
        })
    }

    /// Where the log stands and up to where events were deleted, in that
    /// order.
    pub async fn kept(tx: &mut Tx<'_>) -> QueryResult<Kept> {
        let sequenced = Self::sequenced(tx).await?;
        Ok(Kept {
            expired: Self::cursor(tx, EXPIRED).await?,
            sequenced,
        })
    }

    /// Deletes the events that happened before `cutoff`, not past where
    /// the log stands nor, when `keep_unpublished`, past `published`;
    /// returns how many.
    pub async fn expire(
        tx: &mut Tx<'_>,
        cutoff: NaiveDateTime,
        keep_unpublished: bool,
    ) -> QueryResult<usize> {
        let mut bound = Self::sequenced(tx).await?;
        if keep_unpublished {
            bound = bound.min(Self::cursor(tx, PUBLISHED).await?);
        }
        let upto: Option<i64> = on_backend!(tx, |conn| {
            user_events::table
                .filter(user_events::sequence.le(bound))
                .filter(user_events::event_time.lt(cutoff))
                .select(diesel::dsl::max(user_events::sequence))
                .get_result(conn)
                .await
        })?;
        let Some(upto) = upto else { return Ok(0) };
        let deleted = on_backend!(tx, |conn| {
            diesel::delete(user_events::table.filter(user_events::sequence.le(upto)))
                .execute(conn)
                .await
        })?;
        if upto > Self::cursor(tx, EXPIRED).await? {
            Self::set_cursor(tx, EXPIRED, upto).await?;
        }
        Ok(deleted)
    }

    /// The position `name` holds.
    pub async fn cursor(tx: &mut Tx<'_>, name: &str) -> QueryResult<i64> {
        on_backend!(tx, |conn| {
            user_event_cursors::table
                .find(name)
                .select(user_event_cursors::sequence)
                .first(conn)
                .await
                .optional()
        })?
        .ok_or_else(|| missing_cursor(name))
    }

    /// Moves `name` up to `sequence`, never back (two servers may move it
    /// at once); returns where it stands.
    pub async fn advance_cursor(tx: &mut Tx<'_>, name: &str, sequence: i64) -> QueryResult<i64> {
        let behind = user_event_cursors::table
            .find(name)
            .filter(user_event_cursors::sequence.lt(sequence));
        on_backend!(tx, |conn| {
            diesel::update(behind)
                .set(user_event_cursors::sequence.eq(sequence))
                .execute(conn)
                .await
        })?;
        Self::cursor(tx, name).await
    }

    /// Moves `name` to `sequence`.
    pub async fn set_cursor(tx: &mut Tx<'_>, name: &str, sequence: i64) -> QueryResult<()> {
        on_backend!(tx, |conn| {
            diesel::update(user_event_cursors::table.find(name))
                .set(user_event_cursors::sequence.eq(sequence))
                .execute(conn)
                .await
        })?;
        Ok(())
    }
}

/// PostgreSQL's [`Event::sequenced`]: the oldest id in a snapshot taken
/// now of the transactions still running (`xmin`), or the first id not
/// given yet (`xmax`) when none runs, leaving out those that run in
/// another database of the cluster. A snapshot's `xmin` alone counts them
/// too, and one long transaction anywhere on the cluster would hold back
/// every event here. A transaction is left out only when
/// `pg_stat_activity` shows it in a backend of another database (a
/// backend never changes database), so whatever that view lags behind or
/// hides leaves the position lower, never past an event still to commit.
/// The view's ids are 32-bit, the snapshot's 64: no two transactions
/// running at once share the low 32 bits.
const SEQUENCED_POSTGRES: &str = "\
    WITH taken AS (SELECT pg_current_snapshot() AS snapshot), \
    elsewhere AS ( \
        SELECT backend_xid::text::bigint AS xid FROM pg_stat_activity \
        WHERE backend_xid IS NOT NULL \
        AND datid IS DISTINCT FROM (SELECT oid FROM pg_database WHERE datname = current_database()) \
    ) \
    SELECT (coalesce( \
        (SELECT min(running::text::bigint) FROM taken, pg_snapshot_xip(taken.snapshot) AS running \
         WHERE running::text::bigint & 4294967295 NOT IN (SELECT xid FROM elsewhere)), \
        (SELECT pg_snapshot_xmax(snapshot)::text::bigint FROM taken) \
    ) << 20) - 1";

/// PostgreSQL: a position in the log computed from the current snapshot
/// (one fixed statement, of its two). A query type of its own, rather than
/// `sql_query`, so that diesel keeps it prepared (it never caches raw SQL):
/// the hub runs it at every poll.
#[derive(Debug, Clone, Copy)]
struct PostgresPosition(&'static str);

impl QueryId for PostgresPosition {
    type QueryId = ();
    // The two statements share a type: keyed by their SQL instead.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for PostgresPosition {
    type SqlType = BigInt;
}

impl QueryFragment<Pg> for PostgresPosition {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.0);
        Ok(())
    }
}

/// Which events are still kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept {
    /// The events up to this one were deleted.
    pub expired: i64,
    /// Where the log stands ([`Event::sequenced`]).
    pub sequenced: i64,
}

fn missing_cursor(name: &str) -> diesel::result::Error {
    diesel::result::Error::DeserializationError(
        format!("the user_event_cursors row {name:?} is missing").into(),
    )
}

/// The runs of consecutive numbers in `ids` (sorted ascending), as
/// `(first, last)`.
fn runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == id => *end = id,
            _ => runs.push((id, id)),
        }
    }
    runs
}

/// The distinct `key`s of `users`, for an `IN` list.
fn distinct<'u, K: Ord>(users: &'u [User], key: impl Fn(&'u User) -> K) -> Vec<K> {
    let mut keys: Vec<K> = users.iter().map(key).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_fall_into_runs_of_consecutive_numbers() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[4]), vec![(4, 4)]);
        assert_eq!(runs(&[1, 2, 3, 5, 6, 9]), vec![(1, 3), (5, 6), (9, 9)]);
    }

    #[test]
    fn kinds_are_stored_as_their_wire_numbers() {
        for kind in [EventKind::Created, EventKind::Updated, EventKind::Deleted] {
            assert_eq!(EventKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(EventKind::from_code(0), None);
    }
}
