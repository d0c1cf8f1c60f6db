//! The database: which backend, its connection pools, and units of work.
//!
//! Every query is written once, in [`models`](crate::models), against a
//! [`Tx`]; `on_backend!` compiles it for each backend. What differs per
//! backend is kept small and named:
//! - connection set-up ([`sqlite::establish`], [`postgres::establish`],
//!   [`mysql::establish`]),
//! - pools: PostgreSQL pipelines one-statement units over a few shared
//!   connections and gives each explicit transaction a pooled connection of
//!   its own; SQLite has many readers, whose statements run on the calling
//!   worker, and a single writer on a thread of its own, which commits the
//!   units waiting for it in groups (`sqlite_writer`): SQLite serializes
//!   writes anyway, and one writer avoids lock convoys and `SQLITE_BUSY`;
//!   MySQL lends each unit a pooled connection, and runs every write in a
//!   transaction,
//! - migrations ([`migrations`], one directory per backend),
//! - the [`Tx`] variant the unit of work runs on,
//! - for writes that return rows, a second body without RETURNING, which
//!   MySQL lacks (`on_backend!`'s `without_returning:`).
//!
//! Every unit of work may run more than once: after losing a conflict with
//! a concurrent transaction it runs again, whole ([`retry`]).
//!
//! On PostgreSQL, reads may go to hot standbys ([`replicas`]).

pub mod error;
mod metrics;
pub mod migrations;
pub mod mysql;
mod pipelined;
mod pool;
pub mod postgres;
pub mod replicas;
pub mod retry;
pub mod schema;
pub mod sqlite;
mod sqlite_writer;
pub mod url;

use std::{future::Future, sync::Arc, time::Duration};

use diesel::QueryResult;
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, PoolableConnection, RecyclingMethod,
    },
};
use futures_util::FutureExt;

use self::{
    pipelined::PipelinedConnections,
    pool::ConnectionPool,
    replicas::{ReadReplicas, ReplicaOptions, ReplicaUrlError},
    retry::{Retry, RetryCounter, RetryPolicy},
    sqlite_writer::SqliteWriter,
};

pub use self::{error::DbError, url::DatabaseUrl};

