//! [`ConnectionPool`]: a bb8 pool that gives up as soon as the database
//! refuses connections.

use std::{
    fmt,
    ops::{Deref, DerefMut},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
};

use bb8::{ManageConnection, Pool, PooledConnection};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, PoolError};
use tokio::sync::broadcast;

use super::{DbError, PoolOptions};

/// A bb8 pool of diesel-async connections.
///
/// bb8's `get` never returns a failed connection attempt to its caller: it
/// waits out the whole timeout. With the database down, every call would
/// hang for `--pool-timeout` before failing. So the pool's error sink
/// broadcasts each failed attempt, and a waiting [`get`](Self::get) gives up
/// on the first one, which turns "database down" into an immediate
/// UNAVAILABLE.
pub struct ConnectionPool<C: 'static>
where
    Manager<C>: ManageConnection,
{
    pool: Pool<Manager<C>>,
    connect_failures: broadcast::Sender<()>,
    /// Callers inside [`get`](Self::get), for the metrics: bb8 does not
    /// say how many wait.
    waiting: Arc<AtomicU32>,
}

/// What a [`ConnectionPool`] holds, at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolReading {
    /// Connections open.
    pub open: u32,
    /// Connections lent to a unit of work.
    pub in_use: u32,
    /// Callers waiting for a connection.
    pub waiting: u32,
}

impl<C: Send + 'static> ConnectionPool<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Connection = C, Error = PoolError>,
{
    /// A pool of `options.size` connections. With `test_on_check_out`, each
    /// connection passes the manager's recycling check before it is handed
    /// out, and is replaced if it fails.
    pub fn new(
        manager: AsyncDieselConnectionManager<C>,
        options: PoolOptions,
        test_on_check_out: bool,
    ) -> Self {
        let (connect_failures, _) = broadcast::channel(1);
        let pool = Pool::builder()
            .max_size(options.size)
            .connection_timeout(options.timeout)
            // A failed attempt is reported (below) instead of retried for the
            // whole timeout; the next call makes a new attempt.
            .retry_connection(false)
            .test_on_check_out(test_on_check_out)
            .error_sink(Box::new(ErrorSink {
                connect_failures: connect_failures.clone(),
            }))
            .build_unchecked(Manager(manager));
        Self {
            pool,
            connect_failures,
            waiting: Arc::default(),
        }
    }

    /// What the pool holds now.
    pub fn reading(&self) -> PoolReading {
        let state = self.pool.state();
        PoolReading {
            open: state.connections,
            in_use: state.connections.saturating_sub(state.idle_connections),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// A connection: an idle one, a new one, or one that frees up within the
    /// timeout. Fails with [`DbError::Unreachable`] as soon as an attempt to
    /// connect fails, and [`DbError::PoolTimedOut`] after the timeout.
    pub async fn get(&self) -> Result<PooledConnection<'_, Manager<C>>, DbError> {
        let _waiting = Waiting::enter(&self.waiting);
        let mut failures = self.connect_failures.subscribe();
        tokio::select! {
            connection = self.pool.get() => connection.map_err(|error| match error {
                bb8::RunError::TimedOut => DbError::PoolTimedOut,
                bb8::RunError::User(error) => DbError::Unreachable(error.to_string()),
            }),
            // Lagged: it missed some of the failures, not all of them.
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) = failures.recv() => Err(DbError::Unreachable(
                "connection attempt failed (see the database pool warning)".to_owned(),
            )),
        }
    }
}

impl<C> Clone for ConnectionPool<C>
where
    Manager<C>: ManageConnection,
{
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            connect_failures: self.connect_failures.clone(),
            waiting: Arc::clone(&self.waiting),
        }
    }
}

impl<C> fmt::Debug for ConnectionPool<C>
where
    Manager<C>: ManageConnection,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("state", &self.pool.state())
            .finish()
    }
}

/// The pool's manager: diesel-async's, which also drops the connections a
/// unit of work found lost ([`Tracked::forget_if_lost`]).
///
/// diesel-async judges a pooled connection by its transaction state only,
/// and, for MySQL, cannot see that the server closed it: a connection that
/// failed a call with "Connection to the server is closed" would go back to
/// the pool and fail every call after it, in microseconds, until bb8
/// retired it (30 minutes). The fault tests saw a whole service answer
/// UNAVAILABLE for a minute after MariaDB restarted.
pub struct Manager<C>(AsyncDieselConnectionManager<C>);

