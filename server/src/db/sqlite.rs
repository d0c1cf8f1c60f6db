//! SQLite connections: what every new connection must set before use, and
//! where its statements run.

use std::error::Error;

use diesel::{ConnectionResult, SqliteConnection};
use diesel_async::{
    AsyncConnection, SimpleAsyncConnection,
    sync_connection_wrapper::{SpawnBlocking, SyncConnectionWrapper},
};
use futures_util::{FutureExt, future::BoxFuture};

/// A SQLite connection: diesel's, behind diesel-async's wrapper, running
/// each statement right on the thread that asks for it. For a reader, that
/// is an async worker: a read in WAL mode never waits for the writer and
/// takes microseconds, less than handing it to another thread and back (two
/// context switches, most of a read's cost). The writer has a thread of its
/// own (`SqliteWriter`, in `db::sqlite_writer`).
pub type Connection = SyncConnectionWrapper<SqliteConnection, OnCallingThread>;

/// What every connection sets before use, in this order:
/// - `busy_timeout` first (5 s), so that the statements below wait rather
///   than fail while another connection holds a lock;
/// - WAL, so readers never block the writer nor the writer the readers;
/// - `synchronous = NORMAL`: in WAL mode a commit survives a crash of the
///   process; only a power loss may drop the last commits;
/// - `mmap_size`: pages are read from a memory map rather than with a read()
///   system call each (the map is virtual; only pages touched count);
/// - `foreign_keys`, off by default in SQLite for historic reasons.
///
/// Public so that the benchmark's in-process ceiling runs with the same.
pub const PRAGMAS: &str = "PRAGMA busy_timeout = 5000;
     PRAGMA journal_mode = WAL;
     PRAGMA synchronous = NORMAL;
     PRAGMA mmap_size = 268435456;
     PRAGMA foreign_keys = ON;";

/// Opens `path` (creating the file if missing) with [`PRAGMAS`] applied.
pub async fn establish(path: &str) -> ConnectionResult<Connection> {
    let mut conn = Connection::establish(path).await?;
    conn.batch_execute(PRAGMAS)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Runs a "blocking" task at once, on the calling thread: for work that is
/// shorter than a thread hand-off.
#[derive(Debug, Clone, Copy)]
pub struct OnCallingThread;

impl SpawnBlocking for OnCallingThread {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> BoxFuture<'a, Result<R, Box<dyn Error + Send + Sync + 'static>>>
    where
        R: Send + 'static,
    {
        std::future::ready(Ok(task())).boxed()
    }

    fn get_runtime() -> Self {
        Self
    }
}