/// A connection inside a unit of work (an explicit transaction, or one
/// statement that is a transaction of its own), on whichever backend is
/// configured. Queries take `&mut Tx` and use `on_backend!` to run on it.
#[allow(missing_debug_implementations)] // the connections have none
pub enum Tx<'c> {
    /// PostgreSQL, a connection of this unit's own.
    Postgres(&'c mut AsyncPgConnection),
    /// PostgreSQL, a connection shared with other one-statement units, on
    /// which statements are pipelined.
    PostgresPipelined(&'c mut &'c AsyncPgConnection),
    /// SQLite, a reader or the writer.
    Sqlite(&'c mut sqlite::Connection),
    /// MySQL or MariaDB, a connection of this unit's own, and how its
    /// writes check what they wrote.
    Mysql(&'c mut AsyncMysqlConnection, mysql::WriteCheck),
}

/// Runs `$body` with `$conn` bound to the concrete connection inside a
/// [`Tx`]. The body is compiled once per backend, so a query written once
/// serves them all.
///
/// ```text
/// on_backend!(tx, |conn| users::table.count().get_result(conn).await)
/// ```
///
/// A write that returns its rows needs RETURNING, which MySQL lacks: give
/// it a second body for MySQL, which reads the rows back itself.
///
/// ```text
/// on_backend!(tx, |conn| insert.returning(..).load(conn).await,
///     without_returning: |conn| { insert.execute(conn).await?; read_back(conn).await })
/// ```
macro_rules! on_backend {
    ($tx:expr, |$conn:ident| $body:expr, without_returning: |$mysql:ident| $mysql_body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres($conn) => {
                let $conn = &mut **$conn;
                $body
            }
            $crate::db::Tx::PostgresPipelined($conn) => {
                let $conn = &mut **$conn;
                $body
            }
            $crate::db::Tx::Sqlite($conn) => {
                let $conn = &mut **$conn;
                $body
            }
            $crate::db::Tx::Mysql($mysql, _) => {
                let $mysql = &mut **$mysql;
                $mysql_body
            }
        }
    };
    ($tx:expr, |$conn:ident| $body:expr) => {
        $crate::db::on_backend!($tx, |$conn| $body, without_returning: |$conn| $body)
    };
}
pub(crate) use on_backend;

/// The body of a transaction: an async closure over a [`Tx`] whose future
/// is `Send`, so that it can run inside a gRPC handler. (Spelled this way
/// because Rust cannot yet bound an async closure's future directly.)
///
/// It is `Clone` so that it can run again, from a copy, after a conflict:
/// capture what it needs by reference, or cheaply clonable.
pub trait UnitOfWork<'c, R>:
    AsyncFnOnce(Tx<'c>) -> QueryResult<R> + FnOnce(Tx<'c>) -> Self::Fut + Clone + Send
{
    /// The closure's future.
    type Fut: Future<Output = QueryResult<R>> + Send;
}

impl<'c, R, F, Fut> UnitOfWork<'c, R> for F
where
    F: AsyncFnOnce(Tx<'c>) -> QueryResult<R> + FnOnce(Tx<'c>) -> Fut + Clone + Send,
    Fut: Future<Output = QueryResult<R>> + Send,
{
    type Fut = Fut;
}

/// The isolation level of every transaction, as `--isolation` sets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Isolation {
    /// PostgreSQL's default: each statement sees what was committed before
    /// it began.
    #[default]
    ReadCommitted,
    /// Transactions behave as if run one at a time; a transaction that
    /// would break that is rolled back and run again ([`retry`]).
    Serializable,
}

/// Connection pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections open at once (SQLite: readers; its writer comes on
    /// top). They are opened on demand.
    pub size: u32,
    /// How long a unit of work waits for a connection (SQLite writes: for
    /// the writer to start it) before failing, having changed nothing.
    pub timeout: Duration,
    /// The isolation level of transactions on PostgreSQL. SQLite's are
    /// always serializable: one connection writes at a time.
    pub isolation: Isolation,
}

/// Pooled connections to the configured database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pools: Pools,
    url: DatabaseUrl,
    retries: RetryPolicy,
    /// Counts the retries, for the metrics.
    retried: RetryCounter,
}

#[derive(Debug, Clone)]
enum Pools {
    Postgres {
        /// For one-statement units.
        pipelined: Arc<PipelinedConnections>,
        /// For units in an explicit transaction.
        exclusive: ConnectionPool<AsyncPgConnection>,
        /// Hot standbys for reads, if configured.
        replicas: Option<Arc<ReadReplicas>>,
    },
    Sqlite {
        readers: ConnectionPool<sqlite::Connection>,
        writer: SqliteWriter,
    },
    /// One connection per unit, statement or transaction.
    Mysql {
        pool: ConnectionPool<AsyncMysqlConnection>,
        /// What its server lets writes skip, learned as connections open.
        server: Arc<mysql::ServerWrites>,
    },
}

impl Database {
    /// Sets up the pools for `url`. Connections are opened on first use;
    /// [`migrations::prepare`] opens the first one and reports failures.
    pub fn open(url: DatabaseUrl, options: PoolOptions) -> Result<Self, DbOpenError> {
        let pools = match &url {
            DatabaseUrl::Postgres(text) => Pools::Postgres {
                pipelined: Arc::new(PipelinedConnections::new(
                    text,
                    options.isolation,
                    options.size,
                    options.timeout,
                )),
                exclusive: ConnectionPool::new(
                    postgres_manager(text, options.isolation),
                    options,
                    true,
                ),
                replicas: None,
            },
            DatabaseUrl::Sqlite(path) => {
                let path = path
                    .to_str()
                    .ok_or_else(|| DbOpenError::NonUtf8Path(url.to_string()))?;
                let readers = ConnectionPool::new(sqlite_manager(path), options, false);
                let writer = SqliteWriter::start(path.to_owned(), options.timeout)
                    .map_err(DbOpenError::WriterThread)?;
                Pools::Sqlite { readers, writer }
            }
            DatabaseUrl::Mysql(text) => {
                let server = Arc::new(mysql::ServerWrites::default());
                let pool = ConnectionPool::new(
                    mysql_manager(text, options.isolation, server.clone()),
                    options,
                    true,
                );
                Pools::Mysql { pool, server }
            }
        };
        Ok(Self {
            pools,
            url,
            retries: RetryPolicy::default(),
            retried: RetryCounter::default(),
        })
    }

