//! SQLite connections: what every new connection must set before use.

use diesel::{ConnectionResult, SqliteConnection};
use diesel_async::{
    AsyncConnection, SimpleAsyncConnection, sync_connection_wrapper::SyncConnectionWrapper,
};

/// diesel's SQLite connection behind diesel-async's blocking-thread wrapper.
pub type AsyncSqliteConnection = SyncConnectionWrapper<SqliteConnection>;

/// How long a statement waits for another connection's write lock before it
/// fails with "database is locked".
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// Opens `path` (creating the file if missing) and configures the connection:
/// - `busy_timeout` first, so that the statements below wait rather than fail
///   while another connection holds a lock;
/// - WAL, so readers never block the writer nor the writer the readers;
/// - `synchronous = NORMAL`: in WAL mode a commit survives a crash of the
///   process; only a power loss may drop the last commits;
/// - `foreign_keys`, off by default in SQLite for historic reasons.
pub async fn establish(path: &str) -> ConnectionResult<AsyncSqliteConnection> {
    let mut conn = AsyncSqliteConnection::establish(path).await?;
    let pragmas = format!(
        "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};
         PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;"
    );
    conn.batch_execute(&pragmas)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}
