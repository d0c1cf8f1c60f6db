//! [`PipelinedConnections`]: PostgreSQL connections that many calls use at
//! once, for units of work of one statement.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicUsize, Ordering},
};
use std::time::{Duration, Instant};

use diesel_async::AsyncPgConnection;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{
    DbError, Isolation,
    postgres::{self, Closed},
};

/// A fixed set of PostgreSQL connections shared by concurrent calls.
///
/// A pooled connection serves one call at a time: each statement is a
/// round trip during which the connection idles, and every call costs a
/// send, a wake-up and a receive on both sides. Here, calls that run one
/// statement (no explicit transaction) share the connections, and
/// statements issued together on one connection are pipelined: written in
/// one go, read back in one go, executed back to back by the server. Every
/// statement still runs on its own, in its own implicit transaction.
///
/// At most [`PIPELINE_DEPTH`] statements wait on each connection; a call
/// that finds them all taken waits up to the pool timeout for a turn, then
/// fails with [`DbError::PoolTimedOut`], so overload turns into UNAVAILABLE
/// rather than into an ever longer queue.
///
/// Units with an explicit transaction must never run here: their BEGIN
/// would capture other calls' statements. They get a connection of their
/// own from the exclusive pool.
pub struct PipelinedConnections {
    url: String,
    isolation: Isolation,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    /// Turns to run a statement: [`PIPELINE_DEPTH`] per connection.
    turns: Semaphore,
    /// How long a call waits for a turn.
    timeout: Duration,
}

/// Statements in flight per connection at most. Deep enough to fill the
/// gaps between round trips, shallow enough that a burst queues in the
/// server, where it can time out, rather than inside the connection.
pub const PIPELINE_DEPTH: usize = 16;

#[derive(Default)]
struct Slot {
    /// The connection, if one was opened. A std mutex: held only to clone
    /// or swap the `Arc`, never across an await.
    current: Mutex<Option<(Arc<AsyncPgConnection>, Closed)>>,
    /// Held while (re)connecting, so that one call connects and the others
    /// wait for its result instead of opening connections of their own;
    /// holds the last failed attempt, when and why.
    connecting: tokio::sync::Mutex<Option<(Instant, String)>>,
}

/// After a failed attempt to connect, calls on the slot fail at once with
/// its error for this long instead of each trying again: while a database
/// fails over, every call used to open (and fail) a connection of its own,
/// hundreds a second, at the node being promoted.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// A connection lent by [`PipelinedConnections::get`], with a turn on it.
pub struct Lent<'p> {
    slot: &'p Slot,
    _turn: SemaphorePermit<'p>,
    /// The connection; share it as `&AsyncPgConnection`.
    pub conn: Arc<AsyncPgConnection>,
}

impl PipelinedConnections {
    /// `size` connections to `url`, opened on first use.
    pub fn new(url: &str, isolation: Isolation, size: u32, timeout: Duration) -> Self {
        let size = usize::try_from(size).unwrap_or(1).max(1);
        Self {
            url: url.to_owned(),
            isolation,
            slots: (0..size).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            turns: Semaphore::new(size * PIPELINE_DEPTH),
            timeout,
        }
    }

    /// A turn on the next connection in line, opening it if it is not open
    /// (or no longer: a connection the server closed is replaced before
    /// any call tries it).
    pub async fn get(&self) -> Result<Lent<'_>, DbError> {
        let turn = match tokio::time::timeout(self.timeout, self.turns.acquire()).await {
            Ok(Ok(turn)) => turn,
            // The semaphore is never closed; a timeout is the only way here.
            Ok(Err(_)) | Err(_) => return Err(DbError::PoolTimedOut),
        };
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        let lend = |conn| Lent {
            slot,
            _turn: turn,
            conn,
        };
        if let Some(conn) = slot.live() {
            return Ok(lend(conn));
        }
        let mut last_failure = slot.connecting.lock().await;
        if let Some(conn) = slot.live() {
            return Ok(lend(conn));
        }
        if let Some((at, error)) = &*last_failure
            && at.elapsed() < RECONNECT_PAUSE
        {
            return Err(DbError::Unreachable(error.clone()));
        }
        let opened = match postgres::establish(&self.url, self.isolation).await {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot connect to PostgreSQL");
                *last_failure = Some((Instant::now(), error.to_string()));
                return Err(DbError::Unreachable(error.to_string()));
            }
        };
        *last_failure = None;
        let conn = Arc::new(opened.conn);
        *slot.lock() = Some((Arc::clone(&conn), opened.closed));
        Ok(lend(conn))
    }
}

/// Metrics, read when scraped.
impl PipelinedConnections {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.live().is_some())
            .count()
    }

    /// Turns taken now: statements in flight, or about to be.
    pub fn turns_in_use(&self) -> usize {
        (self.slots.len() * PIPELINE_DEPTH).saturating_sub(self.turns.available_permits())
    }
}

impl Lent<'_> {
    /// Reports how the statement went: after a connection failure the
    /// connection is dropped, and the next call on its slot reconnects.
    pub fn returned<T>(self, result: &Result<T, DbError>) {
        if result.as_ref().is_err_and(DbError::is_connection_lost) {
            let mut current = self.slot.lock();
            if current
                .as_ref()
                .is_some_and(|(conn, _)| Arc::ptr_eq(conn, &self.conn))
            {
                *current = None;
            }
        }
    }
}

impl Slot {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Arc<AsyncPgConnection>, Closed)>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection, unless none was opened or it has closed.
    fn live(&self) -> Option<Arc<AsyncPgConnection>> {
        self.lock()
            .as_ref()
            .filter(|(_, closed)| !closed.get())
            .map(|(conn, _)| Arc::clone(conn))
    }
}

impl std::fmt::Debug for Lent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lent").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PipelinedConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelinedConnections")
            .field("size", &self.slots.len())
            .field("open", &self.open())
            .finish()
    }
}