    /// Serves reads from the hot standbys in `options` too (PostgreSQL
    /// only), once [`watch_read_replicas`](Self::watch_read_replicas) has
    /// started checking them.
    pub fn with_read_replicas(
        mut self,
        options: &ReplicaOptions,
        pool: PoolOptions,
    ) -> Result<Self, DbOpenError> {
        if options.urls.is_empty() {
            return Ok(self);
        }
        let Pools::Postgres { replicas, .. } = &mut self.pools else {
            return Err(DbOpenError::ReplicasNeedPostgres);
        };
        let standbys = Arc::new(ReadReplicas::new(options, pool)?);
        tracing::info!(replicas = ?standbys.names().collect::<Vec<_>>(), max_lag = ?options.max_lag, "reading from replicas");
        *replicas = Some(standbys);
        Ok(self)
    }

    /// Starts checking how far behind the primary each read replica is,
    /// for as long as this database is in use; until a replica has replayed
    /// the primary's position at the first check, it serves no reads. So
    /// call it once the schema is ready (migrations applied): a replica
    /// then never serves a read before it has the schema. Needs a tokio
    /// runtime.
    pub fn watch_read_replicas(&self) {
        if let Pools::Postgres {
            pipelined,
            replicas: Some(replicas),
            ..
        } = &self.pools
        {
            tokio::spawn(ReadReplicas::watch(
                Arc::downgrade(replicas),
                Arc::downgrade(pipelined),
            ));
        }
    }

    /// The URL this database was opened with (password masked when shown).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Asks the database for an answer (`SELECT 1`), once, on a pooled
    /// connection as any call would: fails if it is unreachable, or every
    /// connection stayed busy for the pool timeout.
    pub async fn ping(&self) -> Result<(), DbError> {
        use diesel::{IntoSql, sql_types::Integer};
        use diesel_async::RunQueryDsl;
        self.run_read_once(Boundary::Statement, async |mut tx| {
            on_backend!(&mut tx, |conn| diesel::select(1.into_sql::<Integer>())
                .get_result::<i32>(conn)
                .await)
        })
        .await
        .map(|_| ())
    }

    /// Runs `work`, a unit of work of exactly one statement that only
    /// reads, without BEGIN and COMMIT.
    ///
    /// Both databases run a single statement atomically, as a transaction
    /// of its own, on one snapshot: BEGIN and COMMIT around it would only
    /// add two round trips (on PostgreSQL, most of a call's cost). A unit
    /// with several statements must use [`read`](Self::read).
    pub async fn read_statement<R: Send>(
        &self,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        self.run_read(Boundary::Statement, work).await
    }