/// A pooled connection, and whether it was found lost.
#[derive(Debug)]
pub struct Tracked<C> {
    conn: C,
    lost: bool,
}

impl<C> Tracked<C> {
    /// Counts the connection as lost until [`forget_if_lost`]
    /// (Self::forget_if_lost) says otherwise: call it before a unit of
    /// work. A unit cut short (its call cancelled: the deadline, or the
    /// caller gone) never gets there, and the pool drops the connection
    /// rather than lend it again with a reply half read or a transaction
    /// open. MySQL's driver is not cancel-safe: a query dropped mid-reply
    /// left the rest of it on the connection, and the next unit read it as
    /// its own ("can't parse: buf doesn't have enough data", or another
    /// query's rows: the change-event numberer found its cursor row
    /// missing). Costs a new connection per cancelled unit.
    pub fn lost_until_done(&mut self) {
        self.lost = true;
    }

    /// Passes `result`, the end of a unit of work, on; if it says the
    /// connection was lost, the pool drops the connection instead of
    /// lending it again.
    pub fn forget_if_lost<R>(&mut self, result: Result<R, DbError>) -> Result<R, DbError> {
        self.lost = result.as_ref().is_err_and(DbError::is_connection_lost);
        result
    }
}

impl<C> Deref for Tracked<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.conn
    }
}

impl<C> DerefMut for Tracked<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.conn
    }
}

impl<C: Send + 'static> ManageConnection for Manager<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection<Connection = C, Error = PoolError>,
{
    type Connection = Tracked<C>;
    type Error = PoolError;

    async fn connect(&self) -> Result<Tracked<C>, PoolError> {
        let conn = self.0.connect().await?;
        Ok(Tracked { conn, lost: false })
    }

    async fn is_valid(&self, conn: &mut Tracked<C>) -> Result<(), PoolError> {
        self.0.is_valid(&mut conn.conn).await
    }

    fn has_broken(&self, conn: &mut Tracked<C>) -> bool {
        conn.lost || self.0.has_broken(&mut conn.conn)
    }
}

/// Counts a caller as waiting until dropped, however `get` ends (a
/// connection, an error, or the caller giving up).
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicU32) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Logs what the pool hits in the background, and broadcasts failed
/// connection attempts to the callers waiting in [`ConnectionPool::get`].
/// A failed ping is only logged: bb8 then tries another connection.
#[derive(Debug, Clone)]
struct ErrorSink {
    connect_failures: broadcast::Sender<()>,
}

impl bb8::ErrorSink<PoolError> for ErrorSink {
    fn sink(&self, error: PoolError) {
        tracing::warn!(%error, "database pool");
        if let PoolError::ConnectionError(_) = error {
            // No receiver means no caller is waiting: nothing to fail.
            let _ = self.connect_failures.send(());
        }
    }

    fn boxed_clone(&self) -> Box<dyn bb8::ErrorSink<PoolError>> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use diesel_async::AsyncMysqlConnection;
    use futures_util::future::join_all;

    use super::*;
    use crate::db::Isolation;

    /// With the database refusing connections, every waiting caller fails
    /// at once: also those that missed some of the failed attempts (the
    /// broadcast holds one; two attempts failing together used to leave
    /// every waiter to the pool timeout).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_fails_fast_when_the_database_refuses_connections() {
        let timeout = Duration::from_secs(5);
        let manager = AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(
            "mysql://root@127.0.0.1:1/db",
        );
        let options = PoolOptions {
            size: 4,
            timeout,
            isolation: Isolation::ReadCommitted,
        };
        let pool = ConnectionPool::new(manager, options, false);
        let started = Instant::now();
        let attempts = join_all((0..50).map(|_| pool.get())).await;
        let took = started.elapsed();
        for attempt in &attempts {
            assert!(
                matches!(attempt, Err(DbError::Unreachable(_))),
                "{:?}",
                attempt.as_ref().err()
            );
        }
        assert!(took < timeout / 2, "failed after {took:?}");
    }
}
