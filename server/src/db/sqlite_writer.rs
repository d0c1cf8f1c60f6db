//! [`SqliteWriter`]: SQLite's one writing connection, on a thread of its
//! own, committing concurrent units of work in groups.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU8, Ordering},
    },
    thread,
    time::Duration,
};

use tokio::time::Instant;

use diesel::{
    connection::AnsiTransactionManager,
    result::{DatabaseErrorKind, Error as QueryError},
};
use diesel_async::{
    AsyncConnection, TransactionManager, sync_connection_wrapper::SyncTransactionManagerWrapper,
};
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{Boundary, DbError, Tx, UnitOfWork, sqlite};

/// Every SQLite unit of work that writes runs here.
///
/// SQLite lets one connection write at a time: several writing connections
/// take turns on its lock (a convoy, and `SQLITE_BUSY` when a turn takes
/// too long). So one connection writes, on a thread of its own, taking units
/// from a queue; and all the units waiting when it is ready run in one
/// transaction (group commit), so that the commit, a write to the WAL,
/// is paid once per group instead of once per unit.
///
/// Each unit keeps its guarantees:
/// - it runs alone: units run one after another;
/// - it is atomic: a unit of several statements runs inside a savepoint of
///   its own, and a failed statement undoes only itself;
/// - it is durable when its caller hears back, which is after the group's
///   COMMIT; if the group cannot commit, every unit in it fails;
/// - a failure that may have undone the whole group's transaction (anything
///   but a constraint violation, or an error of the unit's own making like
///   "not found") ends the group: it is rolled back and its units fail,
///   while the units not yet run go into the next group.
///
/// A unit whose caller stopped waiting before its turn is not run; nor is
/// one whose turn did not come within the pool timeout: its caller gets
/// [`DbError::PoolTimedOut`] then, as if no connection had come free, and
/// can retry safely. Once a unit has started, its caller waits for its
/// group's outcome.
#[derive(Debug, Clone)]
pub struct SqliteWriter {
    queue: mpsc::Sender<Box<dyn Job>>,
    /// How long a unit may wait for its turn.
    timeout: Duration,
}

/// Most units in one group: bounds how long the lock is held at a time.
const MAX_GROUP: usize = 256;

/// Units queued at most; more callers wait for room (within the pool
/// timeout), so a burst cannot grow the queue without bound.
const QUEUE_CAPACITY: usize = 1024;

impl SqliteWriter {
    /// Starts the writer thread for the database file at `path`. It opens
    /// its connection on first use, and stops when the last clone of the
    /// returned handle is dropped.
    pub fn start(path: String, timeout: Duration) -> std::io::Result<Self> {
        let (queue, units) = mpsc::channel(QUEUE_CAPACITY);
        // Units are async code: the thread runs them on a runtime of its own,
        // where they never wait, since its connection runs each statement
        // right away.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || runtime.block_on(serve(path, units)))?;
        Ok(Self { queue, timeout })
    }

    /// Units queued now, waiting for the writer to take them (the group it
    /// is running is not counted).
    pub fn queued(&self) -> usize {
        QUEUE_CAPACITY.saturating_sub(self.queue.capacity())
    }

    /// Runs `work` on the writer, with `boundary` as its transaction, and
    /// returns its result once the group it ran in has committed.
    pub async fn run<R, W>(&self, boundary: Boundary, work: W) -> Result<R, DbError>
    where
        R: Send + 'static,
        W: for<'c> UnitOfWork<'c, R> + 'static,
    {
        let (reply, mut outcome) = oneshot::channel();
        let deadline = Instant::now() + self.timeout;
        let turn = Arc::new(Turn::default());
        let unit = Box::new(Queued {
            work: Some((boundary, work)),
            turn: Arc::clone(&turn),
            result: None,
            reply,
        });
        match tokio::time::timeout_at(deadline, self.queue.send(unit)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(DbError::WriterStopped),
            Err(_) => return Err(DbError::PoolTimedOut),
        }
        let stopped = |_| Err(DbError::WriterStopped);
        match tokio::time::timeout_at(deadline, &mut outcome).await {
            Ok(answer) => answer.unwrap_or_else(stopped),
            Err(_) if turn.give_up() => Err(DbError::PoolTimedOut),
            // It started in time: its group decides.
            Err(_) => outcome.await.unwrap_or_else(stopped),
        }
    }
}

/// Whether a queued unit has started, or its caller has given up waiting
/// for it to: whichever happens first decides, so that a caller told
/// "timed out" can be sure its unit never ran.
#[derive(Debug, Default)]
struct Turn(AtomicU8);