    /// Runs `work`, a unit of work of exactly one statement that writes,
    /// without BEGIN and COMMIT of its own: the statement is atomic, applied
    /// whole or not at all. A unit with several statements must use
    /// [`write`](Self::write), unless it makes them atomic itself on the
    /// backends where it issues several (as
    /// [`CreateRequest::create_user`](crate::models::CreateRequest::create_user)
    /// does on SQLite, and never on PostgreSQL, whose statement units share
    /// connections).
    ///
    /// Units that write own what they use (`'static`): on SQLite they run on
    /// the writer's thread.
    pub async fn write_statement<R: Send + 'static>(
        &self,
        work: impl for<'c> UnitOfWork<'c, R> + 'static,
    ) -> Result<R, DbError> {
        self.run_write(Boundary::Statement, work).await
    }

    /// Runs `work` in a transaction meant for reads only.
    pub async fn read<R: Send>(&self, work: impl for<'c> UnitOfWork<'c, R>) -> Result<R, DbError> {
        self.run_read(Boundary::Transaction, work).await
    }

    /// Runs `work` in a transaction meant for reads only, on the primary
    /// even where reads may go to standbys: for reads that must see every
    /// commit made before they began (the change events: a standby behind
    /// would make a watcher skip events).
    pub async fn read_primary<R: Send>(
        &self,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        self.run_read_on_primary(Boundary::Transaction, work).await
    }

    /// As [`read_statement`](Self::read_statement), one statement that
    /// only reads, but on the primary, as [`read_primary`](Self::read_primary).
    pub async fn read_statement_primary<R: Send>(
        &self,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        self.run_read_on_primary(Boundary::Statement, work).await
    }

    async fn run_read_on_primary<R: Send>(
        &self,
        boundary: Boundary,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        self.retries
            .run(Retry::ConflictsAndLostConnections, &self.retried, || {
                self.run_read_once(boundary, work.clone())
            })
            .await
    }

    /// Runs `work` in a transaction that may write: committed if it returns
    /// `Ok`, rolled back otherwise.
    pub async fn write<R: Send + 'static>(
        &self,
        work: impl for<'c> UnitOfWork<'c, R> + 'static,
    ) -> Result<R, DbError> {
        self.run_write(Boundary::Transaction, work).await
    }

    /// A unit that only reads may run again after its connection broke,
    /// too: on a fresh one, it can only succeed or fail fast.
    ///
    /// With read replicas, it runs on a standby that is up, close enough
    /// behind the primary, and past the call's consistency token if it
    /// presented one; else, or if the standby fails it (but for a
    /// conflict), on the primary.
    async fn run_read<R: Send>(
        &self,
        boundary: Boundary,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        self.retries
            .run(Retry::ConflictsAndLostConnections, &self.retried, || {
                let work = work.clone();
                async move {
                    let Some(replicas) = self.replicas() else {
                        return self.run_read_once(boundary, work).await;
                    };
                    if let Some(standby) = replicas.choose(replicas::read_after()) {
                        match run_postgres(
                            &standby.pipelined,
                            &standby.exclusive,
                            boundary,
                            work.clone(),
                        )
                        .await
                        {
                            // Whatever the standby's trouble (down, saturated, a
                            // schema it has not replayed), the primary may not
                            // share it. A conflict is retried as anywhere.
                            Err(error) if !error.is_conflict() => standby.failed(&error),
                            done => {
                                standby.served_read();
                                return done;
                            }
                        }
                    }
                    replicas.primary_served_read();
                    self.run_read_once(boundary, work).await
                }
            })
            .await
    }

    fn replicas(&self) -> Option<&ReadReplicas> {
        match &self.pools {
            Pools::Postgres {
                replicas: Some(replicas),
                ..
            } => Some(replicas),
            _ => None,
        }
    }

    async fn run_read_once<R: Send>(
        &self,
        boundary: Boundary,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        match &self.pools {
            Pools::Postgres {
                pipelined,
                exclusive,
                ..
            } => run_postgres(pipelined, exclusive, boundary, work).await,
            Pools::Sqlite { readers, .. } => {
                let mut conn = readers.get().await?;
                match boundary {
                    // Cancel-safe: the statement runs to its end on a
                    // blocking thread whether or not its reply is awaited.
                    Boundary::Statement => Ok(work(Tx::Sqlite(&mut conn)).await?),
                    Boundary::Transaction => {
                        // Cut short, the transaction may stay open.
                        conn.lost_until_done();
                        let result = conn
                            .transaction(async move |conn| work(Tx::Sqlite(conn)).await)
                            .await;
                        conn.forget_if_lost(result.map_err(DbError::from))
                    }
                }
            }
            Pools::Mysql { pool, server } => run_mysql(pool, server, boundary, work).await,
        }
    }

    async fn run_write<R: Send + 'static>(
        &self,
        boundary: Boundary,
        work: impl for<'c> UnitOfWork<'c, R> + 'static,
    ) -> Result<R, DbError> {
        let written = self
            .retries
            .run(Retry::Conflicts, &self.retried, || {
                self.run_write_once(boundary, work.clone())
            })
            .await?;
        self.note_commit_position().await;
        Ok(written)
    }

    /// With read replicas: tells the call being served where the primary's
    /// WAL stands now, past the commit of the write it just made, so that
    /// its caller's next reads see the write ([`replicas`]).
    async fn note_commit_position(&self) {
        let Pools::Postgres {
            pipelined,
            replicas: Some(replicas),
            ..
        } = &self.pools
        else {
            return;
        };
        if !replicas::call_wants_position() {
            return;
        }
        match replicas.position_after_commit(pipelined).await {
            Ok(position) => replicas::committed_before(position),
            // The write stands: failing the call now would say otherwise.
            // Its caller's reads may come from a standby without it.
            Err(error) => tracing::warn!(
                %error,
                "wrote, but cannot read the WAL position: no consistency token for this call"
            ),
        }
    }

    async fn run_write_once<R: Send + 'static>(
        &self,
        boundary: Boundary,
        work: impl for<'c> UnitOfWork<'c, R> + 'static,
    ) -> Result<R, DbError> {
        match &self.pools {
            Pools::Postgres {
                pipelined,
                exclusive,
                ..
            } => run_postgres(pipelined, exclusive, boundary, work).await,
            Pools::Sqlite { writer, .. } => writer.run(boundary, work).await,
            // Always in a transaction: without RETURNING, a write that
            // returns its row takes a second statement to read it back.
            Pools::Mysql { pool, server } => {
                run_mysql(pool, server, Boundary::Transaction, work).await
            }
        }
    }
}

