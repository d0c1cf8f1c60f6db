//! The database: which backend, its connection pools, and units of work.
//!
//! Every query is written once, in [`models`](crate::models), against a
//! [`Tx`]; [`on_backend!`] compiles it for each backend. What differs per
//! backend is kept small and named:
//! - connection set-up ([`sqlite::establish`]; PostgreSQL needs none),
//! - pools: PostgreSQL shares one pool for reads and writes; SQLite has many
//!   readers and a single writer, since it serializes writes anyway and one
//!   writer avoids lock convoys and `SQLITE_BUSY`,
//! - migrations ([`migrations`], one directory per backend),
//! - the [`Tx`] variant the unit of work runs on.

pub mod error;
pub mod migrations;
mod pool;
pub mod schema;
pub mod sqlite;
pub mod url;

use std::{future::Future, time::Duration};

use diesel::QueryResult;
use diesel_async::{
    AsyncConnection, AsyncPgConnection,
    pooled_connection::{AsyncDieselConnectionManager, ManagerConfig},
};
use futures_util::FutureExt;

use self::pool::ConnectionPool;

pub use self::{error::DbError, sqlite::AsyncSqliteConnection, url::DatabaseUrl};

/// A connection inside a transaction, on whichever backend is configured.
/// Queries take `&mut Tx` and use [`on_backend!`] to run on it.
#[allow(missing_debug_implementations)] // the connections have none
pub enum Tx<'c> {
    /// PostgreSQL.
    Postgres(&'c mut AsyncPgConnection),
    /// SQLite.
    Sqlite(&'c mut AsyncSqliteConnection),
}

/// Runs `$body` with `$conn` bound to the concrete connection inside a
/// [`Tx`]. The body is compiled once per backend, so a query written once
/// serves them all.
///
/// ```text
/// on_backend!(tx, |conn| users::table.count().get_result(conn).await)
/// ```
macro_rules! on_backend {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::Tx::Postgres($conn) => {
                let $conn = &mut **$conn;
                $body
            }
            $crate::db::Tx::Sqlite($conn) => {
                let $conn = &mut **$conn;
                $body
            }
        }
    };
}
pub(crate) use on_backend;

/// The body of a transaction: an async closure over a [`Tx`] whose future
/// is `Send`, so that it can run inside a gRPC handler. (Spelled this way
/// because Rust cannot yet bound an async closure's future directly.)
pub trait UnitOfWork<'c, R>:
    AsyncFnOnce(Tx<'c>) -> QueryResult<R> + FnOnce(Tx<'c>) -> Self::Fut + Send
{
    /// The closure's future.
    type Fut: Future<Output = QueryResult<R>> + Send;
}

impl<'c, R, F, Fut> UnitOfWork<'c, R> for F
where
    F: AsyncFnOnce(Tx<'c>) -> QueryResult<R> + FnOnce(Tx<'c>) -> Fut + Send,
    Fut: Future<Output = QueryResult<R>> + Send,
{
    type Fut = Fut;
}

/// Connection pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Most connections open at once (SQLite: readers; its writer comes on
    /// top). They are opened on demand.
    pub size: u32,
    /// How long a unit of work waits for a connection before failing.
    pub timeout: Duration,
}

/// Pooled connections to the configured database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Database {
    pools: Pools,
    url: DatabaseUrl,
}

#[derive(Debug, Clone)]
enum Pools {
    Postgres(ConnectionPool<AsyncPgConnection>),
    Sqlite {
        readers: ConnectionPool<AsyncSqliteConnection>,
        writer: ConnectionPool<AsyncSqliteConnection>,
    },
}

impl Database {
    /// Sets up the pools for `url`. Connections are opened on first use;
    /// [`migrations::prepare`] opens the first one and reports failures.
    pub fn open(url: DatabaseUrl, options: PoolOptions) -> Result<Self, DbOpenError> {
        let pools = match &url {
            DatabaseUrl::Postgres(text) => Pools::Postgres(ConnectionPool::new(
                AsyncDieselConnectionManager::new(text),
                options,
                true,
            )),
            DatabaseUrl::Sqlite(path) => {
                let path = path
                    .to_str()
                    .ok_or_else(|| DbOpenError::NonUtf8Path(url.to_string()))?;
                let manager = || {
                    let mut config = ManagerConfig::default();
                    config.custom_setup = Box::new(|path| sqlite::establish(path).boxed());
                    AsyncDieselConnectionManager::new_with_config(path, config)
                };
                // A local file needs no liveness check on checkout.
                let readers = ConnectionPool::new(manager(), options, false);
                let writer =
                    ConnectionPool::new(manager(), PoolOptions { size: 1, ..options }, false);
                Pools::Sqlite { readers, writer }
            }
        };
        Ok(Self { pools, url })
    }

    /// The URL this database was opened with (password masked when shown).
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Runs `work` in a transaction meant for reads only.
    pub async fn read<R: Send>(&self, work: impl for<'c> UnitOfWork<'c, R>) -> Result<R, DbError> {
        self.transaction(Access::Read, work).await
    }

    /// Runs `work` in a transaction that may write: committed if it returns
    /// `Ok`, rolled back otherwise.
    pub async fn write<R: Send>(&self, work: impl for<'c> UnitOfWork<'c, R>) -> Result<R, DbError> {
        self.transaction(Access::Write, work).await
    }

    async fn transaction<R: Send>(
        &self,
        access: Access,
        work: impl for<'c> UnitOfWork<'c, R>,
    ) -> Result<R, DbError> {
        match &self.pools {
            Pools::Postgres(pool) => {
                let mut conn = pool.get().await?;
                Ok(conn
                    .transaction(async move |conn| work(Tx::Postgres(conn)).await)
                    .await?)
            }
            Pools::Sqlite { readers, writer } => {
                let pool = match access {
                    Access::Read => readers,
                    Access::Write => writer,
                };
                let mut conn = pool.get().await?;
                Ok(conn
                    .transaction(async move |conn| work(Tx::Sqlite(conn)).await)
                    .await?)
            }
        }
    }
}

/// Whether a unit of work may write; decides which SQLite pool serves it.
#[derive(Debug, Clone, Copy)]
enum Access {
    Read,
    Write,
}

/// Why the database could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum DbOpenError {
    /// SQLite needs the path as UTF-8.
    #[error("{0}: the SQLite path must be valid UTF-8")]
    NonUtf8Path(String),
}