impl Turn {
    const WAITING: u8 = 0;
    const STARTED: u8 = 1;
    const GIVEN_UP: u8 = 2;

    /// The writer starts the unit, unless its caller gave up.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(
                Self::WAITING,
                Self::STARTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// The caller gives up, unless the unit has started.
    fn give_up(&self) -> bool {
        self.0
            .compare_exchange(
                Self::WAITING,
                Self::GIVEN_UP,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// A queued unit of work, its result type erased.
trait Job: Send {
    /// Whether its caller stopped waiting.
    fn abandoned(&self) -> bool;

    /// Runs the unit inside the group's transaction, unless its caller gave
    /// up waiting. Returns the error that ends the group, if the unit failed
    /// with one.
    fn run<'a>(
        &'a mut self,
        conn: &'a mut sqlite::Connection,
    ) -> Pin<Box<dyn Future<Output = Option<QueryError>> + 'a>>;

    /// Answers the caller: the unit's own result if the group committed
    /// (or the unit failed on its own), else why the group failed.
    fn finish(self: Box<Self>, group: Result<(), &QueryError>);
}

struct Queued<W, R> {
    work: Option<(Boundary, W)>,
    turn: Arc<Turn>,
    result: Option<diesel::QueryResult<R>>,
    reply: oneshot::Sender<Result<R, DbError>>,
}

impl<W, R> Job for Queued<W, R>
where
    R: Send + 'static,
    W: for<'c> UnitOfWork<'c, R> + 'static,
{
    fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run<'a>(
        &'a mut self,
        conn: &'a mut sqlite::Connection,
    ) -> Pin<Box<dyn Future<Output = Option<QueryError>> + 'a>> {
        Box::pin(async move {
            if !self.turn.start() {
                return None;
            }
            let (boundary, work) = self.work.take()?;
            let result = match boundary {
                // One statement is atomic on its own: if it fails, SQLite
                // undoes it and the transaction goes on.
                Boundary::Statement => work(Tx::Sqlite(conn)).await,
                // Nested in the group's transaction: a savepoint.
                Boundary::Transaction => {
                    conn.transaction(async move |conn| work(Tx::Sqlite(conn)).await)
                        .await
                }
            };
            let ends_group = match &result {
                Err(error) if ends_group(error) => Some(duplicate(error)),
                _ => None,
            };
            self.result = Some(result);
            ends_group
        })
    }

    fn finish(self: Box<Self>, group: Result<(), &QueryError>) {
        let outcome = match (self.result, group) {
            (Some(Err(own)), _) => Err(own.into()),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(error)) => Err(duplicate(error).into()),
            // Only units that ran are finished with a committed group.
            (None, Ok(())) => Err(DbError::WriterStopped),
        };
        // The caller may have stopped waiting; then nobody is told.
        let _ = self.reply.send(outcome);
    }
}

/// The writer thread: takes groups of units from the queue until every
/// handle is dropped.
async fn serve(path: String, mut queue: mpsc::Receiver<Box<dyn Job>>) {
    let mut conn = None;
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_GROUP);
    loop {
        if group.is_empty() {
            if queue.recv_many(&mut group, MAX_GROUP).await == 0 {
                return;
            }
        } else {
            // Units left over from a group that ended early go first.
            while group.len() < MAX_GROUP {
                let Ok(unit) = queue.try_recv() else { break };
                group.push(unit);
            }
        }
        group.retain(|unit| !unit.abandoned());
        if group.is_empty() {
            continue;
        }

        let writer = match &mut conn {
            Some(writer) => writer,
            None => match sqlite::establish(&path).await {
                Ok(opened) => conn.insert(opened),
                Err(error) => {
                    tracing::warn!(%error, "cannot open the SQLite writer's connection");
                    fail(&mut group, DatabaseErrorKind::UnableToSendCommand, error);
                    continue;
                }
            },
        };
        match AssertUnwindSafe(run_group(writer, &mut group))
            .catch_unwind()
            .await
        {
            Ok(true) => {}
            // The connection may be left in a transaction or a broken state:
            // the next group gets a new one (closing this one rolls back
            // whatever it has open).
            Ok(false) => conn = None,
            Err(_) => {
                tracing::error!("a unit of work panicked on the SQLite writer");
                conn = None;
                // Whatever ran in this group was rolled back with the
                // connection.
                fail(
                    &mut group,
                    DatabaseErrorKind::Unknown,
                    "a unit of work panicked",
                );
            }
        }
    }
}