/// MySQL runs each unit on a pooled connection of its own.
async fn run_mysql<R: Send>(
    pool: &ConnectionPool<AsyncMysqlConnection>,
    server: &mysql::ServerWrites,
    boundary: Boundary,
    work: impl for<'c> UnitOfWork<'c, R>,
) -> Result<R, DbError> {
    let mut conn = pool.get().await?;
    conn.lost_until_done();
    let check = server.check();
    let result = match boundary {
        Boundary::Statement => work(Tx::Mysql(&mut conn, check)).await,
        Boundary::Transaction => {
            conn.transaction(async move |conn| work(Tx::Mysql(conn, check)).await)
                .await
        }
    };
    conn.forget_if_lost(result.map_err(DbError::from))
}

/// PostgreSQL runs reads and writes alike: one statement pipelined on a
/// shared connection, a transaction on a connection of its own.
async fn run_postgres<R: Send>(
    pipelined: &PipelinedConnections,
    exclusive: &ConnectionPool<AsyncPgConnection>,
    boundary: Boundary,
    work: impl for<'c> UnitOfWork<'c, R>,
) -> Result<R, DbError> {
    match boundary {
        Boundary::Statement => {
            let lent = pipelined.get().await?;
            let mut conn: &AsyncPgConnection = &lent.conn;
            let result = work(Tx::PostgresPipelined(&mut conn))
                .await
                .map_err(DbError::from);
            lent.returned(&result);
            result
        }
        Boundary::Transaction => {
            let mut conn = exclusive.get().await?;
            // Cut short, the transaction may stay open (diesel-async#198).
            conn.lost_until_done();
            let cancel = postgres::CancelOnDrop::new(conn.cancel_token());
            let result = conn
                .transaction(async move |conn| work(Tx::Postgres(conn)).await)
                .await;
            cancel.disarm();
            conn.forget_if_lost(result.map_err(DbError::from))
        }
    }
}

