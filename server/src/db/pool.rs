//! [`ConnectionPool`]: a bb8 pool that gives up as soon as the database
//! refuses connections.

use std::{
    fmt,
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
    AsyncDieselConnectionManager<C>: ManageConnection,
{
    pool: Pool<AsyncDieselConnectionManager<C>>,
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

impl<C: 'static> ConnectionPool<C>
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
            .build_unchecked(manager);
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
    pub async fn get(
        &self,
    ) -> Result<PooledConnection<'_, AsyncDieselConnectionManager<C>>, DbError> {
        let _waiting = Waiting::enter(&self.waiting);
        let mut failures = self.connect_failures.subscribe();
        tokio::select! {
            connection = self.pool.get() => connection.map_err(|error| match error {
                bb8::RunError::TimedOut => DbError::PoolTimedOut,
                bb8::RunError::User(error) => DbError::Unreachable(error.to_string()),
            }),
            Ok(()) = failures.recv() => Err(DbError::Unreachable(
                "connection attempt failed (see the database pool warning)".to_owned(),
            )),
        }
    }
}

impl<C> Clone for ConnectionPool<C>
where
    AsyncDieselConnectionManager<C>: ManageConnection,
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
    AsyncDieselConnectionManager<C>: ManageConnection,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("state", &self.pool.state())
            .finish()
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