/// Fails every unit in `group` with `error`.
fn fail(group: &mut Vec<Box<dyn Job>>, kind: DatabaseErrorKind, error: impl ToString) {
    let error = QueryError::DatabaseError(kind, Box::new(error.to_string()));
    for unit in group.drain(..) {
        unit.finish(Err(&error));
    }
}

/// Runs units from the front of `group` in one transaction and answers
/// their callers; units after one that ends the group stay in `group`.
/// Returns whether the group committed.
async fn run_group(conn: &mut sqlite::Connection, group: &mut Vec<Box<dyn Job>>) -> bool {
    type Manager = SyncTransactionManagerWrapper<AnsiTransactionManager>;

    // IMMEDIATE: take the write lock now, so that a writer outside this
    // process makes us wait (busy_timeout) here, before any unit ran.
    let begun = conn
        .spawn_blocking(|conn| {
            AnsiTransactionManager::begin_transaction_sql(conn, "BEGIN IMMEDIATE")
        })
        .await;
    if let Err(error) = begun {
        for unit in group.drain(..) {
            unit.finish(Err(&error));
        }
        return false;
    }

    let mut ran = 0;
    let mut ended_by = None;
    while ran < group.len() {
        ended_by = group[ran].run(conn).await;
        ran += 1;
        if ended_by.is_some() {
            break;
        }
    }
    let outcome = match ended_by {
        None => Manager::commit_transaction(conn).await,
        Some(error) => {
            // The rollback's own failure is moot: the connection is replaced.
            let _ = Manager::rollback_transaction(conn).await;
            Err(error)
        }
    };
    for unit in group.drain(..ran) {
        unit.finish(outcome.as_ref().map(|_| ()));
    }
    if let Err(error) = &outcome {
        tracing::warn!(%error, "a group of SQLite writes failed");
    }
    outcome.is_ok()
}

/// Whether a unit's error may have ended the group's transaction. A
/// constraint violation undoes only its statement, and errors the unit
/// returns of its own accord leave the transaction as it was; for anything
/// else SQLite may have rolled the whole transaction back.
fn ends_group(error: &QueryError) -> bool {
    match error {
        QueryError::DatabaseError(kind, _) => !matches!(
            kind,
            DatabaseErrorKind::UniqueViolation
                | DatabaseErrorKind::ForeignKeyViolation
                | DatabaseErrorKind::NotNullViolation
                | DatabaseErrorKind::CheckViolation
        ),
        QueryError::NotFound
        | QueryError::RollbackTransaction
        | QueryError::DeserializationError(_)
        | QueryError::SerializationError(_)
        | QueryError::QueryBuilderError(_) => false,
        _ => true,
    }
}