/// Pooled PostgreSQL connections to `url`, set up by [`postgres::establish`].
fn postgres_manager(
    url: &str,
    isolation: Isolation,
) -> AsyncDieselConnectionManager<AsyncPgConnection> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| {
        postgres::establish(url, isolation)
            .map(|opened| opened.map(|opened| opened.conn))
            .boxed()
    });
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(is_open));
    AsyncDieselConnectionManager::new_with_config(url, config)
}

/// Pooled MySQL connections to `url`, set up by [`mysql::establish`], which
/// notes in `server` what its server lets writes skip.
fn mysql_manager(
    url: &str,
    isolation: Isolation,
    server: Arc<mysql::ServerWrites>,
) -> AsyncDieselConnectionManager<AsyncMysqlConnection> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(move |url| {
        let server = server.clone();
        async move { mysql::establish(url, isolation, &server).await }.boxed()
    });
    config.recycling_method = RecyclingMethod::CustomFunction(Box::new(is_open));
    AsyncDieselConnectionManager::new_with_config(url, config)
}

/// Pooled SQLite connections to `path`, set up by [`sqlite::establish`].
fn sqlite_manager(path: &str) -> AsyncDieselConnectionManager<sqlite::Connection> {
    let mut config = ManagerConfig::default();
    config.custom_setup = Box::new(|path| sqlite::establish(path).boxed());
    AsyncDieselConnectionManager::new_with_config(path, config)
}

/// The check a pooled PostgreSQL or MySQL connection passes before each use: that it
/// is still open (the server may have closed it, e.g. on a restart) and not
/// stuck in a transaction. It costs no round trip, unlike diesel-async's
/// default `SELECT 1`, which would double the round trips of a one-statement
/// call.
fn is_open<C: PoolableConnection>(
    conn: &mut C,
) -> futures_util::future::BoxFuture<'_, QueryResult<()>> {
    let result = if conn.is_broken() {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ClosedConnection,
            Box::new("pooled connection was closed".to_owned()),
        ))
    } else {
        Ok(())
    };
    std::future::ready(result).boxed()
}

/// The one row a write statement returned, read with `load`, which reads
/// the whole result: use it for every write that returns rows, never
/// `get_result`.
///
/// `get_result` returns as soon as the first row arrives. Outside an
/// explicit transaction PostgreSQL commits a statement only after it has
/// produced its rows (at the Sync that ends it); if PostgreSQL dies in
/// between and the rows reach us anyway, the caller is told of a write
/// that never committed. The fault suite saw it: creates acknowledged
/// through `get_result`, then missing (their ids given to later users)
/// after `pg_ctl stop -m immediate`. `load` reads up to ReadyForQuery,
/// which PostgreSQL sends after the commit; if the connection dies first,
/// the write fails as UNAVAILABLE instead.
pub fn written_row<T>(rows: Vec<T>) -> QueryResult<T> {
    rows.into_iter()
        .next()
        .ok_or(diesel::result::Error::NotFound)
}

/// Where a unit of work's transaction begins and ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Boundary {
    /// Around its one statement, implicitly (autocommit).
    Statement,
    /// At explicit BEGIN and COMMIT (or ROLLBACK).
    Transaction,
}

/// Why the database could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    /// SQLite needs the path as UTF-8.
    #[error("{0}: the SQLite path must be valid UTF-8")]
    NonUtf8Path(String),
    /// The SQLite writer's thread could not start.
    #[error("cannot start the SQLite writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
    /// `--read-replica-url` with a database that is not PostgreSQL.
    #[error(
        "--read-replica-url needs a PostgreSQL --database-url: read replicas are PostgreSQL hot standbys"
    )]
    ReplicasNeedPostgres,
    /// A `--read-replica-url` cannot be used.
    #[error(transparent)]
    ReplicaUrl(#[from] ReplicaUrlError),
}