/// A copy of `error` for each unit of a failed group (diesel's errors are
/// not `Clone`). Keeps the kind and message, which decide the gRPC status.
fn duplicate(error: &QueryError) -> QueryError {
    match error {
        QueryError::DatabaseError(kind, info) => {
            QueryError::DatabaseError(*kind, Box::new(info.message().to_owned()))
        }
        other => QueryError::DatabaseError(DatabaseErrorKind::Unknown, Box::new(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use diesel::{prelude::*, result::Error as QueryError};
    use diesel_async::RunQueryDsl;
    use futures_util::future::join_all;

    use crate::db::{Database, DbError, PoolOptions, Tx, migrations, on_backend, schema::users};
    use crate::domain::UserName;
    use crate::models::{NewUser, User, now};

    /// A fresh SQLite database in a directory that lives as long as the
    /// returned guard.
    async fn database(timeout: Duration) -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("users.db").display())
            .parse()
            .unwrap();
        migrations::prepare(&url, migrations::Mode::Apply)
            .await
            .unwrap();
        let db = Database::open(
            url,
            PoolOptions {
                size: 2,
                timeout,
                isolation: Default::default(),
            },
        )
        .unwrap();
        (dir, db)
    }

    async fn insert(tx: &mut Tx<'_>, name: &str) -> QueryResult<User> {
        NewUser::new(UserName::parse("name", name.to_owned()).unwrap(), now())
            .insert(tx)
            .await
    }

    async fn create(db: &Database, name: &'static str) -> Result<User, DbError> {
        db.write_statement(async move |mut tx| insert(&mut tx, name).await)
            .await
    }

    /// Occupies the writer: a unit that stores `name`, then keeps the writer
    /// busy for `hold`. Returns once it runs, so that every unit sent after
    /// this queues behind it and runs in the next group.
    async fn occupy(
        db: &Database,
        name: &'static str,
        hold: Duration,
    ) -> tokio::task::JoinHandle<Result<User, DbError>> {
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let db = db.clone();
        let unit = tokio::spawn({
            let started = std::sync::Arc::clone(&started);
            async move {
                db.write_statement(async move |mut tx| {
                    started.notify_one();
                    tokio::time::sleep(hold).await;
                    insert(&mut tx, name).await
                })
                .await
            }
        });
        started.notified().await;
        unit
    }

    async fn stored_names(db: &Database) -> Vec<String> {
        db.read_statement(async |mut tx| {
            on_backend!(&mut tx, |conn| users::table
                .select(users::name)
                .order(users::id)
                .load::<String>(conn)
                .await)
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn units_in_one_group_succeed_or_fail_each_on_their_own() {
        let (_dir, db) = database(Duration::from_secs(5)).await;
        let first = occupy(&db, "first", Duration::from_millis(200)).await;

        // Sent together while the writer is busy: one group.
        let (kept, undone, duplicate, also_kept) = tokio::join!(
            create(&db, "kept"),
            // Two statements, then a failure: the savepoint undoes both.
            db.write(async |mut tx| {
                insert(&mut tx, "undone-1").await?;
                insert(&mut tx, "undone-2").await?;
                Err::<(), _>(QueryError::RollbackTransaction)
            }),
            // A constraint violation undoes only its statement.
            db.write_statement(async |mut tx| {
                on_backend!(&mut tx, |conn| diesel::sql_query(
                    "INSERT INTO users (id, name, create_time, update_time) \
                     VALUES (1, 'duplicate id', '2026-01-01', '2026-01-01')"
                )
                .execute(conn)
                .await)
            }),
            create(&db, "also kept"),
        );

        first.await.unwrap().unwrap();
        kept.unwrap();
        assert!(matches!(
            undone,
            Err(DbError::Query(QueryError::RollbackTransaction))
        ));
        assert!(
            matches!(
                duplicate,
                Err(DbError::Query(QueryError::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _
                )))
            ),
            "{duplicate:?}"
        );
        also_kept.unwrap();
        assert_eq!(stored_names(&db).await, ["first", "kept", "also kept"]);
    }

    #[tokio::test]
    async fn a_unit_that_breaks_the_transaction_fails_its_group_and_later_units_run_in_the_next() {
        let (_dir, db) = database(Duration::from_secs(5)).await;
        let first = occupy(&db, "first", Duration::from_millis(200)).await;

        // Queued in this order (join_all sends them in order): `before` and
        // `broken` share a group that `broken` ends; `after` runs next.
        let results = join_all([
            Box::pin(create(&db, "before")) as std::pin::Pin<Box<dyn Future<Output = _> + Send>>,
            Box::pin(db.write_statement(async |mut tx| {
                on_backend!(&mut tx, |conn| diesel::sql_query(
                    "INSERT INTO no_such_table VALUES (1)"
                )
                .execute(conn)
                .await)?;
                insert(&mut tx, "never").await
            })),
            Box::pin(create(&db, "after")),
        ])
        .await;

        first.await.unwrap().unwrap();
        let outcomes: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(outcomes, [false, false, true], "{results:?}");
        // What was acknowledged is stored, and nothing else.
        assert_eq!(stored_names(&db).await, ["first", "after"]);
    }

    #[tokio::test]
    async fn a_unit_whose_caller_gave_up_while_queued_is_not_run() {
        let (_dir, db) = database(Duration::from_secs(5)).await;
        let first = occupy(&db, "first", Duration::from_millis(300)).await;

        let gave_up = tokio::time::timeout(Duration::from_millis(50), create(&db, "gave up")).await;
        assert!(gave_up.is_err());

        first.await.unwrap().unwrap();
        create(&db, "later").await.unwrap();
        assert_eq!(stored_names(&db).await, ["first", "later"]);
    }

    #[tokio::test]
    async fn a_unit_queued_past_the_pool_timeout_fails_unavailable_and_is_not_run() {
        let (_dir, db) = database(Duration::from_millis(100)).await;
        let first = occupy(&db, "first", Duration::from_millis(300)).await;

        let started = std::time::Instant::now();
        let late = create(&db, "too late").await;
        let waited = started.elapsed();
        assert!(matches!(late, Err(DbError::PoolTimedOut)), "{late:?}");
        assert!(late.unwrap_err().is_transient());
        assert!(
            waited < Duration::from_millis(250),
            "told at the pool timeout, not once the writer is free: {waited:?}"
        );

        first.await.unwrap().unwrap();
        assert_eq!(stored_names(&db).await, ["first"]);
    }
}
